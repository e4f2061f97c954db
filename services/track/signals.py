"""Signal phases per head over time, from a controller feed or read off the image.

Red-light judgement asks "what was the phase of this head at the moment the vehicle crossed",
not "what is it now": detections are reordered and can lag the controller's events by a
second or more, so the state keeps a short history of changes and answers for any time in it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import cv2
import numpy as np

PHASES = ("red", "amber", "green", "off", "flashing")
HISTORY_S = 600.0  # as long as the evidence window: nothing older is ever judged


@dataclass(frozen=True)
class PhaseAt:
    phase: str
    since: float  # when this phase began (epoch seconds), or when it was first known
    source: str
    lower_bound: bool = False  # the phase was already showing when first seen: its age is at least this

    def age(self, t: float) -> float:
        return max(0.0, t - self.since)


@dataclass
class HeadHistory:
    times: list[float] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)
    source: str = "controller"
    first_seen: float | None = None


class SignalState:
    """Phase changes per head; `at(head, t)` is the phase in force at time t, or None if unknown."""

    def __init__(self) -> None:
        self.heads: dict[str, HeadHistory] = {}

    def observe(self, head: str, t: float, phase: str, source: str = "controller") -> bool:
        """Record the phase seen at t; returns True when it is a change (worth publishing)."""
        history = self.heads.setdefault(head, HeadHistory(source=source))
        if history.first_seen is None or t < history.first_seen:
            history.first_seen = t
        i = bisect.bisect_right(history.times, t)
        if i > 0 and history.phases[i - 1] == phase:
            return False
        history.times.insert(i, t)
        history.phases.insert(i, phase)
        # A later entry with the same phase is now redundant.
        if i + 1 < len(history.times) and history.phases[i + 1] == phase:
            del history.times[i + 1], history.phases[i + 1]
        cutoff = history.times[-1] - HISTORY_S
        while len(history.times) > 1 and history.times[1] < cutoff:
            del history.times[0], history.phases[0]
        return True

    def at(self, head: str, t: float) -> PhaseAt | None:
        history = self.heads.get(head)
        if history is None:
            return None
        i = bisect.bisect_right(history.times, t)
        if i == 0:
            return None
        since = history.times[i - 1]
        return PhaseAt(history.phases[i - 1], since, history.source, lower_bound=since == history.first_seen)


# --- reading a signal head off the image -----------------------------------------------------------
# HSV ranges of a lit lamp (OpenCV hue 0-180). Lit lamps are saturated and bright; housings,
# poles and sky are not. Cyan-green covers the LED arrows common in Vietnam.
_RED = ((0, 10), (165, 180))
_AMBER = ((11, 34),)
_GREEN = ((40, 100),)
MIN_SATURATION = 60
MIN_VALUE = 120
MIN_LIT_FRACTION = 0.01


def classify_lamp(region: np.ndarray) -> str:
    """'red', 'amber', 'green' or 'off' for a BGR crop of a signal head's lamps."""
    if region.size == 0:
        return "off"
    hsv = cv2.cvtColor(region, cv2.COLOR_BGR2HSV)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    lit = (sat >= MIN_SATURATION) & (val >= MIN_VALUE)
    total = float(region.shape[0] * region.shape[1])
    scores = {}
    for name, ranges in (("red", _RED), ("amber", _AMBER), ("green", _GREEN)):
        mask = np.zeros_like(lit)
        for low, high in ranges:
            mask |= (hue >= low) & (hue <= high)
        scores[name] = float(np.count_nonzero(lit & mask)) / total
    name = max(scores, key=scores.get)  # type: ignore[arg-type]
    return name if scores[name] >= MIN_LIT_FRACTION else "off"


@dataclass
class VisionHead:
    """Smooths per-frame lamp colours: LED heads flicker at the camera's frame rate, and a bus
    can hide the head; a dark reading within `hold_s` of a lit one keeps the lit colour."""

    hold_s: float
    last_lit: str | None = None
    last_lit_t: float = float("-inf")

    def read(self, t: float, colour: str) -> str:
        if colour != "off":
            self.last_lit, self.last_lit_t = colour, t
            return colour
        if self.last_lit is not None and t - self.last_lit_t <= self.hold_s:
            return self.last_lit
        return "off"
