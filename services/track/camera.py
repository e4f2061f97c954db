"""One camera's tracking, as a plain object: detections in, violation drafts and counts out.

No I/O here (main.py fetches frames, stores evidence and publishes), so the whole chain from a
DetectionMade to a judged violation can be tested on scripted or recorded detections.

A violation is not published the moment its rule fires: the evidence wants a frame from after
the moment too, so the draft waits until the track has been seen `after_s` later, or ends.

A frame marked as a discontinuity (the stream restarted, reconnected, or a file looped) ends
everything that spans time: tracks are closed (their pending violations finished with the
frames there are), count windows are closed, and the phases read off the image are forgotten,
so that a red phase's age is never carried over a gap.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from proto import ids
from proto.v1.common import PlateText
from proto.v1.detection import DetectionMade
from proto.v1.telemetry import VehiclesCounted
from services.track import counts, signals
from services.track.counts import CountWindows
from services.track.events import EmittedEvents, EventParams
from services.track.incidents import IncidentDetector, IncidentDraft, Seen
from services.track.plates import PlateSighting, PlateVotes
from services.track.riders import TWO_WHEELER, LoneRiderParams, PersonVerdict
from services.track.rules import Crossing, Finding, Observation, RuleState, evaluate, resolve
from services.track.scenes import Scene
from services.track.tracker import Detection, Track, Tracker, TrackerParams

HISTORY = 256  # observations kept per track: about a minute at 5 frames/s


@dataclass
class ViolationDraft:
    id: str
    camera_id: str
    finding: Finding
    track_id: int
    vehicle_class: str
    frames: list[tuple[str, Observation]]  # ("before" | "at" | "after", observation)
    plate: PlateText | None = None
    plate_sighting: PlateSighting | None = None

    @property
    def occurred_at(self) -> datetime:
        return datetime.fromtimestamp(self.finding.t, timezone.utc)


@dataclass(frozen=True)
class Counted:
    """One vehicle counted at a count line."""

    t: float  # when its path met the line
    line: str
    direction: str
    point: tuple[float, float]  # where (bottom centre)
    track_id: int
    vehicle_class: str = ""


@dataclass
class TrackInfo:
    key: str  # first capture time and id: unique across restarts of the service
    observations: deque[Observation] = field(default_factory=lambda: deque(maxlen=HISTORY))
    rules: RuleState = field(default_factory=RuleState)
    plates: PlateVotes = field(default_factory=PlateVotes)
    counted: set[str] = field(default_factory=set)  # count lines this vehicle was counted at (or is to be)
    crossings: list[Counted] = field(default_factory=list)  # to count once the track is confirmed
    pending: list[Finding] = field(default_factory=list)
    # A track seen only as `person` is judged by no rule until it shows itself a two-wheeler
    # (riders.py); then its whole history is judged at once.
    judged: bool = True
    person: PersonVerdict | None = None
    crossings_out: int = 0  # how many of rules.crossed were reported in a Step


@dataclass
class Step:
    drafts: list[ViolationDraft] = field(default_factory=list)
    counts: list[VehiclesCounted] = field(default_factory=list)
    detections: int = 0  # vehicle detections fed to the tracker
    tracks: int = 0  # live tracks after this frame
    unjudged: int = 0  # stop-line crossings whose signal phase was unknown
    crossings: list[tuple[int, str, Crossing]] = field(default_factory=list)  # (track id, class, crossing) of confirmed tracks
    signal_changes: list[tuple[str, float, str]] = field(default_factory=list)  # (head, since, phase) read off the image
    discontinuity: str | None = None  # this frame began a new stretch of the stream
    counted: list[Counted] = field(default_factory=list)  # vehicles counted at count lines in this step
    incidents: list[IncidentDraft] = field(default_factory=list)  # incident events (incidents.py)


class CameraTracker:
    def __init__(self, scene: Scene, *, classes: frozenset[str], params: TrackerParams = TrackerParams(),
                 before_s: float = 0.6, after_s: float = 0.6, count_window_s: float = 60.0,
                 riders: LoneRiderParams = LoneRiderParams(), events: EventParams = EventParams()) -> None:
        self.scene = scene
        self.camera_id = scene.camera
        self.classes = classes
        self.tracker = Tracker(params)
        self.min_hits = params.min_hits
        self.before_s = before_s
        self.after_s = after_s
        self.info: dict[int, TrackInfo] = {}
        self.signals = signals.SignalState()
        self.vision = {head.id: signals.VisionHead(head.lamps, head.layout, scene.signal.hold_s,
                                                   scene.signal.min_phase_s)
                       for head in (scene.signal.heads if scene.signal else ()) if head.region is not None}
        self.counts = CountWindows(scene.camera, count_window_s, lines=scene.count_lines)
        self.riders = riders
        self.events = EmittedEvents(events)
        self.duplicates = 0  # findings not emitted: the same event as a violation already emitted
        self.incidents = IncidentDetector(scene)

    # --- signals -------------------------------------------------------------------------------------
    @property
    def reads_signal_from_image(self) -> bool:
        return self.scene.signal is not None and self.scene.signal.source == "vision"

    def observe_signal_image(self, t: float, image: np.ndarray) -> list[tuple[str, float, str]]:
        """Read every head's lamps off a frame; returns the (head, since, phase) changes. A change
        is dated at the first frame the new lamp was read, which may be a few frames back."""
        assert self.scene.signal is not None
        sx = image.shape[1] / self.scene.frame_size[0]
        sy = image.shape[0] / self.scene.frame_size[1]
        changes = []
        for head in self.scene.signal.heads:
            if head.region is None:
                continue
            x1, y1, x2, y2 = head.region
            crop = image[int(round(y1 * sy)):int(round(y2 * sy)), int(round(x1 * sx)):int(round(x2 * sx))]
            for since, phase in self.vision[head.id].read(t, crop):
                if self.signals.observe(head.id, since, phase, "vision"):
                    changes.append((head.id, since, phase))
        return changes

    def observe_signal(self, head: str, t: float, phase: str) -> None:
        self.signals.observe(head, t, phase, "controller")

    # --- discontinuities -----------------------------------------------------------------------------
    def discontinuity(self, t: float, kind: str = "start") -> Step:
        """The stream broke before the frame at t: close tracks (finishing their pending violations),
        close the count windows, forget the phases read off the image."""
        step = Step(discontinuity=kind)
        step.drafts += self.finish()
        step.incidents += self.incidents.discontinuity(t)
        step.counts += self.counts.flush()
        for head in self.vision.values():
            head.reset()
        if self.vision:
            self.signals.gap(t, list(self.vision))
            step.signal_changes += [(head, t, "unknown") for head in self.vision]
        return step

    # --- detections ----------------------------------------------------------------------------------
    def process(self, event: DetectionMade, image: np.ndarray | None = None) -> Step:
        """Track one frame's detections; `image` (the decoded frame, any scale) is read for the
        signal heads when the scene reads them from the image."""
        t = event.frame.captured_at.timestamp()
        opening = self.discontinuity(t, event.frame.discontinuity) if event.frame.discontinuity else Step()
        if image is not None and self.reads_signal_from_image:
            opening.signal_changes += self.observe_signal_image(t, image)
        step = self._track(event, t)
        step.drafts = opening.drafts + step.drafts
        step.counts = opening.counts + step.counts
        step.unjudged += opening.unjudged
        step.signal_changes = opening.signal_changes  # the gap's unknown first, then what this frame shows
        step.counted = opening.counted + step.counted
        step.discontinuity = opening.discontinuity
        step.incidents = opening.incidents + step.incidents
        return step

    def _track(self, event: DetectionMade, t: float) -> Step:
        sx = self.scene.frame_size[0] / event.frame.width
        sy = self.scene.frame_size[1] / event.frame.height
        detections = [
            Detection((o.box.x1 * sx, o.box.y1 * sy, o.box.x2 * sx, o.box.y2 * sy), o.score, o.class_name, i,
                      getattr(o, "riders", 0))
            for i, o in enumerate(event.objects) if o.class_name in self.classes
        ]
        matched, finished = self.tracker.update(t, detections)
        for young, older in self.tracker.merged:
            self._merge(young, older)
        step = Step(detections=len(detections), tracks=len(self.tracker.tracks))
        by_object = {track.detection.index: track for track in matched if track.detection is not None}
        for plate in event.plates:
            track = by_object.get(plate.vehicle_index) if plate.vehicle_index is not None else None
            if track is not None:
                box = (plate.box.x1 * sx, plate.box.y1 * sy, plate.box.x2 * sx, plate.box.y2 * sy)
                self._info(track, t).plates.add(PlateSighting(plate.read, event.frame.stream_seq, box))
        self.counts.seen(t)
        seen: list[Seen] = []
        for track in matched:
            info = self._info(track, t)
            previous = info.observations[-1] if info.observations else None
            box = self.riders.with_hidden_bike(track.box) if track.person_only else track.box
            current = Observation(t, event.frame.stream_seq, event.frame.frame_seq, box, track.velocity)
            info.observations.append(current)
            self.events.seen(track.id, current)
            vehicle_class = self._vehicle_class(track, info, previous, current)
            seen.append(Seen(track.id, info.key, vehicle_class or "person", box if vehicle_class else track.box,
                             track.hits >= self.min_hits))
            if vehicle_class is None:
                continue  # a pedestrian (so far): no rule, no count
            # Judged from the second frame on (a vehicle may cross the line while its track is
            # young), but published only once the track is confirmed: a one-off false detection
            # must not become a case.
            before = info.rules.unjudged
            if info.judged:
                info.pending += evaluate(self.scene, info.rules, previous, current, vehicle_class, self.signals.at)
            else:
                info.judged = True  # just shown to be a vehicle: judge and count everything it did
                history = list(info.observations)
                info.pending += self._judge_history(info, history, None, vehicle_class)
                for earlier, later in zip(history, history[1:]):
                    self._crossings(info, track.id, earlier, later)
            step.unjudged += info.rules.unjudged - before
            if previous is not None:
                self._crossings(info, track.id, previous, current)
            if track.hits < self.min_hits:
                continue
            step.crossings += [(track.id, vehicle_class, c) for c in info.rules.crossed[info.crossings_out:]]
            info.crossings_out = len(info.rules.crossed)
            for crossed in info.crossings:
                self.counts.add(crossed.t, crossed.line, crossed.direction, vehicle_class)
                step.counted.append(dataclasses.replace(crossed, vehicle_class=vehicle_class))
            info.crossings.clear()
            step.drafts += self._ready(track, info, finished=False)
        for track in finished:
            info = self.info.pop(track.id, None)
            if info is not None and info.judged and track.hits >= self.min_hits:
                before = info.rules.unjudged
                step.drafts += self._ready(track, info, finished=True)
                step.unjudged += info.rules.unjudged - before
        ended = [track.id for track in finished] + [young for young, _ in self.tracker.merged]
        step.incidents = self.incidents.step(t, event.frame.stream_seq, event.frame.frame_seq, seen, ended,
                                             self.signals.at, [d.box for d in detections if d.class_name != "person"])
        step.counts = self.counts.close(t)
        return step

    def _crossings(self, info: TrackInfo, track_id: int, previous: Observation, current: Observation) -> None:
        """Count lines the path since the last observation crossed: each at most once per vehicle.
        Recorded at once (the track may be young); counted when the track is confirmed."""
        for count_line in self.scene.count_lines:
            if count_line.id in info.counted:
                continue
            found = counts.crossing(count_line.line, previous.anchor, previous.t, current.anchor, current.t)
            if found is None:
                continue
            info.counted.add(count_line.id)
            info.crossings.append(Counted(found.t, count_line.id, counts.direction_of(count_line, found), found.point,
                                          track_id))

    def flush_counts(self) -> list[VehiclesCounted]:
        """At shutdown or the end of a replay: close the open count windows with what they saw."""
        return self.counts.flush()

    def finish_incidents(self) -> list[IncidentDraft]:
        """At shutdown or the end of a replay: the open incidents, cleared (nothing more is known)."""
        return self.incidents.finish()

    def finish(self) -> list[ViolationDraft]:
        """At shutdown: every pending violation, with the frames there are."""
        drafts = []
        for track in self.tracker.finish_all():
            info = self.info.pop(track.id, None)
            if info is not None and info.judged and track.hits >= self.min_hits:
                drafts += self._ready(track, info, finished=True)
        return drafts

    def _info(self, track: Track, t: float) -> TrackInfo:
        info = self.info.get(track.id)
        if info is None:
            info = self.info[track.id] = TrackInfo(key=f"{t:.3f}-{track.id}", judged=not track.person_only)
        return info

    def _vehicle_class(self, track: Track, info: TrackInfo, previous: Observation | None,
                       current: Observation) -> str | None:
        """The class the rules judge the track as; None for a person not (yet) shown a rider."""
        if not track.person_only:
            return track.class_name
        info.person = info.person or PersonVerdict()
        return TWO_WHEELER if info.person.step(self.scene, current, self.riders) else None

    def _class_of(self, track: Track, info: TrackInfo) -> str:
        if track.person_only and info.person is not None and info.person.two_wheeler:
            return TWO_WHEELER
        return track.class_name

    def _judge_history(self, info: TrackInfo, observations: list[Observation], previous: Observation | None,
                       vehicle_class: str) -> list[Finding]:
        found = []
        for current in observations:
            found += evaluate(self.scene, info.rules, previous, current, vehicle_class, self.signals.at)
            previous = current
        return found

    def _merge(self, young_id: int, older_id: int) -> None:
        """The tracker folded a young track into an older, lost one: its frames continue the
        older track's path, judged from where the older one was last seen (over the gap)."""
        young = self.info.pop(young_id, None)
        older = self.info.get(older_id)
        if young is None or older is None:
            if young is not None:
                self.info[older_id] = young
            return
        older.plates.merge(young.plates)
        track = next(tr for tr in self.tracker.tracks if tr.id == older_id)
        previous = older.observations[-1] if older.observations else None
        if older.judged:
            # The young track's own findings are dropped: judged again here as the older track,
            # and its path counted at the count lines the older one had not crossed yet.
            older.pending += self._judge_history(older, list(young.observations), previous, self._class_of(track, older))
            path = ([previous] if previous is not None else []) + list(young.observations)
            for earlier, later in zip(path, path[1:]):
                self._crossings(older, older_id, earlier, later)
        older.observations.extend(young.observations)

    def _ready(self, track: Track, info: TrackInfo, *, finished: bool) -> list[ViolationDraft]:
        if finished:
            info.pending += resolve(self.scene, info.rules, self.signals.at,
                                    info.observations[-1] if info.observations else None)
        if not info.pending:
            return []
        last_t = info.observations[-1].t
        ready = [f for f in info.pending if finished or last_t >= f.t + self.after_s]
        info.pending = [f for f in info.pending if f not in ready]
        drafts = []
        for finding in ready:
            plate = info.plates.best()
            text = plate.text if plate is not None and plate.format_valid else None
            if self.events.duplicate_of(finding, track.id, info.observations[0], text) is not None:
                self.duplicates += 1
                continue
            self.events.add(finding, track.id, text, info.observations[-1])
            drafts.append(self._draft(track, info, finding))
        return drafts

    def _draft(self, track: Track, info: TrackInfo, finding: Finding) -> ViolationDraft:
        at = finding.observation
        frames: list[tuple[str, Observation]] = []
        earlier = [o for o in info.observations if o.t < at.t]
        later = [o for o in info.observations if o.t > at.t]
        if earlier:
            frames.append(("before", min(earlier, key=lambda o: abs(o.t - (finding.t - self.before_s)))))
        frames.append(("at", at))
        if later:
            frames.append(("after", min(later, key=lambda o: abs(o.t - (finding.t + self.after_s)))))
        return ViolationDraft(
            id=ids.event_id("violation", self.camera_id, finding.type, finding.element, info.key),
            camera_id=self.camera_id,
            finding=finding,
            track_id=track.id,
            vehicle_class=self._class_of(track, info),
            frames=frames,
            plate=info.plates.best(),
            plate_sighting=info.plates.best_sighting,
        )
