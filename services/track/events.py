"""One violation per vehicle and event, even when the vehicle's track broke or swapped ids.

A rule fires at most once per track (`rules.RuleState.fired`), but one vehicle can be two
tracks: a split that re-association did not mend, or an id switch in a crowd. Before a finding
becomes a violation it is checked against the violations this camera emitted lately: the same
rule on the same scene element (stop line, lane, zone, trap) by another track, where

- both happened within `window_s` of each other and within `radius` box sizes of each other
  (one crossing of a stop line seen by two tracks), or
- the new track began within `gap_s` after the earlier one was last seen and near where it
  was last seen (the same vehicle's track going on under a new id: a dwell, a wrong-way run),

is the same event, unless both tracks carry plates read and valid that differ (two vehicles).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from services.track.rules import Finding, Observation


@dataclass(frozen=True)
class EventParams:
    # Two tracks on one vehicle see its crossing within a frame or two of each other and within
    # its own size; two riders 1.5 s or 100 px apart are two events.
    window_s: float = 0.6
    radius: float = 1.0  # in box sizes (the larger of the two boxes' heights and widths)
    gap_s: float = 3.0  # longer than the tracker's max_lost_s: the track had to end first
    keep_s: float = 120.0  # how long an emitted violation is remembered


@dataclass
class Emitted:
    type: str
    element: str
    track_id: int
    t: float
    at: Observation
    plate: str | None  # a valid plate text read on the track, when there is one
    last: Observation  # the emitting track's latest observation (updated while it lives)


def _size(box) -> float:
    return max(box[2] - box[0], box[3] - box[1], 1.0)


def _near(a: Observation, b: Observation, radius: float) -> bool:
    (ax, ay), (bx, by) = a.anchor, b.anchor
    return math.hypot(ax - bx, ay - by) <= radius * max(_size(a.box), _size(b.box))


class EmittedEvents:
    def __init__(self, params: EventParams = EventParams()) -> None:
        self.params = params
        self.recent: deque[Emitted] = deque()

    def seen(self, track_id: int, last: Observation) -> None:
        """The track was observed again: later findings compare with where it is now."""
        for e in self.recent:
            if e.track_id == track_id:
                e.last = last

    def duplicate_of(self, finding: Finding, track_id: int, first: Observation, plate: str | None) -> Emitted | None:
        """The earlier violation this finding repeats, or None. `first`: the track's first observation."""
        p = self.params
        for e in self.recent:
            if e.type != finding.type or e.element != finding.element or e.track_id == track_id:
                continue
            if plate and e.plate and plate != e.plate:
                continue  # two plates read and valid: two vehicles
            same_moment = abs(e.t - finding.t) <= p.window_s and _near(e.at, finding.observation, p.radius)
            continued = 0 <= first.t - e.last.t <= p.gap_s and _near(e.last, first, p.radius)
            if same_moment or continued:
                return e
        return None

    def add(self, finding: Finding, track_id: int, plate: str | None, last: Observation) -> None:
        self.recent.append(Emitted(finding.type, finding.element, track_id, finding.t, finding.observation, plate, last))
        while self.recent and self.recent[0].last.t < last.t - self.params.keep_s:
            self.recent.popleft()
