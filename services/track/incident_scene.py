"""The `incidents:` block of a scene file: where and after how long track reports incidents.

Read by scenes.load as part of the Scene (file, line and field in every error; unknown keys are
errors); rules that need the scene's lanes or frame are the Scene's. Every threshold is configuration: a camera over a motorway and one over an urban
junction differ in what "stopped too long" or "congested" means.

    incidents:
      linger_s: 3                      # a lost track's incident waits this long for its vehicle to reappear
      stopped_vehicle:
        after_s: 30                    # standing still, outside a queue, this long in a live lane
        lanes: [left, middle]          # live lanes (default: every lane of the scene)
        still_heights: 0.25            # moved less than this many box heights ...
        still_window_s: 1.0            # ... over this long: standing still
        queue_gap_heights: 1.5         # within this many box heights behind a still vehicle, or of a held stop line: queued
        clear_after_s: 2               # moving this long ends the incident
        min_height_px: 30              # a box shorter than this is no vehicle here (a mirror, a wheel): not judged
      pedestrian_on_carriageway:
        after_s: 3
        zones: [{id: approach, polygon: [[x, y], ...]}]
        clear_after_s: 2
      wrong_way_driving:
        segments: [{id: approach, polygon: [...], direction: [0, -1]}]
        min_distance_heights: 3        # against the direction over this many of its box heights
        cos: -0.5                      # cosine to the direction at or below which a step is "against"
        min_speed_heights_s: 0.5       # slower steps say nothing about direction
        clear_after_s: 2
      congestion:
        lanes: [left, middle]          # default: every lane
        window_s: 10                   # measures are averaged over this long
        hold_s: 5                      # a new level must hold this long before it is the level
        hysteresis: 0.2                # leaving a level needs the measures this much below its thresholds
        report_level: heavy            # an incident from this level on ...
        after_s: 60                    # ... once held this long
        clear_after_s: 30              # below it this long: cleared
        metres_per_px: 0.05            # optional calibration: speeds in km/h instead of px/s
        levels:                        # a lane is at a level when (occupancy or queue) is reached and the mean speed is at most max_speed
          moderate: {occupancy: 0.25, queue_vehicles: 4, max_speed: 120}
          heavy: {occupancy: 0.4, queue_vehicles: 8, max_speed: 60}
          jammed: {occupancy: 0.6, queue_vehicles: 12, max_speed: 20}
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from services.runtime.config import FieldError
from services.track.scene_types import (Area, Cosine, Direction, Names, NonNegative, Part, Positive, unique_ids,
                                        unit)

LEVELS = ("free", "moderate", "heavy", "jammed")  # in order of severity
TYPES = ("stopped_vehicle", "pedestrian_on_carriageway", "wrong_way_driving", "congestion")
Level = Literal[LEVELS[1:]]  # type: ignore[valid-type]


class Segment(Area):
    direction: Direction  # unit vector of the allowed travel, image coordinates

    def __post_init__(self) -> None:
        super().__post_init__()
        unit(self)


class StoppedVehicle(Part):
    after_s: Positive
    lanes: Names = ()  # () in the file: every lane of the scene
    still_heights: Positive = 0.25
    still_window_s: Positive = 1.0
    queue_gap_heights: Positive = 1.5
    clear_after_s: NonNegative = 2.0
    min_height_px: NonNegative = 0.0  # shorter boxes are detector artefacts (a mirror, a wheel), never judged


class Pedestrians(Part):
    after_s: Positive
    zones: Annotated[tuple[Area, ...], Meta(min_length=1)]
    clear_after_s: NonNegative = 2.0

    def __post_init__(self) -> None:
        unique_ids(self.zones, "zones")


class WrongWay(Part):
    segments: Annotated[tuple[Segment, ...], Meta(min_length=1)]
    min_distance_heights: Positive = 3.0
    cos: Cosine = -0.5
    min_speed_heights_s: Positive = 0.5
    clear_after_s: NonNegative = 2.0

    def __post_init__(self) -> None:
        unique_ids(self.segments, "segments")


class LevelThresholds(Part):
    occupancy: Annotated[float, Meta(gt=0, le=1)]  # share of the lane's area covered by vehicle boxes, at least ...
    queue_vehicles: Annotated[int, Meta(ge=1)]  # ... or vehicles standing in a row back from the lane's head, at least ...
    max_speed: NonNegative  # ... and the lane's mean speed at most this (px/s, or km/h when calibrated)


class Congestion(Part, kw_only=True):
    lanes: Names = ()  # () in the file: every lane of the scene
    levels: Annotated[dict[Level, LevelThresholds], Meta(min_length=1)]  # kept in order of severity
    report_level: Level = "heavy"
    after_s: NonNegative = 60.0
    clear_after_s: NonNegative = 30.0
    window_s: Positive = 10.0
    hold_s: NonNegative = 5.0
    hysteresis: Annotated[float, Meta(ge=0, lt=1)] = 0.2
    metres_per_px: Positive | None = None

    def __post_init__(self) -> None:
        levels = {name: self.levels[name] for name in LEVELS[1:] if name in self.levels}
        msgspec.structs.force_setattr(self, "levels", levels)
        names = list(levels)
        for lower, name in zip(names, names[1:]):
            low, high = levels[lower], levels[name]
            if high.occupancy < low.occupancy or high.queue_vehicles < low.queue_vehicles or high.max_speed > low.max_speed:
                raise FieldError(("levels", name), f"must be at least as congested as {lower} (occupancy and queue "
                                                   "not lower, max_speed not higher)")
        if self.report_level not in levels:
            raise FieldError("report_level", f"{self.report_level!r} is not one of the levels given ({', '.join(names)})")

    def thresholds(self, level: str) -> LevelThresholds | None:
        return self.levels.get(level)


class Incidents(Part):
    stopped_vehicle: StoppedVehicle | None = None
    pedestrian_on_carriageway: Pedestrians | None = None
    wrong_way_driving: WrongWay | None = None
    congestion: Congestion | None = None
    linger_s: NonNegative = 3.0
