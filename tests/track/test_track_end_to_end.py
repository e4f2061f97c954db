"""From a real clip to a violation with evidence: ingest (a real process playing the Hai Phong
clip at 10 frames/s), detect (its service loop with the real models) and track (its service
loop) on the session's nats-server. The red-light runner of the clip must come out with its
evidence in the object store, every object's SHA-256 verified."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys

import cv2
import msgspec
import nats.errors
import numpy as np

from proto import codec, streams, subjects
from proto.v1.telemetry import SignalPhase
from proto.v1.violation import ViolationDetected
from services.detect import main as detect_main
from services.detect.pipeline import Pipeline
from services.detect.settings import Settings as DetectSettings
from services.track import main as track_main
from services.track import scenes
from services.track.settings import Settings as TrackSettings


def scene_for(camera: str, repo_dir, tmp_path):
    text = (repo_dir / "deploy/local/scenes/demo-haiphong.yaml").read_text(encoding="utf-8")
    folder = tmp_path / "scenes"
    folder.mkdir()
    text = text.replace("camera: demo-haiphong", f"camera: {camera}")
    text = text.replace("  source: vision\n", f"  source: vision\n  intersection: x-{camera}\n")
    (folder / f"{camera}.yaml").write_text(text, encoding="utf-8")
    return folder


def start_ingest(camera: str, clip, nats_url: str, tmp_path, repo_dir) -> subprocess.Popen:
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(
        "cameras:\n"
        f"  - id: {camera}\n    name: Hai Phong test\n    url: {clip}\n    fps: 10\n    loop: false\n"
        f"    jpeg_quality: 90\n    scene: scenes/{camera}.yaml\n"
        "    location: {latitude: 20.8449, longitude: 106.6881}\n", encoding="utf-8")
    env = {**os.environ, "CAMERAS_FILE": str(cameras), "NATS_URL": nats_url, "HTTP_PORT": "0",
           "REPLICA_ID": f"r-{camera}", "LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "services.cli", "ingest"], cwd=repo_dir, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "ingest.log", "wb"))


async def test_clip_through_ingest_detect_and_track(nats_url, nc, js, unique, tmp_path, repo_dir, shared_dir, wait_for):
    camera = f"hp-{unique}"
    violations: list[ViolationDetected] = []

    async def on_violation(msg):
        violations.append(codec.decode(msg.data, ViolationDetected))

    sub = await nc.subscribe(f"traffic.violation.detected.v1.{camera}.*", cb=on_violation)
    phases: list[SignalPhase] = []

    async def on_phase(msg):
        phases.append(codec.decode(msg.data, SignalPhase))

    phase_sub = await nc.subscribe(subjects.signal_phase(f"x-{camera}"), cb=on_phase)
    stop = asyncio.Event()
    detect_settings = DetectSettings(models_dir=str(shared_dir / "models"), nats_url=nats_url, http_port=0,
                                     batch_size=4, batch_wait_ms=30)
    pipeline = await asyncio.to_thread(Pipeline.from_settings, detect_settings)
    detect_spec = streams.Consumer(name=f"detect-{unique}", stream="FRAMES",
                                   filter_subjects=(subjects.frame_captured(camera),), max_deliver=3)
    track_settings = TrackSettings(nats_url=nats_url, http_port=0, scenes_dir=str(scene_for(camera, repo_dir, tmp_path)))
    scene_map = scenes.load_dir(track_settings.scenes_dir)
    tasks = [asyncio.create_task(detect_main.run(detect_settings, pipeline, stop=stop, consumer_spec=detect_spec)),
             asyncio.create_task(track_main.run(track_settings, scene_map, stop=stop))]
    ingest = start_ingest(camera, shared_dir / "data/video/vn_haiphong_intersection.mp4", nats_url, tmp_path, repo_dir)
    try:
        async def found():
            return [v for v in violations if v.type == "red_light"]

        await wait_for(found, timeout=90, interval=0.5, what="a red-light violation")
        await asyncio.sleep(2.0)  # the rest of the clip: tracks in flight end and are judged
    finally:
        ingest.send_signal(signal.SIGTERM)
        await asyncio.to_thread(ingest.wait, 20)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        await sub.unsubscribe()
        await phase_sub.unsubscribe()

    # The riders going straight on from the right lane while the main head is red (checked by
    # eye on the overlays): at least the first, and nothing else.
    assert violations and len({v.id for v in violations}) == len(violations)
    store = await js.object_store("evidence")
    for violation in violations:
        assert violation.camera_id == camera and violation.type == "red_light"
        assert violation.vehicle_class == "motorcycle" and violation.parameters["lane"] == "right"
        assert violation.measurement.phase == "red" and violation.parameters["movement"] == "straight"
        assert violation.evidence_status == "complete" and violation.evidence_missing == ()
        kinds = [e.kind for e in violation.evidence]
        assert 2 <= kinds.count("frame") == kinds.count("overlay") <= 3
        for ref in violation.evidence:
            stored = await store.get(ref.name)
            assert hashlib.sha256(stored.data).hexdigest() == ref.sha256 == ref.name
            assert len(stored.data) == ref.size
            image = cv2.imdecode(np.frombuffer(stored.data, np.uint8), cv2.IMREAD_COLOR)
            assert image is not None
            if ref.kind in ("frame", "overlay"):
                assert image.shape[:2] == (720, 1006)
    violation = min(violations, key=lambda v: v.occurred_at)
    assert violation.evidence and [e.kind for e in violation.evidence].count("frame") == 3
    # The originals are the camera's frames, byte for byte, as still held in FRAMES.
    originals = {e.sha256 for e in violation.evidence if e.kind == "frame"}
    frames = await js.pull_subscribe(subjects.frame_captured(camera), stream="FRAMES")
    held = set()
    try:
        while True:
            for msg in await frames.fetch(100, timeout=1.0):
                held.add(hashlib.sha256(msg.data).hexdigest())
    except (asyncio.TimeoutError, nats.errors.TimeoutError):
        pass
    await frames.unsubscribe()
    assert len(held) >= 60 and originals <= held
    assert msgspec.json.decode(codec.encode(violation), type=ViolationDetected) == violation
    # The lamps read off the frames were published for other consumers: unknown at the stream's
    # start (ingest marks its first frame `Discontinuity: start`), then red and the green arrow.
    start = {(p.head, p.phase, p.source, p.camera_id) for p in phases[:2]}
    assert start == {("main", "unknown", "vision", camera), ("right-arrow", "unknown", "vision", camera)}
    first = {(p.head, p.phase, p.source, p.camera_id) for p in phases[2:4]}
    assert first == {("main", "red", "vision", camera), ("right-arrow", "green", "vision", camera)}
    assert all(p.phase != "unknown" for p in phases[2:])  # the clip is played once: no other break
