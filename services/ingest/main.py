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
from contextlib import AsyncExitStack

from aiohttp import web

from proto import streams
from services.ingest import cameras as cameras_file
from services.ingest import jpeg, metrics
from services.ingest.cameras import Camera, CamerasError
from services.ingest.leases import LeaseKeeper
from services.ingest.runner import SERVICE, CameraRunner
from services.ingest.settings import Settings
from services.runtime import bus, http, lifecycle

EXIT_BAD_CAMERAS = 2
log = logging.getLogger(SERVICE)


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
        await asyncio.gather(*(runner.join() for runner in runners))

    def describe(self) -> dict[str, object]:
        return {"replica": self.replica, "configured": sorted(self.cameras),
                "cameras": [runner.describe() for _, runner in sorted(self.runners.items())]}


async def run(config: Settings, cameras: list[Camera], *, stop: asyncio.Event | None = None,
              ready: asyncio.Future | None = None) -> int:
    """Run until stopped; `ready` gets the Ingest (its cameras and runners) once leasing."""
    stop = stop or lifecycle.stop_event()
    loop = asyncio.get_running_loop()
    async with AsyncExitStack() as stack:
        nc, js = await bus.open_bus(stack, config.nats_url, f"{SERVICE}-{config.replica}",
                                    (streams.FRAMES, streams.TELEMETRY))
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

        runner, _ = await http.serve(config.http_port, {"nats": lambda: nc.is_connected, "leases": keeper.scanning},
                                     draining=stop, host=config.http_host,
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
        if ready is not None:
            ready.set_result(service)
        code = await lifecycle.until_stopped(stop, [leasing])
        reloader.cancel()
        # Stop reading, then free the leases so that another replica takes over at once.
        await service.stop_all()
        await keeper.release_all()
    log.info("stopped")
    return code


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


def usage(argv: list[str]) -> int:
    print(USAGE)
    return 0


TOOLS = {"check": check, "help": usage}


def load_cameras(config: Settings) -> list[Camera]:
    """The JPEG encoder set up and the cameras file read, or exit 2 naming the setting or the file,
    line and field."""
    try:
        jpeg.configure(config.jpeg_encoder)
    except RuntimeError as exc:
        print(f"roadwatch ingest: invalid setting JPEG_ENCODER: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        return cameras_file.load(config.cameras_file)
    except CamerasError as exc:
        print(f"roadwatch ingest: invalid cameras file: {exc}", file=sys.stderr)
        log.error("invalid cameras file", extra={"fields": {"error": str(exc), "file": exc.path,
                                                            "field": exc.field, "line": exc.line}})
        raise SystemExit(EXIT_BAD_CAMERAS) from None


def main(argv: list[str] | None = None) -> int:
    return lifecycle.main(SERVICE, Settings, argv, tools=TOOLS,
                          start=lambda config: run(config, load_cameras(config)))
