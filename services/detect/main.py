"""`roadwatch detect`: the detect pool.

Every replica binds the same durable pull consumer on FRAMES, so any replica takes any frame
and the pool scales on consumer lag. Frames are fetched in micro-batches (up to BATCH_SIZE
frames, waiting at most BATCH_WAIT_MS for the batch to fill once the first frame is in, plus
whatever else is already waiting), the batch's frames run on WORKERS threads (onnxruntime
releases the GIL), and each frame's detections are published before the batch is acked. When
detect falls behind, every camera loses frames alike (admission.py), and the drops are counted
per camera and logged as one WARNING per DROP_LOG_INTERVAL_S. With arguments, `roadwatch detect
IMAGE...` runs the same pipeline on files instead.

Models (live_model.py, model_store.py): with MODEL_NAME set, the vehicle model is the version
last promoted in the `models` bucket (the MODELS_DIR file while none is), followed through
`model.promoted` events and swapped between batches; a candidate in shadow (key-value bucket
`model_shadow`) runs beside it on 1 frame in N and is only measured.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.js import api

from proto import codec, streams, subjects
from proto.v1.detection import DetectionMade
from proto.v1.model import ModelPromoted
from proto.v1.frame import frame_meta_from_headers
from services.detect import admission, live_model, model_store, shadow
from services.detect import metrics
from services.detect.handler import Frame, decode_frame, detect_frame, detection_event, utcnow
from services.detect.pipeline import FrameResult, Pipeline
from services.detect.regions import PlanBook, RegionError
from services.detect.sessions import ModelError, file_sha256
from services.detect.settings import Settings
from services.runtime import bus, http, lifecycle

log = logging.getLogger("services.detect")
SERVICE = "detect"
STREAMS = (streams.FRAMES, streams.DETECTIONS, streams.DEAD_LETTERS, streams.MODELS)


class Worker:
    """Holds what the consumer's decode and batch handler share: models, threads, settings."""

    def __init__(self, js, pipeline: Pipeline, settings: Settings, executor: ThreadPoolExecutor,
                 consumer_name: str = streams.DETECT.name, plans: PlanBook | None = None) -> None:
        self.js = js
        self.consumer_name = consumer_name
        # Replaced whole by a model swap; a batch reads it once, so its frames finish on one model.
        self.live = live_model.Live(pipeline, live_model.FILE_VERSION, "")
        self.candidate: live_model.Candidate | None = None
        self.shadow_seen = 0
        self.model_name = settings.model_name or "vehicle"
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

    @property
    def pipeline(self) -> Pipeline:
        return self.live.pipeline

    def _run(self, pipeline: Pipeline, frame: Frame) -> tuple[FrameResult | None, float, str]:
        started = time.perf_counter()
        try:
            result = detect_frame(pipeline, self.plans, frame)
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
        live = self.live  # the model this batch runs on, even if a swap lands meanwhile
        outcomes = await asyncio.gather(*(loop.run_in_executor(self.executor, self._run, live.pipeline, frame)
                                          for frame, _ in fresh))
        now = utcnow()
        done: list[tuple[Frame, DetectionMade]] = []
        results: list[FrameResult] = []
        for (frame, msg), (result, seconds, error) in zip(fresh, outcomes):
            metrics.FRAME_SECONDS.observe(seconds)
            if result is None:
                metrics.FRAMES.labels("failed").inc()
                # It would fail on every replica: dead-letter it alone, the rest of the batch is acked.
                await self.consumer.dead_letter(msg, "invalid", f"detection failed on this frame: {error}")
                continue
            done.append((frame, detection_event(frame, result, model=live.pipeline.model_name, now=now)))
            results.append(result)
        await asyncio.gather(*(bus.publish(self.js, subjects.detection_made(e.camera_id), e, service=SERVICE) for _, e in done))
        now = utcnow()
        for frame, event in done:
            self._count(frame.meta.camera_id, "detected")
            metrics.FRAME_AGE_SECONDS.observe((now - frame.meta.captured_at).total_seconds())
            for obj in event.objects:
                metrics.OBJECTS.labels(obj.class_name).inc()
            for plate in event.plates:
                metrics.PLATES.labels(plate.source, str(plate.read.format_valid).lower()).inc()
        await self.run_shadow(live, [frame for frame, _ in done], results)

    async def run_shadow(self, live: live_model.Live, frames: list[Frame], results: list[FrameResult]) -> None:
        """The candidate on 1 frame in `every`, after the live detections are out; only measured."""
        candidate = self.candidate
        if candidate is None or not frames:
            return
        chosen = []
        for frame, result in zip(frames, results):
            self.shadow_seen += 1
            if self.shadow_seen % candidate.every == 0:
                chosen.append((frame, result))
        if not chosen:
            return
        loop = asyncio.get_running_loop()
        found = await asyncio.gather(*(loop.run_in_executor(
            self.executor, candidate.pipeline.find_vehicles, frame.image, self.plans.for_camera(frame.meta.camera_id))
            for frame, _ in chosen), return_exceptions=True)
        labels = (self.model_name, str(candidate.card.version), live.version)
        for (frame, result), vehicles in zip(chosen, found):
            if isinstance(vehicles, BaseException):
                log.warning("shadow model failed on a frame", extra={"fields": {
                    "candidate": candidate.card.label, "camera_id": frame.meta.camera_id, "error": repr(vehicles)}})
                continue
            compared = shadow.compare(result.vehicles, vehicles)
            metrics.SHADOW_FRAMES.labels(*labels).inc()
            metrics.SHADOW_VEHICLES.labels(*labels, "live").inc(compared.live)
            metrics.SHADOW_VEHICLES.labels(*labels, "candidate").inc(compared.candidate)
            metrics.SHADOW_MATCHED.labels(*labels).inc(compared.matched)
            for side, counts in (("live", compared.live_classes), ("candidate", compared.candidate_classes)):
                for class_name, n in counts.items():
                    metrics.SHADOW_OBJECTS.labels(*labels, side, class_name).inc(n)


