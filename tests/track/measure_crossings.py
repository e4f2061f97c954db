"""Stop-line crossings and red-light violations found by track on a recorded clip, against truth.

    PYTHONPATH=. python tests/track/measure_crossings.py tests/track/data/vn_haiphong_10fps.json \
        deploy/local/scenes/demo-haiphong.yaml --fps 5 [--truth eval/truth/vn_haiphong_intersection.json] \
        [--signal vision|truth] [--min-score 0.3]

Feeds the recorded detections (see record_detections.py), resampled to --fps on the same slot
grid as ingest, through `camera.CameraTracker` exactly as the service does. The signal is read
off the clip's frames (`vision`, the scene's lamp regions) or taken from the truth's timeline.
A crossing is logged whenever `rules.evaluate` sees a confirmed-or-young track's path cross a stop
line in its lane's direction (the same test the red-light rule makes), so the figures work for
any version of the track code whose `rules.evaluate` has this signature.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from proto.v1.common import Box, PlateText
from proto.v1.detection import DetectedObject, DetectedPlate, DetectionMade, FrameRef
from services.ingest.sampler import FpsSampler
from services.track import camera as camera_module
from services.track import geometry, rules, scenes

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)


def events(recording: dict, fps: float, min_score: float = 0.0, camera: str = "cam") -> list[DetectionMade]:
    """The recording's frames sampled at fps (slot grid from the clip start) as DetectionMade."""
    sampler = FpsSampler(fps)
    out = []
    for fr in recording["frames"]:
        if not sampler.take(fr["t"] + 1e-6):
            continue
        t = T0 + timedelta(seconds=fr["t"])
        kept = [o for o in fr["objects"] if o["score"] >= min_score]
        index = {id(o): i for i, o in enumerate(kept)}
        by_old = {i: index.get(id(o)) for i, o in enumerate(fr["objects"])}
        out.append(DetectionMade(
            id=f"d-{fr['frame']}", camera_id=camera, occurred_at=t,
            frame=FrameRef(stream_seq=1000 + fr["frame"], frame_seq=fr["frame"], captured_at=t,
                           width=recording["width"], height=recording["height"]),
            objects=tuple(DetectedObject(class_name=o["class"], score=o["score"], box=Box(x1=o["box"][0], y1=o["box"][1],
                                                                                        x2=o["box"][2], y2=o["box"][3]))
                          for o in kept),
            plates=tuple(DetectedPlate(box=Box(x1=p["box"][0], y1=p["box"][1], x2=p["box"][2], y2=p["box"][3]),
                                       read=PlateText(text=p["text"], raw=p["text"], confidence=p["confidence"],
                                                      format_valid=p["format_valid"]),
                                       vehicle_index=by_old.get(p["vehicle_index"]) if p["vehicle_index"] is not None else None)
                         for p in fr["plates"]),
        ))
    return out


def truth_signal(engine, truth: dict, fps_native: float) -> None:
    for span in truth.get("signal", []):
        t = T0.timestamp() + span["from_frame"] / fps_native
        engine.observe_signal(span["head"], t, span["state"])


def run(recording: dict, scene: scenes.Scene, fps: float, *, signal: str, truth: dict | None, min_score: float,
        classes: frozenset[str] | None = None, video: Path | None = None) -> dict:
    crossings: list[dict] = []
    original = rules.evaluate

    def logging_evaluate(scene_, state, previous, current, vehicle_class, phase_at):
        if previous is not None:
            for stop in scene_.stop_lines:
                hit = geometry.segment_intersection((previous.anchor, current.anchor), stop.line)
                if hit is None or hit[0] == 0.0:
                    continue
                lane = scene_.lane_at(previous.anchor) or scene_.lane_at(current.anchor)
                motion = (current.anchor[0] - previous.anchor[0], current.anchor[1] - previous.anchor[1])
                if lane is None or geometry.dot(motion, lane.direction) <= 0:
                    continue
                t = previous.t + hit[0] * (current.t - previous.t)
                x = previous.anchor[0] + hit[0] * (current.anchor[0] - previous.anchor[0])
                crossings.append({"line": stop.id, "t": round(t - T0.timestamp(), 2), "x": round(x), "class": vehicle_class,
                                  "state": state})
        return original(scene_, state, previous, current, vehicle_class, phase_at)

    camera_module.evaluate = logging_evaluate
    try:
        kwargs = {"classes": classes} if classes is not None else {}
        if classes is None:
            kwargs["classes"] = frozenset({"car", "motorcycle", "bus", "truck", "bicycle"})
        engine = camera_module.CameraTracker(scene, **kwargs)
        frames = {}
        if signal == "truth":
            truth_signal(engine, truth, truth["video"]["fps"])
        else:
            frames = _frames(video, {fr["frame"] for fr in recording["frames"]})
        drafts = []
        states = {}
        for event in events(recording, fps, min_score, scene.camera):
            if signal == "vision":
                engine.observe_signal_image(event.frame.captured_at.timestamp(), frames[event.frame.frame_seq])
            step = engine.process(event)
            drafts += step.drafts
            for track_id, info in engine.info.items():
                states[id(info.rules)] = (track_id, info)
        drafts += engine.finish()
    finally:
        camera_module.evaluate = original
    # Keep crossings of tracks that lived long enough to be judged (a confirmed track).
    found = []
    for c in crossings:
        track_id, _ = states.get(id(c.pop("state")), (None, None))
        c["track"] = track_id
        found.append(c)
    violations = [{"type": d.finding.type, "t": round(d.finding.t - T0.timestamp(), 2),
                   "x": round((dict(d.frames)["at"].box[0] + dict(d.frames)["at"].box[2]) / 2),
                   "class": d.vehicle_class, "track": d.track_id,
                   "movement": d.finding.parameters.get("movement")} for d in drafts]
    return {"crossings": found, "violations": violations}


