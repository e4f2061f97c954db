"""Traffic counts at count lines: per window, line, direction and vehicle class.

A vehicle is counted once, when its track crosses a count line of the scene (the path of its
bottom centre between two observations, however far apart: a track lost for a few frames right
at the line is still counted). Windows are closed by the detections' own clock, not the wall
clock, so that a replay of the same detections publishes the same counts with the same ids (and
JetStream drops the repeats), and a camera whose frames arrive late is counted in the minute it
filmed. A window also closes early (`flush`) at a discontinuity in the stream and at shutdown or
the end of a replay: it then covers only the time it saw, and says so (`window_s`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from proto import ids
from proto.v1.telemetry import VehicleCount, VehiclesCounted
from services.track import geometry
from services.track.geometry import Point, Segment
from services.track.scenes import CountLine

FORWARD = "forward"
BACKWARD = "backward"


@dataclass(frozen=True)
class Crossing:
    t: float  # interpolated time the path met the line
    point: Point
    side: int  # +1: along the line's forward normal, -1: against it


def crossing(line: Segment, p0: Point, t0: float, p1: Point, t1: float) -> Crossing | None:
    """Where and when the path p0 (at t0) → p1 (at t1) crosses the segment `line`, or None, and
    from which side: `geometry.crossing` (gap-proof, the one test for every line) plus the side."""
    hit = geometry.crossing(line, p0, t0, p1, t1)
    if hit is None:
        return None
    t, point = hit
    return Crossing(t, point, 1 if geometry.side(line, p0) > 0 else -1)


def direction_of(count_line: CountLine, found: Crossing) -> str:
    """'forward' (along the line's declared direction, or its normal when it has none) or 'backward'."""
    if count_line.direction is None:
        return FORWARD if found.side > 0 else BACKWARD
    (ax, ay), (bx, by) = count_line.line
    dx, dy = count_line.direction
    # Which side of the line the declared direction points to, against the side the path went to.
    return FORWARD if ((by - ay) * dx + (ax - bx) * dy > 0) == (found.side > 0) else BACKWARD


CountKey = tuple[str, str, str]  # line, direction, vehicle class


@dataclass
class Window:
    start: float  # aligned window start
    counts: dict[CountKey, int] = field(default_factory=dict)
    opened: float | None = None  # set when the window began after a flush (a break in the stream) inside it


class CountWindows:
    def __init__(self, camera_id: str, window_s: float = 60.0, grace_s: float = 0.0,
                 lines: tuple[CountLine, ...] = ()) -> None:
        self.camera_id = camera_id
        self.window_s = window_s
        # Frames are tracked in capture order (after the reorder buffer), so nothing can be
        # added to a window once a frame past its end was tracked: no grace is needed by default.
        self.grace_s = grace_s
        self.lines = lines
        self.windows: dict[float, Window] = {}
        self.last_t: float | None = None
        self.broken = False  # a flush happened: the next window opens at its first frame

    def window_start(self, t: float) -> float:
        return t - (t % self.window_s)

    def _window(self, t: float) -> Window:
        start = self.window_start(t)
        window = self.windows.get(start)
        if window is None:
            window = self.windows[start] = Window(start, opened=t if self.broken else None)
            self.broken = False
        return window

    def add(self, t: float, line: str, direction: str, vehicle_class: str) -> None:
        """One vehicle crossed `line` at t. A crossing confirmed after its window closed goes into the open one."""
        start = self.window_start(t)
        if start not in self.windows and self.last_t is not None and start < self.window_start(self.last_t):
            t = self.last_t
        counts = self._window(t).counts
        key = (line, direction, vehicle_class)
        counts[key] = counts.get(key, 0) + 1

    def seen(self, t: float) -> None:
        """A frame at t: its window exists even when nobody passes (a zero count is a count)."""
        self._window(t)
        self.last_t = t if self.last_t is None else max(self.last_t, t)

    def close(self, now: float) -> list[VehiclesCounted]:
        """Windows that ended at least `grace_s` before `now` (the capture time of the frame just tracked)."""
        done = sorted(start for start in self.windows if start + self.window_s + self.grace_s <= now)
        return [self._event(self.windows.pop(start), start + self.window_s) for start in done]

    def flush(self) -> list[VehiclesCounted]:
        """Close every window now: at a discontinuity, at shutdown, at the end of a replay. The
        open window ends at the last frame seen; it is published with the time it covered."""
        out = []
        self.broken = True
        for start in sorted(self.windows):
            window = self.windows.pop(start)
            end = min(start + self.window_s, self.last_t if self.last_t is not None else start + self.window_s)
            out.append(self._event(window, end))
        return out

    def _event(self, window: Window, end_t: float) -> VehiclesCounted:
        # A window opened after a break covers from its first frame, so that the counts of one
        # minute before and after a break are two events (two ids), not one dropped as a repeat.
        begin_t = window.opened if window.opened is not None else window.start
        end_t = max(end_t, begin_t + 1e-3)
        begin = datetime.fromtimestamp(begin_t, timezone.utc)
        end = datetime.fromtimestamp(end_t, timezone.utc)
        return VehiclesCounted(
            id=ids.event_id("counts", self.camera_id, begin.isoformat(), round(end_t - begin_t, 3)),
            camera_id=self.camera_id,
            occurred_at=end,
            window_start=begin,
            window_s=round(end_t - begin_t, 3),
            counts=tuple(VehicleCount(vehicle_class=cls, count=n, line=line, direction=direction)  # type: ignore[arg-type]
                         for (line, direction, cls), n in sorted(window.counts.items())),
            # Every line counted at, crossed or not: "nobody crossed" is a count too.
            lines=tuple(sorted({count_line.id for count_line in self.lines} | {k[0] for k in window.counts})),
        )
