"""`roadwatch detect`: the detect pool.

Every replica binds the same durable pull consumer on FRAMES, so any replica takes any frame
and the pool scales on consumer lag. Frames are fetched in micro-batches (up to BATCH_SIZE
frames, waiting at most BATCH_WAIT_MS for the batch to fill once the first frame is in, plus
whatever else is already waiting), the batch's frames run on WORKERS threads (onnxruntime
releases the GIL), and each frame's detections are published before the batch is acked. When
detect falls behind, every camera loses frames alike (admission.py), and the drops are counted
per camera and logged as one WARNING per DROP_LOG_INTERVAL_S. With arguments, `roadwatch detect
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
from proto.v1.frame import frame_meta_from_headers
from services.detect import admission
from services.detect import metrics
from services.detect.handler import Frame, decode_frame, detect_frame, detection_event, utcnow
from services.detect.pipeline import FrameResult, Pipeline
from services.detect.regions import PlanBook, RegionError
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
                 consumer_name: str = streams.DETECT.name, plans: PlanBook | None = None) -> None:
        self.js = js
        self.consumer_name = consumer_name
        self.pipeline = pipeline
        self.plans = plans or PlanBook({})
        self.settings = settings
        self.executor = executor
        self.consumer: bus.Consumer  # set once the consumer that calls handle_batch exists
        self.drops = admission.DropLog(settings.drop_log_interval_s)

    def decode(self, msg: Msg) -> admission.Waiting:
        """Headers only: the JPEG is decoded on a worker thread, and only if the frame is kept."""
        meta = frame_meta_from_headers(msg.headers)
        return admission.Waiting(meta, msg.metadata.sequence.stream, (utcnow() - meta.captured_at).total_seconds())

    def _decode_image(self, msg: Msg) -> Frame:
        return decode_frame(msg.data, msg.headers, msg.metadata.sequence.stream, now=utcnow(),
                            max_age_s=self.settings.max_frame_age_s)

    def _count(self, camera: str, result: str, n: int = 1) -> None:
        metrics.FRAMES.labels(result).inc(n)
        metrics.CAMERA_FRAMES.labels(camera, result).inc(n)
        self.drops.count(time.monotonic(), camera, result, n)

    async def admit(self, items: list[tuple[admission.Waiting, Msg]]) -> list[tuple[Frame, Msg]]:
        """The frames of this batch worth detecting, decoded; the others counted (acked with the
        batch) and reported; a frame that does not decode goes to the dead letters alone."""
        chosen = admission.admit(items, per_camera=self.settings.frames_per_camera,
                                 max_age_s=self.settings.max_frame_age_s, batch=self.settings.batch_size)
        for result, dropped in ((admission.STALE, chosen.stale), (admission.SUPERSEDED, chosen.superseded)):
            for waiting, _ in dropped:
                self._count(waiting.meta.camera_id, result)
        loop = asyncio.get_running_loop()
        decoded = await asyncio.gather(*(loop.run_in_executor(self.executor, self._decode_image, msg)
                                         for _, msg in chosen.kept), return_exceptions=True)
        fresh: list[tuple[Frame, Msg]] = []
        for (waiting, msg), frame in zip(chosen.kept, decoded):
            if isinstance(frame, BaseException):
                await self.consumer.dead_letter(msg, "invalid", f"invalid message: {frame}")
            elif frame.stale:  # aged past the limit while it waited for this batch
                self._count(waiting.meta.camera_id, admission.STALE)
            else:
                fresh.append((frame, msg))
        return fresh

    def report_drops(self) -> None:
        fields = self.drops.report(time.monotonic())
        if fields is not None:
            log.warning("frames dropped: detect falls behind", extra={"fields": {
                **fields, "max_frame_age_s": self.settings.max_frame_age_s,
                "frames_per_camera": self.settings.frames_per_camera}})

    def _run(self, frame: Frame) -> tuple[FrameResult | None, float, str]:
        started = time.perf_counter()
        try:
            result = detect_frame(self.pipeline, self.plans, frame)
        except Exception as exc:  # one image that breaks the pipeline must not sink its batch
            log.exception("detection failed", extra={"fields": {"camera_id": frame.meta.camera_id,
                                                                "frame_seq": frame.meta.frame_seq}})
            return None, time.perf_counter() - started, repr(exc)
        return result, time.perf_counter() - started, ""

    async def handle_batch(self, items: list[tuple[admission.Waiting, Msg]]) -> None:
        metrics.BATCH_SIZE.observe(len(items))
        await self.detect(await self.admit(items))
        self.report_drops()

    async def detect(self, fresh: list[tuple[Frame, Msg]]) -> None:
        """Run the models on the admitted frames and publish their detections."""
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
            self._count(frame.meta.camera_id, "detected")
            metrics.FRAME_AGE_SECONDS.observe((now - frame.meta.captured_at).total_seconds())
            for obj in event.objects:
                metrics.OBJECTS.labels(obj.class_name).inc()
            for plate in event.plates:
                metrics.PLATES.labels(plate.source, str(plate.read.format_valid).lower()).inc()


async def serve(settings: Settings, pipeline: Pipeline, stop: asyncio.Event,
                consumer_spec: streams.Consumer = streams.DETECT, plans: PlanBook | None = None) -> None:
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
        worker = Worker(js, pipeline, settings, executor, consumer_spec.name, plans)
        # Up to BATCH_SIZE frames or BATCH_WAIT_MS once the first is in; the next batch is
        # fetched while this one runs on the workers, so bus round trips hide behind the models.
        worker.consumer = bus.Consumer(
            js, service=SERVICE, consumer=consumer_spec, decode=worker.decode, handle_batch=worker.handle_batch,
            batch=settings.batch_size, max_payload=settings.max_frame_bytes,
            fill_window_s=settings.batch_wait_ms / 1000, overlap=True,
            # plus what is already waiting, for the overload admission to choose from (half the
            # consumer's ack window: two batches may be in hand)
            look_ahead=max(settings.batch_size, consumer_spec.max_ack_pending // 2),
        )
        await worker.consumer.run(stop)


async def _run(settings: Settings, pipeline: Pipeline, plans: PlanBook) -> None:
    await serve(settings, pipeline, lifecycle.stop_event(), plans=plans)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        from services.detect.cli import detect_main

        return detect_main(argv)
    settings = load(Settings, service=SERVICE)
    logs.setup(SERVICE, settings.log_level)
    try:
        pipeline = Pipeline.from_settings(settings)
        plans = PlanBook.from_dir(settings.scenes_dir, pipeline.vehicles.class_names)
    except (ModelError, RegionError) as exc:
        print(f"roadwatch detect: {exc}", file=sys.stderr)
        return 2
    planned = sorted(camera for camera, plan in plans.plans.items() if plan is not None)
    log.info("models loaded", extra={"fields": {"vehicle_model": settings.vehicle_model, "format": settings.vehicle_format,
                                                "workers": settings.workers, "batch_size": settings.batch_size,
                                                "cameras_with_detection_plan": planned}})
    asyncio.run(_run(settings, pipeline, plans))
    return 0


if __name__ == "__main__":
    sys.exit(main())
