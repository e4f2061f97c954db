"""Which decoded frames become published frames, and when they were captured. Pure: no I/O.

Decisions are made on timestamps before any colour conversion or JPEG encoding, because those
are the costs that sampling exists to avoid; the motion gate looks only at a tiny grey copy.
"""

from __future__ import annotations

import math

import numpy as np


class StreamClock:
    """Maps a stream's presentation times (seconds) to wall-clock capture times.

    Stream timestamps are smoother than arrival times (network bursts), so they give the
    spacing; the offset to the wall clock is the smallest `arrival - pts` seen, i.e. the frame
    that was least delayed. So a capture time is never later than the frame's arrival (an RTSP
    session starts with a burst of buffered frames that must not be stamped in the future).
    Timestamps going backwards (stream restart, wrap) or a frame later than `max_drift_s`
    behind its mapped time (a stalled then resumed stream, a slow camera clock) re-anchor.
    """

    def __init__(self, max_drift_s: float = 2.0) -> None:
        self.max_drift_s = max_drift_s
        self._offset: float | None = None
        self._last_pts: float | None = None
        self.reanchors = 0

    def reset(self) -> None:
        self._offset = None
        self._last_pts = None

    def wall_time(self, pts: float | None, arrival_wall: float) -> float:
        if pts is None or not math.isfinite(pts):
            return arrival_wall
        candidate = arrival_wall - pts
        if self._offset is None:
            self._offset = candidate
        elif self._last_pts is not None and pts < self._last_pts:
            self._offset = candidate
            self.reanchors += 1
        elif candidate < self._offset:
            self._offset = candidate
        elif candidate - self._offset > self.max_drift_s:
            self._offset = candidate
            self.reanchors += 1
        self._last_pts = pts
        return pts + self._offset


class FpsSampler:
    """Keeps at most one frame per 1/fps slot of capture time.

    Slots are counted from the epoch, not from the first frame, so two replicas reading the same
    camera during a lease hand-over choose frames on the same grid; and an irregular source
    (variable frame rate, dropped packets) still averages to the target rate without bursts.
    """

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            raise ValueError("fps must be positive")
        self.period = 1.0 / fps
        self._last_slot: int | None = None

    def reset(self) -> None:
        self._last_slot = None

    def take(self, captured_at: float) -> bool:
        slot = math.floor(captured_at / self.period)
        if self._last_slot is not None and slot <= self._last_slot:
            if self._last_slot - slot > 1:
                # Time went backwards by more than a slot (clock re-anchored): follow it.
                self._last_slot = slot
                return True
            return False
        self._last_slot = slot
        return True


def small_grey(luma: np.ndarray, width: int = 160) -> np.ndarray:
    """A tiny grey copy by striding the luma plane: costs microseconds, enough for motion."""
    step = max(1, luma.shape[1] // width)
    return np.ascontiguousarray(luma[::step, ::step])


class MotionGate:
    """Frame difference against the last frame sent, on a small grey copy.

    Comparing with the last *sent* frame (not the previous one) means slow changes add up and
    are eventually sent; the keepalive guarantees a recent frame exists even on an empty road,
    so downstream never confuses 'nothing moves' with 'camera dead'.
    """

    def __init__(self, *, min_changed: float, pixel_threshold: int, keepalive_s: float) -> None:
        self.min_changed = min_changed
        self.pixel_threshold = pixel_threshold
        self.keepalive_s = keepalive_s
        self._reference: np.ndarray | None = None
        self._last_sent: float | None = None
        self.last_score = 0.0

    def reset(self) -> None:
        self._reference = None
        self._last_sent = None

    def changed_fraction(self, grey: np.ndarray) -> float:
        if self._reference is None or self._reference.shape != grey.shape:
            return 1.0
        diff = np.abs(grey.astype(np.int16) - self._reference.astype(np.int16))
        return float(np.count_nonzero(diff > self.pixel_threshold)) / diff.size

    def take(self, grey: np.ndarray, captured_at: float) -> bool:
        self.last_score = self.changed_fraction(grey)
        due = self._last_sent is None or captured_at - self._last_sent >= self.keepalive_s - 1e-6 \
            or captured_at < self._last_sent
        if self.last_score >= self.min_changed or due:
            self._reference = grey
            self._last_sent = captured_at
            return True
        return False
