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

PHASES = ("red", "amber", "green", "off", "flashing", "unknown")
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
        """The phase in force at t; None when unknown (never seen, a flickering head, after a gap)."""
        history = self.heads.get(head)
        if history is None:
            return None
        i = bisect.bisect_right(history.times, t)
        if i == 0 or history.phases[i - 1] == "unknown":
            return None
        since = history.times[i - 1]
        # The change into this phase was not seen when it is the first thing known, or when it
        # follows an unknown stretch (a gap in the stream, a flickering head): its age is then
        # only a lower bound, counted from the first frame it was seen.
        lower_bound = since == history.first_seen or (i >= 2 and history.phases[i - 2] == "unknown")
        return PhaseAt(history.phases[i - 1], since, history.source, lower_bound=lower_bound)

    def gap(self, t: float, heads: list[str] | None = None) -> None:
        """A discontinuity at t (stream restart, reconnect, file loop): what was known before says
        nothing about after, so every head (or the given ones) is unknown from t on."""
        for head in (self.heads if heads is None else heads):
            self.observe(head, t, "unknown", self.heads[head].source if head in self.heads else "vision")


# --- reading a signal head off the image -----------------------------------------------------------
# A head is read by lamp POSITION: the scene says which lamps the head has, in order (top to
# bottom or left to right), and the state is the lamp that is lit, whatever colour the camera
# makes of it (a red LED often looks orange or yellow on video). Hue only breaks a tie between
# two lamps that look equally lit.
LAMP_PHASE = {"red": "red", "amber": "amber", "green": "green",
              "red_arrow": "red", "amber_arrow": "amber", "green_arrow": "green"}
LAYOUTS = ("vertical", "horizontal")
# Typical OpenCV hues (0-180) of each lamp colour, for tie-breaks only.
_HUE = {"red": 0.0, "amber": 22.0, "green": 75.0}
MIN_LIT = 40.0  # a lit lamp is this much brighter (0-255) than the head's housing and its own dark level
MIN_MARGIN = 25.0  # ... and this much brighter than the next brightest lamp; closer than that is a tie
DARK_RATE = 0.1  # how fast a lamp's remembered dark level follows its unlit readings


def lamp_cells(shape: tuple[int, int], layout: str, n: int) -> list[tuple[slice, slice]]:
    """The n equal cells of a head region along its layout, each shrunk to its middle part
    (the lamp's face, not the housing edge or the visor's shadow)."""
    height, width = shape
    cells = []
    for i in range(n):
        if layout == "vertical":
            y1, y2, x1, x2 = height * i / n, height * (i + 1) / n, 0.0, float(width)
        else:
            y1, y2, x1, x2 = 0.0, float(height), width * i / n, width * (i + 1) / n
        dy, dx = (y2 - y1) * 0.2, (x2 - x1) * 0.2
        cells.append((slice(int(y1 + dy), max(int(y1 + dy) + 1, int(y2 - dy))),
                      slice(int(x1 + dx), max(int(x1 + dx) + 1, int(x2 - dx)))))
    return cells


@dataclass(frozen=True)
class LampLevels:
    levels: tuple[float, ...]  # brightness of each lamp (median over its face, 0-255)
    housing: float  # the head's dark parts (20th percentile of the region)
    hues: tuple[float | None, ...]  # mean hue of each lamp's bright saturated pixels, None if none


def lamp_levels(region: np.ndarray, layout: str, n: int) -> LampLevels:
    """Brightness of each lamp cell of a BGR crop of one head."""
    if region.size == 0:
        return LampLevels(tuple(0.0 for _ in range(n)), 0.0, tuple(None for _ in range(n)))
    hsv = cv2.cvtColor(region, cv2.COLOR_BGR2HSV)
    value = hsv[..., 2].astype(np.float32)
    levels, hues = [], []
    for ys, xs in lamp_cells(region.shape[:2], layout, n):
        cell = value[ys, xs].ravel()
        if cell.size == 0:
            levels.append(0.0)
            hues.append(None)
            continue
        levels.append(float(np.median(cell)))  # a lit lamp fills its face; a sunlit visor rim does not
        h, s, v = hsv[ys, xs, 0].ravel(), hsv[ys, xs, 1].ravel(), hsv[ys, xs, 2].ravel()
        bright = (v >= np.percentile(v, 80)) & (s >= 60)
        if np.count_nonzero(bright):
            angles = h[bright].astype(np.float32) * (np.pi / 90.0)  # hue is circular (red at both ends)
            mean = np.arctan2(np.sin(angles).mean(), np.cos(angles).mean()) * 90.0 / np.pi
            hues.append(float(mean % 180.0))
        else:
            hues.append(None)
    return LampLevels(tuple(levels), float(np.percentile(value, 20)), tuple(hues))


def _hue_distance(a: float, b: float) -> float:
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)


