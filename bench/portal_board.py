"""Operations board benchmark: the camera wall's refresh rate per camera, and what the wall costs
the rest of the portal's API.

8 cameras publish real frames (the development clips of ../shared/data/video, 640 px wide) to a
real nats-server at 5 fps each, for the whole run. The portal runs as its own process
(`roadwatch portal`) with 30 open incidents on the board. Two phases of --seconds each:

1. baseline: API clients ask `GET /api/incidents` at a steady --api-rate (requests/s, all clients
   together), no wall open;
2. the same API load while --walls operator screens show the board: each polls every camera's
   newest frame every --refresh seconds with If-None-Match, as board.js does, and keeps the
   live event stream open.

Printed: each camera's refresh rate on the walls (new pictures shown per second; target >= 1),
the API's p95 with the walls and without (target < 200 ms; the ratio to the baseline is the
figure to compare across machines), the frame endpoint's own p95, and how many reads of FRAMES
the portal made per second (the per-camera cache shares them between screens).

    python bench/portal_board.py --shared ../shared
    python bench/portal_board.py --shared ../shared --seconds 10 --walls 4

PostgreSQL: DATABASE_URL's server if set, else the local one on 5432, else an embedded one in a
temporary folder; a database `rw_bench_board` is created (dropped first).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import cv2  # noqa: E402
import nats  # noqa: E402

from proto import codec, ids, subjects  # noqa: E402
from proto.v1 import CameraStatus, IncidentDetected  # noqa: E402
from proto.v1.common import Location  # noqa: E402
from proto.v1.frame import FrameMeta, frame_headers, frame_id  # noqa: E402
from services import localstack  # noqa: E402
from services.runtime import bus, migrations  # noqa: E402

BENCH_DB = "rw_bench_board"
CLIPS = ("vn_haiphong_intersection.mp4", "vn_saigon_intersection.mp4", "intel_car-detection.mp4",
         "bgslibrary_highway.avi")
OPS = {"Authorization": "Bearer demo-ops"}
TRANSPORT = {"Authorization": "Bearer demo-transport"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def clip_frames(path: Path, count: int, skip: int, width: int = 640) -> list[bytes]:
    capture = cv2.VideoCapture(str(path))
    frames, index = [], 0
    try:
        while len(frames) < count:
            ok, image = capture.read()
            if not ok:
                break
            if index >= skip and index % 4 == 0:
                height = round(image.shape[0] * width / image.shape[1])
                ok, jpeg = cv2.imencode(".jpg", cv2.resize(image, (width, height)), [cv2.IMWRITE_JPEG_QUALITY, 80])
                frames.append(jpeg.tobytes())
            index += 1
    finally:
        capture.release()
    if not frames:
        raise SystemExit(f"no frames decoded from {path}")
    return frames


async def play(js, camera: str, frames: list[bytes], fps: float, stop: asyncio.Event) -> int:
    """Publish at `fps` on an absolute schedule (a slow publish does not shift the next ones)."""
    started, n = time.perf_counter(), 0
    while not stop.is_set():
        at = datetime.now(timezone.utc)
        seq = int(at.timestamp() * 1000)
        meta = FrameMeta(id=frame_id(camera, at, seq), camera_id=camera, frame_seq=seq, captured_at=at, width=640,
                         height=360)
        await js.publish(subjects.frame_captured(camera), frames[n % len(frames)], headers=frame_headers(meta))
        n += 1
        delay = started + n / fps - time.perf_counter()
        if delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass
    return n


async def api_load(http: aiohttp.ClientSession, url: str, rate: float, clients: int, seconds: float) -> list[float]:
    """`rate` requests/s over `clients` paced clients; latencies in seconds."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    interval = clients / rate

    async def client(offset: float) -> None:
        next_at = time.perf_counter() + offset
        while True:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.perf_counter() >= deadline:
                return
            started = time.perf_counter()
            async with http.get(url, headers=TRANSPORT) as r:
                assert r.status == 200, r.status
                await r.read()
            latencies.append(time.perf_counter() - started)
            next_at += interval

    await asyncio.gather(*(client(i * interval / clients) for i in range(clients)))
    return latencies


