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
        self.consumer: bus.Consumer  # set once the consumer that calls handle_batch exists

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
                # It would fail on every replica: dead-letter it alone, the rest of the batch is acked.
                await self.consumer.dead_letter(msg, "invalid", f"detection failed on this frame: {error}")
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


async def serve(settings: Settings, pipeline: Pipeline, stop: asyncio.Event,
                consumer_spec: streams.Consumer = streams.DETECT) -> None:
    async with AsyncExitStack() as stack:
        nc = await bus.connect(settings.nats_url, SERVICE)
        stack.push_async_callback(bus.drain, nc)
        js = nc.jetstream()
        await bus.ensure_streams(js, STREAMS)
        executor = ThreadPoolExecutor(settings.workers, thread_name_prefix="detect-worker")
        stack.callback(executor.shutdown, wait=True)
        runner, _ = await http.serve(settings.http_port, {"nats": lambda: nc.is_connected}, draining=stop,
                                     host=settings.http_host)
        stack.push_async_callback(runner.cleanup)
        worker = Worker(js, pipeline, settings, executor, consumer_spec.name)
        # Up to BATCH_SIZE frames or BATCH_WAIT_MS once the first is in; the next batch is
        # fetched while this one runs on the workers, so bus round trips hide behind the models.
        worker.consumer = bus.Consumer(
            js, service=SERVICE, consumer=consumer_spec, decode=worker.decode, handle_batch=worker.handle_batch,
            batch=settings.batch_size, max_payload=settings.max_frame_bytes,
            fill_window_s=settings.batch_wait_ms / 1000, overlap=True,
        )
        await worker.consumer.run(stop)


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
