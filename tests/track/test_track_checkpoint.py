"""A camera's tracking state survives a restart: checkpoints (checkpoint.py) and the recovery
(recovery.py), on the real detections of the Hai Phong clip (tests/track/data, 5 frames/s).

The clip at 5 frames/s has two red-light runs (main head red all clip): one found mid-clip, one
whose track is still alive at the end. A track process killed with SIGKILL a third of the way
through the clip, started again, stopped with SIGTERM two thirds through and started again must
publish the very same violation ids as a run never interrupted (with CHECKPOINT_BUCKET="" the
restarted processes have no tracks: they publish neither).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import types
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from measure_crossings import T0, events
from proto import codec, ids, subjects
from proto.v1.telemetry import SignalPhase
from proto.v1.violation import ViolationDetected
from services import localstack
from services.runtime import bus
from services.track import checkpoint, scenes
from services.track.camera import CameraTracker
from services.track.worker import CameraWorker
from services.track.reorder import ReorderBuffer
from services.track.tracker import TrackerParams
from track_bus import controller_scene

DATA = Path(__file__).parent / "data"
CLASSES = frozenset({"car", "motorcycle", "bus", "truck", "bicycle", "person"})
PHASES = (("main", "red"), ("right-arrow", "green"))  # the truth: both lit all clip


@pytest.fixture(scope="module")
def clip(repo_dir):
    recording = json.loads((DATA / "vn_haiphong_10fps.json").read_text(encoding="utf-8"))
    return recording, scenes.load(repo_dir / "deploy/local/scenes/demo-haiphong.yaml")


def engine(scene) -> types.SimpleNamespace:
    """A worker's state without its I/O: what checkpoint.take and apply touch."""
    cam = CameraTracker(scene, classes=CLASSES)
    for head, phase in PHASES:
        cam.observe_signal(head, T0.timestamp() - 10, phase)
    return types.SimpleNamespace(engine=cam, camera_id=cam.camera_id, buffer=ReorderBuffer(1.0), late=0, stream_seq=0)


def outputs(worker, step) -> list[str]:
    return [d.id for d in step.drafts] + [c.id for c in step.counts] + [i.event.id for i in step.incidents] + \
        [f"crossing {tid} {c.t}" for tid, _, c in step.crossings]


def test_a_state_restored_from_its_snapshot_at_every_frame_gives_the_same_events(clip):
    """Snapshot, encode, decode into a freshly built worker after every frame (reorder buffer
    included): the run goes on to the same violations, counts, incidents and crossings as the one
    never interrupted."""
    recording, scene = clip
    frames = events(recording, 5, min_score=0.3, camera=scene.camera)

    def run(restore: bool) -> tuple[list[str], int]:
        worker, out, largest = engine(scene), [], 0
        for event in frames:  # through the reorder buffer (its clock: capture time), as the worker does
            t = event.frame.captured_at.timestamp()
            for item in worker.buffer.push(t, event.frame.frame_seq, event, now=t)[0]:
                out += outputs(worker, worker.engine.process(item))
            if restore:
                data = checkpoint.encode(checkpoint.take(worker, fingerprint="f", saved_at=0.0))
                largest = max(largest, len(data))
                worker = engine(scene)
                checkpoint.apply(worker, checkpoint.decode(data), now=0.0)
        for item in worker.buffer.drain():
            out += outputs(worker, worker.engine.process(item))
        return out + [d.id for d in worker.engine.finish()], largest

    uninterrupted, _ = run(False)
    restored, largest = run(True)
    assert sum(1 for o in uninterrupted if o.startswith("violation-")) == 2
    assert restored == uninterrupted
    assert largest < 200_000


def test_the_fingerprint_changes_with_the_scene_and_the_tracking_settings(clip, repo_dir):
    recording, scene = clip
    worker = engine(scene)
    other = engine(scenes.load(repo_dir / "deploy/local/scenes/demo-saigon.yaml"))
    assert checkpoint.fingerprint(worker) == checkpoint.fingerprint(engine(scene))
    assert checkpoint.fingerprint(worker) != checkpoint.fingerprint(other)
    worker.engine.tracker.params = TrackerParams(max_lost_s=2.0)
    assert checkpoint.fingerprint(worker) != checkpoint.fingerprint(engine(scene))


