"""A track boxed only as `person`: a pedestrian, or a rider whose motorbike the detector missed.

Seen from behind and above, a motorbike is mostly its rider: the detector often boxes the
person and not the bike. Such a track is a two-wheeler when it stands in a lane and moves with
the traffic (along the lane's direction, faster than anyone walks) over `min_frames` frames in
a row. Everyone else boxed as `person` (on a crosswalk or a pavement, outside every lane,
crossing the lanes, at walking pace, or standing still) stays a pedestrian, and vehicle rules
never judge a pedestrian. Once a two-wheeler, always a two-wheeler (a rider waiting at a red
light is still a rider).

Speed is in box heights per second, so that it means the same near the camera and far from it:
a person walks about 1.4 m/s, under one body height a second; a motorbike in town moves at 4
to 10 of its (rider and bike) heights a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.track import geometry
from services.track.rules import Observation
from services.track.scenes import Scene

TWO_WHEELER = "motorcycle"


@dataclass(frozen=True)
class LoneRiderParams:
    min_frames: int = 3  # steps in a row moving with the traffic in a lane
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


def moves_with_traffic(scene: Scene, previous: Observation, current: Observation, params: LoneRiderParams) -> bool:
    """One step of a track: in a lane, along its direction, at a vehicle's pace."""
    lane = scene.lane_at(previous.anchor)
    if lane is None or scene.lane_at(current.anchor) is None:
        return False
    dt = current.t - previous.t
    if dt <= 0:
        return False
    dx, dy = current.anchor[0] - previous.anchor[0], current.anchor[1] - previous.anchor[1]
    speed = math.hypot(dx, dy) / dt
    height = max(min(previous.box[3] - previous.box[1], current.box[3] - current.box[1]), 1.0)
    if speed < max(params.min_speed_px_s, params.min_speed_heights_s * height):
        return False
    return geometry.dot(geometry.unit(dx, dy), lane.direction) >= params.lane_cos


@dataclass
class PersonVerdict:
    """Running decision for one person-only track."""

    run: int = 0  # steps in a row moving with the traffic
    two_wheeler: bool = False

    def step(self, scene: Scene, previous: Observation | None, current: Observation, params: LoneRiderParams) -> bool:
        """Feed the next observation; returns True once the track is a two-wheeler."""
        if self.two_wheeler or previous is None:
            return self.two_wheeler
        self.run = self.run + 1 if moves_with_traffic(scene, previous, current, params) else 0
        self.two_wheeler = self.run >= params.min_frames
        return self.two_wheeler
