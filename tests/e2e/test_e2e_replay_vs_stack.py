"""`roadwatch replay` runs the services' own code path: the same clip, played once through the
real stack (nats-server, ingest, detect, track as processes) and through replay at the same fps,
gives the same violations (types, times, tracks, evidence frames).

Ingest reads the file unpaced (`realtime: false`), so a frame's capture time is the stream's
start plus its presentation time; replay is told that start and samples on the same grid, so
both see the very same frames.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import msgspec
import nats
import pytest

from proto import streams
from proto.v1.frame import HEADER_CAPTURED_AT
from proto.v1.violation import ViolationDetected
from services import localstack
from services.replay import stack
from services.replay.run import Replay
from services.track import scenes

REPO = Path(__file__).resolve().parents[2]
CAMERA = "demo-haiphong"
FPS = 5.0
SCENE = REPO / "deploy" / "local" / "scenes" / "demo-haiphong.yaml"


@pytest.fixture
def stack_run(tmp_path: Path, shared_dir: Path):
    """nats-server, detect and track started; `start_ingest()` then plays the clip once."""
    video = shared_dir / "data" / "video" / "vn_haiphong_intersection.mp4"
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(
        "cameras:\n"
        f"  - id: {CAMERA}\n"
        "    name: replay vs stack\n"
        f"    url: {video}\n"
        f"    fps: {FPS:g}\n"
        "    scene: demo-haiphong.yaml\n"
        "    loop: false\n"
        "    realtime: false\n"
        "    location: {latitude: 20.8449, longitude: 106.6881}\n",
        encoding="utf-8")
    port = localstack.free_port()
    url = f"nats://127.0.0.1:{port}"
    server = localstack.start_nats(tmp_path / "nats", port)
    env = {**os.environ, "NATS_URL": url, "MODELS_DIR": str(shared_dir / "models"), "LOG_LEVEL": "WARNING",
           "CAMERAS_FILE": str(cameras), "SCENES_DIR": str(SCENE.parent), "QUEUE_SIZE": "1000",
           # The clip is published flat out (realtime: false): detect must take every frame, not
           # shed the backlog as it does under overload, for the stack to see what replay sees.
           "FRAMES_PER_CAMERA": "100000",
           # At SIGTERM track finishes every track (replay does at the end of the clip) instead of
           # saving a checkpoint for its next start.
           "FINISH_ON_STOP": "true"}
    processes: dict[str, subprocess.Popen] = {}
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(service: str) -> None:
        with (logs / f"{service}.log").open("wb") as log:
            processes[service] = subprocess.Popen(
                [sys.executable, "-m", "services.cli", service], cwd=REPO,
                env={**env, "HTTP_PORT": str(localstack.free_port())}, stdout=log, stderr=subprocess.STDOUT)

    for service in ("detect", "track"):
        start(service)
    try:
        yield {"url": url, "processes": processes, "start_ingest": lambda: start("ingest"), "logs": logs,
               "video": str(video), "env": env}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        localstack.stop_process(server)


def _logs(run) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in sorted(run["logs"].iterdir()))


async def _wait_consumer(js, durable: str, stream: str, run, timeout: float = 120) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        assert asyncio.get_running_loop().time() < deadline, f"{durable} did not appear:\n{_logs(run)}"
        for service, process in run["processes"].items():
            assert process.poll() is None, f"{service} exited with {process.returncode}:\n{_logs(run)}"
        try:
            await js.consumer_info(stream, durable)
            return
        except Exception:  # noqa: BLE001 - not created yet
            await asyncio.sleep(0.3)


async def _settled(js, run, timeout: float = 240) -> int:
    """Wait until ingest has played the clip and detect and track have consumed every frame."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last, stable_since = -1, loop.time()
    while True:
        assert loop.time() < deadline, f"the stack did not finish the clip:\n{_logs(run)}"
        frames = (await js.stream_info(streams.FRAMES.name)).state.messages
        detections = (await js.stream_info(streams.DETECTIONS.name)).state.messages
        track = await js.consumer_info(streams.DETECTIONS.name, f"{streams.TRACK_PREFIX}{CAMERA}")
        if frames != last:
            last, stable_since = frames, loop.time()
        if (frames and detections == frames and loop.time() - stable_since > 2
                and track.num_pending == 0 and track.num_ack_pending == 0):
            return frames
        await asyncio.sleep(0.3)


