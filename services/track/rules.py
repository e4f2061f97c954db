"""The five violation rules, as pure functions over one track's observations and a scene.

Each rule fires at most once per track and scene element (`RuleState.fired`), so a vehicle
waiting in a no-stopping zone for ten minutes is one violation, not six hundred. Every finding
carries what was measured and the rule's parameters, because a police officer reviewing it
(and a court after that) must see why the machine decided, not just that it did.

A track's position is the bottom centre of its box: where the vehicle touches the road, which
is what the lines and lanes painted on the road are drawn against.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from services.track import geometry
from services.track.scenes import Scene
from services.track.signals import PhaseAt

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Observation:
    """A track in one frame, in scene coordinates."""

    t: float  # capture time, epoch seconds
    stream_seq: int  # the frame in the FRAMES stream (evidence)
    frame_seq: int
    box: Box
    velocity: tuple[float, float]  # px/s, from the Kalman filter

    @property
    def anchor(self) -> geometry.Point:
        return ((self.box[0] + self.box[2]) / 2, self.box[3])

    @property
    def speed(self) -> float:
        return math.hypot(*self.velocity)


@dataclass(frozen=True)
class Finding:
    type: str  # red_light, wrong_way, wrong_lane, no_stopping, speeding
    element: str  # id of the stop line, lane, zone or trap
    t: float  # the moment of the violation
    observation: Observation  # the frame closest to that moment
    value: float
    unit: str  # "s", "km/h" or "frames"
    limit: float | None = None
    tolerance: float | None = None
    phase: str | None = None
    phase_age_s: float | None = None
    parameters: dict[str, float | str] = field(default_factory=dict)


@dataclass(frozen=True)
class Crossing:
    """A track's path crossed a stop line in its lane's direction (judged red or not)."""

    line: str
    t: float  # interpolated capture time
    point: geometry.Point  # where the bottom centre crossed
    lane: str
    observation: Observation  # the frame nearest the crossing


@dataclass
class RuleState:
    fired: set[tuple[str, str]] = field(default_factory=set)
    wrong_way_run: dict[str, int] = field(default_factory=dict)
    wrong_lane_run: dict[str, int] = field(default_factory=dict)
    stopped_since: dict[str, float] = field(default_factory=dict)
    trap_crossings: dict[str, dict[str, float]] = field(default_factory=dict)
    # Stop-line crossings whose movement is not known yet (the lane has several): stop line ->
    # (crossing time, lane, the observation nearest the crossing, movement id if an exit was crossed)
    crossings: dict[str, tuple[float, str, Observation]] = field(default_factory=dict)
    crossed: list[Crossing] = field(default_factory=list)  # every stop-line crossing, in order
    # Crossings that could not be judged because the head's phase was unknown at that moment
    # (no controller event yet, lamps not read): counted so that a dead signal feed shows.
    unjudged: int = 0


PhaseLookup = Callable[[str, float], PhaseAt | None]


def evaluate(scene: Scene, state: RuleState, previous: Observation | None, current: Observation,
             vehicle_class: str, phase_at: PhaseLookup) -> list[Finding]:
    """Every rule on one new observation of a track; returns the findings that fire now."""
    findings: list[Finding] = []
    lane = scene.lane_at(current.anchor)
    if previous is not None:
        findings += red_light(scene, state, previous, current, phase_at)
        findings += speeding(scene, state, previous, current)
    findings += wrong_way(scene, state, current, lane.id if lane else None)
    findings += wrong_lane(scene, state, current, lane.id if lane else None, vehicle_class)
    findings += no_stopping(scene, state, current)
    for finding in findings:
        state.fired.add((finding.type, finding.element))
    return findings


def _crossing(previous: Observation, current: Observation, line: geometry.Segment) -> float | None:
    """Capture time at which the track's path between two observations crosses the line, or None.

    The two observations are consecutive *for the track*: frames where it was not seen (dropped,
    occluded, lost then re-associated) lie between them, and the time is interpolated over them.
    """
    hit = geometry.crossing(line, previous.anchor, previous.t, current.anchor, current.t)
    return None if hit is None else hit[0]


def red_light(scene: Scene, state: RuleState, previous: Observation, current: Observation,
              phase_at: PhaseLookup) -> list[Finding]:
    """Crossing a stop line in the lane's direction while the head governing its movement is red.

    The lane is the one the vehicle was in before the line: after it, it may be in the middle of
    the junction. The phase is the one at the moment of crossing, even when the movement is only
    known later (an exit line crossed, or none by the end of the track). Amber is not red; red
    younger than `red_grace_s` is not judged either.
    """
    out = []
    for stop in scene.stop_lines:
        if ("red_light", stop.id) in state.fired:
            continue
        if stop.id not in state.crossings:
            hit = geometry.crossing(stop.line, previous.anchor, previous.t, current.anchor, current.t)
            if hit is None:
                continue
            t, point = hit
            lane = scene.lane_at(previous.anchor) or scene.lane_at(current.anchor)
            if lane is None or not scene.movements_of(lane.id):
                continue
            motion = (current.anchor[0] - previous.anchor[0], current.anchor[1] - previous.anchor[1])
            if geometry.dot(motion, lane.direction) <= 0:
                continue  # crossing backwards: that is wrong_way's business
            nearest = current if abs(current.t - t) <= abs(previous.t - t) else previous
            state.crossings[stop.id] = (t, lane.id, nearest)
            state.crossed.append(Crossing(stop.id, t, point, lane.id, nearest))
        t, lane_id, nearest = state.crossings[stop.id]
        movements = scene.movements_of(lane_id)
        chosen = next((m for m in movements if m.exit is not None and _crossing(previous, current, m.exit) is not None),
                      None)
        if chosen is None and len(movements) == 1 and movements[0].exit is None:
            chosen = movements[0]
        if chosen is None:
            continue  # not known yet: decided by an exit, or by `resolve` at the end of the track
        if phase_at(chosen.head, t) is None:
            state.unjudged += 1
        finding = _judge_red(scene, stop.id, t, lane_id, nearest, chosen, phase_at)
        del state.crossings[stop.id]
        if finding is not None:
            out.append(finding)
    return out


# A track that ends without taking an exit went on along its lane (the movement without an exit)
# only if it was last seen well past the stop line along its lane (at least this many of its own
# box heights), and still moving (at least STRAIGHT_MIN_SPEED_HEIGHTS_S). A track that ends at
# the line (lost, out of the picture, the clip cut) or stopped on the crosswalk may still have
# been turning or may still stop: its movement is not known and it is not judged (a wrong
# citation harms a citizen; a miss is counted as unjudged).
STRAIGHT_MIN_ADVANCE_HEIGHTS = 0.75
STRAIGHT_MIN_SPEED_HEIGHTS_S = 0.3


def resolve(scene: Scene, state: RuleState, phase_at: PhaseLookup, last: Observation | None = None) -> list[Finding]:
    """At the end of a track: a crossing that took no exit made its lane's movement without one,
    provided the track was last seen far enough past the line along its lane (`last`)."""
    out = []
    for stop_id, (t, lane_id, nearest) in sorted(state.crossings.items()):
        default = next((m for m in scene.movements_of(lane_id) if m.exit is None), None)
        if default is not None and len(scene.movements_of(lane_id)) > 1 and not _went_on(scene, lane_id, nearest, last):
            state.unjudged += 1  # it may have turned: movement unknown
            continue
        if default is not None and ("red_light", stop_id) not in state.fired:
            if phase_at(default.head, t) is None:
                state.unjudged += 1
            finding = _judge_red(scene, stop_id, t, lane_id, nearest, default, phase_at)
            if finding is not None:
                state.fired.add((finding.type, finding.element))
                out.append(finding)
    state.crossings.clear()
    return out


def _went_on(scene: Scene, lane_id: str, at_line: Observation, last: Observation | None) -> bool:
    """Was the vehicle last seen past the line along its lane, and moving?"""
    if last is None:
        return False
    direction = scene.lane(lane_id).direction
    moved = (last.anchor[0] - at_line.anchor[0], last.anchor[1] - at_line.anchor[1])
    advance = geometry.dot(moved, direction)
    height = max(last.box[3] - last.box[1], 1.0)
    return advance >= STRAIGHT_MIN_ADVANCE_HEIGHTS * height and last.speed >= STRAIGHT_MIN_SPEED_HEIGHTS_S * height


def _judge_red(scene: Scene, stop_id: str, t: float, lane_id: str, nearest: Observation, movement,
               phase_at: PhaseLookup) -> Finding | None:
    phase = phase_at(movement.head, t)
    if phase is None or phase.phase != "red":
        return None
    age = phase.age(t)
    if age < scene.rules.red_grace_s:
        return None
    return Finding("red_light", stop_id, t, nearest, round(age, 2), "s", phase="red", phase_age_s=round(age, 2),
                   parameters={"stop_line": stop_id, "lane": lane_id, "movement": movement.id,
                               "head": movement.head, "signal_source": phase.source,
                               "phase_age_is_lower_bound": "true" if phase.lower_bound else "false",
                               "red_grace_s": scene.rules.red_grace_s})


def wrong_way(scene: Scene, state: RuleState, current: Observation, lane_id: str | None) -> list[Finding]:
    """Moving against the lane's direction for `wrong_way_frames` frames in a row.

    Frames where the vehicle is nearly still say nothing about its direction and leave the count
    as it is; a frame moving along the lane (or in no lane) resets it.
    """
    rules = scene.rules
    out = []
    for lane in scene.lanes:
        if ("wrong_way", lane.id) in state.fired:
            continue
        if lane.id != lane_id:
            state.wrong_way_run.pop(lane.id, None)
            continue
        if current.speed < rules.min_speed_px_s:
            continue
        cosine = geometry.dot(geometry.unit(*current.velocity), lane.direction)
        if cosine <= rules.wrong_way_cos:
            run = state.wrong_way_run.get(lane.id, 0) + 1
            state.wrong_way_run[lane.id] = run
            if run >= rules.wrong_way_frames:
                angle = math.degrees(math.acos(max(-1.0, min(1.0, cosine))))
                out.append(Finding("wrong_way", lane.id, current.t, current, float(run), "frames",
                                   limit=float(rules.wrong_way_frames),
                                   parameters={"lane": lane.id, "angle_deg": round(angle, 1),
                                               "wrong_way_cos": rules.wrong_way_cos,
                                               "min_speed_px_s": rules.min_speed_px_s}))
        else:
            state.wrong_way_run[lane.id] = 0
    return out


def wrong_lane(scene: Scene, state: RuleState, current: Observation, lane_id: str | None,
               vehicle_class: str) -> list[Finding]:
    """A class the lane does not allow, in that lane for `wrong_lane_frames` frames in a row."""
    rules = scene.rules
    out = []
    for lane in scene.lanes:
        if ("wrong_lane", lane.id) in state.fired:
            continue
        if lane.id != lane_id or vehicle_class in lane.allowed:
            state.wrong_lane_run.pop(lane.id, None)
            continue
        run = state.wrong_lane_run.get(lane.id, 0) + 1
        state.wrong_lane_run[lane.id] = run
        if run >= rules.wrong_lane_frames:
            out.append(Finding("wrong_lane", lane.id, current.t, current, float(run), "frames",
                               limit=float(rules.wrong_lane_frames),
                               parameters={"lane": lane.id, "vehicle_class": vehicle_class,
                                           "allowed": ",".join(sorted(lane.allowed))}))
    return out


def no_stopping(scene: Scene, state: RuleState, current: Observation) -> list[Finding]:
    """Stopped inside a zone for longer than its `max_dwell_s`; moving on or leaving resets the clock."""
    rules = scene.rules
    out = []
    for zone in scene.no_stopping:
        if ("no_stopping", zone.id) in state.fired:
            continue
        inside = geometry.point_in_polygon(current.anchor, zone.polygon)
        if not inside or current.speed >= rules.stopped_speed_px_s:
            state.stopped_since.pop(zone.id, None)
            continue
        since = state.stopped_since.setdefault(zone.id, current.t)
        dwell = current.t - since
        if dwell > zone.max_dwell_s:
            out.append(Finding("no_stopping", zone.id, current.t, current, round(dwell, 2), "s",
                               limit=zone.max_dwell_s,
                               parameters={"zone": zone.id, "max_dwell_s": zone.max_dwell_s,
                                           "stopped_speed_px_s": rules.stopped_speed_px_s}))
    return out


def speeding(scene: Scene, state: RuleState, previous: Observation, current: Observation) -> list[Finding]:
    """Speed from the times the track crossed the trap's two lines, in either order.

    Crossing times are interpolated between frames, so the error is the detector's jitter,
    not the frame interval. Exactly limit + tolerance is not speeding.
    """
    out = []
    for trap in scene.speed_traps:
        if ("speeding", trap.id) in state.fired:
            continue
        crossings = state.trap_crossings.setdefault(trap.id, {})
        for name, line in (("entry", trap.entry), ("exit", trap.exit)):
            t = _crossing(previous, current, line)
            if t is not None and name not in crossings:
                crossings[name] = t
        if "entry" not in crossings or "exit" not in crossings:
            continue
        elapsed = abs(crossings["exit"] - crossings["entry"])
        del state.trap_crossings[trap.id]  # measured once; a second pass is a new measurement
        if elapsed <= 0:
            continue
        # Judged on the value reported (0.1 km/h): 55.00000001 is shown, and is, 55.0.
        speed = round(trap.distance_m / elapsed * 3.6, 1)
        if speed > trap.limit_kmh + trap.tolerance_kmh:
            t = max(crossings["exit"], crossings["entry"])
            out.append(Finding("speeding", trap.id, t, current, speed, "km/h", limit=trap.limit_kmh,
                               tolerance=trap.tolerance_kmh,
                               parameters={"trap": trap.id, "distance_m": trap.distance_m,
                                           "elapsed_s": round(elapsed, 3)}))
    return out
