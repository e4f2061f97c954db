"""One camera's worker: reorder, track, fetch evidence frames, store, publish.

The I/O around `camera.CameraTracker`. It subscribes to nothing (main.py does); it is handed
each DetectionMade and each controller phase. A violation that cannot be stored or published
(object store or NATS failing) stays in an outbox and is retried on the next tick, because the
detection that produced it has already been tracked and will not produce it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone

import msgspec
import numpy as np
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.object_store import ObjectStore

from proto import ids, subjects
from proto.v1.common import Box, EvidenceRef
from proto.v1.detection import DetectionMade
from proto.v1.frame import DISCONTINUITIES, HEADER_CAMERA_ID, HEADER_CAPTURED_AT, HEADER_DISCONTINUITY
from proto.v1.telemetry import SignalPhase
from proto.v1.violation import ViolationDetected
from services.runtime import bus
from services.track import checkpoint, evidence, incident_evidence, metrics
from services.track.camera import CameraTracker, ViolationDraft
from services.track.incidents import IncidentDraft
from services.track.reorder import ReorderBuffer

log = logging.getLogger("track")
SERVICE = "track"
FRAME_READ_TIMEOUT_S = 5.0  # a frame read from FRAMES (nats-py's own default for a JetStream request)


class CameraWorker:
    def __init__(self, js: JetStreamContext, store: ObjectStore, engine: CameraTracker, *, bucket: str,
                 reorder_window_s: float, frames_stream: str = "FRAMES") -> None:
        self.js = js
        self.store = store
        self.engine = engine
        self.camera_id = engine.camera_id
        self.bucket = bucket
        self.frames_stream = frames_stream
        self.buffer: ReorderBuffer[DetectionMade] = ReorderBuffer(reorder_window_s)
        self.lock = asyncio.Lock()
        self.outbox: list[ViolationDraft] = []
        self.published: list[ViolationDetected] = []  # the last few, for tests and /cameras
        # Incident events in the order they happened: published strictly in that order (a
        # `cleared` never before its `detected`), retried from the first that failed.
        self.incident_outbox: list[IncidentDraft] = []
        self.late = 0
        self.last_input = time.monotonic()
        # A stream silent for a whole count window (a clip played once, a camera gone) gets its
        # open count window published with the time it covered, instead of never.
        self.idle_flush_s = engine.counts.window_s
        # Checkpoints (checkpoint.py, recovery.py): the bucket (None: off), how often, and where
        # the state stands in DETECTIONS.
        self.kv = None
        self.checkpoint_every = 1
        self.fingerprint = ""
        self.stream_seq = 0  # the last DETECTIONS sequence taken in (tracked or buffered)
        self.replayed_through = 0  # redeliveries up to this sequence were tracked by the recovery
        self.since_checkpoint = 0  # detections taken in since the last checkpoint

    # --- input -------------------------------------------------------------------------------------
    async def handle(self, event: DetectionMade, msg: Msg | None = None) -> None:
        stream_seq = None
        if msg is not None:
            try:
                stream_seq = msg.metadata.sequence.stream
            except nats.errors.NotJSMessageError:  # a plain subscription (tests)
                pass
        await self.take(event, stream_seq)

    async def take(self, event: DetectionMade, stream_seq: int | None) -> None:
        """One detection (at this DETECTIONS sequence, when known)."""
        if event.camera_id != self.camera_id:
            metrics.DETECTIONS.labels(self.camera_id, "foreign").inc()
            raise bus.Invalid(f"detection of camera {event.camera_id!r} on the consumer of {self.camera_id!r}")
        if stream_seq is not None and stream_seq <= self.replayed_through:
            # Delivered before a restart and tracked again by the recovery: acked, not tracked twice.
            metrics.DETECTIONS.labels(self.camera_id, "replayed").inc()
            return
        async with self.lock:
            if stream_seq is not None:
                self.stream_seq = max(self.stream_seq, stream_seq)
            self.since_checkpoint += 1
            self.last_input = time.monotonic()
            released, accepted = self.buffer.push(event.frame.captured_at.timestamp(), event.frame.frame_seq, event,
                                                  now=time.monotonic())
            if not accepted:
                self.late += 1
                metrics.DETECTIONS.labels(self.camera_id, "late").inc()
                log.info("detection too late to track", extra={"fields": {
                    "camera": self.camera_id, "frame_seq": event.frame.frame_seq, "id": event.id}})
            await self._run(released)
            if self.since_checkpoint >= self.checkpoint_every:
                await self._checkpoint()

    async def tick(self) -> None:
        """Release what waited long enough and retry the outbox; called every fraction of a second."""
        async with self.lock:
            await self._run(self.buffer.release(time.monotonic()))
            if (self.engine.counts.windows and not len(self.buffer)
                    and time.monotonic() - self.last_input >= self.idle_flush_s):
                await self._publish_counts(self.engine.flush_counts())
            await self._flush_outbox()
            await self._flush_incidents()

    async def observe_phase(self, phase: SignalPhase) -> None:
        async with self.lock:
            self.engine.observe_signal(phase.head, phase.occurred_at.timestamp(), phase.phase)
            metrics.SIGNAL_CHANGES.labels(self.camera_id, phase.head, phase.phase, phase.source).inc()

    async def finish(self) -> None:
        """At shutdown: track what is buffered, publish what is pending (with the frames there are)
        and the open count windows (with the time they covered)."""
        async with self.lock:
            await self._run(self.buffer.drain())
            self.outbox += self.engine.finish()
            self.incident_outbox += self.engine.finish_incidents()
            await self._publish_counts(self.engine.flush_counts())
            await self._flush_outbox()
            await self._flush_incidents()

    async def suspend(self) -> bool:
        """At shutdown with checkpoints: publish what can be, then save the state as it is (tracks,
        buffer, count windows) for the next start instead of finishing it. False when no
        checkpoint could be saved (the last one and the stream after it still recover the state)."""
        async with self.lock:
            await self._flush_outbox()
            await self._flush_incidents()
            return await self._checkpoint()

    async def _checkpoint(self) -> bool:
        """Save the state; only with both outboxes empty (an unpublished event is not state the
        snapshot keeps: it is made again from the detections after an older snapshot)."""
        if self.kv is None or self.outbox or self.incident_outbox:
            return False
        started = time.perf_counter()
        data = checkpoint.encode(checkpoint.take(self, fingerprint=self.fingerprint, saved_at=time.time()))
        try:
            await self.kv.put(self.camera_id, data)
        except (nats.errors.Error, asyncio.TimeoutError, OSError) as exc:
            metrics.CHECKPOINTS.labels(self.camera_id, "failed").inc()
            log.warning("checkpoint not saved; the next one will be", extra={"fields": {
                "camera": self.camera_id, "error": repr(exc)}})
            return False
        self.since_checkpoint = 0
        metrics.CHECKPOINTS.labels(self.camera_id, "saved").inc()
        metrics.CHECKPOINT_BYTES.labels(self.camera_id).set(len(data))
        metrics.CHECKPOINT_SECONDS.observe(time.perf_counter() - started)
        return True

    # --- processing ----------------------------------------------------------------------------------
    async def _run(self, released: list[DetectionMade]) -> None:
        for event in released:
            image = None
            if self.engine.reads_signal_from_image:
                event, image = await self._signal_image(event)
            started = time.perf_counter()
            step = self.engine.process(event, image)
            metrics.STEP_SECONDS.observe(time.perf_counter() - started)
            metrics.DETECTIONS.labels(self.camera_id, "tracked").inc()
            metrics.OBJECTS.labels(self.camera_id).inc(step.detections)
            metrics.TRACKS.labels(self.camera_id).set(step.tracks)
            if step.unjudged:
                metrics.UNJUDGED.labels(self.camera_id).inc(step.unjudged)
                log.warning("stop line crossed while the signal phase is unknown", extra={"fields": {
                    "camera": self.camera_id, "crossings": step.unjudged}})
            if step.discontinuity:
                log.info("stream discontinuity: tracks, counts and signal phases closed", extra={"fields": {
                    "camera": self.camera_id, "kind": step.discontinuity, "frame_seq": event.frame.frame_seq}})
            await self._publish_phases(event, step.signal_changes)
            self.outbox += step.drafts
            self.incident_outbox += step.incidents
            await self._publish_counts(step.counts)
        metrics.BUFFERED.labels(self.camera_id).set(len(self.buffer))
        if self.outbox:
            await self._flush_outbox()
        if self.incident_outbox:
            await self._flush_incidents()

    async def _flush_outbox(self) -> None:
        remaining = []
        for draft in self.outbox:
            try:
                await self._publish(draft)
            except (nats.errors.Error, asyncio.TimeoutError, OSError) as exc:
                log.warning("violation not published yet; will retry", extra={"fields": {
                    "camera": self.camera_id, "id": draft.id, "error": repr(exc)}})
                remaining.append(draft)
        self.outbox = remaining
        metrics.VIOLATIONS_PENDING.labels(self.camera_id).set(len(remaining))

    async def _flush_incidents(self) -> None:
        while self.incident_outbox:
            draft = self.incident_outbox[0]
            try:
                await self._publish_incident(draft)
            except (nats.errors.Error, asyncio.TimeoutError, OSError) as exc:
                log.warning("incident event not published yet; will retry", extra={"fields": {
                    "camera": self.camera_id, "id": draft.event.id, "error": repr(exc)}})
                break
            self.incident_outbox.pop(0)
        metrics.INCIDENTS_PENDING.labels(self.camera_id).set(len(self.incident_outbox))

    async def _publish_incident(self, draft: IncidentDraft) -> None:
        event = draft.event
        if draft.action == "detected":
            wanted = incident_evidence.wanted_frames(draft)
            frames, missing = await self._frames(wanted)
            objects, undecodable = incident_evidence.build(draft, self.engine.scene, frames)
            refs = [await self._store(obj) for obj in objects]
            event = incident_evidence.detected_event(draft, refs, sorted(missing + undecodable), len(wanted))
            subject = subjects.incident_detected(self.camera_id, event.type)
        elif draft.action == "updated":
            subject = subjects.incident_updated(self.camera_id, event.type)
        else:
            subject = subjects.incident_cleared(self.camera_id, event.type)
        await bus.publish(self.js, subject, event, service=SERVICE)
        metrics.INCIDENTS.labels(self.camera_id, event.type, draft.action).inc()
        log.info("incident", extra={"fields": {"camera": self.camera_id, "action": draft.action, "type": event.type,
                                               "incident": event.incident_id, "id": event.id}})

    async def _publish_counts(self, counted: list) -> None:
        for event in counted:
            await bus.publish(self.js, subjects.vehicles_counted(self.camera_id), event, service=SERVICE)
            metrics.COUNTS.labels(self.camera_id).inc()

    async def _signal_image(self, event: DetectionMade) -> tuple[DetectionMade, np.ndarray | None]:
        """The frame's image for reading the lamps (None when expired or undecodable). The frame's
        own Discontinuity header is taken when the detection did not carry it."""
        frame, discontinuity = await self._frame_and_break(event.frame.stream_seq)
        if frame is None:
            return event, None  # expired or foreign: this frame tells nothing about the lamps
        if discontinuity in DISCONTINUITIES and not event.frame.discontinuity:
            event = msgspec.structs.replace(event, frame=msgspec.structs.replace(
                event.frame, discontinuity=discontinuity))
        try:
            return event, evidence.decode(frame.jpeg, half=True)
        except ValueError:
            return event, None

    async def _publish_phases(self, event: DetectionMade, changes: list[tuple[str, float, str]]) -> None:
        signal = self.engine.scene.signal
        for head, since, phase in changes:
            metrics.SIGNAL_CHANGES.labels(self.camera_id, head, phase, "vision").inc()
            if signal is not None and signal.intersection:
                at = datetime.fromtimestamp(since, timezone.utc)
                await bus.publish(self.js, subjects.signal_phase(signal.intersection), SignalPhase(
                    # The phase is in the id: a gap's `unknown` and the phase seen on the same frame share the time.
                    id=ids.event_id("signal", signal.intersection, self.camera_id, head, at.isoformat(), phase),
                    intersection_id=signal.intersection, camera_id=self.camera_id, occurred_at=at,
                    head=head, phase=phase, source="vision"), service=SERVICE)  # type: ignore[arg-type]

    async def _frame(self, stream_seq: int) -> evidence.StoredFrame | None:
        """A frame of this camera from the FRAMES stream, or None when it has expired."""
        return (await self._frame_and_break(stream_seq))[0]

    async def _frame_and_break(self, stream_seq: int) -> tuple[evidence.StoredFrame | None, str | None]:
        """The frame and its Discontinuity header (None when it has none)."""
        try:
            # Asked again if nats-server goes away meanwhile: a tick or a detection failing on a
            # read that died with the server would leave the frames it released untracked.
            raw = await bus.resent_on_reconnect(self.js, lambda _: self.js.get_msg(self.frames_stream, stream_seq),
                                                FRAME_READ_TIMEOUT_S, what=f"frame {stream_seq}")
        except nats.js.errors.NotFoundError:
            return None, None
        headers = raw.headers or {}
        if headers.get(HEADER_CAMERA_ID) != self.camera_id:
            # The sequence was reused or is wrong: this is someone else's frame, never evidence here.
            log.warning("frame of another camera at this sequence", extra={"fields": {
                "camera": self.camera_id, "stream_seq": stream_seq, "found": headers.get(HEADER_CAMERA_ID)}})
            return None, None
        if not (raw.data or b"").startswith(b"\xff\xd8"):
            log.warning("frame is not a JPEG; not used as evidence", extra={"fields": {
                "camera": self.camera_id, "stream_seq": stream_seq}})
            return None, None
        captured = headers.get(HEADER_CAPTURED_AT)
        try:
            captured_at = datetime.fromisoformat(captured) if captured else None
        except ValueError:
            captured_at = None
        return evidence.StoredFrame(stream_seq, raw.data or b"", captured_at), headers.get(HEADER_DISCONTINUITY)

    async def _frames(self, wanted: list[int]) -> tuple[dict[int, evidence.StoredFrame], list[int]]:
        """The evidence frames still in FRAMES, by stream sequence, and the ones that are gone."""
        frames: dict[int, evidence.StoredFrame] = {}
        missing: list[int] = []
        for seq in wanted:
            frame = await self._frame(seq)
            if frame is None:
                missing.append(seq)
            else:
                frames[seq] = frame
        return frames, missing

    async def _publish(self, draft: ViolationDraft) -> None:
        wanted = evidence.wanted_frames(draft)
        frames, missing = await self._frames(wanted)
        objects, undecodable = evidence.build(draft, self.engine.scene, frames)
        missing = sorted(missing + undecodable)
        if missing:
            metrics.FRAMES_MISSING.labels(self.camera_id).inc(len(missing))
        refs = []
        for obj in objects:
            refs.append(await self._store(obj))
        event = evidence.violation_event(draft, self.engine.scene, refs, missing, bucket_frames_wanted=len(wanted),
                                         now=datetime.now(timezone.utc))
        await bus.publish(self.js, subjects.violation_detected(self.camera_id, event.type), event, service=SERVICE)
        metrics.VIOLATIONS.labels(self.camera_id, event.type, event.evidence_status).inc()
        self.published = (self.published + [event])[-50:]
        log.info("violation", extra={"fields": {"camera": self.camera_id, "id": event.id, "type": event.type,
                                                "track": event.track_id, "evidence": event.evidence_status,
                                                "objects": len(refs)}})

    async def _store(self, obj: evidence.EvidenceObject) -> EvidenceRef:
        name = obj.sha256
        try:
            await self.store.get_info(name)
        except nats.js.errors.ObjectNotFoundError:
            meta = api.ObjectMeta(name=name, description=f"{self.camera_id} {obj.kind}",
                                  headers={"Content-Type": "image/jpeg"})
            await self.store.put(name, obj.data, meta=meta)
        metrics.EVIDENCE.labels(obj.kind).inc()
        box = None
        if obj.subject_box is not None:
            x1, y1, x2, y2 = (max(0.0, v) for v in obj.subject_box)
            box = Box(x1=x1, y1=y1, x2=x2, y2=y2)
        return EvidenceRef(bucket=self.bucket, name=name, sha256=name, kind=obj.kind,  # type: ignore[arg-type]
                           size=len(obj.data), captured_at=obj.captured_at, subject_box=box)


def decode_phase(msg: Msg) -> SignalPhase:
    return msgspec.json.decode(msg.data, type=SignalPhase)
