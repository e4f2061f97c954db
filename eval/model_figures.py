"""A vehicle model's figures on the person-checked truth, for `roadwatch model add --evaluate`
and `roadwatch model promote`: recall and precision at IoU >= 0.3 over every labelled frame of
eval/truth (class-agnostic, difficult vehicles apart, ignore regions honoured: eval/metrics.py,
as `make eval-video` scores).

The model runs as detect runs it on a camera without a detection plan: the whole frame
(VEHICLE_TILES, VEHICLE_CONF, rider fusion from the detect settings); only vehicle classes count
(a lone `person` is not a vehicle). The frames are the clips' frames as ingest encodes them and
detect decodes them. `truth` in the figures is a SHA-256 over the truth files scored and the
detect settings they were scored with, so that two models' figures are compared only when they
were measured on the same truth, the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from eval import metrics, truth_files
from proto.v1.model import ModelFigures

ROOT = Path(__file__).resolve().parent.parent
TRUTH_DIR = ROOT / "eval" / "truth"
VEHICLES = frozenset(("car", "motorcycle", "bus", "truck", "bicycle", "other"))
IOU = 0.3

Labelled = list[tuple[dict, np.ndarray]]  # (a truth frame, the image detect would see)


def truth_paths(given: Sequence[str | Path] = ()) -> list[Path]:
    """The truth files to score on: those given, else every file in eval/truth."""
    paths = [Path(p) for p in given] if given else sorted(TRUTH_DIR.glob("*.json"))
    if not paths:
        raise truth_files.TruthError(f"no truth files in {TRUTH_DIR}")
    return paths


def measuring(settings) -> str:
    """The detect settings the figures depend on: figures measured otherwise are not comparable."""
    return (f"conf={settings.vehicle_conf} iou={settings.vehicle_iou} tiles={settings.vehicle_tiles} "
            f"keep={','.join(settings.vehicle_keep_classes)} riders={settings.rider_rules()}")


def truth_digest(paths: Sequence[Path], how: str = "") -> str:
    digest = hashlib.sha256(how.encode() + b"\0")
    for path in sorted(paths, key=lambda p: p.name):
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def labelled_frames(paths: Sequence[Path], video_dir: Path) -> Labelled:
    """Every labelled frame of these truth files with its image; raises TruthError."""
    from services.replay import stack  # noqa: PLC0415 - PyAV and the track code only when measuring

    out: Labelled = []
    for path in paths:
        truth = truth_files.load(path)
        if not truth.frames:
            continue
        video = video_dir / truth.clip
        if not video.is_file():
            raise truth_files.TruthError(f"{path.name}: clip {video} not found")
        wanted = {f["frame"]: f for f in truth.frames}
        images = {frame.index: stack.decode_jpeg(frame) for frame in stack.frames_at(str(video), set(wanted))}
        missing = sorted(set(wanted) - set(images))
        if missing:
            raise truth_files.TruthError(f"{path.name}: frames {missing} are beyond the end of {video}")
        out += [(wanted[index], images[index]) for index in sorted(wanted)]
    return out


def figures(detect: Callable[[np.ndarray], list], labelled: Labelled, truth: str) -> ModelFigures:
    """`detect(image)` -> [(class name, box)]; pooled over the frames."""
    total = metrics.FrameScore()
    for frame, image in labelled:
        boxes = [box for name, box in detect(image) if name in VEHICLES]
        total.add(metrics.score_frame(frame["vehicles"], frame.get("ignore", []), boxes, IOU))
    return ModelFigures(recall=round(total.recall or 0.0, 4), precision=round(total.precision or 0.0, 4), iou=IOU,
                        frames=len(labelled), vehicles=total.truth, truth=truth)


def whole_frame(detector, settings) -> Callable[[np.ndarray], list]:
    """detect's vehicle stage on a camera without a plan, for one VehicleDetector."""
    from services.detect.pipeline import Pipeline  # noqa: PLC0415

    keep = [name for name in settings.vehicle_keep_classes if name in detector.class_names] or list(detector.class_names)
    pipeline = Pipeline(detector, None, keep, fallback_max_per_frame=0, riders=settings.rider_rules())  # type: ignore[arg-type]

    def detect(image: np.ndarray) -> list:
        return [(v.class_name, v.box) for v in pipeline.find_vehicles(image)]
    return detect
