"""Traffic counts per minute, lane and vehicle class, closed by capture time.

Windows are closed by the detections' own clock, not the wall clock, so that a replay of the
same detections publishes the same counts with the same ids (and JetStream drops the repeats),
and a camera whose frames arrive late is counted in the minute it filmed.
"""

from __future__ import annotations

from datetime import datetime, timezone

from proto import ids
from proto.v1.telemetry import VehicleCount, VehiclesCounted


class CountWindows:
    def __init__(self, camera_id: str, window_s: float = 60.0, grace_s: float = 0.0) -> None:
        self.camera_id = camera_id
        self.window_s = window_s
        # Frames are tracked in capture order (after the reorder buffer), so nothing can be
        # added to a window once a frame past its end was tracked: no grace is needed by default.
        self.grace_s = grace_s
        self.windows: dict[float, dict[tuple[str | None, str], int]] = {}

    def window_start(self, t: float) -> float:
        return t - (t % self.window_s)

    def add(self, t: float, lane: str | None, vehicle_class: str) -> None:
        counts = self.windows.setdefault(self.window_start(t), {})
        key = (lane, vehicle_class)
        counts[key] = counts.get(key, 0) + 1

    def seen(self, t: float) -> None:
        """A frame at t: its window exists even when nobody passes (a zero count is a count)."""
        self.windows.setdefault(self.window_start(t), {})

    def close(self, now: float) -> list[VehiclesCounted]:
        """Windows that ended at least `grace_s` before `now` (the capture time of the frame just tracked)."""
        done = sorted(start for start in self.windows if start + self.window_s + self.grace_s <= now)
        return [self._event(start, self.windows.pop(start)) for start in done]

    def _event(self, start: float, counts: dict[tuple[str | None, str], int]) -> VehiclesCounted:
        begin = datetime.fromtimestamp(start, timezone.utc)
        end = datetime.fromtimestamp(start + self.window_s, timezone.utc)
        return VehiclesCounted(
            id=ids.event_id("counts", self.camera_id, begin.isoformat(), self.window_s),
            camera_id=self.camera_id,
            occurred_at=end,
            window_start=begin,
            window_s=self.window_s,
            counts=tuple(VehicleCount(vehicle_class=cls, count=n, lane=lane)
                         for (lane, cls), n in sorted(counts.items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))),
        )
