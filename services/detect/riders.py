"""A person riding a two-wheeler is part of the vehicle, not a pedestrian.

A COCO detector sees a ridden motorbike as two objects, a `motorcycle` box around the machine
and a `person` box around the rider, which overlaps the bike's upper part and sticks out above
it. Evidence, tracking and the law count one vehicle: the bike's class, the number of people on
it (a Vietnamese motorbike often carries two or three), and a box from the rider's head to the
wheel. A person with no bike under them stays `person`: track decides from their motion whether
they are a pedestrian or a two-wheeler whose bike the detector missed.

The rule is geometric, per rider:
- the person and the bike share most of the person's width (`min_x_overlap`, share of the
  narrower of the two, since a child in front or a wide load changes the widths);
- the person's feet are inside the bike box (between `min_foot_depth` of the bike's height
  below its top, and `max_foot_below` of it below its bottom): a rider sits on the bike, a
  pedestrian behind it stands on the ground below its top;
- the person's head is above the bike's middle (`max_head_depth`): a person standing in front
  of a parked bike does not sit on it;
- the person is not much wider than the bike (`max_width_ratio`): a person near the camera
  does not ride a far bike.
Each person joins the bike that fits best; a bike takes at most `max_riders`.

Seen from behind and above, a ridden motorbike scores high as `person` and low as `motorcycle`
(the rider hides the machine). So the pipeline also decodes two-wheeler boxes down to
`weak_bike_score`, far below the usual threshold, and keeps such a weak bike only when a rider
sits on it: the pair is good evidence where either box alone is not. The fused vehicle gets
the best score of the bike and its riders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TWO_WHEELERS = ("motorcycle", "bicycle")
RIDER_CLASSES = ("person",)


@dataclass(frozen=True)
class RiderRules:
    min_x_overlap: float = 0.5
    min_foot_depth: float = 0.25
    max_foot_below: float = 0.35
    max_head_depth: float = 0.5
    max_width_ratio: float = 2.0
    max_riders: int = 3
    weak_bike_score: float = 0.05  # a two-wheeler box this weak is kept only with a rider on it


@dataclass(frozen=True)
class Fused:
    """Detections after fusion: the same arrays as before, plus how many riders each carries."""

    boxes: np.ndarray  # (n, 4) float32
    scores: np.ndarray  # (n,) float32
    classes: np.ndarray  # (n,) int64
    riders: np.ndarray  # (n,) int64; 0 for everything but fused two-wheelers


def _fit(person: np.ndarray, bike: np.ndarray, rules: RiderRules) -> float:
    """How well a person box sits on a bike box: 0 when a rule fails, else the x overlap share."""
    pw, bw = person[2] - person[0], bike[2] - bike[0]
    bh = bike[3] - bike[1]
    if pw <= 0 or bw <= 0 or bh <= 0:
        return 0.0
    x_overlap = max(0.0, min(person[2], bike[2]) - max(person[0], bike[0])) / min(pw, bw)
    if x_overlap < rules.min_x_overlap or pw > rules.max_width_ratio * bw:
        return 0.0
    foot, head = person[3], person[1]
    if not bike[1] + rules.min_foot_depth * bh <= foot <= bike[3] + rules.max_foot_below * bh:
        return 0.0
    if head > bike[1] + rules.max_head_depth * bh:
        return 0.0
    return float(x_overlap)


def fuse_riders(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, class_names: list[str],
                rules: RiderRules = RiderRules()) -> Fused:
    """Persons on a motorcycle/bicycle box become that vehicle's riders; everything else is kept."""
    n = len(boxes)
    riders = np.zeros(n, dtype=np.int64)
    bike_ids = {i for i, name in enumerate(class_names) if name in TWO_WHEELERS}
    person_ids = {i for i, name in enumerate(class_names) if name in RIDER_CLASSES}
    bikes = [i for i in range(n) if int(classes[i]) in bike_ids]
    persons = [i for i in range(n) if int(classes[i]) in person_ids]
    if not bikes or not persons:
        return Fused(boxes, scores, classes, riders)
    # Candidate (fit, person, bike) pairs, best first; each person rides one bike.
    pairs = sorted(((fit, p, b) for p in persons for b in bikes if (fit := _fit(boxes[p], boxes[b], rules)) > 0),
                   key=lambda t: (-t[0], -float(scores[t[1]])))
    taken: dict[int, int] = {}
    on_bike: dict[int, list[int]] = {b: [] for b in bikes}
    for _, p, b in pairs:
        if p in taken or len(on_bike[b]) >= rules.max_riders:
            continue
        taken[p] = b
        on_bike[b].append(p)
    out_boxes, out_scores = boxes.copy(), scores.copy()
    for b, people in on_bike.items():
        if people:
            group = boxes[[b, *people]]
            out_boxes[b] = [group[:, 0].min(), group[:, 1].min(), group[:, 2].max(), group[:, 3].max()]
            # A rider sitting on a bike box is evidence for the bike: a bike the detector barely
            # saw under a clear rider is as sure as the rider.
            out_scores[b] = max(float(scores[b]), *(float(scores[p]) for p in people))
            riders[b] = len(people)
    keep = np.array([i not in taken for i in range(n)], dtype=bool)
    return Fused(out_boxes[keep].astype(np.float32), out_scores[keep], classes[keep], riders[keep])
