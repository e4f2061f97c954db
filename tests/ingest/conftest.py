"""Real servers for the ingest tests: GStreamer RTSP, an aiohttp MJPEG feed, the service itself.

The service runs as a real process (`python -m services.cli ingest`), so that settings, the
cameras file, signals (SIGHUP, SIGTERM, SIGKILL) and leases are exercised as in production.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import cv2
import pytest
from aiohttp import web

from ingest_helpers import Collector
from services import localstack

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RTSP_SCRIPT = HERE / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"
APT_HINT = ("the RTSP tests need Debian's GStreamer RTSP server: apt-get install "
            + (REPO / "services" / "ingest" / "apt-packages.txt").read_text().replace("\n", " ").strip())


@pytest.fixture(scope="session")
def clips(shared_dir: Path) -> Path:
    return shared_dir / "data" / "video"


# --- RTSP ------------------------------------------------------------------------------------------
class RtspServer:
    """Debian's GStreamer RTSP server in a subprocess; can be killed and started again on its port."""

    def __init__(self, port: int, mounts: dict[str, Path], log_path: Path) -> None:
        self.port = port
        self.mounts = mounts
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def url(self, name: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{name}"

    def start(self, timeout: float = 15.0) -> None:
        argv = [SYSTEM_PYTHON, str(RTSP_SCRIPT), "--port", str(self.port)]
        for name, path in self.mounts.items():
            argv += ["--mount", f"{name}={path}"]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, env={"PATH": "/usr/bin:/bin"})
        log.close()
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready:
                line = self.process.stdout.readline().decode()
                if line.startswith("READY"):
                    return
            if self.process.poll() is not None:
                break
        raise RuntimeError(f"RTSP server did not start ({APT_HINT}); log: {self.log_path.read_text()[-2000:]}")

    def pause(self) -> None:
        """Freeze the server: connections stay open but no data flows (a silently stuck camera)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None


@pytest.fixture
def rtsp_server(clips: Path, tmp_path: Path) -> Iterator[RtspServer]:
    if not Path(SYSTEM_PYTHON).exists():
        pytest.fail(APT_HINT)
    server = RtspServer(localstack.free_port(),
                        {"saigon": clips / "vn_saigon_intersection.mp4",
                         "haiphong": clips / "vn_haiphong_intersection.mp4"},
                        tmp_path / "rtsp.log")
    server.start()
    yield server
    server.kill()


# --- images and MJPEG -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def small_jpegs(clips: Path) -> list[bytes]:
    """Real frames of a clip, small (320x180): cheap to serve and to pass through."""
    capture = cv2.VideoCapture(str(clips / "intel_car-detection.mp4"))
    frames = []
    try:
        while len(frames) < 40:
            ok, image = capture.read()
            if not ok:
                break
            ok, buffer = cv2.imencode(".jpg", cv2.resize(image, (320, 180)), [cv2.IMWRITE_JPEG_QUALITY, 70])
            assert ok
            frames.append(buffer.tobytes())
    finally:
        capture.release()
    assert len(frames) == 40
    return frames


@pytest.fixture(scope="session")
def jpeg_folder(small_jpegs: list[bytes], tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("jpegs")
    for index, data in enumerate(small_jpegs):
        (folder / f"frame_{index:03d}.jpg").write_bytes(data)
    return folder


class MjpegServer:
    def __init__(self, port: int) -> None:
        self.port = port

    def url(self, fps: float = 10, *, length: bool = True) -> str:
        return f"http://127.0.0.1:{self.port}/video.mjpg?fps={fps}&length={int(length)}"


@pytest.fixture(scope="session")
async def mjpeg_server(small_jpegs: list[bytes]) -> AsyncIterator[MjpegServer]:
    """multipart/x-mixed-replace at the asked rate, with or without Content-Length per part."""

    async def video(request: web.Request) -> web.StreamResponse:
        fps = float(request.query.get("fps", "10"))
        with_length = request.query.get("length", "1") == "1"
        response = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=rwframe"})
        await response.prepare(request)
        start = time.monotonic()
        index = 0
        try:
            while True:
                data = small_jpegs[index % len(small_jpegs)]
                head = b"--rwframe\r\nContent-Type: image/jpeg\r\n"
                if with_length:
                    head += f"Content-Length: {len(data)}\r\n".encode()
                await response.write(head + b"\r\n" + data + b"\r\n")
                index += 1
                await asyncio.sleep(max(0.0, start + index / fps - time.monotonic()))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    async def not_mjpeg(_: web.Request) -> web.Response:
        return web.Response(text="hello", content_type="text/html")

    app = web.Application()
    app.add_routes([web.get("/video.mjpg", video), web.get("/index.html", not_mjpeg)])
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    port = localstack.free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield MjpegServer(port)
    await runner.cleanup()


# --- the service -------------------------------------------------------------------------------------
class IngestProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.http_port = int(env["HTTP_PORT"])
        self.replica = env["REPLICA_ID"]
        log = open(log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "services.cli", "ingest"], cwd=REPO, env=env,
                                        stdout=log, stderr=log)
        log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def cameras(self) -> dict | None:
        """The /cameras report, or None while the service is not answering."""
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{self.http_port}/cameras",
                                       timeout=aiohttp.ClientTimeout(total=2)) as response:
                    return await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return None

    async def reading(self) -> set[str]:
        report = await self.cameras()
        return {camera["camera"] for camera in report["cameras"]} if report else set()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


@pytest.fixture
def start_ingest(nats_url: str, unique: str, tmp_path: Path) -> Iterator:
    started: list[IngestProcess] = []

    def start(cameras: Path, *, replica: str = "r1", **settings: object) -> IngestProcess:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(REPO),
            "NATS_URL": nats_url,
            "HTTP_PORT": str(localstack.free_port()),
            "CAMERAS_FILE": str(cameras),
            "REPLICA_ID": replica,
            "LEASE_BUCKET": f"ingest_leases_{unique}",
            "HEARTBEAT_S": "1",
            "LOG_LEVEL": "INFO",
            "BACKOFF_MAX_S": "1",
            "READ_TIMEOUT_S": "3",
            "OPEN_TIMEOUT_S": "5",
        }
        env.update({key.upper(): str(value) for key, value in settings.items()})
        process = IngestProcess(env, tmp_path / f"ingest-{replica}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


# --- what the service publishes ----------------------------------------------------------------------
@pytest.fixture
def collect(nc):
    subscriptions = []

    async def subscribe(subject: str) -> Collector:
        collector = Collector()
        subscriptions.append(await nc.subscribe(subject, cb=collector.receive))
        return collector

    yield subscribe
    # Unsubscribed by the nc fixture's close().
