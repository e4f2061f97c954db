"""Ingest service: leased cameras → sampled JPEG frames on JetStream, with health on the bus.

settings → cameras file (exit 2 if bad) → NATS, streams, lease bucket → HTTP → lease keeper
starts and stops one CameraRunner per leased camera → SIGTERM: release leases, drain.
SIGHUP re-reads the cameras file: added cameras are leased, removed ones released, changed ones
restarted; a bad file is refused with an error in the log and the running cameras keep going.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections import deque
from contextlib import AsyncExitStack, suppress
from dataclasses import replace
from datetime import UTC, datetime

from aiohttp import web

from proto import ids, streams, subjects
from proto.v1 import CameraStatus
from services.ingest import cameras as cameras_file
from services.ingest import metrics
from services.ingest.cameras import Camera, CamerasError
from services.ingest.health import Backoff, Health, Snapshot, Transition
from services.ingest.leases import LeaseKeeper
from services.ingest.publisher import AsyncDropOldest, OutFrame, frame_message
from services.ingest.settings import Settings
from services.ingest.sources import ReaderOptions
from services.ingest.worker import CameraWorker
from services.runtime import bus, http, lifecycle, logs, settings

SERVICE = "ingest"
EXIT_BAD_CAMERAS = 2
TICK_S = 0.5
log = logging.getLogger(SERVICE)


class CameraRunner:
    """The asyncio side of one leased camera: publishes its frames and its health."""

    def __init__(self, camera: Camera, js, config: Settings, replica: str) -> None:
        self.camera = camera
        self.js = js
        self.config = config
        self.replica = replica
        loop = asyncio.get_running_loop()
        self.queue: AsyncDropOldest[OutFrame] = AsyncDropOldest(config.queue_size, loop)
        options = ReaderOptions(open_timeout_s=config.open_timeout_s, read_timeout_s=config.read_timeout_s,
                                decode_threads=config.decode_threads)
        self.worker = CameraWorker(camera, self.queue, options,
                                   backoff=Backoff(initial_s=config.backoff_initial_s, maximum_s=config.backoff_max_s))
        self.health = Health(target_fps=camera.fps, stall_s=config.stall_s)
        self.metrics = metrics.CameraMetrics(camera.id)
        self.publish_failed = 0
        self.subject = subjects.frame_captured(camera.id)
        self.status_subject = subjects.camera_status(camera.id)
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self.worker.start()
        self._tasks = [asyncio.create_task(self._publish_frames(), name=f"frames-{self.camera.id}"),
                       asyncio.create_task(self._watch_health(), name=f"health-{self.camera.id}")]

    async def stop(self) -> None:
        self.worker.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        self.metrics.remove()
        # The thread may sit in a blocking read for up to the read timeout; it publishes nothing more.
        await asyncio.to_thread(self.worker.join, self.config.read_timeout_s + 1.0)

    async def final_status(self, reason: str) -> None:
        snap = self.snapshot()
        await self._publish_status(Transition("offline", reason), snap, time.monotonic(), heartbeat=False)

    def snapshot(self) -> Snapshot:
        snap = self.worker.snapshot()
        if self.publish_failed:
            snap = replace(snap, dropped=snap.dropped + self.publish_failed)
        return snap

    def describe(self) -> dict[str, object]:
        snap = self.snapshot()
        return {"camera": self.camera.id, "state": self.health.state, "reason": self.health.reason,
                "frames_in": snap.frames_in, "frames_out": snap.frames_out, "dropped": snap.dropped,
                "decode_errors": snap.decode_errors, "reconnects": snap.reconnects,
                "still_skipped": self.worker.still_skipped}

    async def _publish_frames(self) -> None:
        while True:
            frame = await self.queue.next()
            try:
                await self.js.publish(self.subject, frame.jpeg, headers=frame_message(frame),
                                      timeout=self.config.publish_timeout_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - NATS down or slow: count the frame as lost, keep going
                self.publish_failed += 1
                metrics.FRAMES_DROPPED.labels(self.camera.id, "failed").inc()
                metrics.PUBLISH_ERRORS.labels("frame").inc()
                log.warning("frame publish failed",
                            extra={"fields": {"camera": self.camera.id, "error": repr(exc)}})
                continue
            self.worker.frames_out += 1
            metrics.FRAMES_OUT.labels(self.camera.id).inc()

    async def _watch_health(self) -> None:
        next_beat = time.monotonic() + self.config.heartbeat_s
        # A change of state that could not be published (NATS away) is retried every tick, with
        # its original time, until it is: operators must see that the camera was degraded.
        unsent: deque[tuple[Transition, datetime]] = deque(maxlen=16)
        while True:
            now = time.monotonic()
            snap = self.snapshot()
            change = self.health.evaluate(snap, now)
            if change is not None:
                self.metrics.state(change.state)
                log.info("camera state", extra={"fields": {"camera": self.camera.id, "state": change.state,
                                                           "reason": change.reason}})
                unsent.append((change, datetime.now(UTC)))
            while unsent and await self._publish_status(unsent[0][0], snap, now, heartbeat=False,
                                                        occurred=unsent[0][1]):
                unsent.popleft()
            age = None if snap.last_frame_at is None else now - snap.last_frame_at
            self.metrics.update(frames_in=snap.frames_in, still=self.worker.still_skipped,
                                decode_errors=snap.decode_errors, reconnects=snap.reconnects,
                                dropped=self.worker.queue.dropped, queue=len(self.queue), age=age)
            if now >= next_beat and self.health.state is not None:
                next_beat = now + self.config.heartbeat_s
                await self._publish_status(Transition(self.health.state, self.health.reason), snap, now,
                                           heartbeat=True)
            await asyncio.sleep(TICK_S)

    async def _publish_status(self, state: Transition, snap: Snapshot, now: float, *, heartbeat: bool,
                              occurred: datetime | None = None) -> bool:
        figures = self.health.heartbeat(snap, now) if heartbeat else None
        occurred = occurred or datetime.now(UTC)
        event = CameraStatus(
            id=ids.event_id("camera-status", self.camera.id, self.replica, occurred.isoformat(), state.state,
                            heartbeat),
            camera_id=self.camera.id, occurred_at=occurred, state=state.state, reason=state.reason,
            heartbeat=heartbeat, replica=self.replica,
            fps_in=figures.fps_in if figures else 0.0, fps_out=figures.fps_out if figures else 0.0,
            frames_dropped=snap.dropped, decode_errors=snap.decode_errors, reconnects=snap.reconnects,
            last_frame_age_s=None if snap.last_frame_at is None else round(max(0.0, now - snap.last_frame_at), 3),
        )
        if figures is not None:
            metrics.FPS_IN.labels(self.camera.id).set(figures.fps_in)
            metrics.FPS_OUT.labels(self.camera.id).set(figures.fps_out)
        try:
            await bus.publish(self.js, self.status_subject, event, service=SERVICE, timeout=2.0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the caller retries a change; a heartbeat just comes again
            metrics.PUBLISH_ERRORS.labels("status").inc()
            log.warning("status publish failed", extra={"fields": {"camera": self.camera.id, "error": repr(exc)}})
            return False
        return True


class Ingest:
    """Holds the configured cameras and the runners of the leased ones."""

    def __init__(self, config: Settings, cameras: list[Camera], js) -> None:
        self.config = config
        self.replica = config.replica
        self.js = js
        self.cameras = {camera.id: camera for camera in cameras}
        self.runners: dict[str, CameraRunner] = {}
        self.keeper: LeaseKeeper | None = None

    async def on_acquired(self, camera_id: str) -> None:
        camera = self.cameras.get(camera_id)
        if camera is None or camera_id in self.runners:
            return
        runner = CameraRunner(camera, self.js, self.config, self.replica)
        self.runners[camera_id] = runner
        runner.start()
        metrics.LEASED.set(len(self.runners))
        log.info("camera started", extra={"fields": {"camera": camera_id, "url": camera.safe_url,
                                                     "kind": camera.kind}})

    async def on_lost(self, camera_id: str) -> None:
        runner = self.runners.pop(camera_id, None)
        if runner is None:
            return
        metrics.LEASED.set(len(self.runners))
        await runner.stop()
        log.info("camera stopped", extra={"fields": {"camera": camera_id}})

    async def reload(self) -> None:
        """Apply a new cameras file; a bad one changes nothing."""
        try:
            cameras = cameras_file.load(self.config.cameras_file)
        except CamerasError as exc:
            log.error("cameras file refused; keeping the current cameras", extra={"fields": {"error": str(exc)}})
            return
        new = {camera.id: camera for camera in cameras}
        changed = [cid for cid, runner in self.runners.items() if cid in new and new[cid] != runner.camera]
        removed = {cid: runner for cid, runner in self.runners.items() if cid not in new}
        self.cameras = new
        metrics.CONFIGURED.set(len(new))
        assert self.keeper is not None
        self.keeper.configure(new)
        for camera_id, runner in removed.items():
            # Say so on the bus, or dashboards would show the last heartbeat's state for ever.
            await self.on_lost(camera_id)
            await runner.final_status("removed from the cameras file")
            await self.keeper.release(camera_id)
        for camera_id in changed:
            # Same lease, new settings: restart the reader only.
            await self.on_lost(camera_id)
            await self.on_acquired(camera_id)
        log.info("cameras file reloaded", extra={"fields": {"cameras": len(new), "restarted": changed}})

    async def stop_all(self) -> None:
        """Stop every reader at once (a blocked read may take READ_TIMEOUT_S to notice)."""
        runners = list(self.runners.values())
        self.runners.clear()
        metrics.LEASED.set(0)
        for runner in runners:
            runner.worker.stop()
        await asyncio.gather(*(runner.stop() for runner in runners))

    def describe(self) -> dict[str, object]:
        return {"replica": self.replica, "configured": sorted(self.cameras),
                "cameras": [runner.describe() for _, runner in sorted(self.runners.items())]}


async def run(config: Settings, cameras: list[Camera]) -> None:
    stop = lifecycle.stop_event()
    loop = asyncio.get_running_loop()
    async with AsyncExitStack() as stack:
        nc = await bus.connect(config.nats_url, f"{SERVICE}-{config.replica}")
        stack.push_async_callback(nc.drain)
        js = nc.jetstream()
        await bus.ensure_streams(js, (streams.FRAMES, streams.TELEMETRY))
        service = Ingest(config, cameras, js)
        keeper = LeaseKeeper(js, bucket=config.lease_bucket, me=config.replica, ttl_s=config.lease_ttl_s,
                             scan_s=config.lease_scan_s, max_cameras=config.max_cameras,
                             on_acquired=service.on_acquired, on_lost=service.on_lost)
        service.keeper = keeper
        await keeper.open()
        keeper.configure(service.cameras)
        metrics.CONFIGURED.set(len(service.cameras))

        async def cameras_route(_: web.Request) -> web.Response:
            return web.json_response(service.describe())

        runner, _ = await http.serve(config.http_port, {"nats": lambda: nc.is_connected}, draining=stop,
                                     routes=[web.get("/cameras", cameras_route)])
        stack.push_async_callback(runner.cleanup)

        reloads: asyncio.Queue[None] = asyncio.Queue(maxsize=1)
        loop.add_signal_handler(signal.SIGHUP, lambda: reloads.full() or reloads.put_nowait(None))
        stack.callback(loop.remove_signal_handler, signal.SIGHUP)

        async def reload_on_hup() -> None:
            while True:
                await reloads.get()
                await service.reload()

        reloader = asyncio.create_task(reload_on_hup(), name="reload")
        leasing = asyncio.create_task(keeper.run(stop), name="leases")
        log.info("ready", extra={"fields": {"replica": config.replica, "cameras": len(service.cameras)}})
        await stop.wait()
        reloader.cancel()
        await leasing
        # Stop reading, then free the leases so that another replica takes over at once.
        await service.stop_all()
        await keeper.release_all()
    log.info("stopped")


USAGE = """usage: roadwatch ingest            run the service (settings from the environment)
       roadwatch ingest check [FILE]  validate a cameras file (default: $CAMERAS_FILE) and list it"""


def check(argv: list[str]) -> int:
    """Validate a cameras file before deploying it: exit 2 and the same message the service gives."""
    import os

    path = argv[0] if argv else os.environ.get("CAMERAS_FILE", "")
    if not path:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        cameras = cameras_file.load(path)
    except CamerasError as exc:
        print(f"invalid cameras file: {exc}", file=sys.stderr)
        return EXIT_BAD_CAMERAS
    for camera in cameras:
        motion = f" motion(keepalive {camera.motion.keepalive_s:g} s)" if camera.motion.enabled else ""
        print(f"{camera.id}\t{camera.kind}\t{camera.fps:g} fps\tq{camera.jpeg_quality}{motion}\t{camera.safe_url}")
    print(f"{path}: {len(cameras)} cameras, valid")
    return 0


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if argv and argv[0] == "check":
        return check(argv[1:])
    if argv:
        print(f"roadwatch ingest: unknown arguments {' '.join(argv)!r}\n{USAGE}", file=sys.stderr)
        return 2
    config = settings.load(Settings, service=SERVICE)
    logs.setup(SERVICE, config.log_level)
    try:
        cameras = cameras_file.load(config.cameras_file)
    except CamerasError as exc:
        print(f"roadwatch ingest: invalid cameras file: {exc}", file=sys.stderr)
        log.error("invalid cameras file", extra={"fields": {"error": str(exc), "file": exc.path,
                                                            "camera": exc.camera, "field": exc.field,
                                                            "line": exc.line}})
        return EXIT_BAD_CAMERAS
    asyncio.run(run(config, cameras))
    return 0