# --- the process, killed -----------------------------------------------------------------------------
async def restarted_mid_clip(js, nats_url: str, repo_dir: Path, tmp_path: Path, unique: str, wait_for,
                          bucket: str) -> tuple[list[str], list[str]]:
    """(violation ids published, ids of the same detections tracked without a restart)."""
    camera, intersection = f"hp-{unique}", f"x-{unique}"
    controller_scene(repo_dir, tmp_path, camera, intersection, demo="demo-haiphong")
    scene = scenes.load(tmp_path / f"{camera}.yaml")
    recording = json.loads((DATA / "vn_haiphong_10fps.json").read_text(encoding="utf-8"))
    # Frames far past the end of FRAMES: their evidence is expired, the same in both runs.
    frames = [msgspec.structs.replace(e, id=ids.event_id("detection", camera, e.frame.frame_seq),
                                      frame=msgspec.structs.replace(e.frame, stream_seq=10**12 + e.frame.frame_seq))
              for e in events(recording, 5, min_score=0.3, camera=camera)]
    reference = CameraTracker(scene, classes=CLASSES)
    await bus.ensure_streams(js)
    for head, phase in PHASES:
        at = T0 - timedelta(seconds=10)
        reference.observe_signal(head, at.timestamp(), phase)
        await js.publish(subjects.signal_phase(intersection), codec.encode(SignalPhase(
            id=ids.event_id("signal", intersection, head, at.isoformat()), intersection_id=intersection,
            occurred_at=at, head=head, phase=phase)))
    expected = [d.id for e in frames for d in reference.process(e).drafts] + [d.id for d in reference.finish()]

    port = localstack.free_port()
    env = {**os.environ, "NATS_URL": nats_url, "HTTP_PORT": str(port), "SCENES_DIR": str(tmp_path),
           "CHECKPOINT_BUCKET": bucket, "CHECKPOINT_EVERY": "4", "LOG_LEVEL": "WARNING"}
    log = (tmp_path / "track.log").open("ab")

    def start(finish_on_stop: bool = False) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "services.cli", "track"], cwd=repo_dir,
                                env={**env, "FINISH_ON_STOP": str(finish_on_stop).lower()},
                                stdout=subprocess.DEVNULL, stderr=log)

    async def acked_through(seq: int):
        try:
            info = await js.consumer_info("DETECTIONS", f"track-{camera}")
        except Exception:  # noqa: BLE001 - not created yet
            return False
        return info.ack_floor.stream_seq >= seq and info.num_ack_pending == 0 and info.num_pending == 0

    async def feed(part: list) -> int:
        for event in part:
            seq = (await js.publish(subjects.detection_made(camera), codec.encode(event))).seq
        return seq

    process = start()
    try:
        await wait_for(lambda: acked_through(0), timeout=30, what="the camera's consumer")
        # 14 detections, then kill -9: the last checkpoint holds 12, the stream 2 more; both
        # violations' tracks are alive.
        last = await feed(frames[:14])
        await wait_for(lambda: acked_through(last), timeout=20, what="the first part tracked")
        process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait, 10)
        # Started again: 11 more, then SIGTERM (a checkpoint of the state as it is, buffer included).
        last = await feed(frames[14:25])
        process = start()
        await wait_for(lambda: acked_through(last), timeout=30, what="the second part tracked")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 20) == 0
        # And the rest; at this SIGTERM the track still alive is finished and its violation published.
        last = await feed(frames[25:])
        process = start(finish_on_stop=True)
        await wait_for(lambda: acked_through(last), timeout=30, what="the rest tracked")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 20) == 0
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    sub = await js.subscribe(f"traffic.violation.detected.v1.{camera}.>", ordered_consumer=True, deliver_policy="all")
    got = []
    try:
        while True:
            try:
                got.append(codec.decode((await sub.next_msg(timeout=0.5)).data, ViolationDetected).id)
            except Exception:  # noqa: BLE001 - nothing more
                break
    finally:
        await sub.unsubscribe()
    return got, expected


async def test_a_track_process_killed_then_stopped_mid_clip_publishes_the_same_violations(
        js, nats_url, repo_dir, tmp_path, unique, wait_for):
    published, expected = await restarted_mid_clip(js, nats_url, repo_dir, tmp_path, unique, wait_for,
                                                   bucket=f"ckpt-{unique}")
    assert len(expected) == 2
    assert sorted(published) == sorted(expected)


async def test_a_redelivery_of_a_detection_the_recovery_tracked_is_acked_untracked(clip):
    """Delivered before a kill, never acked, read back by the recovery: when the server delivers it
    again, it is not taken in a second time."""
    recording, scene = clip
    worker = CameraWorker(None, None, CameraTracker(scene, classes=CLASSES), bucket="evidence", reorder_window_s=1.0)
    event = events(recording, 5, min_score=0.3, camera=scene.camera)[0]
    worker.replayed_through = 7
    await worker.take(event, 7)
    assert len(worker.buffer) == 0 and worker.stream_seq == 0
    await worker.take(event, 8)
    assert len(worker.buffer) == 1 and worker.stream_seq == 8
