"""`roadwatch detect`: the detect pool.

Every replica binds the same durable pull consumer on FRAMES, so any replica takes any frame
and the pool scales on consumer lag. Frames are fetched in micro-batches (up to BATCH_SIZE
frames, waiting at most BATCH_WAIT_MS for the batch to fill once the first frame is in), the
batch's frames run on WORKERS threads (onnxruntime releases the GIL), and each frame's
detections are published before the batch is acked. With arguments, `roadwatch detect
IMAGE...` runs the same pipeline on files instead.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg

from proto import streams, subjects
from proto.v1.detection import DetectionMade
from services.detect import metrics
from services.detect.handler import Frame, decode_frame, detection_event, utcnow
from services.detect.pipeline import FrameResult, Pipeline
from services.detect.sessions import ModelError
from services.detect.settings import Settings
from services.runtime import bus, http, lifecycle, logs
from services.runtime.settings import load

log = logging.getLogger("services.detect")
SERVICE = "detect"
STREAMS = (streams.FRAMES, streams.DETECTIONS, streams.DEAD_LETTERS)


class Worker:
    """Holds what the consumer's decode and batch handler share: models, threads, settings."""

    def __init__(self, js, pipeline: Pipeline, settings: Settings, executor: ThreadPoolExecutor,
                 consumer_name: str = streams.DETECT.name) -> None:
        self.js = js
        self.consumer_name = consumer_name
        self.pipeline = pipeline
        self.settings = settings
        self.executor = executor

    def decode(self, msg: Msg) -> Frame:
        return decode_frame(msg.data, msg.headers, msg.metadata.sequence.stream, now=utcnow(),
                            max_age_s=self.settings.max_frame_age_s)

    def _run(self, frame: Frame) -> tuple[FrameResult | None, float, str]:
        started = time.perf_counter()
        try:
            result = self.pipeline.process(frame.image)  # type: ignore[arg-type]
        except Exception as exc:  # one image that breaks the pipeline must not sink its batch
            log.exception("detection failed", extra={"fields": {"camera_id": frame.meta.camera_id,
                                                                "frame_seq": frame.meta.frame_seq}})
            return None, time.perf_counter() - started, repr(exc)
        return result, time.perf_counter() - started, ""

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        """A frame the models fail on would fail on every replica: keep it, with the reason, on
        the dead letters, so that the rest of its batch is acked rather than retried with it."""
        letter = bus.dead_letter_for(msg, service=SERVICE, consumer=self.consumer_name, error="invalid", reason=reason)
        await bus.publish(self.js, subjects.dlq(SERVICE), letter, service=SERVICE)
        await msg.term()

    async def handle_batch(self, items: list[tuple[Frame, Msg]]) -> None:
        metrics.BATCH_SIZE.observe(len(items))
        fresh = [(frame, msg) for frame, msg in items if not frame.stale]
        skipped = len(items) - len(fresh)
        if skipped:
            metrics.FRAMES.labels("stale").inc(skipped)
            log.info("stale frames skipped", extra={"fields": {"count": skipped, "max_age_s": self.settings.max_frame_age_s}})
        loop = asyncio.get_running_loop()
        outcomes = await asyncio.gather(*(loop.run_in_executor(self.executor, self._run, frame) for frame, _ in fresh))
        now = utcnow()
        done: list[tuple[Frame, DetectionMade]] = []
        for (frame, msg), (result, seconds, error) in zip(fresh, outcomes):
            metrics.FRAME_SECONDS.observe(seconds)
            if result is None:
                metrics.FRAMES.labels("failed").inc()
                await self._dead_letter(msg, f"detection failed on this frame: {error}")
                continue
            done.append((frame, detection_event(frame, result, model=self.pipeline.model_name, now=now)))
        await asyncio.gather(*(bus.publish(self.js, subjects.detection_made(e.camera_id), e, service=SERVICE) for _, e in done))
        now = utcnow()
        for frame, event in done:
            metrics.FRAMES.labels("detected").inc()
            metrics.FRAME_AGE_SECONDS.observe((now - frame.meta.captured_at).total_seconds())
            for obj in event.objects:
                metrics.OBJECTS.labels(obj.class_name).inc()
            for plate in event.plates:
                metrics.PLATES.labels(plate.source, str(plate.read.format_valid).lower()).inc()


