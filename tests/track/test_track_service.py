"""The track service on the real nats-server, fed scripted detections over real frames: a
controller's signal phases, evidence in the object store, expired frames said as such, counts,
dead letters for bad messages, probes and metrics; then the process itself: start, probe,
SIGTERM, exit 0."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import urllib.request
from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from proto import codec, ids, subjects
from proto.v1 import DeadLetter
from proto.v1.telemetry import SignalPhase, VehiclesCounted
from proto.v1.violation import ViolationDetected
from services import localstack
from services.runtime import bus
from services.track import scenes
from services.track.settings import Settings
from track_bus import Service, collect, controller_scene, detection, publish_frame, saigon_jpeg  # noqa: F401

async def consumer_ready(js, camera: str):
    try:
        return await js.consumer_info("DETECTIONS", f"track-{camera}")
    except Exception:
        return None


async def test_red_light_from_controller_with_evidence_counts_and_dead_letters(
        nc, js, nats_url, unique, tmp_path, repo_dir, saigon_jpeg, wait_for):
    camera, gone = f"sg-{unique}", f"sg-gone-{unique}"
    intersection = f"x-{unique}"
    for cam in (camera, gone):
        controller_scene(repo_dir, tmp_path, cam, intersection)
    settings = Settings(nats_url=nats_url, http_port=0, scenes_dir=str(tmp_path), count_window_s=2.0,
                        reorder_window_s=0.3)
    violations, vsub = await collect(nc, "traffic.violation.detected.v1.*.*", ViolationDetected)
    counts, csub = await collect(nc, subjects.vehicles_counted(camera), VehiclesCounted)
    dead, dsub = await collect(nc, subjects.dlq("track"), DeadLetter)
    await bus.ensure_streams(js)
    t0 = datetime.now(timezone.utc) - timedelta(seconds=30)
    # The controller turned the main head red at t0 - 1 s, before the service started: it reads
    # the last minutes of phases back from the TELEMETRY stream.
    for head, phase, at in (("main", "green", t0 - timedelta(seconds=20)), ("main", "red", t0 - timedelta(seconds=1))):
        await js.publish(subjects.signal_phase(intersection), codec.encode(SignalPhase(
            id=ids.event_id("signal", intersection, head, at.isoformat()), intersection_id=intersection,
            occurred_at=at, head=head, phase=phase)))
    service = Service(settings, scenes.load_dir(tmp_path))
    try:
        await wait_for(lambda: consumer_ready(js, camera), timeout=20, what="the camera's consumer")
        # A car drives up the middle lane across the stop line (y=388) at 150 px/s, 10 frames/s,
        # for 6 s; the detections arrive two by two out of order.
        events = []
        for i in range(60):
            t = t0 + timedelta(seconds=i / 10)
            seq = await publish_frame(js, camera, i, t, saigon_jpeg)
            bottom = 600 - 15 * i if i < 30 else 150  # stops past the junction after 3 s
            events.append(detection(camera, i, seq, t, [(480, bottom - 120, 600, bottom), (60, 560, 280, 715)]))
        for i in range(0, 60, 2):
            for event in (events[i + 1], events[i]):
                await js.publish(subjects.detection_made(camera), codec.encode(event))
        # The other camera's frames are not in FRAMES (sequence far beyond the end): expired.
        for i in range(30):
            t = t0 + timedelta(seconds=i / 10)
            bottom = 600 - 15 * i
            await js.publish(subjects.detection_made(gone), codec.encode(
                detection(gone, i, 10**9 + i, t, [(480, bottom - 120, 600, bottom)])))
        # Bad messages: not JSON, and the wrong shape.
        await js.publish(subjects.detection_made(camera), b"\xff not json")
        await js.publish(subjects.detection_made(camera), b'{"id": "x", "camera_id": "' + camera.encode() + b'"}')

        async def both():
            return {v.camera_id: v for v in violations} if len({v.camera_id for v in violations}) == 2 else None

        found = await wait_for(both, timeout=30, what="violations on both cameras")
        await wait_for(lambda: asyncio.sleep(0, len(counts) >= 2), timeout=20, what="two closed count windows")
        await wait_for(lambda: asyncio.sleep(0, len(dead) >= 2), timeout=20, what="two dead letters")
    finally:
        await service.close()
        for sub in (vsub, csub, dsub):
            await sub.unsubscribe()

    red = found[camera]
    assert red.type == "red_light" and red.rule == "approach-north" and red.vehicle_class == "car"
    assert red.measurement.phase == "red" and red.parameters["signal_source"] == "controller"
    # Crossing y=388 at i = (600-388)/15 = 14.1 -> t0 + 1.41 s; red since t0 - 1 s: 2.4 s old.
    assert red.measurement.phase_age_s == pytest.approx(2.4, abs=0.15)
    assert red.parameters["phase_age_is_lower_bound"] == "false"
    assert red.occurred_at == pytest.approx(t0 + timedelta(seconds=1.41), abs=timedelta(seconds=0.1))
    assert red.evidence_status == "complete"
    assert sorted(e.kind for e in red.evidence) == ["frame", "frame", "frame", "overlay", "overlay", "overlay"]
    store = await js.object_store("evidence")
    for ref in red.evidence:
        data = (await store.get(ref.name)).data
        assert hashlib.sha256(data).hexdigest() == ref.sha256 and ref.captured_at is not None
        assert ref.subject_box is not None and ref.subject_box.x2 > ref.subject_box.x1
    expired = found[gone]
    assert expired.type == "red_light" and expired.evidence == ()
    assert expired.evidence_status == "expired" and len(expired.evidence_missing) == 3
    assert all(seq >= 10**9 for seq in expired.evidence_missing)
    # The moving car is counted once, at the count line on the stop line, going up; the parked
    # one crosses nothing. Windows close every 2 s of capture time; the one open at shutdown is
    # flushed with the time it covered.
    assert all(c.camera_id == camera and c.lines == ("approach-north",) for c in counts)
    assert sorted((c.line, c.direction, c.vehicle_class, c.count) for event in counts for c in event.counts) == \
        [("approach-north", "forward", "car", 1)]
    on_time = [c for c in counts if c.window_s == 2.0]
    starts = [c.window_start for c in on_time]
    assert len(on_time) >= 2 and all(b - a == timedelta(seconds=2) for a, b in zip(starts, starts[1:]))
    assert all(c.window_s < 2.0 and c.window_start >= starts[-1] for c in counts if c not in on_time)
    assert sorted(d.error for d in dead if d.camera_id == camera) == ["decode", "invalid"]


# --- the process --------------------------------------------------------------------------------
def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_process_probes_metrics_and_sigterm(nats_url, repo_dir, wait_for, tmp_path):
    port = localstack.free_port()
    env = {**os.environ, "NATS_URL": nats_url, "HTTP_PORT": str(port), "SCENES_DIR": str(repo_dir / "deploy/local/scenes"),
           "PARTITION_INDEX": "0", "PARTITION_COUNT": "1"}
    log = open(tmp_path / "track.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "services.cli", "track"], cwd=repo_dir, env=env,
                               stdout=subprocess.DEVNULL, stderr=log)
    try:
        async def ready():
            try:
                return (await asyncio.to_thread(get, f"http://127.0.0.1:{port}/readyz"))[0] == 200
            except OSError:
                return False

        await wait_for(ready, timeout=30, interval=0.2, what="/readyz")
        assert (await asyncio.to_thread(get, f"http://127.0.0.1:{port}/healthz"))[0] == 200
        status, body = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and "roadwatch_track_cameras_owned 2.0" in body
        status, body = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/cameras")
        cameras = msgspec.json.decode(body.encode())
        assert set(cameras["cameras"]) == {"demo-haiphong", "demo-saigon"}
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 20) == 0
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    text = (tmp_path / "track.log").read_text()
    assert '"ready"' in text and '"stopped"' in text
