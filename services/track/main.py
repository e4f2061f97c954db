"""Track service: follows vehicles per camera, judges the violation rules, stores evidence, counts.

Shape: settings → scenes (exit 2 on a bad file) → NATS → streams and the evidence bucket →
one durable consumer per owned camera (`track-<camera>`) → HTTP → wait → finish → drain.

Scaling: cameras are shared among PARTITION_COUNT replicas by rendezvous hashing
(partition.py); replica PARTITION_INDEX consumes only its cameras. To scale, set the new count
on every replica (a StatefulSet's ordinal is the index) and restart them; a camera that moves
carries on from its durable consumer's position, losing only the tracks in flight.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from contextlib import AsyncExitStack
from datetime import datetime, timedelta, timezone

import nats.js.errors
from aiohttp import web
from nats.js import api

from proto import streams, subjects
from proto.v1.detection import DetectionMade
from services.runtime import bus, http, lifecycle, settings
from services.track import metrics, partition, recovery, scenes
from services.track.camera import CameraTracker
from services.track.settings import Settings
from services.track.riders import LoneRiderParams
from services.track.tracker import TrackerParams
from services.track.worker import CameraWorker, decode_phase

SERVICE = "track"
log = logging.getLogger(SERVICE)
TICK_S = 0.25
EVIDENCE_MAX_AGE_S = streams.VIOLATIONS.max_age_s  # evidence lives as long as the violations that cite it


def consumer_for(camera_id: str) -> streams.Consumer:
    """Each camera its own durable: its position survives a change of owner."""
    return streams.Consumer(name=f"{streams.TRACK_PREFIX}{camera_id}", stream=streams.DETECTIONS.name,
                            filter_subjects=(subjects.detection_made(camera_id),), max_ack_pending=1000)


async def ensure_bucket(js, bucket: str):
    try:
        return await js.object_store(bucket)
    except nats.js.errors.BucketNotFoundError:
        return await js.create_object_store(bucket, config=api.ObjectStoreConfig(
            bucket=bucket, description="Violation evidence (JPEG), named by SHA-256",
            ttl=float(EVIDENCE_MAX_AGE_S), storage=api.StorageType.FILE))


def build_workers(config: Settings, scene_map: dict[str, scenes.Scene], js, store) -> dict[str, CameraWorker]:
    owned = partition.owned(list(scene_map), config.partition_index, config.partition_count)
    params = TrackerParams(max_lost_s=config.max_lost_s)
    return {
        camera: CameraWorker(
            js, store,
            CameraTracker(scene_map[camera], classes=frozenset(config.track_classes), params=params,
                          before_s=config.evidence_before_s, after_s=config.evidence_after_s,
                          count_window_s=config.count_window_s,
                          riders=LoneRiderParams(min_frames=config.lone_rider_frames,
                                                 min_speed_heights_s=config.lone_rider_speed)),
            bucket=config.evidence_bucket, reorder_window_s=config.reorder_window_s)
        for camera in owned
    }


async def run(config: Settings, scene_map: dict[str, scenes.Scene], *, stop: asyncio.Event | None = None,
              ready: asyncio.Future | None = None) -> int:
    """Run until stopped; `ready` gets the workers by camera once consuming."""
    stop = stop or lifecycle.stop_event()
    async with AsyncExitStack() as stack:
        nc, js = await bus.open_bus(stack, config.nats_url, SERVICE)
        store = await ensure_bucket(js, config.evidence_bucket)
        workers = build_workers(config, scene_map, js, store)
        metrics.CAMERAS.set(len(workers))

        # Controller phases: replay the last minutes from TELEMETRY so a restart knows the phase.
        start = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()
        by_intersection: dict[str, list[CameraWorker]] = {}
        for worker in workers.values():
            signal = worker.engine.scene.signal
            if signal is not None and signal.source == "controller" and signal.intersection:
                by_intersection.setdefault(signal.intersection, []).append(worker)
        for intersection, listeners in by_intersection.items():
            async def on_phase(msg, listeners=listeners) -> None:
                try:
                    phase = decode_phase(msg)
                except Exception as exc:  # a bad phase event is the controller's bug: log, keep going
                    log.warning("bad signal phase event", extra={"fields": {"subject": msg.subject, "error": repr(exc)}})
                    return
                for listener in listeners:
                    await listener.observe_phase(phase)
            sub = await js.subscribe(subjects.signal_phase(intersection), cb=on_phase, ordered_consumer=True,
                                     config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_TIME,
                                                               opt_start_time=start))
            stack.push_async_callback(sub.unsubscribe)

        # Each camera's last checkpoint and the detections after it (recovery.py), before consuming.
        kv = await recovery.open_bucket(js, config.checkpoint_bucket) if config.checkpoint_bucket else None
        for camera, worker in workers.items():
            if kv is not None:
                await recovery.recover(js, kv, worker, consumer_for(camera), every=config.checkpoint_every)

        consuming = asyncio.Event()
        tasks = []
        for camera, worker in workers.items():
            consumer = bus.Consumer(js, service=SERVICE, consumer=consumer_for(camera),
                                    decode=bus.json_decoder(DetectionMade), handle=worker.handle,
                                    batch=32, fetch_timeout_s=0.5)
            tasks.append(asyncio.create_task(consumer.run(stop), name=f"consume-{camera}"))

        async def ticker() -> None:
            consuming.set()
            while not stop.is_set():
                for worker in workers.values():
                    try:
                        await worker.tick()
                    except Exception:
                        log.exception("tick failed", extra={"fields": {"camera": worker.camera_id}})
                try:
                    await asyncio.wait_for(stop.wait(), TICK_S)
                except asyncio.TimeoutError:
                    pass

        tasks.append(asyncio.create_task(ticker(), name="ticker"))

        async def cameras(_: web.Request) -> web.Response:
            return web.json_response({
                "partition": {"index": config.partition_index, "count": config.partition_count},
                "cameras": {camera: {"scene": w.engine.scene.path, "tracks": len(w.engine.tracker.tracks),
                                     "buffered": len(w.buffer), "late": w.late, "unpublished": len(w.outbox),
                                     "violations": [v.id for v in w.published]}
                            for camera, w in workers.items()},
            })

        runner, _ = await http.serve(config.http_port, {"nats": lambda: nc.is_connected, "consuming": consuming.is_set},
                                     draining=stop, host=config.http_host, routes=[web.get("/cameras", cameras)])
        stack.push_async_callback(runner.cleanup)
        log.info("ready", extra={"fields": {"cameras": sorted(workers), "partition": config.partition_index,
                                            "partitions": config.partition_count}})
        if ready is not None:
            ready.set_result(workers)
        code = await lifecycle.until_stopped(stop, tasks)
        for worker in workers.values():
            try:
                if kv is None or config.finish_on_stop:
                    await worker.finish()
                elif not await worker.suspend():
                    log.warning("no checkpoint at shutdown; the next start recovers from the last one",
                                extra={"fields": {"camera": worker.camera_id}})
            except Exception:
                log.exception("finish failed", extra={"fields": {"camera": worker.camera_id}})
    log.info("stopped")
    return code


def load_scenes(config: Settings) -> dict[str, scenes.Scene]:
    """The scene of each camera, or exit 2 naming the bad file (or the folder without any)."""
    try:
        scene_map = scenes.load_dir(config.scenes_dir)
    except scenes.SceneError as exc:
        print(f"roadwatch {SERVICE}: invalid scene: {exc}", file=sys.stderr)
        raise SystemExit(settings.EXIT_BAD_SETTING) from None
    if not scene_map:
        print(f"roadwatch {SERVICE}: invalid setting SCENES_DIR: no <camera_id>.yaml in {config.scenes_dir}",
              file=sys.stderr)
        raise SystemExit(settings.EXIT_BAD_SETTING)
    return scene_map


def main(argv: list[str] | None = None) -> int:
    return lifecycle.main(SERVICE, Settings, argv, start=lambda config: run(config, load_scenes(config)))