async def wall(http: aiohttp.ClientSession, base: str, cameras: list[str], refresh: float, seconds: float,
               frame_latencies: list[float]) -> dict[str, int]:
    """One operator's screen: every camera polled as board.js does; new pictures shown per camera."""
    shown = {c: 0 for c in cameras}
    deadline = time.perf_counter() + seconds

    async def events() -> None:
        async with http.get(f"{base}/api/board/events", headers=OPS, timeout=aiohttp.ClientTimeout(total=None)) as r:
            assert r.status == 200
            async for _ in r.content:
                pass

    async def poll(camera: str) -> None:
        etag = ""
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with http.get(f"{base}/api/cameras/{camera}/frame",
                                headers={**OPS, **({"If-None-Match": etag} if etag else {})}) as r:
                if r.status == 200:
                    await r.read()
                    etag = r.headers["ETag"]
                    shown[camera] += 1
                elif r.status != 304:
                    raise AssertionError(f"frame of {camera}: HTTP {r.status}")
            frame_latencies.append(time.perf_counter() - started)
            await asyncio.sleep(refresh)

    stream = asyncio.create_task(events())
    await asyncio.gather(*(poll(c) for c in cameras))
    stream.cancel()
    return shown


async def frame_reads(http: aiohttp.ClientSession, base: str) -> float:
    async with http.get(f"{base}/metrics") as r:
        text = await r.text()
    found = re.search(r'^roadwatch_portal_frame_gets_total\{result="fetched"\} ([0-9.e+]+)$', text, re.M)
    return float(found[1]) if found else 0.0


