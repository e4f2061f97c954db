"""Incidents from one camera's tracks: a stopped vehicle, a pedestrian on the carriageway, a
vehicle against the traffic, congestion per lane (proto/v1/incident.py).

A violation is one moment judged once; an incident is a condition that begins, may change and
ends, watched by an operator. So each incident is reported once when the condition has held for
the scene's time (`incident.detected`), again when it changes materially (a congestion level:
`incident.updated`) and once when it ends (`incident.cleared`: resolved, its track lost for
good, or a stream break). The three share a deterministic `incident_id`, so a replay of the same
detections gives the same events and JetStream drops the repeats.

Telling a stopped vehicle from one waiting in a queue: a vehicle standing still is *queued* when
a vehicle ahead of it in its lane (within `queue_gap_heights` of its box heights) stands still too,
or when it stands at its lane's stop line while the light for one of the lane's movements holds
it (red or amber, or a phase not known: a queue at a light that cannot be read is not an alarm).
Only a vehicle standing still and *not* queued for `after_s` is a stopped vehicle; its clock
starts again whenever it moves or becomes queued. The head of a queue behind a broken-down car
is that car; everything behind it is queued. Once reported, the incident lasts until the vehicle
moves (`clear_after_s`), whatever the light does.

Pedestrians: a track boxed only as `person` that riders.py has not shown to be a two-wheeler.
Riders whose bike is hidden look exactly like that, so a person is not judged while standing
still in a queue (as above: at a held stop line, or behind a standing vehicle), while its box
lies mostly on a vehicle's, nor ever once it has moved along a lane at a vehicle's pace: a
pedestrian walking along the carriageway *with* the traffic is therefore not reported.

Wrong way: a vehicle whose steps inside a segment go against the segment's direction (cosine at
most `cos`, at `min_speed_heights_s` or more) until it has covered `min_distance_heights` of its
box heights against it; a step along or across the direction starts the run again.

Congestion per lane: occupancy (share of the lane's area under vehicle boxes), queue (vehicles
standing in a row back from the lane's head: its stop line, or its far end), vehicles in the
lane and their mean speed, averaged over `window_s`. The level is the highest whose thresholds
are met; leaving a level needs the measures `hysteresis` below its thresholds, and a new level
must hold `hold_s` before it is the level, so a level does not flap. While the lane's light holds
it (red, amber, unknown) nothing is measured: a queue at a red light is not congestion.

All state is plain data (dataclasses of numbers, strings, lists and dicts), so that it can be
checkpointed; the lane masks used for occupancy are derived from the scene and rebuilt.

A stream break clears every open incident (`stream_break`) and forgets every track: nothing is
carried across a gap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import cv2
import numpy as np

from proto import ids
from proto.v1.common import Location
from proto.v1.incident import IncidentCleared, IncidentDetected, IncidentUpdated, LaneTraffic
from services.track import geometry
from services.track.incident_scene import LEVELS, Congestion, Incidents, StoppedVehicle
from services.track.scenes import Lane, Scene
from services.track.signals import PhaseAt

Box = tuple[float, float, float, float]
PhaseLookup = Callable[[str, float], PhaseAt | None]
# A moment of a track, as plain numbers: [t, stream_seq, frame_seq, x1, y1, x2, y2].
Mark = list[float]
HOLDING = ("red", "amber")
SEVERITY = {"stopped_vehicle": "warning", "pedestrian_on_carriageway": "warning", "wrong_way_driving": "critical"}
LEVEL_SEVERITY = {"free": "info", "moderate": "info", "heavy": "warning", "jammed": "critical"}
RIDER_COS = 0.7  # moving within ~45 degrees of the lane's direction ...
RIDER_SPEED_HEIGHTS_S = 0.5  # ... at this many box heights a second: a rider, not a pedestrian
ON_VEHICLE_IOA = 0.5  # a person box lying this much on a vehicle's box may be its rider
MASK_SCALE = 0.25  # occupancy is measured on lane masks at this scale
STANDING_IOU = 0.6  # a box overlapping one seen earlier this much is the same object, not moved
FORGET_S = 10.0  # a track unseen this long is forgotten (the tracker gives up far sooner)


@dataclass(frozen=True)
class Seen:
    """A track matched in the frame just processed."""

    track_id: int
    key: str  # unique across restarts (first capture time and id)
    kind: str  # the vehicle class the rules judge it as, or "person" (a pedestrian so far)
    box: Box  # scene pixels; for a vehicle its ground contact is the bottom centre
    confirmed: bool  # the tracker confirmed it (min_hits)


@dataclass
class TrackState:
    key: str
    kind: str
    samples: list[Mark] = field(default_factory=list)  # over the still window, and one before it
    rider_like: bool = False  # a person that moved along a lane at a vehicle's pace
    stopped_since: Mark | None = None  # standing still and not queued since
    zone_since: dict[str, Mark] = field(default_factory=dict)  # pedestrian: in a zone, judged, since
    against: dict[str, Mark] = field(default_factory=dict)  # wrong way: the run against a segment began at


@dataclass
class Incident:
    incident_id: str
    type: str
    element: str  # the lane, zone or segment
    started: Mark
    detected: Mark
    track_ids: list[int] = field(default_factory=list)
    vehicle_class: str | None = None
    level: str | None = None  # congestion
    last: Mark | None = None  # where its track was last seen
    ending_since: float | None = None  # the condition has been absent since
    lost_since: float | None = None  # its track ended then; another may take it up within linger_s


@dataclass
class LaneState:
    samples: list[list[float]] = field(default_factory=list)  # [t, occupancy, queue, vehicles, speed or -1]
    level: str = "free"
    candidate: str = "free"
    candidate_since: float = 0.0
    reported_since: Mark | None = None  # at or above the report level since
    below_since: float | None = None
    incident: Incident | None = None
    measures: list[float] = field(default_factory=list)  # the last averaged [occupancy, queue, vehicles, speed or -1]


@dataclass
class IncidentState:
    """Everything the detector remembers between frames (plain data, for checkpoints)."""

    tracks: dict[int, TrackState] = field(default_factory=dict)
    incidents: list[Incident] = field(default_factory=list)  # open, bound to tracks
    lanes: dict[str, LaneState] = field(default_factory=dict)  # congestion
    # Vehicle boxes that stay put, tracked or not (a car the detector scores too low to track
    # still makes the one behind it wait): [first seen, last seen, x1, y1, x2, y2 as first seen].
    standing: list[list[float]] = field(default_factory=list)
    last_t: float | None = None


@dataclass(frozen=True)
class IncidentDraft:
    """An event to publish; `frames` (detected only) are the evidence to fetch and store."""

    action: str  # detected | updated | cleared
    event: IncidentDetected | IncidentUpdated | IncidentCleared
    frames: tuple[tuple[str, Mark], ...] = ()
    box_roles: bool = True  # the frames' boxes are the subject (False: congestion, the lane is drawn)
    polygon: tuple[tuple[float, float], ...] = ()  # lane or zone drawn on the overlay
    description: str = ""


# --- small geometry ---------------------------------------------------------------------------------
def _anchor(m: Mark) -> tuple[float, float]:
    return ((m[3] + m[5]) / 2, m[6])


def _height(m: Mark) -> float:
    return max(m[6] - m[4], 1.0)


def _size(m: Mark) -> float:
    return max(m[5] - m[3], m[6] - m[4], 1.0)


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / max(union, 1e-6)


def _ioa(inner: Box, outer: Box) -> float:
    w = max(0.0, min(inner[2], outer[2]) - max(inner[0], outer[0]))
    h = max(0.0, min(inner[3], outer[3]) - max(inner[1], outer[1]))
    area = max((inner[2] - inner[0]) * (inner[3] - inner[1]), 1e-6)
    return w * h / area


def ahead_of(lane: Lane, point: tuple[float, float], line: tuple[tuple[float, float], tuple[float, float]]) -> float | None:
    """Signed distance from the point to the line, along the lane's direction (negative: past it);
    None when the line runs along the lane or the point's way does not meet the segment."""
    (ax, ay), (bx, by) = line
    dx, dy = lane.direction
    ex, ey = bx - ax, by - ay
    denominator = dx * ey - dy * ex
    if abs(denominator) < 1e-9:
        return None
    px, py = point
    s = ((ax - px) * ey - (ay - py) * ex) / denominator
    u = ((ax - px) * dy - (ay - py) * dx) / denominator
    return s if -0.1 <= u <= 1.1 else None