async def consume_batches(js, consumer: bus.Consumer, stop: asyncio.Event, *, batch: int, wait_s: float,
                          idle_s: float = 1.0) -> None:
    """The pull loop with a fill window: the runtime's loop returns whatever one fetch gives;
    here, once a first frame is in, more are fetched until the batch is full or `wait_s` ends.
    The next batch is fetched while the current one runs on the workers, so the bus round
    trips hide behind the models. Decoding, dead letters, acks and naks stay the runtime's
    (`Consumer.process`)."""
    spec = consumer.spec
    await bus.ensure_consumer(js, spec)
    sub = await js.pull_subscribe_bind(spec.name, stream=spec.stream)
    log.info("consuming", extra={"fields": {"consumer": spec.name, "stream": spec.stream, "batch": batch}})
    in_flight: asyncio.Task | None = None
    try:
        while not stop.is_set():
            try:
                # One frame starts a batch: a pull for `batch` would linger until it is full or
                # `idle_s` ends, holding the first frame back for up to a second.
                msgs = await sub.fetch(1, timeout=idle_s)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                continue
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError,
                    nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError) as exc:
                log.warning("fetch failed; retrying", extra={"fields": {"error": repr(exc)}})
                await asyncio.sleep(1.0)
                continue
            deadline = time.monotonic() + wait_s
            while len(msgs) < batch and (left := deadline - time.monotonic()) > 0.002:
                try:
                    msgs += await sub.fetch(batch - len(msgs), timeout=left)
                except (nats.errors.TimeoutError, asyncio.TimeoutError):
                    break
            if in_flight is not None:
                await in_flight
            in_flight = asyncio.create_task(consumer.process(msgs))
    finally:
        if in_flight is not None:
            await in_flight
        try:
            await sub.unsubscribe()
        except Exception as exc:  # connection already closed at shutdown
            log.debug("unsubscribe failed", extra={"fields": {"error": repr(exc)}})


async def serve(settings: Settings, pipeline: Pipeline, stop: asyncio.Event,
                consumer_spec: streams.Consumer = streams.DETECT) -> None:
    async with AsyncExitStack() as stack:
        nc = await bus.connect(settings.nats_url, SERVICE)
        stack.push_async_callback(nc.drain)
        js = nc.jetstream()
        await bus.ensure_streams(js, STREAMS)
        executor = ThreadPoolExecutor(settings.workers, thread_name_prefix="detect-worker")
        stack.callback(executor.shutdown, wait=True)
        runner, _ = await http.serve(settings.http_port, {"nats": lambda: nc.is_connected})
        stack.push_async_callback(runner.cleanup)
        worker = Worker(js, pipeline, settings, executor, consumer_spec.name)
        consumer = bus.Consumer(js, service=SERVICE, consumer=consumer_spec, decode=worker.decode,
                                handle_batch=worker.handle_batch, batch=settings.batch_size,
                                max_payload=settings.max_frame_bytes)
        await consume_batches(js, consumer, stop, batch=settings.batch_size, wait_s=settings.batch_wait_ms / 1000)


async def _run(settings: Settings, pipeline: Pipeline) -> None:
    await serve(settings, pipeline, lifecycle.stop_event())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        from services.detect.cli import detect_main

        return detect_main(argv)
    settings = load(Settings, service=SERVICE)
    logs.setup(SERVICE, settings.log_level)
    try:
        pipeline = Pipeline.from_settings(settings)
    except ModelError as exc:
        print(f"roadwatch detect: {exc}", file=sys.stderr)
        return 2
    log.info("models loaded", extra={"fields": {"vehicle_model": settings.vehicle_model, "format": settings.vehicle_format,
                                                "workers": settings.workers, "batch_size": settings.batch_size}})
    asyncio.run(_run(settings, pipeline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
