"""A track boxed only as `person`: a pedestrian, or a rider whose motorbike the detector missed.

Seen from behind and above, a motorbike is mostly its rider: the detector often boxes the
person and not the bike. Such a track is a two-wheeler when it stands in a lane and moves with
the traffic (along the lane's direction, faster than anyone walks) over `min_frames` steps. Everyone else boxed as `person` (on a crosswalk or a pavement, outside every lane,
crossing the lanes, at walking pace, or standing still) stays a pedestrian, and vehicle rules
never judge a pedestrian. Once a two-wheeler, always a two-wheeler (a rider waiting at a red
light is still a rider).

Speed is in box heights per second, so that it means the same near the camera and far from it:
a person walks about 1.4 m/s, under one body height a second; a motorbike in town moves at 4
to 10 of its (rider and bike) heights a second.
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
    min_frames: int = 3  # steps (frames after the first) over which it moves with the traffic in a lane
    min_speed_heights_s: float = 1.0  # walking: about 0.8 body heights a second
    min_speed_px_s: float = 20.0  # below this the direction of a step is detector jitter
    lane_cos: float = 0.7  # the step's direction within ~45 degrees of the lane's

    def __post_init__(self) -> None:
        if self.min_frames < 1:
            raise ValueError(f"min_frames must be at least 1, got {self.min_frames}")
        if self.min_speed_heights_s <= 0:
            raise ValueError(f"min_speed_heights_s must be positive, got {self.min_speed_heights_s}")
        if not -1.0 <= self.lane_cos <= 1.0:
            raise ValueError(f"lane_cos must be within -1..1, got {self.lane_cos}")


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
        """Feed the next observation; returns True once the track is a two-wheeler: its last
        `min_frames` steps, taken together, move with the traffic in a lane."""
        if self.two_wheeler:
            return True
        self.path.append(current)
        while len(self.path) > params.min_frames + 1:
            self.path.popleft()
        if len(self.path) == params.min_frames + 1:
            self.two_wheeler = moves_with_traffic(scene, list(self.path), params)
        return self.two_wheeler