class IncidentDetector:
    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.config: Incidents = scene.incidents or Incidents()
        self.camera_id = scene.camera
        self.state = IncidentState()
        stopped = self.config.stopped_vehicle or StoppedVehicle(after_s=1.0, lanes=())
        self.still_heights = stopped.still_heights
        self.still_window_s = stopped.still_window_s
        self.queue_gap = stopped.queue_gap_heights
        self._masks: dict[str, np.ndarray] = {}
        self.location = Location(latitude=scene.location.latitude, longitude=scene.location.longitude,
                                 address=scene.location.address, commune_code=scene.location.commune_code) \
            if scene.location is not None else None

    @property
    def enabled(self) -> bool:
        return self.scene.incidents is not None

    # --- the frame --------------------------------------------------------------------------------
    def step(self, t: float, stream_seq: int, frame_seq: int, seen: list[Seen], ended: list[int],
             phase_at: PhaseLookup, boxes: list[Box] = ()) -> list[IncidentDraft]:
        """One frame: the tracks matched in it, the tracks the tracker finished, the signal phases,
        and every vehicle box detected in it (tracked or not)."""
        if not self.enabled:
            return []
        state = self.state
        state.last_t = t
        self._remember_standing(t, boxes)
        out: list[IncidentDraft] = []
        marks: dict[int, Mark] = {}
        fresh = []
        for s in seen:
            mark = [t, float(stream_seq), float(frame_seq), *s.box]
            marks[s.track_id] = mark
            track = state.tracks.get(s.track_id)
            if track is None:
                track = state.tracks[s.track_id] = TrackState(s.key, s.kind)
                fresh.append(s.track_id)
            if track.kind != s.kind:  # a person shown to be a rider: a vehicle from now on
                track.kind, track.zone_since = s.kind, {}
            track.samples.append(mark)
            while len(track.samples) > 2 and track.samples[1][0] <= t - self.still_window_s:
                track.samples.pop(0)
        # Tracks the tracker finished, and any not seen for long (folded into another, say).
        ended = list(ended) + [tid for tid, tr in state.tracks.items() if tr.samples and tr.samples[-1][0] < t - FORGET_S]
        for track_id in ended:
            state.tracks.pop(track_id, None)
            for incident in state.incidents:
                if incident.track_ids and incident.track_ids[-1] == track_id and incident.lost_since is None:
                    incident.lost_since = t
        confirmed = {s.track_id: s for s in seen if s.confirmed}
        still = {tid: self._still(state.tracks[tid]) for tid in confirmed}
        lanes = {tid: self.scene.lane_at(_anchor(marks[tid])) for tid in confirmed}
        held = {lane.id: self._held(lane, t, phase_at) for lane in self.scene.lanes}
        queued, chains = self._queues(confirmed, marks, still, lanes, held)
        out += self._adopt(fresh, marks, confirmed)
        if self.config.stopped_vehicle is not None:
            out += self._stopped(t, confirmed, marks, still, lanes, queued)
        if self.config.pedestrian_on_carriageway is not None:
            out += self._pedestrians(t, confirmed, marks, still, lanes, queued)
        if self.config.wrong_way_driving is not None:
            out += self._wrong_way(t, confirmed, marks)
        out += self._ending(t, marks)
        if self.config.congestion is not None:
            out += self._congestion(t, stream_seq, frame_seq, confirmed, marks, still, lanes, held, chains)
        return out

    def discontinuity(self, t: float) -> list[IncidentDraft]:
        """The stream broke before t: every open incident is cleared, every track forgotten."""
        return self._close_all(t, "stream_break")

    def finish(self) -> list[IncidentDraft]:
        """The stream ends (shutdown, end of a replay): nothing more is known of the open incidents."""
        if self.state.last_t is None:
            return []
        return self._close_all(self.state.last_t, "stream_break")

    def _close_all(self, t: float, reason: str) -> list[IncidentDraft]:
        state = self.state
        out = [self._cleared(incident, t, reason) for incident in state.incidents]
        out += [self._cleared(lane.incident, t, reason) for lane in state.lanes.values() if lane.incident is not None]
        self.state = IncidentState(last_t=state.last_t)
        return out

    # --- what every type needs --------------------------------------------------------------------
    def _still(self, track: TrackState) -> bool:
        """Standing still: over the whole still window its ground point moved less than
        `still_heights` of its box height."""
        samples = track.samples
        if len(samples) < 2 or samples[-1][0] - samples[0][0] < self.still_window_s - 1e-6:
            return False
        now = _anchor(samples[-1])
        limit = self.still_heights * _height(samples[-1])
        return all(math.dist(_anchor(m), now) <= limit for m in samples)

    def _speed(self, track: TrackState) -> float | None:
        """px/s of the ground point over the still window (None: seen too briefly)."""
        first, last = track.samples[0], track.samples[-1]
        dt = last[0] - first[0]
        if dt < 0.3:
            return None
        return math.dist(_anchor(first), _anchor(last)) / dt

    def _held(self, lane: Lane, t: float, phase_at: PhaseLookup) -> bool:
        """The lane's light holds its traffic: a movement of the lane whose head is red or amber, or not known."""
        movements = self.scene.movements_of(lane.id)
        if not movements or not self.scene.stop_lines:
            return False
        for movement in movements:
            phase = phase_at(movement.head, t)
            if phase is None or phase.phase in HOLDING or phase.phase == "unknown":
                return True
        return False

    def _head_distance(self, lane: Lane, point: tuple[float, float]) -> tuple[float, bool]:
        """How far ahead of the point its lane's head is (its stop line, else the lane's far end),
        and whether that head is a stop line."""
        found = [d for stop in self.scene.stop_lines if (d := ahead_of(lane, point, stop.line)) is not None]
        if found and self.scene.movements_of(lane.id):
            return min(found, key=abs), True
        front = max(geometry.dot(v, lane.direction) for v in lane.polygon)
        return front - geometry.dot(point, lane.direction), False

    def _queues(self, confirmed: dict[int, Seen], marks: dict[int, Mark], still: dict[int, bool],
                lanes: dict[int, Lane | None], held: dict[str, bool]) -> tuple[set[int], dict[str, list[int]]]:
        """Tracks standing in a queue, and per lane the chain standing back from its head.

        Front to back along the lane: a standing track is queued when a standing track ahead of it
        (or level with it) is within the gap, or when it stands at its lane's stop line while the
        light holds the lane."""
        queued: set[int] = set()
        chains: dict[str, list[int]] = {}
        for lane in self.scene.lanes:
            standing = [tid for tid in confirmed if still[tid] and lanes[tid] is not None and lanes[tid].id == lane.id]
            along = {tid: geometry.dot(_anchor(marks[tid]), lane.direction) for tid in standing}
            standing.sort(key=lambda tid: (-along[tid], tid))
            chain: list[int] = []
            for i, tid in enumerate(standing):
                h = _height(marks[tid])
                gap = self.queue_gap * h
                behind = any(along[other] - along[tid] <= self.queue_gap * max(h, _height(marks[other]))
                             for other in standing[:i]) or self._blocked(lane, marks[tid])
                head, is_stop_line = self._head_distance(lane, _anchor(marks[tid]))
                at_head = -gap <= head <= gap
                if behind or (at_head and is_stop_line and held[lane.id]):
                    queued.add(tid)
                if (at_head and not chain) or any(along[other] - along[tid] <= self.queue_gap * max(h, _height(marks[other]))
                                                  for other in chain):
                    chain.append(tid)
            chains[lane.id] = chain
        return queued, chains

    def _remember_standing(self, t: float, boxes: list[Box]) -> None:
        kept = [obj for obj in self.state.standing if obj[1] >= t - 2 * self.still_window_s]
        for box in boxes:
            match = next((obj for obj in kept if _iou(box, obj[2:6]) >= STANDING_IOU), None)
            if match is not None:
                match[1] = t
            else:
                kept.append([t, t, *box])
        self.state.standing = kept

    def _blocked(self, lane: Lane, mark: Mark) -> bool:
        """A box ahead of this one in its lane, within the queue gap, has stood still for the still window."""
        box = mark[3:7]
        point = _anchor(mark)
        h = _height(mark)
        for obj in self.state.standing:
            if obj[1] - obj[0] < self.still_window_s - 1e-6 or obj[1] < mark[0] - self.still_window_s:
                continue
            if _iou(box, obj[2:6]) >= STANDING_IOU:
                continue  # itself
            other = ((obj[2] + obj[4]) / 2, obj[5])
            if not geometry.point_in_polygon(other, lane.polygon):
                continue
            ahead = geometry.dot((other[0] - point[0], other[1] - point[1]), lane.direction)
            if 0 <= ahead <= self.queue_gap * max(h, obj[5] - obj[3]):
                return True
        return False

    def _near(self, incident: Incident, mark: Mark) -> bool:
        last = incident.last or incident.detected
        return math.dist(_anchor(last), _anchor(mark)) <= max(_size(last), _size(mark))

    def _adopt(self, fresh: list[int], marks: dict[int, Mark], confirmed: dict[int, Seen]) -> list[IncidentDraft]:
        """A new track where a lost one's incident was (within linger_s) is the same road user
        under a new id: it takes the incident over, nothing is published."""
        for tid in fresh:
            track = self.state.tracks[tid]
            for incident in self.state.incidents:
                if incident.lost_since is None:
                    continue
                person = incident.type == "pedestrian_on_carriageway"
                if (track.kind == "person") != person or not self._near(incident, marks[tid]):
                    continue
                incident.track_ids.append(tid)
                incident.lost_since = None
                incident.last = marks[tid]
                break
        return []

    def _open(self, incident_type: str, element: str, tid: int, marks: dict[int, Mark]) -> Incident | None:
        """The open incident of this type and element that this track belongs to (its own, or one
        of another track at the same place: the same road user boxed twice)."""
        for incident in self.state.incidents:
            if incident.type != incident_type or incident.element != element:
                continue
            if tid in incident.track_ids:
                return incident
            if incident.lost_since is None and incident.last is not None and self._near(incident, marks[tid]) \
                    and incident.track_ids[-1] not in marks:
                incident.track_ids.append(tid)
                return incident
        return None

    def _bound(self, tid: int) -> list[Incident]:
        return [i for i in self.state.incidents if i.track_ids and i.track_ids[-1] == tid]

    def _confirmed(self, confirmed, *, people: bool) -> list:
        """(track id, sighting, track) of the confirmed tracks of people, or of vehicles."""
        return [(tid, s, self.state.tracks[tid]) for tid, s in confirmed.items() if (s.kind == "person") == people]

    # --- stopped vehicle --------------------------------------------------------------------------
    def _stopped(self, t: float, confirmed, marks, still, lanes, queued) -> list[IncidentDraft]:
        cfg = self.config.stopped_vehicle
        assert cfg is not None
        out = []
        for tid, s, track in self._confirmed(confirmed, people=False):
            lane = lanes[tid]
            live = lane is not None and lane.id in cfg.lanes and _height(marks[tid]) >= cfg.min_height_px
            if not (still[tid] and live and tid not in queued):
                track.stopped_since = None
                continue
            if track.stopped_since is None:
                track.stopped_since = track.samples[0]  # standing since the start of the still window
            if t - track.stopped_since[0] < cfg.after_s or self._open("stopped_vehicle", lane.id, tid, marks):
                continue
            incident = self._new("stopped_vehicle", lane.id, track.stopped_since, marks[tid], [tid], track.key, s.kind)
            params = {"after_s": cfg.after_s, "still_heights": cfg.still_heights, "still_window_s": cfg.still_window_s,
                      "queue_gap_heights": cfg.queue_gap_heights}
            out.append(self._detected(incident, lane=lane.id, parameters=params, polygon=lane.polygon,
                                      description=f"STOPPED VEHICLE: {s.kind} standing "
                                                  f"{t - incident.started[0]:.1f} s in lane {lane.id} (after {cfg.after_s:g} s)"))
        return out

    # --- pedestrians ------------------------------------------------------------------------------
    def _pedestrians(self, t: float, confirmed, marks, still, lanes, queued) -> list[IncidentDraft]:
        cfg = self.config.pedestrian_on_carriageway
        assert cfg is not None
        out = []
        vehicles = [marks[tid][3:7] for tid, s in confirmed.items() if s.kind != "person"]
        for tid, s, track in self._confirmed(confirmed, people=True):
            lane = lanes[tid]
            speed = self._speed(track)
            if lane is not None and speed is not None and len(track.samples) >= 2:
                first, last = _anchor(track.samples[0]), _anchor(track.samples[-1])
                way = (last[0] - first[0], last[1] - first[1])
                if (math.hypot(*way) > 0 and geometry.dot(geometry.unit(*way), lane.direction) >= RIDER_COS
                        and speed >= RIDER_SPEED_HEIGHTS_S * _height(marks[tid])):
                    track.rider_like = True
            box = tuple(marks[tid][3:7])
            on_vehicle = any(_ioa(box, v) >= ON_VEHICLE_IOA for v in vehicles)  # type: ignore[arg-type]
            judged = not track.rider_like and not on_vehicle and not (still[tid] and tid in queued)
            point = _anchor(marks[tid])
            for zone in cfg.zones:
                inside = geometry.point_in_polygon(point, zone.polygon)
                if not (judged and inside):
                    track.zone_since.pop(zone.id, None)
                    continue
                since = track.zone_since.setdefault(zone.id, marks[tid])
                if t - since[0] < cfg.after_s or self._open("pedestrian_on_carriageway", zone.id, tid, marks):
                    continue
                incident = self._new("pedestrian_on_carriageway", zone.id, since, marks[tid], [tid], track.key, None)
                out.append(self._detected(incident, zone=zone.id, lane=lane.id if lane else None,
                                          parameters={"after_s": cfg.after_s}, polygon=zone.polygon,
                                          description=f"PEDESTRIAN ON CARRIAGEWAY: {t - since[0]:.1f} s in {zone.id} "
                                                      f"(after {cfg.after_s:g} s)"))
        return out

    # --- wrong way --------------------------------------------------------------------------------
    def _wrong_way(self, t: float, confirmed, marks) -> list[IncidentDraft]:
        cfg = self.config.wrong_way_driving
        assert cfg is not None
        out = []
        for tid, s, track in self._confirmed(confirmed, people=False):
            if len(track.samples) < 2:
                continue
            previous, current = track.samples[-2], track.samples[-1]
            p0, p1 = _anchor(previous), _anchor(current)
            h = _height(current)
            step = (p1[0] - p0[0], p1[1] - p0[1])
            dt = max(current[0] - previous[0], 1e-6)
            for segment in cfg.segments:
                if not geometry.point_in_polygon(p1, segment.polygon):
                    track.against.pop(segment.id, None)
                    continue
                if math.hypot(*step) / dt < cfg.min_speed_heights_s * h:
                    continue  # too slow to say which way it goes: the run stays as it is
                if geometry.dot(geometry.unit(*step), segment.direction) > cfg.cos:
                    track.against.pop(segment.id, None)
                    continue
                start = track.against.setdefault(segment.id, previous)
                s0 = _anchor(start)
                covered = -geometry.dot((p1[0] - s0[0], p1[1] - s0[1]), segment.direction)
                if covered < cfg.min_distance_heights * h or self._open("wrong_way_driving", segment.id, tid, marks):
                    continue
                incident = self._new("wrong_way_driving", segment.id, start, current, [tid], track.key, s.kind)
                lane = self.scene.lane_at(p1)
                out.append(self._detected(incident, zone=segment.id, lane=lane.id if lane else None,
                                          parameters={"min_distance_heights": cfg.min_distance_heights, "cos": cfg.cos,
                                                      "covered_px": round(covered, 1)},
                                          polygon=segment.polygon,
                                          description=f"WRONG WAY: {s.kind} {covered:.0f} px against {segment.id}"))
        return out

    # --- ending -------------------------------------------------------------------------------------
    def _ending(self, t: float, marks: dict[int, Mark]) -> list[IncidentDraft]:
        """Incidents whose condition has been absent long enough, or whose track was lost for good."""
        out = []
        keep = []
        for incident in self.state.incidents:
            tid = incident.track_ids[-1]
            if incident.lost_since is not None:
                if t - incident.lost_since >= self.config.linger_s:
                    out.append(self._cleared(incident, incident.lost_since, "track_lost"))
                    continue
                keep.append(incident)
                continue
            if tid in marks:
                incident.last = marks[tid]
                track = self.state.tracks[tid]
                holds, clear_after = self._holds(incident, track)
                if holds:
                    incident.ending_since = None
                elif incident.ending_since is None:
                    incident.ending_since = t
                if incident.ending_since is not None and t - incident.ending_since >= clear_after:
                    out.append(self._cleared(incident, incident.ending_since, "resolved"))
                    continue
            keep.append(incident)
        self.state.incidents = keep
        return out

    def _holds(self, incident: Incident, track: TrackState) -> tuple[bool, float]:
        point = _anchor(track.samples[-1])
        if incident.type == "stopped_vehicle":
            cfg = self.config.stopped_vehicle
            return self._still(track) or len(track.samples) < 2 or \
                track.samples[-1][0] - track.samples[0][0] < self.still_window_s - 1e-6, cfg.clear_after_s  # type: ignore[union-attr]
        if incident.type == "pedestrian_on_carriageway":
            cfg = self.config.pedestrian_on_carriageway
            zone = next(z for z in cfg.zones if z.id == incident.element)  # type: ignore[union-attr]
            return track.kind == "person" and geometry.point_in_polygon(point, zone.polygon), cfg.clear_after_s  # type: ignore[union-attr]
        cfg = self.config.wrong_way_driving
        segment = next(s for s in cfg.segments if s.id == incident.element)  # type: ignore[union-attr]
        inside = geometry.point_in_polygon(point, segment.polygon)
        going_on = segment.id in track.against or self._still(track)
        return inside and going_on, cfg.clear_after_s  # type: ignore[union-attr]

    # --- congestion ---------------------------------------------------------------------------------
    def _mask(self, lane: Lane) -> np.ndarray:
        mask = self._masks.get(lane.id)
        if mask is None:
            width, height = self.scene.frame_size
            mask = np.zeros((max(1, int(height * MASK_SCALE)), max(1, int(width * MASK_SCALE))), np.uint8)
            points = np.array([[x * MASK_SCALE, y * MASK_SCALE] for x, y in lane.polygon], np.int32)
            cv2.fillPoly(mask, [points], 1)
            self._masks[lane.id] = mask
        return mask

    def _congestion(self, t, stream_seq, frame_seq, confirmed, marks, still, lanes, held, chains) -> list[IncidentDraft]:
        cfg = self.config.congestion
        assert cfg is not None
        out = []
        for lane in self.scene.lanes:
            if lane.id not in cfg.lanes:
                continue
            state = self.state.lanes.setdefault(lane.id, LaneState())
            if held[lane.id]:
                continue  # a queue at a held light is not congestion: not measured
            members = [tid for tid, s in confirmed.items()
                       if s.kind != "person" and lanes[tid] is not None and lanes[tid].id == lane.id]
            mask = self._mask(lane)
            covered = np.zeros_like(mask)
            for tid in members:
                x1, y1, x2, y2 = (int(round(v * MASK_SCALE)) for v in marks[tid][3:7])
                covered[max(0, y1):max(0, y2) + 1, max(0, x1):max(0, x2) + 1] = 1
            occupancy = float(np.count_nonzero(covered & mask)) / max(1, int(np.count_nonzero(mask)))
            queue = sum(1 for tid in chains.get(lane.id, []) if confirmed[tid].kind != "person")
            speeds = [v for tid in members if (v := self._speed(self.state.tracks[tid])) is not None]
            speed = sum(speeds) / len(speeds) if speeds else -1.0
            if speed >= 0 and cfg.metres_per_px is not None:
                speed = speed * cfg.metres_per_px * 3.6
            state.samples.append([t, occupancy, float(queue), float(len(members)), speed])
            while state.samples and state.samples[0][0] < t - cfg.window_s:
                state.samples.pop(0)
            if t - state.samples[0][0] < cfg.window_s / 2 - 1e-6:
                continue  # not measured long enough yet
            n = len(state.samples)
            moving = [s[4] for s in state.samples if s[4] >= 0]
            state.measures = [sum(s[1] for s in state.samples) / n, sum(s[2] for s in state.samples) / n,
                              sum(s[3] for s in state.samples) / n, sum(moving) / len(moving) if moving else -1.0]
            raw = self._level(cfg, state.measures, state.level)
            mark = [t, float(stream_seq), float(frame_seq), 0.0, 0.0, 0.0, 0.0]
            if raw == state.level:
                state.candidate = raw
            else:
                if state.candidate != raw:
                    state.candidate, state.candidate_since = raw, t
                if t - state.candidate_since >= cfg.hold_s:
                    state.level = raw
            out += self._congestion_incident(cfg, lane, state, mark)
        return out

    def _level(self, cfg: Congestion, measures: list[float], current: str) -> str:
        occupancy, queue, _, speed = measures
        level = "free"
        for name, th in cfg.levels.items():
            relax = cfg.hysteresis if LEVELS.index(name) <= LEVELS.index(current) else 0.0
            dense = occupancy >= th.occupancy * (1 - relax) or queue >= th.queue_vehicles * (1 - relax)
            slow = speed < 0 or speed <= th.max_speed * (1 + relax)
            if dense and slow:
                level = name
        return level

    def _congestion_incident(self, cfg: Congestion, lane: Lane, state: LaneState, mark: Mark) -> list[IncidentDraft]:
        t = mark[0]
        reported = LEVELS.index(state.level) >= LEVELS.index(cfg.report_level)
        incident = state.incident
        if reported:
            state.below_since = None
            if state.reported_since is None:
                state.reported_since = mark
            if incident is None and t - state.reported_since[0] >= cfg.after_s:
                incident = state.incident = self._new("congestion", lane.id, state.reported_since, mark, [],
                                                      f"{state.reported_since[0]:.3f}", None, bind=False)
                incident.level = state.level
                th = cfg.thresholds(state.level)
                params: dict[str, str | float] = {"after_s": cfg.after_s, "report_level": cfg.report_level,
                                                  "window_s": cfg.window_s, "hysteresis": cfg.hysteresis}
                for name, level in cfg.levels.items():
                    params.update({f"{name}_occupancy": level.occupancy, f"{name}_queue_vehicles": level.queue_vehicles,
                                   f"{name}_max_speed": level.max_speed})
                return [self._detected(incident, lane=lane.id, traffic=self._traffic(cfg, lane, state), parameters=params,
                                       polygon=lane.polygon, box_roles=False,
                                       description=f"CONGESTION: lane {lane.id} {state.level} for {t - state.reported_since[0]:.0f} s "
                                                   f"(occupancy {state.measures[0]:.2f}, queue {state.measures[1]:.0f})"
                                                   + (f", threshold occupancy {th.occupancy:g}" if th else ""))]
            if incident is not None and incident.level != state.level:
                change = f"level {incident.level} -> {state.level}"
                incident.level = state.level
                event = IncidentUpdated(
                    id=ids.event_id("incident-updated", incident.incident_id, f"{t:.3f}", state.level),
                    incident_id=incident.incident_id, camera_id=self.camera_id, occurred_at=_at(t), type="congestion",
                    severity=LEVEL_SEVERITY[state.level], duration_s=round(t - incident.started[0], 3),  # type: ignore[arg-type]
                    traffic=self._traffic(cfg, lane, state), change=change)
                return [IncidentDraft("updated", event)]
            return []
        state.reported_since = None
        if incident is None:
            return []
        if state.below_since is None:
            state.below_since = t
        if t - state.below_since >= cfg.clear_after_s:
            state.incident = None
            return [self._cleared(incident, state.below_since, "resolved")]
        return []

    def _traffic(self, cfg: Congestion, lane: Lane, state: LaneState) -> LaneTraffic:
        occupancy, queue, vehicles, speed = state.measures
        return LaneTraffic(lane=lane.id, occupancy=round(min(1.0, occupancy), 3), queue_vehicles=int(round(queue)),
                           vehicles=int(round(vehicles)), mean_speed=round(speed, 1) if speed >= 0 else None,
                           speed_unit="km/h" if cfg.metres_per_px is not None else "px/s",
                           level=state.level)  # type: ignore[arg-type]

    # --- events -------------------------------------------------------------------------------------
    def _new(self, incident_type: str, element: str, started: Mark, detected: Mark, track_ids: list[int], key: str,
             vehicle_class: str | None, *, bind: bool = True) -> Incident:
        incident = Incident(incident_id=ids.event_id("incident", self.camera_id, incident_type, element, key),
                            type=incident_type, element=element, started=list(started), detected=list(detected),
                            track_ids=list(track_ids), vehicle_class=vehicle_class, last=list(detected))
        if bind:
            self.state.incidents.append(incident)
        return incident

    def _detected(self, incident: Incident, *, lane: str | None = None, zone: str | None = None,
                  traffic: LaneTraffic | None = None, parameters: dict, polygon=(), box_roles: bool = True,
                  description: str = "") -> IncidentDraft:
        assert self.location is not None  # the scene reader requires a location with incidents
        started, detected = incident.started, incident.detected
        severity = LEVEL_SEVERITY[incident.level] if incident.level else SEVERITY[incident.type]
        event = IncidentDetected(
            id=ids.event_id("incident-detected", incident.incident_id), incident_id=incident.incident_id,
            camera_id=self.camera_id, occurred_at=_at(started[0]), detected_at=_at(detected[0]),
            type=incident.type, severity=severity, location=self.location, lane=lane, zone=zone,  # type: ignore[arg-type]
            track_ids=tuple(incident.track_ids), vehicle_class=incident.vehicle_class,
            duration_s=round(detected[0] - started[0], 3), traffic=traffic, parameters=parameters)
        frames = (("start", started), ("at", detected)) if started[1] != detected[1] else (("at", detected),)
        return IncidentDraft("detected", event, frames, box_roles, tuple(polygon), description)

    def _cleared(self, incident: Incident, t: float, reason: str) -> IncidentDraft:
        t = max(t, incident.started[0])
        return IncidentDraft("cleared", IncidentCleared(
            id=ids.event_id("incident-cleared", incident.incident_id), incident_id=incident.incident_id,
            camera_id=self.camera_id, occurred_at=_at(t), type=incident.type, started_at=_at(incident.started[0]),  # type: ignore[arg-type]
            duration_s=round(t - incident.started[0], 3), reason=reason))  # type: ignore[arg-type]