async def main_async(args: argparse.Namespace, work: Path) -> None:
    processes: list[subprocess.Popen] = []
    stop = asyncio.Event()
    try:
        admin_url, embedded = localstack.benchmark_postgres(work)
        processes += [embedded] if embedded else []
        admin = await asyncpg.connect(admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{BENCH_DB}"')
        await admin.close()
        url = localstack.with_database(admin_url, BENCH_DB)
        await migrations.migrate(url, migrations.discover(services=["portal"]))
        nats_port = localstack.free_port()
        processes.append(localstack.start_nats(work / "nats", nats_port, log_file=work / "nats.log"))
        nats_url = f"nats://127.0.0.1:{nats_port}"
        http_port = localstack.free_port()
        with (work / "portal.log").open("wb") as log:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "services.cli", "portal"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(REPO), "DATABASE_URL": url, "NATS_URL": nats_url,
                     "HTTP_PORT": str(http_port), "LOG_LEVEL": "WARNING",
                     "BOARD_FRAME_CACHE_S": str(args.cache), "BOARD_FRAME_REFRESH_S": str(args.refresh)}))
        localstack.wait_port("127.0.0.1", http_port, 60, processes[-1])
        base = f"http://127.0.0.1:{http_port}"
        print(f"{os.cpu_count()} CPUs shared by everything; portal, nats-server and PostgreSQL on this machine",
              flush=True)

        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        await bus.ensure_streams(js)
        cameras = [f"bench-cam-{i + 1:02d}" for i in range(args.cameras)]
        now = datetime.now(timezone.utc)
        for camera in cameras:
            await js.publish(subjects.camera_status(camera), codec.encode(CameraStatus(
                id=ids.event_id("cst", camera), camera_id=camera, occurred_at=now, state="online", fps_in=25.0,
                fps_out=args.fps)))
        for n in range(args.incidents):
            camera = cameras[n % len(cameras)]
            incident_id = ids.event_id("inc", "bench", n)
            event = IncidentDetected(
                id=ids.event_id("incd", incident_id), incident_id=incident_id, camera_id=camera,
                occurred_at=now - timedelta(minutes=n), detected_at=now - timedelta(minutes=n) + timedelta(seconds=30),
                type=("stopped_vehicle", "congestion", "pedestrian_on_carriageway", "wrong_way_driving")[n % 4],
                location=Location(latitude=20.8449, longitude=106.6881, address="Ngã tư Lạch Tray – Văn Cao"),
                lane="lane-1", duration_s=30.0)
            await bus.publish(js, subjects.incident_detected(camera, event.type), event)
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        while await pool.fetchval("SELECT count(*) FROM portal.incidents") < args.incidents:
            await asyncio.sleep(0.1)

        video = Path(args.shared) / "data" / "video"
        clips = [clip_frames(video / CLIPS[i % len(CLIPS)], 40, skip=(i // len(CLIPS)) * 60)
                 for i in range(len(cameras))]
        players = [asyncio.create_task(play(js, c, f, args.fps, stop)) for c, f in zip(cameras, clips)]
        published_at = time.perf_counter()
        await asyncio.sleep(2)  # every camera has frames before anyone looks

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            api = f"{base}/api/incidents"
            warm = await api_load(http, api, args.api_rate, args.api_clients, 2)
            assert warm
            baseline = await api_load(http, api, args.api_rate, args.api_clients, args.seconds)

            reads_before = await frame_reads(http, base)
            frame_latencies: list[float] = []
            started = time.perf_counter()
            results = await asyncio.gather(
                api_load(http, api, args.api_rate, args.api_clients, args.seconds),
                *(wall(http, base, cameras, args.refresh, args.seconds, frame_latencies) for _ in range(args.walls)))
            elapsed = time.perf_counter() - started
            reads = (await frame_reads(http, base) - reads_before) / elapsed
            with_wall, walls = results[0], results[1:]
        stop.set()
        published = sum(await asyncio.gather(*players))
        publish_rate = published / (time.perf_counter() - published_at) / len(cameras)

        print(f"frames published: {publish_rate:.2f}/s per camera, {len(cameras)} cameras "
              f"({', '.join(sorted(set(CLIPS[i % len(CLIPS)] for i in range(len(cameras)))))})", flush=True)
        print(f"camera wall: {args.walls} screen(s), each camera polled every {args.refresh * 1000:.0f} ms, "
              f"portal cache {args.cache * 1000:.0f} ms", flush=True)
        rates = {}
        for camera in cameras:
            per_wall = [w[camera] / elapsed for w in walls]
            rates[camera] = min(per_wall)
            print(f"  {camera}: {' / '.join(f'{r:.2f}' for r in per_wall)} new pictures/s per screen", flush=True)
        slowest = min(rates.values())
        print(f"  slowest camera: {slowest:.2f}/s (target >= 1/s: {'met' if slowest >= 1 else 'NOT met'})", flush=True)
        print(f"  frame endpoint: {len(frame_latencies) / elapsed:.0f} requests/s, p50 "
              f"{percentile(frame_latencies, .5) * 1e3:.1f} ms, p95 {percentile(frame_latencies, .95) * 1e3:.1f} ms; "
              f"FRAMES reads by the portal {reads:.1f}/s ({reads / len(cameras):.2f} per camera)", flush=True)
        p95_base, p95_wall = percentile(baseline, .95), percentile(with_wall, .95)
        print(f"GET /api/incidents ({args.incidents} open incidents) at {args.api_rate:.0f} requests/s: p95 "
              f"{p95_wall * 1e3:.1f} ms with the wall{'s' if args.walls > 1 else ''} vs {p95_base * 1e3:.1f} ms without "
              f"(ratio {p95_wall / p95_base:.2f}; p50 {percentile(with_wall, .5) * 1e3:.1f} vs "
              f"{percentile(baseline, .5) * 1e3:.1f} ms; {len(with_wall)} and {len(baseline)} requests); "
              f"target p95 < 200 ms: {'met' if p95_wall < 0.2 else 'NOT met'}", flush=True)
        await pool.close()
        await nc.close()
    finally:
        stop.set()
        for process in reversed(processes):
            localstack.stop_process(process)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", default=str(REPO.parent / "shared"), help="the shared folder with data/video")
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--fps", type=float, default=5.0, help="frames per second per camera")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    parser.add_argument("--walls", type=int, default=2, help="operator screens showing the board")
    parser.add_argument("--refresh", type=float, default=0.25, help="each screen asks for each camera's frame this often")
    parser.add_argument("--cache", type=float, default=0.2, help="the portal's per-camera frame cache (BOARD_FRAME_CACHE_S)")
    parser.add_argument("--api-rate", type=float, default=40.0, help="GET /api/incidents per second, all clients")
    parser.add_argument("--api-clients", type=int, default=4)
    parser.add_argument("--incidents", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rw-bench-board-"))
    try:
        asyncio.run(main_async(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