async def run(settings: Settings, pipeline: Pipeline, plans: PlanBook | None = None, *,
              stop: asyncio.Event | None = None, ready: asyncio.Future | None = None,
              consumer_spec: streams.Consumer = streams.DETECT) -> int:
    """Run until stopped. `consumer_spec` exists for tests, which share one nats-server; `ready`
    gets the Worker once its model is loaded. A promoted model that cannot run raises ModelError."""
    stop = stop or lifecycle.stop_event()
    async with AsyncExitStack() as stack:
        nc, js = await bus.open_bus(stack, settings.nats_url, SERVICE, STREAMS)
        executor = ThreadPoolExecutor(settings.workers, thread_name_prefix="detect-worker")
        stack.callback(executor.shutdown, wait=True)
        runner, _ = await http.serve(settings.http_port, {"nats": lambda: nc.is_connected}, draining=stop,
                                     host=settings.http_host)
        stack.push_async_callback(runner.cleanup)
        worker = Worker(js, pipeline, settings, executor, consumer_spec.name, plans)
        worker.live = live_model.Live(pipeline, live_model.FILE_VERSION, _file_sha256(settings))
        metrics.MODEL_INFO.labels(worker.model_name, worker.live.version, worker.live.sha256).set(1)
        if settings.model_name:
            models = Models(js, worker, pipeline, plans or PlanBook({}), settings)
            await models.start()  # the promoted version, before the first frame (ModelError: exit 2)
            stack.push_async_callback(models.stop)
        # Up to BATCH_SIZE frames or BATCH_WAIT_MS once the first is in; the next batch is
        # fetched while this one runs on the workers, so bus round trips hide behind the models.
        worker.consumer = bus.Consumer(
            js, service=SERVICE, consumer=consumer_spec, decode=worker.decode, handle_batch=worker.handle_batch,
            batch=settings.batch_size, max_payload=settings.max_frame_bytes,
            fill_window_s=settings.batch_wait_ms / 1000, overlap=True,
            # plus what is already waiting, for the overload admission to choose from (half the
            # consumer's ack window: two batches may be in hand)
            look_ahead=max(settings.batch_size, consumer_spec.max_ack_pending // 2),
            # Frames in hand are kept with in-progress acks, so the consumer's ack_wait can be short;
            # a replica that starts while frames are out waits one ack_wait, so that a killed
            # replica's frames are detected before newer ones (docs/ARCHITECTURE.md "Faults").
            keep_alive=True, leftovers_first=True,
        )
        log.info("ready", extra={"fields": {"consumer": consumer_spec.name, "model": worker.live.version}})
        if ready is not None:
            ready.set_result(worker)
        code = await lifecycle.until_stopped(stop, [asyncio.create_task(worker.consumer.run(stop), name="consume")])
    log.info("stopped")
    return code


def _file_sha256(settings: Settings) -> str:
    path = settings.model_path(settings.vehicle_model)
    return file_sha256(path) if Path(path).is_file() else ""


class Models:
    """Follows the promoted version (model.promoted events) and the shadow candidate (key-value)
    of MODEL_NAME. Loads run on a worker thread; the frames go on meanwhile."""

    def __init__(self, js, worker: Worker, base: Pipeline, plans: PlanBook, settings: Settings) -> None:
        self.js, self.worker, self.base, self.plans, self.settings = js, worker, base, plans, settings
        self.name = settings.model_name
        self.tasks: list[asyncio.Task] = []
        self.subscription = None
        self.watcher = None
        self.events: asyncio.Queue[ModelPromoted] = asyncio.Queue()

    async def start(self) -> None:
        promoted = await model_store.live(self.js, self.name)
        if promoted is not None:
            error = await self.swap(promoted)
            if error:
                raise ModelError(f"the promoted model cannot run: {error} (roll back with `roadwatch model rollback "
                                 f"{self.name}`, or promote another version)")
        # Ordered consumer from the last promotion on: nothing between the read above and now is missed.
        self.subscription = await self.js.subscribe(
            subjects.model_promoted(self.name), stream=streams.MODELS.name, ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT, cb=self._on_promoted)
        self.tasks.append(asyncio.create_task(self._follow_promotions(), name="detect-model-promotions"))
        kv = await model_store.shadow_bucket(self.js)
        self.watcher = await kv.watch(self.name)
        self.tasks.append(asyncio.create_task(self._follow_shadow(), name="detect-model-shadow"))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for closing in (self.subscription and self.subscription.unsubscribe(), self.watcher and self.watcher.stop()):
            if closing is not None:
                try:
                    await closing
                except Exception:  # the connection is draining or gone: nothing left to close
                    pass

    async def _on_promoted(self, msg) -> None:
        try:
            self.events.put_nowait(codec.decode(msg.data, ModelPromoted))
        except Exception as exc:  # noqa: BLE001 - a bad event must not stop the follower
            log.error("model.promoted event not understood", extra={"fields": {"error": repr(exc)}})

    async def _follow_promotions(self) -> None:
        while True:
            event = await self.events.get()
            live = self.worker.live
            if live.version == str(event.version) and live.sha256 == event.sha256:
                continue  # the one already running (the ordered consumer starts on the last promotion)
            try:
                await self.swap(event)
            except Exception:  # noqa: BLE001 - the bus failed mid-load: the running model stays, the next event retries
                metrics.MODEL_SWAPS.labels(self.name, "promoted", "refused").inc()
                log.exception("promoted model not loaded: the running model stays",
                              extra={"fields": {"model": self.name, "version": event.version}})

    async def _load(self, version: int) -> tuple[model_store.ModelCard, Pipeline]:
        card, data = await model_store.fetch(self.js, self.name, version)
        loop = asyncio.get_running_loop()
        pipeline = await loop.run_in_executor(self.worker.executor, live_model.load, card, data, self.base,
                                              self.plans, self.settings)
        return card, pipeline

    async def swap(self, event: ModelPromoted) -> str:
        """Load the promoted version and make it the live one; the reason it was refused, or ''."""
        old = self.worker.live
        try:
            card, pipeline = await self._load(event.version)
            if card.sha256 != event.sha256:
                raise model_store.StoreError(f"{card.label} has SHA-256 {card.sha256}, the promotion names {event.sha256}")
        except (ModelError, model_store.StoreError) as exc:
            metrics.MODEL_SWAPS.labels(self.name, "promoted", "refused").inc()
            log.error("promoted model refused: the running model stays", extra={"fields": {
                "model": self.name, "version": event.version, "running": old.version, "error": str(exc)}})
            return str(exc)
        self.worker.live = live_model.Live(pipeline, str(card.version), card.sha256)
        metrics.MODEL_INFO.labels(self.name, old.version, old.sha256).set(0)
        metrics.MODEL_INFO.labels(self.name, str(card.version), card.sha256).set(1)
        metrics.MODEL_SWAPS.labels(self.name, "promoted", "swapped").inc()
        log.info("vehicle model swapped", extra={"fields": {
            "model": self.name, "version": card.version, "previous": old.version, "action": event.action,
            "by": event.by, "forced": event.forced, "classes": list(card.classes), "sha256": card.sha256}})
        return ""

    async def _follow_shadow(self) -> None:
        assert self.watcher is not None
        while True:
            try:
                entry = await self.watcher.updates(timeout=3600)
            except nats.errors.TimeoutError:
                continue
            if entry is None:  # the initial values are in
                continue
            try:
                await self.set_shadow(model_store.decode_shadow(entry.value) if entry.operation is None else None)
            except Exception:  # noqa: BLE001 - as above: measured nothing, detect goes on
                metrics.MODEL_SWAPS.labels(self.name, "shadow", "refused").inc()
                log.exception("shadow model not loaded", extra={"fields": {"model": self.name}})

    async def set_shadow(self, wanted: model_store.Shadow | None) -> None:
        current = self.worker.candidate
        if wanted is None:
            if current is not None:
                log.info("shadow model off", extra={"fields": {"model": self.name, "candidate": current.card.version}})
            self.worker.candidate = None
            return
        if current is not None and current.card.version == wanted.version:
            self.worker.candidate = live_model.Candidate(current.pipeline, current.card, wanted.every)
            return
        try:
            card, pipeline = await self._load(wanted.version)
        except (ModelError, model_store.StoreError) as exc:
            metrics.MODEL_SWAPS.labels(self.name, "shadow", "refused").inc()
            log.error("shadow model refused", extra={"fields": {"model": self.name, "version": wanted.version,
                                                                "error": str(exc)}})
            self.worker.candidate = None
            return
        self.worker.candidate = live_model.Candidate(pipeline, card, wanted.every)
        metrics.MODEL_SWAPS.labels(self.name, "shadow", "loaded").inc()
        log.info("shadow model running", extra={"fields": {"model": self.name, "candidate": card.version,
                                                           "every": wanted.every, "live": self.worker.live.version}})


def start(settings: Settings) -> Coroutine[Any, Any, int]:
    """The models and the cameras' detection plans loaded (exit 2 naming what is refused), then run()."""
    try:
        pipeline = Pipeline.from_settings(settings)
        plans = PlanBook.from_dir(settings.scenes_dir, pipeline.vehicles.class_names)
    except (ModelError, RegionError) as exc:
        print(f"roadwatch detect: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    planned = sorted(camera for camera, plan in plans.plans.items() if plan is not None)
    log.info("models loaded", extra={"fields": {"vehicle_model": settings.vehicle_model, "format": settings.vehicle_format,
                                                "workers": settings.workers, "batch_size": settings.batch_size,
                                                "cameras_with_detection_plan": planned}})
    return run(settings, pipeline, plans)


def images(argv: list[str]) -> int:
    """`roadwatch detect IMAGE...`: the service's pipeline on still images (imported only then)."""
    from services.detect.cli import detect_main  # noqa: PLC0415

    return detect_main(argv)


def main(argv: list[str] | None = None) -> int:
    try:
        return lifecycle.main(SERVICE, Settings, argv, tools=images, start=start)
    except ModelError as exc:  # the promoted model, which run() loads before the first frame, cannot run
        print(f"roadwatch detect: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
