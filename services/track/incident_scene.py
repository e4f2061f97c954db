"""The `incidents:` block of a scene file: where and after how long track reports incidents.

Read by scenes.load with the same reader (file, line and field in every error; unknown keys are
errors). Every threshold is configuration: a camera over a motorway and one over an urban
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

from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.track import geometry
from services.track.geometry import Point

if TYPE_CHECKING:
    from services.track.scenes import _Node, _Reader

LEVELS = ("free", "moderate", "heavy", "jammed")  # in order of severity
TYPES = ("stopped_vehicle", "pedestrian_on_carriageway", "wrong_way_driving", "congestion")


@dataclass(frozen=True)
class Zone:
    id: str
    polygon: tuple[Point, ...]


@dataclass(frozen=True)
class Segment:
    id: str
    polygon: tuple[Point, ...]
    direction: tuple[float, float]  # unit vector of the allowed travel, image coordinates


@dataclass(frozen=True)
class StoppedVehicle:
    after_s: float
    lanes: tuple[str, ...]
    still_heights: float = 0.25
    still_window_s: float = 1.0
    queue_gap_heights: float = 1.5
    clear_after_s: float = 2.0
    min_height_px: float = 0.0  # shorter boxes are detector artefacts (a mirror, a wheel), never judged


@dataclass(frozen=True)
class Pedestrians:
    after_s: float
    zones: tuple[Zone, ...]
    clear_after_s: float = 2.0


@dataclass(frozen=True)
class WrongWay:
    segments: tuple[Segment, ...]
    min_distance_heights: float = 3.0
    cos: float = -0.5
    min_speed_heights_s: float = 0.5
    clear_after_s: float = 2.0


@dataclass(frozen=True)
class LevelThresholds:
    occupancy: float  # share of the lane's area covered by vehicle boxes, at least ...
    queue_vehicles: int  # ... or vehicles standing in a row back from the lane's head, at least ...
    max_speed: float  # ... and the lane's mean speed at most this (px/s, or km/h when calibrated)


@dataclass(frozen=True)
class Congestion:
    lanes: tuple[str, ...]
    levels: tuple[tuple[str, LevelThresholds], ...]  # moderate, heavy, jammed (those given), in order
    report_level: str = "heavy"
    after_s: float = 60.0
    clear_after_s: float = 30.0
    window_s: float = 10.0
    hold_s: float = 5.0
    hysteresis: float = 0.2
    metres_per_px: float | None = None

    def thresholds(self, level: str) -> LevelThresholds | None:
        return dict(self.levels).get(level)


@dataclass(frozen=True)
class Incidents:
    stopped_vehicle: StoppedVehicle | None = None
    pedestrian_on_carriageway: Pedestrians | None = None
    wrong_way_driving: WrongWay | None = None
    congestion: Congestion | None = None
    linger_s: float = 3.0


def read(r: _Reader, node: _Node, lane_ids: tuple[str, ...], frame_size: tuple[int, int]) -> Incidents:
    """The `incidents:` block; raises SceneError (via the reader) naming the line and field."""
    m = r.mapping(node, "incidents", ("linger_s", *TYPES))
    if not any(key in m for key in TYPES):
        raise r.fail(f"names no incident type ({', '.join(TYPES)})", "incidents", node)
    linger_s = _positive(r, m, "incidents", "linger_s", 3.0, zero=True)
    stopped = _stopped(r, m["stopped_vehicle"], lane_ids) if "stopped_vehicle" in m else None
    pedestrians = _pedestrians(r, m["pedestrian_on_carriageway"], frame_size) if "pedestrian_on_carriageway" in m else None
    wrong_way = _wrong_way(r, m["wrong_way_driving"], frame_size) if "wrong_way_driving" in m else None
    congestion = _congestion(r, m["congestion"], lane_ids) if "congestion" in m else None
    return Incidents(stopped, pedestrians, wrong_way, congestion, linger_s)


def _positive(r: _Reader, m: dict, prefix: str, key: str, default: float, *, zero: bool = False) -> float:
    if key not in m:
        return default
    return r.number(m[key], f"{prefix}.{key}", low=0, low_open=not zero)


def _lanes(r: _Reader, m: dict, prefix: str, lane_ids: tuple[str, ...]) -> tuple[str, ...]:
    if "lanes" not in m:
        if not lane_ids:
            raise r.fail("the scene has no lanes to watch", prefix, None)
        return lane_ids
    out = []
    for i, item in enumerate(r.sequence(m["lanes"], f"{prefix}.lanes", 1)):
        if item.value not in lane_ids:
            raise r.fail(f"unknown lane {item.value!r} (lanes: {', '.join(lane_ids) or 'none'})", f"{prefix}.lanes[{i}]", item)
        if item.value in out:
            raise r.fail(f"lane {item.value!r} is listed twice", f"{prefix}.lanes[{i}]", item)
        out.append(item.value)
    return tuple(out)


def _stopped(r: _Reader, node: _Node, lane_ids: tuple[str, ...]) -> StoppedVehicle:
    f = "incidents.stopped_vehicle"
    m = r.mapping(node, f, ("after_s", "lanes", "still_heights", "still_window_s", "queue_gap_heights", "clear_after_s",
                            "min_height_px"), ("after_s",))
    return StoppedVehicle(after_s=r.number(m["after_s"], f"{f}.after_s", low=0, low_open=True),
                          lanes=_lanes(r, m, f, lane_ids),
                          still_heights=_positive(r, m, f, "still_heights", 0.25),
                          still_window_s=_positive(r, m, f, "still_window_s", 1.0),
                          queue_gap_heights=_positive(r, m, f, "queue_gap_heights", 1.5),
                          clear_after_s=_positive(r, m, f, "clear_after_s", 2.0, zero=True),
                          min_height_px=_positive(r, m, f, "min_height_px", 0.0, zero=True))


def _polygons(r: _Reader, node: _Node, field: str, frame_size: tuple[int, int], *, direction: bool) -> list:
    items = r.sequence(node, field, 1)
    out = []
    for n, (item_id, item) in enumerate(zip(r.unique_ids(items, field), items)):
        f = f"{field}[{n}]"
        keys = ("id", "polygon", "direction") if direction else ("id", "polygon")
        m = r.mapping(item, f, keys, keys)
        polygon = r.polygon(m["polygon"], f"{f}.polygon")
        width, height = frame_size
        for x, y in polygon:
            if not (0 <= x <= width and 0 <= y <= height):
                raise r.fail(f"point [{x:g}, {y:g}] is outside the {width}x{height} frame", f"{f}.polygon", m["polygon"])
        if direction:
            dx, dy = r.point(m["direction"], f"{f}.direction")
            if dx == 0 and dy == 0:
                raise r.fail("direction [dx, dy] must not be [0, 0]", f"{f}.direction", m["direction"])
            out.append(Segment(item_id, polygon, geometry.unit(dx, dy)))
        else:
            out.append(Zone(item_id, polygon))
    return out


def _pedestrians(r: _Reader, node: _Node, frame_size: tuple[int, int]) -> Pedestrians:
    f = "incidents.pedestrian_on_carriageway"
    m = r.mapping(node, f, ("after_s", "zones", "clear_after_s"), ("after_s", "zones"))
    return Pedestrians(after_s=r.number(m["after_s"], f"{f}.after_s", low=0, low_open=True),
                       zones=tuple(_polygons(r, m["zones"], f"{f}.zones", frame_size, direction=False)),
                       clear_after_s=_positive(r, m, f, "clear_after_s", 2.0, zero=True))


def _wrong_way(r: _Reader, node: _Node, frame_size: tuple[int, int]) -> WrongWay:
    f = "incidents.wrong_way_driving"
    m = r.mapping(node, f, ("segments", "min_distance_heights", "cos", "min_speed_heights_s", "clear_after_s"),
                  ("segments",))
    cos = -0.5
    if "cos" in m:
        cos = r.number(m["cos"], f"{f}.cos", low=-1)
        if cos >= 0:
            raise r.fail(f"must be below 0 (an angle over 90 degrees), got {cos}", f"{f}.cos", m["cos"])
    return WrongWay(segments=tuple(_polygons(r, m["segments"], f"{f}.segments", frame_size, direction=True)),
                    min_distance_heights=_positive(r, m, f, "min_distance_heights", 3.0),
                    cos=cos,
                    min_speed_heights_s=_positive(r, m, f, "min_speed_heights_s", 0.5),
                    clear_after_s=_positive(r, m, f, "clear_after_s", 2.0, zero=True))


def _congestion(r: _Reader, node: _Node, lane_ids: tuple[str, ...]) -> Congestion:
    f = "incidents.congestion"
    m = r.mapping(node, f, ("lanes", "levels", "report_level", "after_s", "clear_after_s", "window_s", "hold_s",
                            "hysteresis", "metres_per_px"), ("levels",))
    lm = r.mapping(m["levels"], f"{f}.levels", LEVELS[1:])
    if not lm:
        raise r.fail(f"needs at least one level ({', '.join(LEVELS[1:])})", f"{f}.levels", m["levels"])
    levels: list[tuple[str, LevelThresholds]] = []
    for name in LEVELS[1:]:
        if name not in lm:
            continue
        g = f"{f}.levels.{name}"
        t = r.mapping(lm[name], g, ("occupancy", "queue_vehicles", "max_speed"), ("occupancy", "queue_vehicles", "max_speed"))
        occupancy = r.number(t["occupancy"], f"{g}.occupancy", low=0, low_open=True)
        if occupancy > 1:
            raise r.fail(f"is a share of the lane's area (0..1], got {occupancy}", f"{g}.occupancy", t["occupancy"])
        queue = r.number(t["queue_vehicles"], f"{g}.queue_vehicles", low=1)
        if queue != int(queue):
            raise r.fail(f"must be a whole number of vehicles, got {queue}", f"{g}.queue_vehicles", t["queue_vehicles"])
        thresholds = LevelThresholds(occupancy, int(queue), r.number(t["max_speed"], f"{g}.max_speed", low=0))
        if levels:
            lower_name, lower = levels[-1]
            if (thresholds.occupancy < lower.occupancy or thresholds.queue_vehicles < lower.queue_vehicles
                    or thresholds.max_speed > lower.max_speed):
                raise r.fail(f"must be at least as congested as {lower_name} (occupancy and queue not lower, "
                             "max_speed not higher)", g, lm[name])
        levels.append((name, thresholds))
    report = m["report_level"].value if "report_level" in m else "heavy"
    if report not in dict(levels):
        raise r.fail(f"{report!r} is not one of the levels given ({', '.join(n for n, _ in levels)})",
                     f"{f}.report_level", m.get("report_level", m["levels"]))
    hysteresis = _positive(r, m, f, "hysteresis", 0.2, zero=True)
    if hysteresis >= 1:
        raise r.fail(f"is a fraction below 1, got {hysteresis}", f"{f}.hysteresis", m["hysteresis"])
    return Congestion(lanes=_lanes(r, m, f, lane_ids), levels=tuple(levels), report_level=report,
                      after_s=_positive(r, m, f, "after_s", 60.0, zero=True),
                      clear_after_s=_positive(r, m, f, "clear_after_s", 30.0, zero=True),
                      window_s=_positive(r, m, f, "window_s", 10.0),
                      hold_s=_positive(r, m, f, "hold_s", 5.0, zero=True),
                      hysteresis=hysteresis,
                      metres_per_px=r.number(m["metres_per_px"], f"{f}.metres_per_px", low=0, low_open=True)
                      if "metres_per_px" in m else None)
