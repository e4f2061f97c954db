"""How far a candidate model agrees with the live one on the same frame. Pure functions.

Agreement is counted on vehicles (a `person` is not one; riders are inside their two-wheeler's
box): the live and the candidate boxes are paired one to one, best IoU first (eval's matching),
at IoU >= 0.5 (eval/metrics.py's greedy matching, repeated here: the image has no eval/), whatever their classes (models name the same vehicle car or truck). The share of
agreement is matched / (live + candidate - matched): 1 when both saw the same vehicles, 0 when
they share none. Class counts are kept per side for every class either model reports, so that
a class one model never emits (the fine-tuned model has no `person`) shows as a difference.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from services.detect.pipeline import Box, Vehicle

VEHICLES = frozenset(("car", "motorcycle", "bus", "truck", "bicycle"))
MATCH_IOU = 0.5


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def matched_pairs(a: list[Box], b: list[Box], threshold: float = MATCH_IOU) -> int:
    """One-to-one pairs at IoU >= threshold, best pair first (as eval/metrics.py matches truth)."""
    candidates = sorted(((iou(x, y), i, j) for i, x in enumerate(a) for j, y in enumerate(b)), key=lambda t: (-t[0], t[1], t[2]))
    used_a: set[int] = set()
    used_b: set[int] = set()
    for score, i, j in candidates:
        if score < threshold:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
    return len(used_a)


@dataclass(frozen=True)
class Comparison:
    live: int  # vehicles the live model found
    candidate: int  # vehicles the candidate found
    matched: int  # pairs at IoU >= 0.5
    live_classes: dict[str, int]
    candidate_classes: dict[str, int]

    @property
    def agreement(self) -> float:
        union = self.live + self.candidate - self.matched
        return self.matched / union if union else 1.0


def compare(live: tuple[Vehicle, ...], candidate: tuple[Vehicle, ...]) -> Comparison:
    a = [v.box for v in live if v.class_name in VEHICLES]
    b = [v.box for v in candidate if v.class_name in VEHICLES]
    return Comparison(live=len(a), candidate=len(b), matched=matched_pairs(a, b),
                      live_classes=dict(Counter(v.class_name for v in live)),
                      candidate_classes=dict(Counter(v.class_name for v in candidate)))
