"""One pass of a video file through the services' detect and track code; events out.

Events are plain dicts (the JSON lines of `roadwatch replay --json`), yielded in the order the
services would know them: a crossing once its track is confirmed (a one-off false detection
must not cross anything), a violation when the track service would publish it, a signal phase
when it ends, the summary last. Times are seconds of presentation time from the clip's start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from services.replay import stack
from services.track.camera import CameraTracker, ViolationDraft
from services.track.incidents import IncidentDraft
from services.track.scenes import Scene

Event = dict[str, object]
# Called with every processed frame: (frame, image, tracker, DetectionMade); for --annotate and eval.
FrameHook = Callable[[stack.VideoFrame, np.ndarray, CameraTracker, object], None]


@dataclass
class Totals:
    frames_read: int = 0
    frames_processed: int = 0
    detections: int = 0  # vehicle detections fed to the tracker
    objects: int = 0  # every object detect published (riders as person included)
    detect_cpu_s: float = 0.0
    track_cpu_s: float = 0.0
    wall_s: float = 0.0
    tracks: set[int] = field(default_factory=set)  # confirmed track ids
    unjudged: int = 0


def _r(value: float, digits: int = 3) -> float:
    return round(float(value), digits)


class Replay:
    def __init__(self, scene: Scene, detector: stack.Detector, engine: CameraTracker, *, fps: float,
                 epoch: datetime = stack.DEFAULT_EPOCH, align_to_epoch: bool = False,
                 on_frame: FrameHook | None = None, breaks: tuple[int, ...] = ()) -> None:
        self.scene = scene
        # Decode indexes where the recording was cut (an edited clip): the first frame processed
        # at or after each is marked a discontinuity, as ingest marks a reconnect.
        self.breaks = sorted(breaks)
        self.detector = detector
        self.engine = engine
        self.fps = fps
        self.epoch = epoch
        self.base = epoch.timestamp()
        self.align = align_to_epoch
        self.on_frame = on_frame
        self.totals = Totals()
        self._watch = stack.CrossingWatch()
        self._crossed: dict[tuple[int, str], float] = {}  # (track, line) -> x where it crossed
        self._emitted = {"crossing": 0, "violation": 0, "incident": 0}
        self._signal: dict[str, tuple[str, float, int]] = {}  # head -> (state, since t, since frame)
        self._last: tuple[float, int] = (0.0, 0)

    def events(self, video: str) -> Iterator[Event]:
        """Raises stack.SourceError for a file that cannot be read."""
        frames = stack.Sampled(video, self.fps, camera_id=self.scene.camera,
                               origin=self.base if self.align else 0.0)
        started = time.perf_counter()
        for seq, frame in enumerate(frames, start=1):
            yield from self._frame(frame, seq)
        t, index = self._last
        drafts, counts = stack.finish(self.engine)
        yield from self._drafts(drafts)
        yield from self._counts(counts)
        yield from self._incidents(stack.finish_incidents(self.engine), index)
        for head, (state, since, since_frame) in sorted(self._signal.items()):
            yield self._phase(head, state, since, since_frame, t, index)
        totals = self.totals
        totals.frames_read = frames.read
        totals.wall_s = time.perf_counter() - started
        yield self.summary()

    def _frame(self, frame: stack.VideoFrame, seq: int) -> Iterator[Event]:
        totals = self.totals
        captured_at = stack.at(self.epoch, frame.pts)
        t = captured_at.timestamp()
        cpu = time.process_time()
        cut = None
        if self.breaks and frame.index >= self.breaks[0]:
            cut = "cut"
            self.breaks = [b for b in self.breaks if b > frame.index]
        event, image = stack.detect(self.detector, frame, camera_id=self.scene.camera, captured_at=captured_at,
                                    stream_seq=seq, discontinuity=cut)
        detect_cpu = time.process_time() - cpu
        cpu = time.process_time()
        step, changes = stack.track(self.engine, event, frame.jpeg, t)
        for head, since, state in changes:
            previous = self._signal.get(head)
            if previous is not None:
                yield self._phase(head, previous[0], previous[1], previous[2], since, frame.index)
            self._signal[head] = (state, since, frame.index)
        crossings = self._watch.step(self.engine, step, t)
        totals.track_cpu_s += time.process_time() - cpu
        totals.detect_cpu_s += detect_cpu
        totals.frames_processed += 1
        totals.detections += step.detections
        totals.objects += len(event.objects)
        totals.unjudged += step.unjudged
        self._last = (t, frame.index)
        totals.tracks |= stack.confirmed_tracks(self.engine)
        for crossing in crossings:
            self._crossed[(crossing.track_id, crossing.line)] = crossing.x
            yield self._crossing(crossing)
        yield from self._drafts(step.drafts)
        yield from self._counts(step.counts)
        yield from self._incidents(step.incidents, frame.index)
        if self.on_frame is not None:
            self.on_frame(frame, image, self.engine, event)

    def _counts(self, windows) -> Iterator[Event]:
        for counted in windows:
            for count in counted.counts:
                yield {"kind": "count", "line": getattr(count, "line", None) or count.lane,
                       "direction": getattr(count, "direction", None) or "both",
                       "class": count.vehicle_class, "n": count.count,
                       "window_start_t": _r(counted.window_start.timestamp() - self.base),
                       "window_s": counted.window_s}

    def _seconds(self, t: float) -> float:
        return _r(t - self.base)

    def _crossing(self, crossing: stack.Crossing) -> Event:
        self._emitted["crossing"] += 1
        return {"kind": "crossing", "line": crossing.line, "t": self._seconds(crossing.t), "frame": crossing.frame,
                "class": crossing.vehicle_class, "track": crossing.track_id, "x": _r(crossing.x, 1)}

    def _drafts(self, drafts: list[ViolationDraft]) -> Iterator[Event]:
        for draft in drafts:
            finding = draft.finding
            at = finding.observation
            self.totals.tracks.add(draft.track_id)
            self._emitted["violation"] += 1
            # Where the ground point crossed the stop line (red light), else where the track was.
            x = self._crossed.get((draft.track_id, finding.element), at.anchor[0]) if finding.type == "red_light" \
                else at.anchor[0]
            yield {"kind": "violation", "type": finding.type, "t": self._seconds(finding.t), "frame": at.frame_seq,
                   "track": draft.track_id, "class": draft.vehicle_class,
                   "plate": draft.plate.text if draft.plate is not None else None,
                   "measured": {"value": finding.value, "unit": finding.unit, "limit": finding.limit,
                                "phase": finding.phase},
                   "element": finding.element, "x": _r(x, 1),
                   "box": [_r(v, 1) for v in at.box], "id": draft.id,
                   # The frames the track service would store as evidence, and the track's box in each.
                   "evidence": [{"role": role, "frame": o.frame_seq, "t": self._seconds(o.t),
                                 "box": [_r(v, 1) for v in o.box]} for role, o in draft.frames]}

    def _incidents(self, drafts: list[IncidentDraft], index: int) -> Iterator[Event]:
        """Incident events as the track service would publish them (`detected` with the frames it
        would store as evidence, `updated`, `cleared`)."""
        for draft in drafts:
            e = draft.event
            out: Event = {"kind": "incident", "action": draft.action, "type": e.type, "incident_id": e.incident_id,
                          "id": e.id}
            if draft.action == "detected":
                self._emitted["incident"] += 1
                at = dict(draft.frames)["at"]
                out.update({"t": self._seconds(e.detected_at.timestamp()),  # type: ignore[union-attr]
                            "frame": int(at[2]), "started_frame": int(draft.frames[0][1][2]),
                            "started_t": self._seconds(e.occurred_at.timestamp()),
                            "lane": e.lane, "zone": e.zone, "tracks": list(e.track_ids),  # type: ignore[union-attr]
                            "class": e.vehicle_class, "duration_s": e.duration_s,  # type: ignore[union-attr]
                            "box": [_r(v, 1) for v in at[3:7]] if draft.box_roles else None,
                            "level": e.traffic.level if e.traffic else None,  # type: ignore[union-attr]
                            "evidence": [{"role": role, "frame": int(m[2]), "t": self._seconds(m[0]),
                                          "box": [_r(v, 1) for v in m[3:7]] if draft.box_roles else None}
                                         for role, m in draft.frames]})
            elif draft.action == "updated":
                out.update({"t": self._seconds(e.occurred_at.timestamp()), "frame": index, "change": e.change,  # type: ignore[union-attr]
                            "level": e.traffic.level if e.traffic else None})  # type: ignore[union-attr]
            else:
                out.update({"t": self._seconds(e.occurred_at.timestamp()), "frame": index, "reason": e.reason,  # type: ignore[union-attr]
                            "started_t": self._seconds(e.started_at.timestamp()), "duration_s": e.duration_s})  # type: ignore[union-attr]
            yield out

    def _phase(self, head: str, state: str, since: float, since_frame: int, until: float, until_frame: int) -> Event:
        return {"kind": "signal", "head": head, "state": state, "from_t": self._seconds(since),
                "to_t": self._seconds(until), "from_frame": since_frame, "to_frame": until_frame}

    def summary(self) -> Event:
        totals = self.totals
        n = max(1, totals.frames_processed)
        return {"kind": "summary", "camera": self.scene.camera, "fps": self.fps,
                "frames_read": totals.frames_read, "frames_processed": totals.frames_processed,
                "detections": totals.detections, "objects": totals.objects, "tracks": len(totals.tracks),
                "crossings": self._emitted["crossing"], "violations": self._emitted["violation"],
                "incidents": self._emitted["incident"],
                "unjudged_crossings": totals.unjudged,
                "cpu_ms_per_frame": _r(1000 * (totals.detect_cpu_s + totals.track_cpu_s) / n, 1),
                "detect_cpu_ms_per_frame": _r(1000 * totals.detect_cpu_s / n, 1),
                "track_cpu_ms_per_frame": _r(1000 * totals.track_cpu_s / n, 1),
                "wall_s": _r(totals.wall_s, 2), "model": self.detector.model_name}
