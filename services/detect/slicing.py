"""Merging what the detector found in overlapping windows of one frame (tiles and the whole frame).

A vehicle is seen several times: whole in the full frame, whole in one tile, cut in half by the
edge of the next tile, and the windows disagree on its extent (one box takes in the rider or the
shadow, the other not). The merge keeps one box per vehicle, greedily, best first:
- a box touching a window edge that is not a frame edge is possibly a fragment (`cut`); uncut
  boxes are taken before cut ones, then by score;
- a taken box removes the same class's boxes that overlap it by more than the NMS IoU, or, from
  another window, share most of the smaller box (the same vehicle at another scale), and cut
  boxes mostly inside it (fragments);
- vehicle boxes of two classes on the same spot (IoU >= 0.7: car in one window, truck in the
  other) are one vehicle, the better-scored class stays;
then two cut boxes of one class from different windows that share their height (or width)
across the edge are the two halves of a vehicle too big for either tile: they become one.

Why not a library: `sahi` (0.12.8) pulls in matplotlib, shapely, fire, click, requests and the
non-headless opencv-python (which clashes with the headless build here) and wraps the model in
its own classes; its merge does not know about cut boxes either. `ensemble-boxes` needs pandas
and numba, and its weighted box fusion averages a cut box into the whole one, shrinking it. The
rules below are ~70 lines of numpy over a frame's few dozen boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.detect.nms import batched_nms, iou_one_to_many

EDGE_PX = 3.0  # a box within this many pixels of a window edge is cut by it
FRAGMENT_INSIDE = 0.6  # share of a cut box inside a kept same-class box that makes it a fragment of it
SAME_VEHICLE_SHARED = 0.6  # same class, two windows: intersection over the smaller box that makes one vehicle
WEAK_INSIDE = 0.8  # share of a weak box inside a sure same-class box that makes it part of it
HALVES_SHARED_SIDE = 0.7  # two cut boxes sharing this much of their height (or width) are halves
SAME_SPOT_IOU = 0.7  # vehicle boxes of any two classes this close are one vehicle
SAME_SPOT_SHARED, SAME_SPOT_SIZE = 0.8, 0.5  # ... or this much of the smaller inside the other, sizes alike
VEHICLE_CLASSES = ("car", "truck", "bus", "motorcycle", "bicycle")

Window = tuple[int, int, int, int]


@dataclass(frozen=True)
class Found:
    boxes: np.ndarray  # (n, 4) float32, frame pixels
    scores: np.ndarray
    classes: np.ndarray
    window: Window  # x1, y1, x2, y2 of the part of the frame the detector saw


def _cut(boxes: np.ndarray, window: Window, frame_wh: tuple[int, int]) -> np.ndarray:
    x1, y1, x2, y2 = window
    w, h = frame_wh
    cut = np.zeros(len(boxes), dtype=bool)
    if x1 > 0:
        cut |= boxes[:, 0] <= x1 + EDGE_PX
    if y1 > 0:
        cut |= boxes[:, 1] <= y1 + EDGE_PX
    if x2 < w:
        cut |= boxes[:, 2] >= x2 - EDGE_PX
    if y2 < h:
        cut |= boxes[:, 3] >= y2 - EDGE_PX
    return cut


def _inside_share(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Share of `box`'s area inside each of `others`."""
    ix = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    return ix * iy / max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-6)


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def merge(parts: list[Found], frame_wh: tuple[int, int], iou: float, class_names: list[str],
          strong: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One box per vehicle from detections in several windows; returns boxes, scores, classes.
    `strong` (a score per class): boxes below it are taken after every box above it."""
    if not parts:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    boxes = np.concatenate([p.boxes for p in parts]).astype(np.float32)
    scores = np.concatenate([p.scores for p in parts]).astype(np.float32)
    classes = np.concatenate([p.classes for p in parts]).astype(np.int64)
    cut = np.concatenate([_cut(p.boxes, p.window, frame_wh) for p in parts])
    origin = np.concatenate([np.full(len(p.boxes), i) for i, p in enumerate(parts)])
    n = len(boxes)
    if n == 0:
        return boxes, scores, classes
    vehicle_ids = {class_names.index(c) for c in VEHICLE_CLASSES if c in class_names}
    is_vehicle = np.array([int(c) in vehicle_ids for c in classes])
    areas = _area(boxes)

    # Greedy suppression: sure boxes first, uncut before cut, then by score.
    weak = scores < strong[classes] if strong is not None else np.zeros(n, dtype=bool)
    order = np.lexsort((-scores, cut, weak))
    alive = np.ones(n, dtype=bool)
    kept: list[int] = []
    for i in order:
        if not alive[i]:
            continue
        kept.append(int(i))
        alive[i] = False
        rest = np.flatnonzero(alive)
        if not len(rest):
            break
        overlap = iou_one_to_many(boxes[i], boxes[rest])
        ix = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        iy = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inside = ix * iy / np.maximum(areas[rest], 1e-6)  # share of each other box inside this one
        shared = ix * iy / np.maximum(np.minimum(areas[rest], areas[i]), 1e-6)  # over the smaller box
        same = classes[rest] == classes[i]
        gone = same & (overlap > iou)
        # The same vehicle seen at two scales: boxes differ in extent (the rider, the shadow).
        gone |= same & (origin[rest] != origin[i]) & (shared >= SAME_VEHICLE_SHARED)
        gone |= (same | (is_vehicle[i] & is_vehicle[rest])) & cut[rest] & (inside >= FRAGMENT_INSIDE)
        # A weak box (kept only to carry a rider) inside a sure one of its class is that one's part.
        gone |= same & ~weak[i] & weak[rest] & (inside >= WEAK_INSIDE)
        # One vehicle named car in one window and truck in the other (a bike inside a car's box
        # is not: the sizes must be alike).
        alike = np.minimum(areas[rest], areas[i]) / np.maximum(np.maximum(areas[rest], areas[i]), 1e-6) >= SAME_SPOT_SIZE
        gone |= is_vehicle[i] & is_vehicle[rest] & ((overlap >= SAME_SPOT_IOU) | (alike & (shared >= SAME_SPOT_SHARED)))
        alive[rest[gone]] = False
    keep = np.array(kept, dtype=np.int64)
    boxes, scores, classes, cut, origin = boxes[keep], scores[keep], classes[keep], cut[keep], origin[keep]

    # Two halves of one vehicle too big for either tile, cut by the edges of neighbouring tiles.
    n = len(boxes)
    gone_halves = np.zeros(n, dtype=bool)
    for i in range(n):
        if not cut[i] or gone_halves[i]:
            continue
        for j in range(n):
            if j == i or gone_halves[j] or not cut[j] or classes[j] != classes[i] or origin[j] == origin[i]:
                continue
            a, b = boxes[i], boxes[j]
            ix = min(a[2], b[2]) - max(a[0], b[0])
            iy = min(a[3], b[3]) - max(a[1], b[1])
            if ix <= 0 or iy <= 0:
                continue
            x_shared = ix / (max(a[2], b[2]) - min(a[0], b[0]))
            y_shared = iy / (max(a[3], b[3]) - min(a[1], b[1]))
            # side by side halves share their height, stacked halves their width
            if max(x_shared, y_shared) >= HALVES_SHARED_SIDE:
                boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                scores[i] = max(scores[i], scores[j])
                gone_halves[j] = True
    return boxes[~gone_halves], scores[~gone_halves], classes[~gone_halves]