def _frames(video: Path, wanted: set[int]):
    import av
    out = {}
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out[i] = frame.to_ndarray(format="bgr24")
    return out


def compare(found: list[dict], expected: list[dict], *, dt: float = 0.5, dx: float = 80) -> dict:
    """Greedy one-to-one match on time and x; returns matched / missed / false."""
    pairs, used = [], set()
    for e in sorted(expected, key=lambda e: e["t"]):
        best = None
        for i, f in enumerate(found):
            if i in used or abs(f["t"] - e["t"]) > dt or abs(f["x"] - e["x"]) > dx:
                continue
            key = abs(f["t"] - e["t"]) / dt + abs(f["x"] - e["x"]) / dx
            if best is None or key < best[0]:
                best = (key, i)
        if best is not None:
            used.add(best[1])
            pairs.append((e, found[best[1]]))
    return {"matched": len(pairs), "missed": [e for e in expected if all(e is not p[0] for p in pairs)],
            "false": [f for i, f in enumerate(found) if i not in used]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recording", type=Path)
    parser.add_argument("scene", type=Path)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--truth", type=Path)
    parser.add_argument("--signal", choices=("vision", "truth"), default="vision")
    parser.add_argument("--min-score", type=float, default=0.3)
    parser.add_argument("--classes", default="", help="comma-separated; default: the service's TRACK_CLASSES default")
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / ".." / "shared")
    args = parser.parse_args(argv)
    recording = json.loads(args.recording.read_text(encoding="utf-8"))
    truth = json.loads(args.truth.read_text(encoding="utf-8")) if args.truth else None
    scene = scenes.load(args.scene)
    classes = frozenset(args.classes.split(",")) if args.classes else None
    if classes is None:
        try:
            from services.track.settings import DEFAULT_CLASSES
            classes = frozenset(DEFAULT_CLASSES)
        except ImportError:
            pass
    result = run(recording, scene, args.fps, signal=args.signal, truth=truth, min_score=args.min_score, classes=classes,
                 video=args.shared / "data" / "video" / recording["clip"])
    for c in result["crossings"]:
        print(json.dumps({"kind": "crossing", **c}))
    for v in result["violations"]:
        print(json.dumps({"kind": "violation", **v}))
    summary = {"kind": "summary", "fps": args.fps, "crossings": len(result["crossings"]),
               "red_light": sum(v["type"] == "red_light" for v in result["violations"])}
    if truth is not None:
        c = compare(result["crossings"], truth.get("crossings", []))
        r = compare([v for v in result["violations"] if v["type"] == "red_light"],
                    [v for v in truth.get("violations", []) if v["type"] == "red_light"])
        summary.update({"truth_crossings": len(truth.get("crossings", [])), "crossings_matched": c["matched"],
                        "crossings_missed": [(e["t"], e["x"]) for e in c["missed"]],
                        "crossings_false": [(f["t"], f["x"]) for f in c["false"]],
                        "truth_red_light": sum(v["type"] == "red_light" for v in truth.get("violations", [])),
                        "red_light_matched": r["matched"], "red_light_missed": [(e["t"], e["x"]) for e in r["missed"]],
                        "red_light_false": [(f["t"], f["x"]) for f in r["false"]]})
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
