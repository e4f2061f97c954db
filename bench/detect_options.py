"""Vehicle recall, precision and CPU per frame of each detection option on person-checked frames.

Options (all through `Pipeline.find_vehicles`, the code path of the service and the CLI):
  bare               the whole frame, rider fusion off (what YOLOX-nano gives on its own)
  full+riders        the whole frame, riders fused into their two-wheelers (weak bikes under riders kept)
  full+riders-weak   the same without the weak-bike rescue (RIDER_WEAK_BIKE_SCORE = VEHICLE_CONF)
  strips2+riders     VEHICLE_TILES=2 (two vertical strips + the whole frame), no scene
  tiles416+riders    `slices: auto` at the model's 416-px input over the scene's roi, + whole frame
  tiles624+riders    the same with 624-px tiles (fewer, shrunk)
  scene              the scene's own `detection:` block (rows of tiles growing 300 -> 900 px), no fusion
  scene+riders       the scene's block with fusion: the configuration of the demo cameras
  scene+riders-weak  the same without the weak-bike rescue
  scene-full+riders  the scene's tiles without the whole frame
  scene+riders@t     the scene's block with lower per-class thresholds (--low-score)
  rows208+riders     rows of tiles growing 208 -> 624 px (more zoom far away, more tiles)
  rows250+riders     rows growing 250 -> 900 px
  rows350+riders     rows growing 350 -> 1000 px (fewer tiles)
Truth: eval/truth/<clip>.json files (complete: every vehicle boxed) when given, else the partial
truth ../shared/data/video/dev_vehicle_truth_partial.json (boxed vehicles + a count of the ones
left unboxed: recall = matched / vehicles seen, and precision is a lower bound since a
detection of an unboxed vehicle counts as false).

A match is class-agnostic among vehicle classes (bicycle, car, motorcycle, bus, truck): a
truck called car is a found vehicle here; `person` boxes never count as vehicles. Greedy
matching by IoU, at IoU >= 0.5 and >= 0.3; detections inside a truth `ignore` region that match
nothing are neither true nor false. `riders`: ridden two-wheelers of the truth matched by a
vehicle with riders >= 1; `as person`: ridden two-wheelers no vehicle box matched but a `person`
box did (what track must turn into two-wheelers by their motion); `R@0.3+p`: recall if it did;
`R@0.3 ¬d`: recall over the vehicles the truth does not mark difficult (under ~15 px or mostly hidden).
CPU = process time of `find_vehicles` per frame (median), one onnxruntime thread; `runs` =
model runs per frame.

    python bench/detect_options.py --shared ../shared [--truth eval/truth/a.json ...] [--only bare,slices+riders]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from services.detect.pipeline import Pipeline  # noqa: E402
from services.detect.regions import load_plan  # noqa: E402
from services.detect.riders import RiderRules  # noqa: E402
from services.detect.vehicles import VehicleDetector, read_class_names  # noqa: E402

VEHICLES = {"bicycle", "car", "motorcycle", "bus", "truck"}
SCENES = {"vn_haiphong_intersection.mp4": "deploy/local/scenes/demo-haiphong.yaml",
          "vn_saigon_intersection.mp4": "deploy/local/scenes/demo-saigon.yaml"}
KEEP = ["person", "bicycle", "car", "motorcycle", "bus", "truck"]


@dataclasses.dataclass
class TruthFrame:
    clip: str
    frame: int
    vehicles: list[tuple[list[float], int]]  # box, riders (-1 unknown)
    seen: int  # vehicles a person counts (>= len(vehicles) for partial truth)
    ignore: list[list[float]]
    difficult: list[bool] = dataclasses.field(default_factory=list)  # per vehicle: < ~15 px or mostly hidden


def read_truth(paths: list[Path], shared: Path) -> tuple[list[TruthFrame], bool]:
    frames: list[TruthFrame] = []
    if not paths:
        data = json.loads((shared / "data/video/dev_vehicle_truth_partial.json").read_text())
        for f in data["frames"]:
            boxes = [(b["box"], -1) for b in f["boxed"]]
            frames.append(TruthFrame(f["clip"], f["frame"], boxes, f["vehicles_seen"], []))
        return frames, False
    for path in paths:
        data = json.loads(path.read_text())
        for f in data["frames"]:
            boxes = [(v["box"], int(v.get("riders", 0) or 0)) for v in f["vehicles"]]
            frames.append(TruthFrame(data["clip"], f["frame"], boxes, len(boxes), f.get("ignore", []),
                                     [bool(v.get("difficult", False)) for v in f["vehicles"]]))
    return frames, True


def decode(shared: Path, wanted: list[TruthFrame]) -> dict[tuple[str, int], np.ndarray]:
    out = {}
    for clip in sorted({f.clip for f in wanted}):
        indices = {f.frame for f in wanted if f.clip == clip}
        with av.open(str(shared / "data/video" / clip)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i in indices:
                    out[(clip, i)] = frame.to_ndarray(format="bgr24")
                if i >= max(indices):
                    break
    return out


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def greedy(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    pairs = sorted(((iou[i, j], i, j) for i in range(iou.shape[0]) for j in range(iou.shape[1])
                    if iou[i, j] >= threshold), reverse=True)
    used_t, used_d, out = set(), set(), []
    for _, i, j in pairs:
        if i not in used_t and j not in used_d:
            used_t.add(i), used_d.add(j), out.append((i, j))
    return out


def score_frame(truth: TruthFrame, vehicles, threshold: float) -> dict:
    dets = [v for v in vehicles if v.class_name in VEHICLES]
    t = np.array([b for b, _ in truth.vehicles], dtype=np.float64).reshape(-1, 4)
    d = np.array([v.box for v in dets], dtype=np.float64).reshape(-1, 4)
    matches = greedy(iou_matrix(t, d), threshold)
    matched_d = {j for _, j in matches}
    ignored = 0
    for j, v in enumerate(dets):
        if j in matched_d:
            continue
        cx, cy = (v.box[0] + v.box[2]) / 2, (v.box[1] + v.box[3]) / 2
        if any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in truth.ignore):
            ignored += 1
    ridden = [i for i, (_, r) in enumerate(truth.vehicles) if r >= 1]
    riders_found = sum(1 for i, j in matches if truth.vehicles[i][1] >= 1 and dets[j].riders >= 1)
    # A ridden two-wheeler that no vehicle box matched, but a `person` box did: a rider dropped.
    persons = np.array([v.box for v in vehicles if v.class_name == "person"], dtype=np.float64).reshape(-1, 4)
    unmatched = [i for i in ridden if i not in {i for i, _ in matches}]
    as_person = 0
    if len(persons) and unmatched:
        iou = iou_matrix(t[unmatched], persons)
        as_person = int((iou.max(axis=1) >= threshold).sum())
    easy = [i for i, hard in enumerate(truth.difficult) if not hard]
    return {"tp": len(matches), "det": len(dets) - ignored, "seen": truth.seen, "ridden": len(ridden),
            "riders_found": riders_found, "as_person": as_person,
            "easy": len(easy), "easy_tp": sum(1 for i, _ in matches if i in set(easy))}


def options(low: dict[str, float]) -> dict[str, dict]:
    """name -> plan overrides (None: no plan, the whole-frame path), rider fusion, VEHICLE_TILES, weak bikes."""
    return {
        "bare": {"plan": None, "riders": False},
        "full+riders": {"plan": None, "riders": True},
        "full+riders-weak": {"plan": None, "riders": True, "weak": False},
        "strips2+riders": {"plan": None, "riders": True, "tiles": 2},
        "tiles416+riders": {"plan": {"tile": None}, "riders": True},
        "tiles624+riders": {"plan": {"tile": 624}, "riders": True},
        "scene": {"plan": {}, "riders": False},
        "scene+riders": {"plan": {}, "riders": True},
        "scene+riders-weak": {"plan": {}, "riders": True, "weak": False},
        "scene-full+riders": {"plan": {"full_frame": False}, "riders": True},
        "scene+riders@t": {"plan": {"min_score": low}, "riders": True},
        "rows208+riders": {"plan": {"tile": (208, 624)}, "riders": True},
        "rows250+riders": {"plan": {"tile": (250, 900)}, "riders": True},
        "rows350+riders": {"plan": {"tile": (350, 1000)}, "riders": True},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--truth", type=Path, nargs="*", default=[])
    parser.add_argument("--only", help="comma-separated option names")
    parser.add_argument("--frames", default="", help="STEM:N,... restrict a clip to these frames (e.g. frames still "
                                                      "being labelled elsewhere); other clips keep all theirs")
    parser.add_argument("--low-score", default="motorcycle=0.2,bicycle=0.2,car=0.25",
                        help="per-class thresholds of the @t option")
    parser.add_argument("--weak-bike", type=float, default=RiderRules().weak_bike_score,
                        help="RIDER_WEAK_BIKE_SCORE: a two-wheeler box this weak is kept only under a rider")
    parser.add_argument("--iou", type=float, default=0.0, help="VEHICLE_IOU (0: the format's own, 0.45)")
    parser.add_argument("--conf", type=float, default=0.3, help="VEHICLE_CONF")
    parser.add_argument("--repeat", type=int, default=1, help="runs per frame for the CPU figure (best kept)")
    args = parser.parse_args(argv)
    models = args.models_dir or args.shared / "models"
    low = {k: float(v) for k, v in (p.split("=") for p in args.low_score.split(",") if p)}
    truth, complete = read_truth(args.truth, args.shared)
    if args.frames:
        listed = {(Path(p.split(":")[0]).stem, int(p.split(":")[1])) for p in args.frames.split(",")}
        limited = {stem for stem, _ in listed}
        truth = [f for f in truth if Path(f.clip).stem not in limited or (Path(f.clip).stem, f.frame) in listed]
    images = decode(args.shared, truth)
    names = read_class_names(models / "coco.names")
    chosen = options(low)
    if args.only:
        chosen = {k: v for k, v in chosen.items() if k in args.only.split(",")}
    print(f"{len(truth)} frames, {sum(f.seen for f in truth)} vehicles seen "
          f"({'complete truth' if complete else 'partial truth: precision is a lower bound'})")
    head = (f"{'option':<18} {'R@0.5':>6} {'P@0.5':>6} {'R@0.3':>6} {'P@0.3':>6} {'riders':>7} {'as person':>9} "
            f"{'R@0.3+p':>7} {'R@0.3 ¬d':>8} {'CPU ms':>7} {'runs':>5}")
    print(head)
    print("-" * len(head))
    for name, opt in chosen.items():
        tiles = opt.get("tiles", 0)
        detector = VehicleDetector(models / "yolox_nano.onnx", "yolox", names, conf=args.conf, iou=args.iou or None,
                                   tiles=tiles)
        weak = args.weak_bike if opt.get("weak", True) else detector.conf
        pipeline = Pipeline(detector, None, KEEP, riders=RiderRules(weak_bike_score=weak) if opt["riders"] else None)  # type: ignore[arg-type]
        totals = {0.5: {}, 0.3: {}}
        cpu, runs = [], 0
        for f in truth:
            image = images[(f.clip, f.frame)]
            plan = None
            if opt["plan"] is not None:
                plan = load_plan(REPO / SCENES[f.clip])
                assert plan is not None, f"{SCENES[f.clip]} has no detection block"
                plan = dataclasses.replace(plan, **opt["plan"])
                runs = int(plan.full_frame) + len(plan.tiles(detector.size))
            else:
                runs = 1 + (tiles if tiles >= 2 else 0)
            best = None
            for _ in range(args.repeat):
                started = time.process_time()
                vehicles = pipeline.find_vehicles(image, plan)
                spent = time.process_time() - started
                best = spent if best is None else min(best, spent)
            cpu.append(best * 1000)
            for threshold in (0.5, 0.3):
                for k, v in score_frame(f, vehicles, threshold).items():
                    totals[threshold][k] = totals[threshold].get(k, 0) + v
        r = {t: totals[t]["tp"] / totals[t]["seen"] for t in totals}
        p = {t: totals[t]["tp"] / max(totals[t]["det"], 1) for t in totals}
        riders = (f"{totals[0.3]['riders_found']}/{totals[0.3]['ridden']}" if complete else "n/a")
        as_person = str(totals[0.3]["as_person"]) if complete else "n/a"
        with_persons = (f"{(totals[0.3]['tp'] + totals[0.3]['as_person']) / totals[0.3]['seen']:7.1%}" if complete
                        else f"{'n/a':>7}")
        easy = f"{totals[0.3]['easy_tp'] / totals[0.3]['easy']:8.1%}" if complete and totals[0.3]["easy"] else f"{'n/a':>8}"
        print(f"{name:<18} {r[0.5]:6.1%} {p[0.5]:6.1%} {r[0.3]:6.1%} {p[0.3]:6.1%} {riders:>7} {as_person:>9} "
              f"{with_persons} {easy:>8} {np.median(cpu):7.0f} {runs:>5}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
