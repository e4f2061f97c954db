"""Where in a camera's frame to look, and at what scale: the `detection:` block of its scene.

A camera watches a road, not its whole frame; far vehicles on that road are a few dozen pixels
tall, and shrinking a 1000-px frame into a 416-px model input makes them vanish. So the scene
(the same `SCENES_DIR/<camera_id>.yaml` track reads) may say which polygon of the frame is the
road (`roi`) and how to slice it: tiles at the model's own input size are seen at full
resolution, ~2.4x bigger than in the shrunk whole frame (smaller tiles are enlarged, bigger ones
shrunk), and the whole frame is still run for the big near vehicles that tiles cut apart.
Detections whose ground point (bottom centre) is off the roi are dropped.

```yaml
detection:
  roi: [[x, y], ...]        # the road, frame pixels; default the whole frame
  slices: auto              # or [[x1, y1, x2, y2], ...], or none; auto = tiles over the roi's bounding box
  tile: 416                 # auto only: frame pixels per tile side (default the model's input), or
                            # [far, near]: tiles growing from `far` at the roi's top to `near` at its bottom
  overlap: 0.2              # auto only: share of a tile shared with its neighbour
  full_frame: true          # also run the whole frame
  min_score: {motorcycle: 0.25}   # per-class score thresholds (default the detector's)
```

This reader is detect's own (detect must not depend on track): it reads only `camera`,
`frame_size` and `detection` (through services/runtime/config.py), and reports every mistake as
`file:line: field: reason`.
A scene without a `detection:` block keeps the whole-frame path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import numpy as np
from msgspec import Meta

from services.runtime import config
from services.runtime.config import FieldError

Box = tuple[float, float, float, float]


class DetectionBlock(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    roi: Annotated[list[tuple[float, float]], Meta(min_length=3)] | None = None
    slices: Literal["auto", "none"] | list[tuple[float, float, float, float]] = "auto"
    tile: int | list[int] | None = None  # checked in _SceneView (a union with constrained tuples upsets msgspec 0.22)
    overlap: Annotated[float, Meta(ge=0.0, le=0.8)] = 0.2
    full_frame: bool = True
    min_score: dict[str, Annotated[float, Meta(gt=0.0, lt=1.0)]] = {}


class RegionError(config.ConfigFileError):
    """A `detection:` block that cannot be used; `str()` is `file:line: field: reason`."""


@dataclass(frozen=True)
class DetectionPlan:
    """A camera's detection plan in the pixels of `frame_size` (the frame the scene was drawn on)."""

    source: str
    frame_size: tuple[int, int]  # width, height
    roi: tuple[tuple[float, float], ...] | None  # None: the whole frame
    slices: tuple[Box, ...] | Literal["auto"]
    tile: int | tuple[int, int] | None  # one size, or [far, near]: at the top and the bottom of the roi
    overlap: float
    full_frame: bool
    min_score: dict[str, float]
    min_score_line: int | None = None  # where min_score is, to name it when a class is unknown

    def scaled_to(self, width: int, height: int) -> "DetectionPlan":
        """The plan for frames of another size (an ingest that downscales): polygon and slices scale."""
        if (width, height) == self.frame_size:
            return self
        sx, sy = width / self.frame_size[0], height / self.frame_size[1]
        roi = None if self.roi is None else tuple((x * sx, y * sy) for x, y in self.roi)
        slices = self.slices if self.slices == "auto" else tuple(
            (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy) for b in self.slices)
        k = min(sx, sy)
        tile = (None if self.tile is None else max(32, round(self.tile * k)) if isinstance(self.tile, int)
                else (max(32, round(self.tile[0] * k)), max(32, round(self.tile[1] * k))))
        return DetectionPlan(self.source, (width, height), roi, slices, tile, self.overlap, self.full_frame,
                             self.min_score, self.min_score_line)

    def roi_box(self) -> Box:
        if self.roi is None:
            return (0.0, 0.0, float(self.frame_size[0]), float(self.frame_size[1]))
        xs, ys = [p[0] for p in self.roi], [p[1] for p in self.roi]
        return (max(0.0, min(xs)), max(0.0, min(ys)), min(float(self.frame_size[0]), max(xs)),
                min(float(self.frame_size[1]), max(ys)))

    def tiles(self, model_input: tuple[int, int]) -> tuple[tuple[int, int, int, int], ...]:
        """The slices as integer pixel boxes. `auto`: tiles over the roi's bounding box, neighbours
        sharing `overlap`, of `tile` pixels (default the model's input, height x width: seen at
        full resolution). With `tile: [far, near]` the tiles grow row by row from `far` at the
        top of the roi to `near` at its bottom, as vehicles do on a camera looking down a road:
        far tiles are enlarged into the model input, near ones shrunk."""
        if self.slices != "auto":
            w, h = self.frame_size
            return tuple((max(0, math.floor(b[0])), max(0, math.floor(b[1])), min(w, math.ceil(b[2])),
                          min(h, math.ceil(b[3]))) for b in self.slices)
        x1, y1, x2, y2 = self.roi_box()
        fw, fh = self.frame_size
        if not isinstance(self.tile, tuple):
            th, tw = (self.tile, self.tile) if self.tile else model_input
            xs = _starts(x1, x2, tw, self.overlap, fw)
            ys = _starts(y1, y2, th, self.overlap, fh)
            return tuple((x, y, min(x + tw, fw), min(y + th, fh)) for y in ys for x in xs)
        far, near = self.tile
        out: list[tuple[int, int, int, int]] = []
        top = y1
        while True:
            size = round(far + (near - far) * min(1.0, max(0.0, (top - y1) / max(y2 - y1, 1.0))))
            size = min(size, fh, fw)
            row = min(int(top), fh - size)
            out += [(x, row, min(x + size, fw), row + size) for x in _starts(x1, x2, size, self.overlap, fw)]
            if row + size >= y2:
                return tuple(out)
            top = row + size * (1.0 - self.overlap)

    def inside_roi(self, boxes: np.ndarray) -> np.ndarray:
        """Which boxes have their ground point (bottom centre) on the road polygon; a box whose
        bottom is cut by the frame edge counts by its bottom centre all the same."""
        if self.roi is None or len(boxes) == 0:
            return np.ones(len(boxes), dtype=bool)
        points = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]], axis=1)
        return points_in_polygon(points, np.asarray(self.roi, dtype=np.float64))


