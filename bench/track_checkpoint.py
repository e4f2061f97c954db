"""What a checkpoint of a camera's tracking state costs per frame, against tracking the frame.

Detections: the recorded ones of the Hai Phong clip (tests/track/data/vn_haiphong_10fps.json,
made by the real detect pipeline), at --fps, replayed --repeat times with the clock shifted so
that the engine sees a long session. Measured in one run, alternating (best of --reps), in one
thread:
  * tracking (the baseline): `CameraTracker.process` per frame, as the worker calls it;
  * snapshot: `checkpoint.take` + `checkpoint.encode` of the state after each frame (what the
    worker does every CHECKPOINT_EVERY frames; measured at CHECKPOINT_EVERY=1, the worst case; the default 5 divides it by five);
  * save: putting each encoded snapshot into a key-value bucket of a nats-server started for the
    run (file storage, history 1), one put per frame, awaited as the worker awaits it.
Reported per frame and as a multiple of the tracking time, with the snapshot's size (median,
largest) and the reorder buffer in it (a 1 s window of detections, as the service holds).

    python bench/track_checkpoint.py [--fps 5] [--repeat 10] [--reps 3] [--no-nats]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import types
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "track"))

import msgspec  # noqa: E402

from measure_crossings import T0, events  # noqa: E402
from services import localstack  # noqa: E402
from services.track import checkpoint, scenes  # noqa: E402
from services.track.camera import CameraTracker  # noqa: E402
from services.track.reorder import ReorderBuffer  # noqa: E402
from services.track.settings import DEFAULT_CLASSES  # noqa: E402

RECORDING = REPO / "tests/track/data/vn_haiphong_10fps.json"
SCENE = REPO / "deploy/local/scenes/demo-haiphong.yaml"


def session(fps: float, repeat: int) -> list:
    recording = json.loads(RECORDING.read_text(encoding="utf-8"))
    clip = events(recording, fps, min_score=0.3, camera="demo-haiphong")
    span = (clip[-1].frame.captured_at - clip[0].frame.captured_at).total_seconds() + 1.0
    out = []
    for r in range(repeat):
        for e in clip:
            frame = msgspec.structs.replace(e.frame, captured_at=e.frame.captured_at + timedelta(seconds=span * r),
                                            frame_seq=e.frame.frame_seq + r * 1000, stream_seq=len(out) + 1)
            out.append(msgspec.structs.replace(e, frame=frame, occurred_at=frame.captured_at))
    return out


def worker(scene):
    engine = CameraTracker(scene, classes=frozenset(DEFAULT_CLASSES))
    for head in scene.signal.heads if scene.signal else ():
        engine.observe_signal(head.id, T0.timestamp() - 10, "red")
    return types.SimpleNamespace(engine=engine, camera_id=engine.camera_id, buffer=ReorderBuffer(1.0), late=0,
                                 stream_seq=0)


def run(frames: list, scene, *, snapshot: bool) -> tuple[float, list[bytes]]:
    """Seconds of tracking (or of snapshots) over the session; the snapshots taken."""
    w = worker(scene)
    spent, taken = 0.0, []
    for event in frames:
        # The reorder buffer holds the last second of detections, as in the service.
        t = event.frame.captured_at.timestamp()
        for item in w.buffer.push(t, event.frame.frame_seq, event, now=t)[0]:
            started = time.perf_counter()
            w.engine.process(item)
            if not snapshot:
                spent += time.perf_counter() - started
        w.stream_seq = event.frame.stream_seq
        if snapshot:
            started = time.perf_counter()
            data = checkpoint.encode(checkpoint.take(w, fingerprint="bench", saved_at=0.0))
            spent += time.perf_counter() - started
            taken.append(data)
    return spent, taken


async def save(snapshots: list[bytes]) -> float:
    import nats
    from nats.js import api

    with tempfile.TemporaryDirectory(prefix="rw-bench-ckpt-") as work:
        port = localstack.free_port()
        server = localstack.start_nats(Path(work) / "nats", port)
        try:
            nc = await nats.connect(localstack.nats_url(port))
            js = nc.jetstream()
            kv = await js.create_key_value(api.KeyValueConfig(bucket="bench_checkpoints", history=1,
                                                              storage=api.StorageType.FILE))
            started = time.perf_counter()
            for data in snapshots:
                await kv.put("demo-haiphong", data)
            spent = time.perf_counter() - started
            await nc.close()
        finally:
            localstack.stop_process(server)
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-nats", action="store_true", help="leave out the put into a key-value bucket")
    args = parser.parse_args()
    scene = scenes.load(SCENE)
    frames = session(args.fps, args.repeat)
    best: dict[str, float] = {}
    snapshots: list[bytes] = []
    for _ in range(args.reps):
        for name, snapshot in (("tracking", False), ("snapshot", True)):
            spent, taken = run(frames, scene, snapshot=snapshot)
            best[name] = min(best.get(name, spent), spent)
            snapshots = taken or snapshots
        if not args.no_nats:
            spent = asyncio.run(save(snapshots))
            best["save"] = min(best.get("save", spent), spent)
    n = len(frames)
    sizes = [len(s) for s in snapshots]
    print(f"Hai Phong recorded detections at {args.fps:g} frames/s, {n} frames ({args.repeat} passes), best of {args.reps}")
    print(f"{'per frame':<34} {'ms':>8} {'x tracking':>11}")
    base = best["tracking"] / n
    rows = [("tracking (baseline)", base), ("snapshot: take + encode", best["snapshot"] / n)]
    if "save" in best:
        rows.append(("save: put into the KV bucket", best["save"] / n))
        rows.append(("checkpoint: snapshot + save", (best["snapshot"] + best["save"]) / n))
    for name, seconds in rows:
        print(f"{name:<34} {seconds * 1e3:>8.3f} {seconds / base:>10.2f}x")
    print(f"snapshot size: median {statistics.median(sizes) / 1024:.1f} KiB, largest {max(sizes) / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