@dataclass
class LampReader:
    """Which lamp of one head is lit in a frame: 'off' (none), a lamp index, or 'tie'.

    Each lamp's brightness is taken relative to the head's housing, to the lamp's own dark level
    (learnt from the frames where it was not lit: a lamp the sun shines on is not lit), and to
    the other lamps of the head. Hue is looked at only when two lamps are equally bright."""

    lamps: tuple[str, ...]
    layout: str
    dark: list[float | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dark = [None] * len(self.lamps)

    def read(self, region: np.ndarray) -> int | str:
        found = lamp_levels(region, self.layout, len(self.lamps))
        strength = [level - max(found.housing, dark if dark is not None else 0.0)
                    for level, dark in zip(found.levels, self.dark)]
        order = sorted(range(len(strength)), key=lambda i: strength[i], reverse=True)
        best = order[0]
        result: int | str
        if strength[best] < MIN_LIT:
            result = "off"
        elif len(order) == 1 or strength[best] - strength[order[1]] >= MIN_MARGIN:
            result = best
        elif strength[order[1]] >= MIN_LIT:
            result = self._by_hue(order[0], order[1], found.hues)
        else:
            result = best
        for i, level in enumerate(found.levels):
            if result != i:
                previous = self.dark[i]
                self.dark[i] = level if previous is None else previous + DARK_RATE * (level - previous)
        return result

    def _by_hue(self, a: int, b: int, hues: tuple[float | None, ...]) -> int | str:
        fits = []
        for i in (a, b):
            hue = hues[i]
            fits.append(_hue_distance(hue, _HUE[LAMP_PHASE[self.lamps[i]]]) if hue is not None else 90.0)
        if abs(fits[0] - fits[1]) < 10.0:
            return "tie"
        return a if fits[0] < fits[1] else b


@dataclass
class PhaseFilter:
    """Turns per-frame lamp readings into phases that hold.

    - A different lamp becomes the phase once it has been read for `min_phase_s`; the change is
      dated at the first frame it was read (so the timeline is frame-accurate, read late).
    - A dark frame keeps the phase for up to `hold_s` (LED heads flicker at the camera's rate,
      a bus hides the head); dark for longer is `off`.
    - Lamps that keep changing (`flicker_changes` changes within `flicker_window_s`) or a tie
      make the phase `unknown`, and no violation is judged on it."""

    hold_s: float = 1.5
    min_phase_s: float = 0.3
    flicker_window_s: float = 2.0
    flicker_changes: int = 3
    phase: str | None = None
    since: float | None = None  # when the current phase began (as reported)
    candidate: str | None = None
    candidate_since: float = 0.0
    last_lit: str | None = None
    last_lit_t: float = float("-inf")
    dark_since: float | None = None
    changes: list[float] = field(default_factory=list)

    def reset(self) -> None:
        """After a gap: nothing is known; the next phase is dated from the first frame it is seen."""
        self.phase = self.candidate = self.last_lit = self.since = None
        self.last_lit_t = float("-inf")
        self.dark_since = None
        self.changes.clear()

    def read(self, t: float, reading: str) -> list[tuple[float, str]]:
        """Feed one frame's reading (a phase name, 'off' or 'tie'); returns (since, phase) changes."""
        out: list[tuple[float, str]] = []
        if reading == "off":
            if self.dark_since is None:
                self.dark_since = t
            if self.phase == "off" or t - self.last_lit_t <= self.hold_s:
                return out  # flicker or a passing bus: the lit lamp (or the one about to be) holds
            if t - self.dark_since < self.min_phase_s:
                return out
            return self._commit(self.dark_since, "off", out)
        self.dark_since = None
        if reading != self.last_lit:
            if self.last_lit is not None:
                self.changes.append(t)
            self.last_lit = reading
            self.candidate, self.candidate_since = reading, t
        self.last_lit_t = t
        self.changes = [c for c in self.changes if c > t - self.flicker_window_s]
        if reading == "tie" or len(self.changes) >= self.flicker_changes:
            return self._commit(self.changes[0] if self.changes else t, "unknown", out)
        if reading == self.phase:
            return out
        if t - self.candidate_since >= self.min_phase_s:
            return self._commit(self.candidate_since, reading, out)
        return out

    def _commit(self, since: float, phase: str, out: list[tuple[float, str]]) -> list[tuple[float, str]]:
        if phase != self.phase:
            # Never dated before the change already reported: phases stay in order.
            since = max(since, self.since) if self.since is not None else since
            self.phase, self.since = phase, since
            out.append((since, phase))
        return out


@dataclass
class VisionHead:
    """One signal head read off the image: lamp reader + phase filter."""

    lamps: tuple[str, ...]
    layout: str = "vertical"
    hold_s: float = 1.5
    min_phase_s: float = 0.3
    reader: LampReader = field(init=False)
    filter: PhaseFilter = field(init=False)

    def __post_init__(self) -> None:
        self.reader = LampReader(self.lamps, self.layout)
        self.filter = PhaseFilter(hold_s=self.hold_s, min_phase_s=self.min_phase_s)

    def reading(self, region: np.ndarray) -> str:
        """This frame's raw reading: a phase, 'off' or 'tie'."""
        lit = self.reader.read(region)
        return LAMP_PHASE[self.lamps[lit]] if isinstance(lit, int) else lit

    def read(self, t: float, region: np.ndarray) -> list[tuple[float, str]]:
        return self.filter.read(t, self.reading(region))

    def reset(self) -> None:
        self.filter.reset()