def _starts(low: float, high: float, size: int, overlap: float, limit: int) -> list[int]:
    """Tile origins along one axis covering [low, high] with tiles of `size` pixels."""
    low, high = int(math.floor(low)), int(math.ceil(high))
    span = high - low
    if span <= size:
        start = min(max(0, low - (size - span) // 2), max(0, limit - size))
        return [start]
    step = size * (1.0 - overlap)
    n = math.ceil((span - size) / step) + 1
    # Spread the n tiles evenly so that the last one ends at `high` (overlap >= the asked one).
    stride = (span - size) / (n - 1)
    return [int(round(low + i * stride)) for i in range(n)]


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over points."""
    x, y = points[:, 0][:, None], points[:, 1][:, None]
    x1, y1 = polygon[:, 0][None, :], polygon[:, 1][None, :]
    x2, y2 = np.roll(polygon[:, 0], -1)[None, :], np.roll(polygon[:, 1], -1)[None, :]
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return ((straddles & (x < cross_x)).sum(axis=1) % 2) == 1


def _segments_cross(a, b, c, d) -> bool:
    def orient(p, q, r) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    return (orient(a, b, c) * orient(a, b, d) < 0) and (orient(c, d, a) * orient(c, d, b) < 0)


def _self_crossing(points: list[tuple[float, float]]) -> tuple[int, int] | None:
    n = len(points)
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # neighbours through the closing edge
            if _segments_cross(points[i], points[(i + 1) % n], points[j], points[(j + 1) % n]):
                return i, j
    return None



# --- reading ---------------------------------------------------------------------------------------
class _SceneView(msgspec.Struct, frozen=True):
    """What detect reads of a scene file (the other keys are track's)."""

    camera: str | None = None
    frame_size: tuple[Annotated[int, Meta(gt=0)], Annotated[int, Meta(gt=0)]] | None = None
    detection: DetectionBlock | None = None

    def __post_init__(self) -> None:
        block = self.detection
        if block is None:
            return
        if self.frame_size is None:
            raise FieldError("frame_size", "must be [width, height] in pixels (the detection block is drawn on it)")
        w, h = self.frame_size
        for i, (x, y) in enumerate(block.roi or ()):
            if not (-1 <= x <= w + 1 and -1 <= y <= h + 1):
                raise FieldError(("detection", "roi", i), f"point ({x:g}, {y:g}) is outside the {w}x{h} frame")
        crossing = _self_crossing(block.roi) if block.roi else None
        if crossing is not None:
            i, j = crossing
            raise FieldError(("detection", "roi"), f"polygon intersects itself (edge {i}-{i + 1} crosses edge "
                                                   f"{j}-{(j + 1) % len(block.roi)})")  # type: ignore[arg-type]
        if block.roi and 0.5 * abs(sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(block.roi, block.roi[1:] + block.roi[:1]))) < 1.0:
            raise FieldError(("detection", "roi"), "polygon has no area")
        for i, (x1, y1, x2, y2) in enumerate(block.slices if isinstance(block.slices, list) else ()):
            if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
                raise FieldError(("detection", "slices", i), f"[{x1:g}, {y1:g}, {x2:g}, {y2:g}] is not a box x1 < x2, "
                                                             f"y1 < y2 inside the {w}x{h} frame")
            if min(x2 - x1, y2 - y1) < 32:
                raise FieldError(("detection", "slices", i), "a slice must be at least 32 pixels on each side")
        if not block.full_frame and block.slices == "none":
            raise FieldError(("detection", "full_frame"), "with full_frame: false there must be slices to run")
        if block.tile is not None:
            sizes = [block.tile] if isinstance(block.tile, int) else block.tile
            if block.slices != "auto":
                raise FieldError(("detection", "tile"), "is only used with slices: auto")
            if len(sizes) != (1 if isinstance(block.tile, int) else 2):
                raise FieldError(("detection", "tile"), f"is a tile size in pixels or [far, near], got {block.tile!r}")
            if any(not 32 <= v <= max(w, h) for v in sizes):
                raise FieldError(("detection", "tile"), f"tile sizes must be within 32..{max(w, h)} pixels, got {block.tile!r}")


def load_plan(path: str | Path, *, camera: str | None = None) -> DetectionPlan | None:
    """The plan of one scene file, or None when it has no `detection:` block; raises RegionError."""
    scene, doc = config.load(path, _SceneView, error=RegionError)
    if camera is not None and scene.camera != camera:
        raise RegionError.at(doc, ("camera",), f"is {scene.camera!r} but the file is for camera {camera!r}")
    block = scene.detection
    if block is None or scene.frame_size is None:
        return None
    slices = block.slices if block.slices == "auto" else () if block.slices == "none" else tuple(block.slices)
    return DetectionPlan(str(path), scene.frame_size, None if block.roi is None else tuple(block.roi), slices,
                         tuple(block.tile) if isinstance(block.tile, list) else block.tile,  # type: ignore[arg-type]
                         block.overlap, block.full_frame, dict(block.min_score),
                         doc.lines.get(("detection", "min_score")))


class PlanBook:
    """The plans of every camera with a scene in SCENES_DIR, read (and checked) once at start.

    A camera whose file has no `detection:` block, or that has no file, gets None: the
    whole-frame path (with VEHICLE_TILES)."""

    def __init__(self, plans: dict[str, DetectionPlan | None]) -> None:
        self.plans = plans

    @classmethod
    def from_dir(cls, scenes_dir: str | Path | None, class_names: list[str] | None = None) -> "PlanBook":
        if not scenes_dir:
            return cls({})
        folder = Path(scenes_dir)
        if not folder.is_dir():
            raise RegionError(folder, "SCENES_DIR is not a directory")
        plans: dict[str, DetectionPlan | None] = {}
        for path in sorted(folder.glob("*.yaml")):
            plan = load_plan(path, camera=path.stem)
            if plan is not None and class_names is not None:
                check_classes(plan, class_names)
            plans[path.stem] = plan
        return cls(plans)

    def for_camera(self, camera_id: str) -> DetectionPlan | None:
        return self.plans.get(camera_id)


def check_classes(plan: DetectionPlan, class_names: list[str]) -> None:
    unknown = sorted(set(plan.min_score) - set(class_names))
    if unknown:
        raise RegionError(plan.source, f"class(es) {', '.join(unknown)} are not classes of the vehicle model",
                          field="detection.min_score", line=plan.min_score_line)
