"""Multi-object tracking by detection: a Kalman filter per vehicle and ByteTrack association.

ByteTrack (Zhang et al., ECCV 2022) matches confident detections first, then gives the
low-confidence ones a second chance against tracks that are still unmatched: a motorbike half
hidden behind a bus scores low for a few frames, and without the second pass its track would
break and come back with a new id. The filter is the constant-velocity model on (centre x,
centre y, aspect ratio, height) that SORT and ByteTrack use, with time in seconds rather than
frames, since a camera's frames arrive at a sampled, sometimes uneven rate and may have gaps.

Matching is greedy on IoU (highest first) rather than Hungarian: with a few dozen vehicles per
frame it finds the same pairs in practice, and it needs no SciPy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Detection:
    box: Box
    score: float
    class_name: str
    index: int  # position in the DetectionMade's objects, to find the plates attached to it


@dataclass(frozen=True)
class TrackerParams:
    # ByteTrack's own thresholds (0.5 / 0.6) suit strong detectors; the default YOLOX-nano
    # scores most vehicles of the Vietnamese clips between 0.3 and 0.6 (median 0.38 on Sai Gon),
    # and at 0.5 / 0.6 two vehicles in three were never tracked there.
    high_score: float = 0.4  # detections at or above start the first association
    low_score: float = 0.1  # below this a detection is ignored altogether
    new_track_score: float = 0.45  # an unmatched detection at or above starts a track
    duplicate_iou: float = 0.7  # the same vehicle boxed under two classes (car and truck): keep the best
    match_iou: float = 0.2  # first association (confident detections, all live tracks)
    low_match_iou: float = 0.5  # second association (weak detections, tracks seen last frame)
    unconfirmed_iou: float = 0.3
    max_lost_s: float = 1.5  # a track unseen for longer is finished
    min_hits: int = 3  # matches before a track is confirmed (counted, judged)


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


def greedy_match(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, column) by decreasing IoU, each row and column used once, IoU >= threshold."""
    if iou.size == 0:
        return []
    rows, cols = np.nonzero(iou >= threshold)
    order = np.argsort(-iou[rows, cols], kind="stable")
    used_r, used_c, pairs = set(), set(), []
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    return pairs


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

    @property
    def box(self) -> Box:
        return to_box(self.mean)

    @property
    def velocity(self) -> tuple[float, float]:
        """Pixels per second of the box centre."""
        return float(self.mean[4]), float(self.mean[5])

    @property
    def class_name(self) -> str:
        return max(sorted(self.class_votes), key=lambda name: self.class_votes[name])

    def vote(self, detection: Detection) -> None:
        self.class_votes[detection.class_name] = self.class_votes.get(detection.class_name, 0.0) + detection.score


class Tracker:
    """Tracks of one camera. Feed it frames in capture order; ids are never reused."""

    def __init__(self, params: TrackerParams = TrackerParams()) -> None:
        self.params = params
        self.tracks: list[Track] = []
        self.next_id = 1
        self.last_t: float | None = None

    def update(self, t: float, detections: list[Detection]) -> tuple[list[Track], list[Track]]:
        """One frame at capture time t. Returns (tracks matched in this frame, tracks finished now)."""
        p = self.params
        if self.last_t is not None and t < self.last_t:
            raise ValueError(f"frames must arrive in capture order ({t} after {self.last_t})")
        self.last_t = t
        for track in self.tracks:
            track.mean, track.cov = KalmanFilter.predict(track.mean, track.cov, t - track.predicted_t)
            track.predicted_t = t
            track.detection = None
        detections = merge_duplicates(detections, p.duplicate_iou)
        high = [d for d in detections if d.score >= p.high_score]
        low = [d for d in detections if p.low_score <= d.score < p.high_score]
        confirmed = [tr for tr in self.tracks if tr.hits >= 2 or tr.lost]
        unconfirmed = [tr for tr in self.tracks if tr.hits < 2 and not tr.lost]

        # 1. confident detections against every confirmed track, lost ones included.
        pairs = greedy_match(iou_matrix([tr.box for tr in confirmed], [d.box for d in high]), p.match_iou)
        matched_tracks = {r for r, _ in pairs}
        matched_high = {c for _, c in pairs}
        for r, c in pairs:
            self._apply(confirmed[r], high[c], t)
        # 2. weak detections against tracks seen in the previous frame that are still unmatched.
        remaining = [tr for i, tr in enumerate(confirmed) if i not in matched_tracks and not tr.lost]
        for r, c in greedy_match(iou_matrix([tr.box for tr in remaining], [d.box for d in low]), p.low_match_iou):
            self._apply(remaining[r], low[c], t)
        # 3. tracks born last frame against the confident detections left.
        rest_high = [d for i, d in enumerate(high) if i not in matched_high]
        pairs = greedy_match(iou_matrix([tr.box for tr in unconfirmed], [d.box for d in rest_high]), p.unconfirmed_iou)
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
            track = Track(self.next_id, mean, cov, t, t, detection=d)
            track.vote(d)
            self.next_id += 1
            alive.append(track)
        self.tracks = alive
        return [tr for tr in alive if tr.detection is not None], finished

    def finish_all(self) -> list[Track]:
        finished, self.tracks = self.tracks, []
        return finished

    @staticmethod
    def _apply(track: Track, detection: Detection, t: float) -> None:
        track.mean, track.cov = KalmanFilter.update(track.mean, track.cov, to_xyah(detection.box))
        track.last_t = t
        track.hits += 1
        track.lost = False
        track.detection = detection
        track.vote(detection)