async def _first_capture(js, run, timeout: float = 60) -> datetime:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            first = await js.get_msg(streams.FRAMES.name, 1)
            return datetime.fromisoformat(first.headers[HEADER_CAPTURED_AT])
        except Exception:  # noqa: BLE001 - no frame yet
            assert loop.time() < deadline, f"ingest published no frame:\n{_logs(run)}"
            await asyncio.sleep(0.2)


def _replay(run, start: datetime) -> list[dict]:
    """replay on the clip, with the services' settings (the same environment), on the stack's grid."""
    scene = scenes.load(SCENE)
    replay = Replay(scene, stack.build_detector(stack.detect_settings(run["env"]), scene),
                    stack.build_tracker(scene, stack.track_settings(run["env"])), fps=FPS, epoch=start,
                    align_to_epoch=True)
    return list(replay.events(run["video"]))


async def test_replay_gives_the_violations_the_stack_publishes(stack_run) -> None:
    run = stack_run
    loop = asyncio.get_running_loop()
    nc = await nats.connect(run["url"])
    try:
        js = nc.jetstream()
        await _wait_consumer(js, streams.DETECT.name, streams.FRAMES.name, run)
        await _wait_consumer(js, f"{streams.TRACK_PREFIX}{CAMERA}", streams.DETECTIONS.name, run)
        run["start_ingest"]()
        start = await _first_capture(js, run)
        replayed = loop.run_in_executor(None, _replay, run, start)  # on the other core while the stack works
        frames = await _settled(js, run)
        await asyncio.sleep(2.0)  # past track's reorder window, so that every detection is tracked
        track = run["processes"]["track"]
        track.send_signal(signal.SIGTERM)  # finish: pending violations are published with the frames there are
        assert await loop.run_in_executor(None, track.wait, 30) == 0, _logs(run)
        info = await js.stream_info(streams.VIOLATIONS.name)
        published = [msgspec.json.decode((await js.get_msg(streams.VIOLATIONS.name, seq)).data, type=ViolationDetected)
                     for seq in range(info.state.first_seq, info.state.last_seq + 1)] if info.state.messages else []
        events = await replayed
    finally:
        await nc.close()

    assert events[-1]["frames_processed"] == frames  # the very same frames
    found = sorted((e for e in events if e["kind"] == "violation"), key=lambda e: (e["t"], e["type"]))
    assert found, "replay finds no violation on the clip: nothing to compare"
    stack_side = sorted(published, key=lambda v: (v.occurred_at, v.type))
    period = 1 / FPS
    print("stack:", [(v.type, round((v.occurred_at - start).total_seconds(), 3), v.track_id) for v in stack_side])
    print("replay:", [(e["type"], e["t"], e["track"]) for e in found])
    assert [v.type for v in stack_side] == [e["type"] for e in found]
    for bus, ours in zip(stack_side, found):
        assert abs((bus.occurred_at - start).total_seconds() - ours["t"]) < period, (bus, ours)
        assert bus.track_id == ours["track"] and bus.rule == ours["element"] and bus.vehicle_class == ours["class"]
        # The evidence frames (before / at / after) are the same frames of the same track.
        evidence_t = sorted((e.captured_at - start).total_seconds() for e in bus.evidence if e.kind == "frame")
        replay_t = sorted(f["t"] for f in ours["evidence"])
        assert len(evidence_t) == len(replay_t) and all(abs(a - b) < 2e-3 for a, b in zip(evidence_t, replay_t)), \
            (evidence_t, ours["evidence"])
        assert bus.measurement is not None and bus.measurement.value == ours["measured"]["value"]
