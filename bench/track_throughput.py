"""Tracker throughput on real detections of the two Vietnamese clips: detections per second per
camera, as ratios against a baseline measured in the same run.

Detections: every frame of both clips through the detect pipeline once (real boxes: ~18 per
frame on Hai Phong, ~14 on Sai Gon, riders dropped as the service does), then replayed REPEAT
times with the clock shifted, so that the engine sees a long camera session.
Measured in one run, alternating (best of --reps), in one thread:
  * decode only: msgspec-decoding the DetectionMade JSON (the baseline: the least any consumer
    of this stream pays per message);
  * tracker only: decode + `Tracker.update` (Kalman predict/update, ByteTrack association);
  * full engine: decode + `CameraTracker.process` (tracker, the five rules, plate votes,
    counts, drafts) with the scene of the clip (phases set once, not read per frame);
  * lamp reading: what a `source: vision` camera adds per frame: JPEG decode at half size
    (quality 80, as ingest publishes) + reading every head's colour (`observe_signal_image`).
Reported as frames/s and vehicle detections/s per camera, and each loop's time per frame as a
multiple of the decode-only loop's (the baseline: "x decode"). How far the full engine is from
a camera's pace (frames/s over --camera-fps) is printed on its own line: that is headroom, not
a ratio to the baseline.

    python bench/track_throughput.py --shared ../shared
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import av
import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgspec  # noqa: E402

from proto import codec  # noqa: E402
from proto.v1.detection import DetectionMade  # noqa: E402
from proto.v1.frame import new_frame_meta  # noqa: E402
from services.track import evidence, scenes  # noqa: E402
from services.track.camera import CameraTracker  # noqa: E402
from services.track.settings import DEFAULT_CLASSES  # noqa: E402
from services.track.tracker import Detection, Tracker  # noqa: E402

CLIPS = {"vn_haiphong_intersection.mp4": "demo-haiphong", "vn_saigon_intersection.mp4": "demo-saigon"}
CLASSES = frozenset(DEFAULT_CLASSES)


def detections(video: Path, models: Path) -> tuple[dict[str, list[bytes]], dict[str, list[bytes]]]:
    from datetime import datetime, timezone

    from services.detect.handler import Frame, detection_event
    from services.detect.pipeline import Pipeline
    from services.detect.settings import Settings

    pipeline = Pipeline.from_settings(Settings(models_dir=str(models)))
    out, jpegs = {}, {}
    for clip, camera in CLIPS.items():
        t0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)
        events = []
        jpegs[camera] = []
        with av.open(str(video / clip)) as container:
            fps = float(container.streams.video[0].average_rate)
            for i, frame in enumerate(container.decode(video=0)):
                image = frame.to_ndarray(format="bgr24")
                jpegs[camera].append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
                meta = new_frame_meta(camera_id=camera, frame_seq=i, captured_at=t0 + timedelta(seconds=i / fps),
                                      width=image.shape[1], height=image.shape[0])
                events.append(codec.encode(detection_event(Frame(meta, i + 1, image, 0.0), pipeline.process(image),
                                                           model="bench", now=t0)))
        out[camera] = events
        print(f"{clip}: {len(events)} frames detected", file=sys.stderr)
    return out, jpegs


def run_lamps(jpegs: list[bytes], scene) -> int:
    engine = CameraTracker(scene, classes=CLASSES)
    for i, data in enumerate(jpegs):
        engine.observe_signal_image(i * 0.05, evidence.decode(data, half=True))
    return 0


def replay(events: list[bytes], repeat: int) -> list[bytes]:
    """The clip again and again, each pass later in time and in sequence, as one long session."""
    decoded = [codec.decode(e, DetectionMade) for e in events]
    span = (decoded[-1].frame.captured_at - decoded[0].frame.captured_at).total_seconds() + 1.0
    out = []
    for r in range(repeat):
        for e in decoded:
            shift = timedelta(seconds=span * r)
            frame = msgspec.structs.replace(e.frame, captured_at=e.frame.captured_at + shift,
                                            frame_seq=e.frame.frame_seq + r * len(decoded))
            out.append(codec.encode(msgspec.structs.replace(e, frame=frame, occurred_at=frame.captured_at)))
    return out


def run_decode(payloads: list[bytes], scene) -> int:
    n = 0
    for p in payloads:
        n += sum(1 for o in codec.decode(p, DetectionMade).objects if o.class_name in CLASSES)
    return n


def run_tracker(payloads: list[bytes], scene) -> int:
    tracker, n = Tracker(), 0
    for p in payloads:
        e = codec.decode(p, DetectionMade)
        dets = [Detection((o.box.x1, o.box.y1, o.box.x2, o.box.y2), o.score, o.class_name, i)
                for i, o in enumerate(e.objects) if o.class_name in CLASSES]
        tracker.update(e.frame.captured_at.timestamp(), dets)
        n += len(dets)
    return n


def run_engine(payloads: list[bytes], scene) -> int:
    engine, n = CameraTracker(scene, classes=CLASSES), 0
    for head in scene.signal.heads if scene.signal else ():
        engine.signals.observe(head.id, 0.0, "red", "vision")
    for p in payloads:
        step = engine.process(codec.decode(p, DetectionMade))
        n += step.detections
    engine.finish()
    return n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"), help="the shared folder (data/video, models)")
    parser.add_argument("--video", type=Path, default=None, help="default: <shared>/data/video")
    parser.add_argument("--models", type=Path, default=None, help="default: $MODELS_DIR or <shared>/models")
    parser.add_argument("--scenes", type=Path, default=Path(__file__).resolve().parents[1] / "deploy/local/scenes")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--camera-fps", type=float, default=5.0, help="a camera's frame rate, for the headroom line")
    args = parser.parse_args()
    args.video = args.video or args.shared / "data" / "video"
    args.models = args.models or Path(os.environ.get("MODELS_DIR", args.shared / "models"))
    scene_map = scenes.load_dir(args.scenes)
    clips, jpegs = detections(args.video, args.models)
    print(f"{'camera':<15} {'loop':<13} {'frames/s':>10} {'vehicles/s':>11} {'x decode':>9}")
    for camera, events in clips.items():
        payloads = replay(events, args.repeat)
        best: dict[str, tuple[float, int]] = {}
        for _ in range(args.reps):
            for name, loop in (("decode only", run_decode), ("tracker only", run_tracker), ("full engine", run_engine)):
                started = time.perf_counter()
                count = loop(payloads, scene_map[camera])
                elapsed = time.perf_counter() - started
                if name not in best or elapsed < best[name][0]:
                    best[name] = (elapsed, count)
            started = time.perf_counter()
            run_lamps(jpegs[camera], scene_map[camera])
            elapsed = time.perf_counter() - started
            if "lamp reading" not in best or elapsed < best["lamp reading"][0]:
                best["lamp reading"] = (elapsed, 0)
        per_frame = {name: elapsed / (len(jpegs[camera]) if name == "lamp reading" else len(payloads))
                     for name, (elapsed, _) in best.items()}
        vehicles_per_frame = best["full engine"][1] / len(payloads)
        for name, seconds in per_frame.items():
            print(f"{camera:<15} {name:<13} {1 / seconds:>10.0f} {vehicles_per_frame / seconds:>11.0f} "
                  f"{seconds / per_frame['decode only']:>8.1f}x")
        engine = per_frame["full engine"]
        print(f"{camera:<15} full engine: {engine / per_frame['decode only']:.1f}x the decode-only time per frame "
              f"(baseline); headroom over a camera at {args.camera_fps:g} frames/s: {1 / engine / args.camera_fps:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
