"""A track boxed only as `person`: a pedestrian, or a rider whose motorbike the detector missed.

Seen from behind and above, a motorbike is mostly its rider: the detector often boxes the
person and not the bike. Such a track is a two-wheeler when it stands in a lane and moves with
the traffic (along the lane's direction, at `min_speed_heights_s` or more) over `window_s`.
Everyone else boxed as `person` (on a crosswalk or a pavement, outside every lane, crossing the
lanes, against the traffic, or standing still) stays a pedestrian, and vehicle rules
never judge a pedestrian. Once a two-wheeler, always a two-wheeler (a rider waiting at a red
light is still a rider).

Speed is in box heights per second, so that it means the same near the camera and far from it.
A person walks about 0.8 body heights a second, a motorbike moving freely 4 to 10 of its
heights, but riders crawling in a queue no faster than a person walks: walking pace *along a
lane* is therefore taken for a rider (the detector boxes many more riders as `person` than
there are pedestrians walking down the carriageway); `min_speed_heights_s` says where.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from services.track import geometry
from services.track.rules import Observation
from services.track.scenes import Scene

TWO_WHEELER = "motorcycle"


@dataclass(frozen=True)
class LoneRiderParams:
    window_s: float = 0.8  # judged on its motion over this long ...
    min_frames: int = 3  # ... and over this many steps (frames after the first) at least
    # Riders crawling in a queue move at 0.6-0.9 of their box heights a second (measured on the
    # Sai Gon clip), as fast as a person walks (~0.8): in a lane, along it, a person at that pace
    # is taken for a rider. Standing (jitter stays under ~0.4), crossing the lanes, against the
    # traffic or off the lanes, a person stays a pedestrian. Raise it where people walk in lanes.
    min_speed_heights_s: float = 0.5
    min_speed_px_s: float = 20.0  # below this the direction of a step is detector jitter
    lane_cos: float = 0.7  # the step's direction within ~45 degrees of the lane's
    # A rider boxed without the bike: the box ends at the rider's seat and feet, the wheel touches
    # the road about a third of the rider's box height lower (seen from behind and above). Lines
    # are judged at the ground point, so a person-only track's box is extended down by this much
    # of its height (else it crosses every line ~0.5 s early).
    hidden_bike_heights: float = 0.3

    def __post_init__(self) -> None:
        if self.window_s <= 0:
            raise ValueError(f"window_s must be positive, got {self.window_s}")
        if self.min_frames < 1:
            raise ValueError(f"min_frames must be at least 1, got {self.min_frames}")
        if self.min_speed_heights_s <= 0:
            raise ValueError(f"min_speed_heights_s must be positive, got {self.min_speed_heights_s}")
        if not -1.0 <= self.lane_cos <= 1.0:
            raise ValueError(f"lane_cos must be within -1..1, got {self.lane_cos}")
        if not 0.0 <= self.hidden_bike_heights <= 1.0:
            raise ValueError(f"hidden_bike_heights must be within 0..1, got {self.hidden_bike_heights}")

    def with_hidden_bike(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """A person-only box extended down to where its bike, if it rides one, touches the road."""
        x1, y1, x2, y2 = box
        return (x1, y1, x2, y2 + self.hidden_bike_heights * (y2 - y1))


def moves_with_traffic(scene: Scene, path: list[Observation], params: LoneRiderParams) -> bool:
    """A stretch of a track: in a lane all along, and from its first to its last observation
    along the lane's direction at a vehicle's pace. Judged on the whole stretch, not step by
    step, so that the detector's jitter (a box a few pixels taller, then shorter) does not make
    a slow rider in a queue look like it stops and starts."""
    first, last = path[0], path[-1]
    lane = scene.lane_at(first.anchor)
    if lane is None or any(scene.lane_at(o.anchor) is None for o in path[1:]):
        return False
    dt = last.t - first.t
    if dt <= 0:
        return False
    dx, dy = last.anchor[0] - first.anchor[0], last.anchor[1] - first.anchor[1]
    speed = math.hypot(dx, dy) / dt
    heights = sorted(o.box[3] - o.box[1] for o in path)
    height = max(heights[len(heights) // 2], 1.0)  # the median: one odd box does not decide
    if speed < max(params.min_speed_px_s, params.min_speed_heights_s * height):
        return False
    return geometry.dot(geometry.unit(dx, dy), lane.direction) >= params.lane_cos


@dataclass
class PersonVerdict:
    """Running decision for one person-only track."""

    path: deque[Observation] = field(default_factory=deque)
    two_wheeler: bool = False

    def step(self, scene: Scene, current: Observation, params: LoneRiderParams) -> bool:
        """Feed the next observation; returns True once the track is a two-wheeler: over its last
        `window_s` (and `min_frames` steps at least), taken together, it moves with the traffic
        in a lane."""
        if self.two_wheeler:
            return True
        self.path.append(current)
        # Keep one observation at or before `window_s` ago: the start of the stretch judged.
        while len(self.path) > 2 and self.path[1].t <= current.t - params.window_s:
            self.path.popleft()
        if len(self.path) > params.min_frames and current.t - self.path[0].t >= params.window_s - 1e-6:
            self.two_wheeler = moves_with_traffic(scene, list(self.path), params)
        return self.two_wheeler
