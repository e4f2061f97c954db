"""Multi-object tracking by detection: a Kalman filter per vehicle and ByteTrack association,
made to hold at the 5 frames/s of sampled traffic cameras.

ByteTrack (Zhang et al., ECCV 2022) matches confident detections first, then gives the
low-confidence ones a second chance against tracks that are still unmatched: a motorbike half
hidden behind a bus scores low for a few frames, and without the second pass its track would
break and come back with a new id. The filter is the constant-velocity model on (centre x,
centre y, aspect ratio, height) that SORT and ByteTrack use, with time in seconds rather than
frames, since a camera's frames arrive at a sampled, sometimes uneven rate and may have gaps.

What ByteTrack alone does not survive at 5 frames/s: a motorbike moves more than its own height
between two frames, so the IoU of its predicted and detected boxes is often 0 (always 0 for a
track one frame old, whose speed is not known yet), and IoU-only matching breaks the track in
two, typically right where the vehicle speeds off the stop line. Here a pair is scored by IoU
*and* by the distance of the box centres, measured in units of a gate radius that grows with
the box size, the time since the track was last seen and the track's speed (`gate_radius`).
Detections and tracks of incompatible sizes or kinds (a car and a motorbike) only match on a
real overlap. Pairs are then chosen by optimal assignment (Hungarian, on each group of tracks
and detections that compete for one another; most groups are a single pair).

A lost track (unseen for up to `max_lost_s`) stays in the first stage with a radius that keeps
growing with the gap, and takes a confident detection only where it was heading (the detection
lies ahead of it, not behind): the old id and history continue over the gap, and the rules
judge a stop-line crossing from the last position before the gap and the first after it. A
track that was nonetheless started anew while an older one was lost is folded back into the
older one when it is young and began where the older one was heading (`merged`).

`supervision`'s ByteTrack (MIT) was weighed: it counts time in frames (`lost_track_buffer`,
`frame_rate`), matches on IoU only, and would bring SciPy and OpenCV for what is here ~300
lines, so it would break at 5 frames/s for the same reason as the IoU-only version did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

Box = tuple[float, float, float, float]

# Classes the detector confuses for one another on the same vehicle. A detection continues a
# track of another group only when their boxes really overlap.
CLASS_GROUPS = ({"car", "bus", "truck", "other"}, {"motorcycle", "bicycle", "person"})
VEHICLE_CLASSES = frozenset({"car", "bus", "truck", "motorcycle", "bicycle", "other"})


@dataclass(frozen=True)
class Detection:
    box: Box
    score: float
    class_name: str
    index: int  # position in the DetectionMade's objects, to find the plates attached to it
    riders: int = 0  # people on a two-wheeler (fused by detect, or folded here)


@dataclass(frozen=True)
class TrackerParams:
    # ByteTrack's own thresholds (0.5 / 0.6) suit strong detectors; the default YOLOX-nano
    # scores most vehicles of the Vietnamese clips between 0.3 and 0.6 (median 0.38 on Sai Gon),
    # and at 0.5 / 0.6 two vehicles in three were never tracked there.
    high_score: float = 0.4  # detections at or above start the first association
    low_score: float = 0.1  # below this a detection is ignored altogether
    new_track_score: float = 0.45  # an unmatched detection at or above starts a track
    duplicate_iou: float = 0.7  # the same vehicle boxed under two classes (car and truck): keep the best
    match_iou: float = 0.2  # an overlap this large matches whatever the distance gate says
    low_match_iou: float = 0.5  # second association (weak detections): overlap, or ...
    low_gate: float = 0.5  # ... centre within this fraction of the gate radius
    unconfirmed_iou: float = 0.3
    max_lost_s: float = 1.5  # a track unseen for longer is finished
    min_hits: int = 3  # matches before a track is confirmed (counted, judged)
    # Gate radius, in box heights: gate_base + gate_per_s * dt, plus gate_speed * |v| * dt in
    # pixels for a track whose speed is known; a track one frame old may have moved at up to
    # `new_track_speed` heights per second (a motorbike at 30 km/h: ~5 of its heights a second).
    gate_base: float = 0.5
    gate_per_s: float = 0.5
    gate_speed: float = 0.35
    new_track_speed: float = 5.5
    max_gate: float = 4.0  # heights: a lost track's radius stops growing there
    size_ratio: float = 1.8  # heights of a matched pair differ by at most this factor
    ahead_cos: float = 0.3  # a lost, moving track re-appears ahead: cosine to its heading at least this
    merge_young_hits: int = 3  # a track with 2 up to this many hits may be folded into a lost one
    merge_gate: float = 1.5  # ... found within this many gate radii of the lost one's prediction
    merge_cos: float = 0.5  # ... moving the same way (cosine of the two velocities) ...
    merge_min_speed: float = 20.0  # ... both moving at least this many px/s
    rider_ioa: float = 0.3  # a person box overlapping a bike box by this share of its area rides it


class KalmanFilter:
    """Constant velocity on (cx, cy, a, h); noise proportional to the box height, as in ByteTrack."""

    std_position = 1.0 / 20
    std_velocity = 1.0 / 160
    # ByteTrack's noise is per frame at 30 fps; with time in seconds, scale the velocity noise.
    reference_dt = 1.0 / 30

    @staticmethod
    def initiate(measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = np.r_[measurement, np.zeros(4)]
        h = measurement[3]
        p, v = KalmanFilter.std_position, KalmanFilter.std_velocity / KalmanFilter.reference_dt
        std = [2 * p * h, 2 * p * h, 1e-2, 2 * p * h, 10 * v * h, 10 * v * h, 1e-5, 10 * v * h]
        return mean, np.diag(np.square(std))

    @staticmethod
    def predict(mean: np.ndarray, cov: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
        f = np.eye(8)
        f[:4, 4:] = np.eye(4) * dt
        h = mean[3]
        scale = max(dt / KalmanFilter.reference_dt, 1e-3)
        p, v = KalmanFilter.std_position, KalmanFilter.std_velocity / KalmanFilter.reference_dt
        std = [p * h, p * h, 1e-2, p * h, v * h, v * h, 1e-5, v * h]
        q = np.diag(np.square(std)) * scale
        return f @ mean, f @ cov @ f.T + q

    @staticmethod
    def update(mean: np.ndarray, cov: np.ndarray, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = mean[3]
        p = KalmanFilter.std_position
        r = np.diag(np.square([p * h, p * h, 1e-1, p * h]))
        hm = np.eye(4, 8)
        s = hm @ cov @ hm.T + r
        gain = np.linalg.solve(s, hm @ cov).T
        mean = mean + gain @ (measurement - hm @ mean)
        cov = cov - gain @ s @ gain.T
        return mean, cov


def to_xyah(box: Box) -> np.ndarray:
    x1, y1, x2, y2 = box
    w, h = max(x2 - x1, 1e-3), max(y2 - y1, 1e-3)
    return np.array([x1 + w / 2, y1 + h / 2, w / h, h])


def to_box(mean: np.ndarray) -> Box:
    cx, cy, a, h = mean[:4]
    w = a * h
    return (float(cx - w / 2), float(cy - h / 2), float(cx + w / 2), float(cy + h / 2))


def iou_matrix(a: list[Box], b: list[Box]) -> np.ndarray:
    if not a or not b:
        return np.zeros((len(a), len(b)))
    x = np.asarray(a, dtype=float)[:, None, :]
    y = np.asarray(b, dtype=float)[None, :, :]
    iw = np.clip(np.minimum(x[..., 2], y[..., 2]) - np.maximum(x[..., 0], y[..., 0]), 0, None)
    ih = np.clip(np.minimum(x[..., 3], y[..., 3]) - np.maximum(x[..., 1], y[..., 1]), 0, None)
    inter = iw * ih
    area_x = (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])
    area_y = (y[..., 2] - y[..., 0]) * (y[..., 3] - y[..., 1])
    return inter / np.maximum(area_x + area_y - inter, 1e-9)


def group_of(class_name: str) -> int:
    return next((i for i, g in enumerate(CLASS_GROUPS) if class_name in g), -1)


def hungarian(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost assignment of a rows x columns matrix (rows <= columns), O(n^2 m)."""
    n, m = cost.shape
    transposed = n > m
    if transposed:
        cost = cost.T
        n, m = m, n
    inf = float("inf")
    u, v = [0.0] * (n + 1), [0.0] * (m + 1)
    p, way = [0] * (m + 1), [0] * (m + 1)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = [inf] * (m + 1)
        used = [False] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = p[j0], inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = cost[i0 - 1, j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while True:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
            if j0 == 0:
                break
    pairs = [(p[j] - 1, j - 1) for j in range(1, m + 1) if p[j] != 0]
    return [(c, r) for r, c in pairs] if transposed else pairs


def assign(score: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (row, column) maximising the total score over allowed pairs (score > 0).

    Rows and columns are split into the groups that compete for one another (connected through
    allowed pairs); a group of one row and one column is its pair, a bigger one is solved
    exactly (Hungarian), where greedy highest-first could give a good pair away to save a poor one.
    """
    if score.size == 0:
        return []
    allowed = score > 0
    rows, cols = score.shape
    parent = list(range(rows + cols))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for r, c in zip(*np.nonzero(allowed)):
        parent[find(int(r))] = find(rows + int(c))
    groups: dict[int, tuple[list[int], list[int]]] = {}
    for r in range(rows):
        if allowed[r].any():
            groups.setdefault(find(r), ([], []))[0].append(r)
    for c in range(cols):
        if allowed[:, c].any():
            groups.setdefault(find(rows + c), ([], []))[1].append(c)
    pairs = []
    big = 1e3  # cost of a forbidden pair: never preferred to leaving both unmatched
    for group_rows, group_cols in groups.values():
        if len(group_rows) == 1 and len(group_cols) == 1:
            pairs.append((group_rows[0], group_cols[0]))
            continue
        sub = score[np.ix_(group_rows, group_cols)]
        cost = np.where(sub > 0, 1.0 - sub, big)
        for r, c in hungarian(cost):
            if sub[r, c] > 0:
                pairs.append((group_rows[r], group_cols[c]))
    return sorted(pairs)


def merge_duplicates(detections: list[Detection], threshold: float) -> list[Detection]:
    """Detectors suppress overlaps within a class only, so a taxi comes as a car, a truck and a
    bus; left alone, the extra boxes would start extra tracks. Keep the best-scored box."""
    if len(detections) < 2:
        return detections
    ordered = sorted(detections, key=lambda d: -d.score)
    iou = iou_matrix([d.box for d in ordered], [d.box for d in ordered])
    keep: list[int] = []
    for i in range(len(ordered)):
        if all(iou[i, k] <= threshold for k in keep):
            keep.append(i)
    return [ordered[i] for i in sorted(keep, key=lambda i: ordered[i].index)]


def rides(person: Box, bike: Box, min_ioa: float) -> float:
    """How surely a person box is the rider of a bike box (0: not at all).

    Seen from behind and above, the bike box is the lower part of the rider's: they overlap by
    `min_ioa` of the person's area, or the person's feet (its box's bottom) are within the bike's
    box, above its bottom, and most of the person's width is over the bike."""
    px1, py1, px2, py2 = person
    bx1, by1, bx2, by2 = bike
    width = max(px2 - px1, 1e-6)
    overlap_x = max(0.0, min(px2, bx2) - max(px1, bx1))
    inter = overlap_x * max(0.0, min(py2, by2) - max(py1, by1))
    ioa = inter / max(width * (py2 - py1), 1e-6)
    if not bx1 <= (px1 + px2) / 2 <= bx2:
        return 0.0
    if ioa >= min_ioa:
        return ioa
    feet_on_bike = by1 < py2 <= by2 + 0.1 * (by2 - by1) and py1 < by1 and overlap_x / width >= 0.6
    return max(ioa, 1e-3) if feet_on_bike else 0.0


def fold_riders(detections: list[Detection], min_ioa: float) -> list[Detection]:
    """A `person` box that stands on a motorbike or bicycle box is its rider: the two become one
    two-wheeler, boxed as their union (head to wheel, as a person labels it) with the better
    of the two scores and the riders counted, so that a rider is never a second vehicle or a
    pedestrian, and a bike scored low under a clearly seen rider still counts as seen clearly."""
    bikes = [d for d in detections if d.class_name in ("motorcycle", "bicycle")]
    if not bikes or not any(d.class_name == "person" for d in detections):
        return detections
    on: dict[int, list[Detection]] = {}
    out = []
    for d in detections:
        if d.class_name != "person":
            continue
        best, best_score = None, 0.0
        for bike in bikes:
            score = rides(d.box, bike.box, min_ioa)
            if score > best_score:
                best, best_score = bike.index, score
        if best is None:
            out.append(d)
        else:
            on.setdefault(best, []).append(d)
    for d in detections:
        if d.class_name == "person":
            continue
        riders = on.get(d.index)
        if riders:
            boxes = [d.box] + [r.box for r in riders]
            union = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
            d = Detection(union, max([d.score] + [r.score for r in riders]), d.class_name, d.index,
                          max(d.riders, len(riders)))
        out.append(d)
    return sorted(out, key=lambda d: d.index)


@dataclass
class Track:
    id: int
    mean: np.ndarray
    cov: np.ndarray
    last_t: float  # capture time (epoch seconds) of the last matched detection
    predicted_t: float
    hits: int = 1
    lost: bool = False
    class_votes: dict[str, float] = field(default_factory=dict)
    detection: Detection | None = None  # matched in the frame just processed, else None
    first_t: float = 0.0  # capture time of the first detection
    last_box: Box = (0.0, 0.0, 0.0, 0.0)  # the last matched detection's box
    first_box: Box = (0.0, 0.0, 0.0, 0.0)  # the first detection's box
    riders: int = 0  # most riders seen on it

    @property
    def box(self) -> Box:
        return to_box(self.mean)

    @property
    def velocity(self) -> tuple[float, float]:
        """Pixels per second of the box centre."""
        return float(self.mean[4]), float(self.mean[5])

    @property
    def class_name(self) -> str:
        """The best-voted class; a vehicle class whenever the track was ever boxed as a vehicle
        (a rider's track is a motorbike even if the bike was seen in few frames)."""
        votes = {k: v for k, v in self.class_votes.items() if k in VEHICLE_CLASSES} or self.class_votes
        return max(sorted(votes), key=lambda name: votes[name])

    @property
    def person_only(self) -> bool:
        """Only ever boxed as `person`: a pedestrian, or a rider whose bike is hidden."""
        return not any(k in VEHICLE_CLASSES for k in self.class_votes)

    def vote(self, detection: Detection) -> None:
        self.class_votes[detection.class_name] = self.class_votes.get(detection.class_name, 0.0) + detection.score
        self.riders = max(self.riders, detection.riders)


def gate_radius(track: Track, dt: float, p: TrackerParams) -> float:
    """How far (pixels) from its predicted centre a track may find its next detection."""
    h = max(float(track.mean[3]), 1.0)
    if track.hits < 2:  # speed unknown: the prediction is where it was, it may have moved far
        return h * (p.gate_base + p.new_track_speed * dt)
    speed = math.hypot(*track.velocity)
    return min(h * (p.gate_base + p.gate_per_s * dt) + p.gate_speed * speed * dt, h * p.max_gate)


def _cosine(a: tuple[float, float], b: tuple[float, float], still: float = 20.0) -> float:
    """Cosine of the angle between two velocities (px/s); 1 when either is slower than `still`."""
    na, nb = math.hypot(*a), math.hypot(*b)
    if na < still or nb < still:
        return 1.0
    return (a[0] * b[0] + a[1] * b[1]) / (na * nb)


def association(tracks: list[Track], detections: list[Detection], t: float, p: TrackerParams, *,
                min_iou: float, gate: float = 1.0) -> np.ndarray:
    """Score in (0, 1] of every (track, detection) pair that may match, 0 for those that may not.

    Score = mean of the IoU and of 1 - (centre distance / gate radius). Allowed: IoU >= min_iou
    (a real overlap, whatever the classes), or, for compatible sizes and kinds, the centre within
    `gate` x the radius around the prediction, and for a lost moving track, ahead of where it was.
    """
    if not tracks or not detections:
        return np.zeros((len(tracks), len(detections)))
    iou = iou_matrix([tr.box for tr in tracks], [d.box for d in detections])
    out = np.zeros_like(iou)
    det_c = np.array([((d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2) for d in detections])
    det_h = np.array([max(d.box[3] - d.box[1], 1.0) for d in detections])
    det_g = [group_of(d.class_name) for d in detections]
    for i, tr in enumerate(tracks):
        radius = gate_radius(tr, t - tr.last_t, p) * gate
        centre = tr.mean[:2]
        h = max(float(tr.mean[3]), 1.0)
        dist = np.hypot(det_c[:, 0] - centre[0], det_c[:, 1] - centre[1])
        ratio = np.maximum(det_h / h, h / det_h)
        groups = {group_of(k) for k in tr.class_votes}
        compatible = np.array([g in groups for g in det_g])
        near = (dist <= radius) & (ratio <= p.size_ratio) & compatible
        if tr.lost and tr.hits >= 2:
            vx, vy = tr.velocity
            speed = math.hypot(vx, vy)
            if speed * (t - tr.last_t) > 0.5 * h:  # moving: it can only have gone ahead
                lx, ly = (tr.last_box[0] + tr.last_box[2]) / 2, (tr.last_box[1] + tr.last_box[3]) / 2
                dx, dy = det_c[:, 0] - lx, det_c[:, 1] - ly
                cos = (dx * vx + dy * vy) / np.maximum(np.hypot(dx, dy) * speed, 1e-9)
                near &= cos >= p.ahead_cos
        allowed = near | (iou[i] >= min_iou)
        score = 0.5 * iou[i] + 0.5 * np.clip(1.0 - dist / radius, 0.0, 1.0)
        out[i] = np.where(allowed, np.maximum(score, 1e-3), 0.0)
    return out


class Tracker:
    """Tracks of one camera. Feed it frames in capture order; ids are never reused.

    After each `update`, `merged` lists the (young id, older id) pairs folded this frame: the
    young track's detections now belong to the older track (see the module's docstring).
    """

    def __init__(self, params: TrackerParams = TrackerParams()) -> None:
        self.params = params
        self.tracks: list[Track] = []
        self.next_id = 1
        self.last_t: float | None = None
        self.merged: list[tuple[int, int]] = []

    def update(self, t: float, detections: list[Detection]) -> tuple[list[Track], list[Track]]:
        """One frame at capture time t. Returns (tracks matched in this frame, tracks finished now)."""
        p = self.params
        if self.last_t is not None and t < self.last_t:
            raise ValueError(f"frames must arrive in capture order ({t} after {self.last_t})")
        gone: list[Track] = []
        if self.last_t is not None and t - self.last_t > p.max_lost_s:
            # Nothing was seen for longer than a track may stay lost (the stream stalled, or track
            # resumed from an older checkpoint): every track ends before this frame is associated,
            # as it would have at a frame in between, instead of taking a detection over the gap.
            gone, self.tracks = self.tracks, []
        self.last_t = t
        self.merged = []
        for track in self.tracks:
            track.mean, track.cov = KalmanFilter.predict(track.mean, track.cov, t - track.predicted_t)
            track.predicted_t = t
            track.detection = None
        detections = merge_duplicates(fold_riders(detections, p.rider_ioa), p.duplicate_iou)
        high = [d for d in detections if d.score >= p.high_score]
        low = [d for d in detections if p.low_score <= d.score < p.high_score]
        confirmed = [tr for tr in self.tracks if tr.hits >= 2 or tr.lost]
        unconfirmed = [tr for tr in self.tracks if tr.hits < 2 and not tr.lost]

        # 1. confident detections against every confirmed track, lost ones included (a lost
        #    track's gate has grown with the time it was unseen: that is re-association).
        pairs = assign(association(confirmed, high, t, p, min_iou=p.match_iou))
        matched_tracks = {r for r, _ in pairs}
        matched_high = {c for _, c in pairs}
        for r, c in pairs:
            self._apply(confirmed[r], high[c], t)
        # 2. weak detections against tracks seen in the previous frame that are still unmatched.
        remaining = [tr for i, tr in enumerate(confirmed) if i not in matched_tracks and not tr.lost]
        for r, c in assign(association(remaining, low, t, p, min_iou=p.low_match_iou, gate=p.low_gate)):
            self._apply(remaining[r], low[c], t)
        # 3. tracks born last frame against the confident detections left.
        rest_high = [d for i, d in enumerate(high) if i not in matched_high]
        pairs = assign(association(unconfirmed, rest_high, t, p, min_iou=p.unconfirmed_iou))
        used = {c for _, c in pairs}
        for r, c in pairs:
            self._apply(unconfirmed[r], rest_high[c], t)

        finished: list[Track] = []
        alive: list[Track] = []
        for track in self.tracks:
            if track.detection is not None:
                alive.append(track)
            elif track.hits < 2 and not track.lost:
                finished.append(track)  # a one-frame track: a false detection, dropped at once
            elif t - track.last_t > p.max_lost_s:
                finished.append(track)
            else:
                track.lost = True
                alive.append(track)
        # 4. new tracks from confident detections nobody claimed.
        for i, d in enumerate(rest_high):
            if i in used or d.score < p.new_track_score:
                continue
            mean, cov = KalmanFilter.initiate(to_xyah(d.box))
            track = Track(self.next_id, mean, cov, t, t, detection=d, first_t=t, last_box=d.box, first_box=d.box)
            track.vote(d)
            self.next_id += 1
            alive.append(track)
        self.tracks = alive
        self._fold_young_into_lost(t)
        return [tr for tr in self.tracks if tr.detection is not None], gone + finished

    def _fold_young_into_lost(self, t: float) -> None:
        """A young track born after an older one was lost, where the older one was heading and
        moving the same way, is the older one: the older takes its state, the young id goes.

        The young track has been matched twice at least, so its own direction is known; with
        that evidence the gate is `merge_gate` times the usual one."""
        p = self.params
        lost = [tr for tr in self.tracks if tr.lost and tr.hits >= 2]
        young = [tr for tr in self.tracks if not tr.lost and tr.detection is not None
                 and 2 <= tr.hits <= p.merge_young_hits and any(tr.first_t > old.last_t for old in lost)]
        if not lost or not young:
            return
        score = np.zeros((len(lost), len(young)))
        for j, y in enumerate(young):
            first = Detection(y.first_box, 1.0, y.class_name, -1)
            for i, old in enumerate(lost):
                if not 0 < y.first_t - old.last_t <= p.max_lost_s:
                    continue
                if min(math.hypot(*y.velocity), math.hypot(*old.velocity)) < p.merge_min_speed:
                    continue  # a still track heads nowhere: only the first stage may take it up
                if _cosine(y.velocity, old.velocity) < p.merge_cos:
                    continue
                mean, _ = KalmanFilter.predict(old.mean, old.cov, y.first_t - old.predicted_t)
                probe = Track(old.id, mean, old.cov, old.last_t, y.first_t, hits=old.hits, lost=True,
                              class_votes=old.class_votes, last_box=old.last_box)
                score[i, j] = association([probe], [first], y.first_t, p, min_iou=p.match_iou, gate=p.merge_gate)[0, 0]
        gone = set()
        for i, j in assign(score):
            old, y = lost[i], young[j]
            old.mean, old.cov, old.predicted_t = y.mean, y.cov, y.predicted_t
            old.last_t, old.last_box, old.detection, old.lost = y.last_t, y.last_box, y.detection, False
            old.hits += y.hits
            for name, weight in y.class_votes.items():
                old.class_votes[name] = old.class_votes.get(name, 0.0) + weight
            old.riders = max(old.riders, y.riders)
            gone.add(y.id)
            self.merged.append((y.id, old.id))
        self.tracks = [tr for tr in self.tracks if tr.id not in gone]

    def finish_all(self) -> list[Track]:
        finished, self.tracks = self.tracks, []
        return finished

    @staticmethod
    def _apply(track: Track, detection: Detection, t: float) -> None:
        track.mean, track.cov = KalmanFilter.update(track.mean, track.cov, to_xyah(detection.box))
        track.last_t = t
        track.last_box = detection.box
        track.hits += 1
        track.lost = False
        track.detection = detection
        track.vote(detection)
