"""Camera uptime from the history of camera.status changes: outages and availability per local day.

Plain functions on a list of changes (no I/O), so the arithmetic across local midnight, an outage
that began before the period and one still going on are tested on a scripted sequence. A camera
is up when `online`; `degraded` and `offline` are both outages (a degraded camera drops frames,
and with them violations). Time before a camera's first report is not observed: it counts
neither for nor against its availability.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Iterable

UP = "online"
SEVERITY = {"online": 0, "degraded": 1, "offline": 2}


@dataclass(frozen=True)
class Change:
    camera_id: str
    at: datetime
    state: str
    reason: str = ""


@dataclass
class Outage:
    camera_id: str
    start: datetime
    end: datetime | None  # None: still down at the end of the period
    state: str  # the worst state within it: offline over degraded
    causes: list[str] = field(default_factory=list)  # the reasons reported, in order, each once

    @property
    def cause(self) -> str:
        return "; ".join(self.causes)

    def duration_s(self, until: datetime) -> float:
        return ((self.end or until) - self.start).total_seconds()


@dataclass
class DayUptime:
    camera_id: str
    day: date
    online_s: float = 0.0
    degraded_s: float = 0.0
    offline_s: float = 0.0

    @property
    def observed_s(self) -> float:
        return self.online_s + self.degraded_s + self.offline_s

    @property
    def availability(self) -> float | None:
        """Share of the observed time the camera was online (None: nothing observed that day)."""
        return self.online_s / self.observed_s if self.observed_s else None


def _by_camera(changes: Iterable[Change]) -> dict[str, list[Change]]:
    cameras: dict[str, list[Change]] = {}
    for change in sorted(changes, key=lambda c: (c.camera_id, c.at)):
        history = cameras.setdefault(change.camera_id, [])
        if history and history[-1].state == change.state:
            continue  # a repeat of the state (a late event, a restarted replica): no change
        history.append(change)
    return cameras


def _spans(history: list[Change], start: datetime, end: datetime):
    """(state, from, to) over [start, end), clipped; before the first change nothing is known."""
    for i, change in enumerate(history):
        until = history[i + 1].at if i + 1 < len(history) else end
        lo, hi = max(change.at, start), min(until, end)
        if lo < hi:
            yield change.state, lo, hi


def outages(changes: Iterable[Change], start: datetime, end: datetime) -> list[Outage]:
    """Outages that overlap [start, end), with their real start (also before the period) and their
    end (None when the camera was still down at `end`), ordered by camera and start."""
    found: list[Outage] = []
    for camera_id, history in sorted(_by_camera(changes).items()):
        current: Outage | None = None
        for change in history:
            if change.at >= end:
                break
            if change.state == UP:
                if current is not None:
                    current.end = change.at
                    found.append(current)
                    current = None
                continue
            if current is None:
                current = Outage(camera_id, change.at, None, change.state)
            elif SEVERITY[change.state] > SEVERITY[current.state]:
                current.state = change.state
            if change.reason and change.reason not in current.causes:
                current.causes.append(change.reason)
        if current is not None:
            found.append(current)
    return [o for o in found if o.end is None or o.end > start]


def daily(changes: Iterable[Change], start: datetime, end: datetime, tz_name: str) -> list[DayUptime]:
    """Seconds online, degraded and offline per camera and local day of [start, end). Pass `end`
    no later than now: the future is not observed."""
    tz = zoneinfo.ZoneInfo(tz_name)
    days: dict[tuple[str, date], DayUptime] = {}
    for camera_id, history in _by_camera(changes).items():
        for state, lo, hi in _spans(history, start, end):
            while lo < hi:
                local_day = lo.astimezone(tz).date()
                midnight = datetime.combine(local_day + timedelta(days=1), time(), tz)
                piece_end = min(hi, midnight)
                row = days.setdefault((camera_id, local_day), DayUptime(camera_id, local_day))
                seconds = (piece_end - lo).total_seconds()
                setattr(row, f"{state}_s", getattr(row, f"{state}_s") + seconds)
                lo = piece_end
    return [days[key] for key in sorted(days)]


def per_camera(day_rows: Iterable[DayUptime]) -> list[DayUptime]:
    """The days summed per camera (`day` is the first day observed)."""
    totals: dict[str, DayUptime] = {}
    for row in day_rows:
        total = totals.setdefault(row.camera_id, DayUptime(row.camera_id, row.day))
        total.online_s += row.online_s
        total.degraded_s += row.degraded_s
        total.offline_s += row.offline_s
    return [totals[c] for c in sorted(totals)]
