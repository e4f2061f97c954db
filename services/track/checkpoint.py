"""One camera's tracking state as a snapshot (MessagePack), so that a restarted track carries on.

A track killed with kill -9, stopped for an update, or a camera moved to another replica used to
start with no tracks: a vehicle half way over the stop line came back under a new track id (a new
violation id) or was never judged. The snapshot holds everything the worker remembers between
frames (tracks and their Kalman state, each track's observations, rule state, plate votes and
pending findings, signal phases and lamp readers, count windows, emitted violations, incidents,
the reorder buffer, the last DETECTIONS sequence in it), so that restoring it and feeding the
detections that came after gives the same events as a run never interrupted (recovery.py).

The outboxes are not in it: a snapshot is only taken when both are empty (worker.py), so an event
not yet published is made again from the detections after an older snapshot, with the same id
(and dropped by the stream's duplicate window if it had gone out after all).

A snapshot carries a fingerprint of the scene, the tracking settings and the snapshot's own
layout (its JSON schema): a changed scene, setting or track version discards it (logged), and the
camera starts afresh, as it did before checkpoints existed.
"""

from __future__ import annotations

import hashlib
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from proto.v1.detection import DetectionMade
from services.track.camera import HISTORY, Counted, TrackInfo
from services.track.counts import Window
from services.track.events import Emitted
from services.track.incidents import IncidentState
from services.track.plates import PlateVotes
from services.track.riders import PersonVerdict
from services.track.rules import Finding, Observation, RuleState
from services.track.signals import HeadHistory, PhaseFilter
from services.track.tracker import Track

if TYPE_CHECKING:
    from services.track.worker import CameraWorker

FORMAT = 1


class Info(msgspec.Struct, kw_only=True):
    """camera.TrackInfo, with lists for its deques."""

    key: str
    observations: list[Observation]
    rules: RuleState
    plates: PlateVotes
    counted: set[str]
    crossings: list[Counted]
    pending: list[Finding]
    judged: bool
    person_path: list[Observation] | None
    two_wheeler: bool
    crossings_out: int


class Vision(msgspec.Struct, kw_only=True):
    """One head read off the image: the lamps' learnt dark levels and the phase filter."""

    dark: list[float | None]
    filter: PhaseFilter


class Snapshot(msgspec.Struct, kw_only=True):
    camera: str
    fingerprint: str
    stream_seq: int  # the last DETECTIONS sequence this state has taken in (tracked or buffered)
    saved_at: float  # wall clock, for the logs
    next_id: int
    tracker_t: float | None
    tracks: list[Track]
    infos: dict[int, Info]
    signals: dict[str, HeadHistory]
    vision: dict[str, Vision]
    windows: dict[float, Window]
    counts_t: float | None
    counts_broken: bool
    emitted: list[Emitted]
    duplicates: int
    incidents: IncidentState
    buffered: list[tuple[tuple[float, int], DetectionMade]]  # (capture time, frame seq), detection
    released: tuple[float, int] | None
    late: int


def _enc(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise NotImplementedError(f"cannot checkpoint {type(obj).__name__}")


def _dec(type_: Any, obj: Any) -> Any:
    if type_ is np.ndarray:
        return np.asarray(obj, dtype=np.float64)
    raise NotImplementedError(f"cannot restore {type_}")


_ENCODER = msgspec.msgpack.Encoder(enc_hook=_enc)
_DECODER = msgspec.msgpack.Decoder(Snapshot, dec_hook=_dec)


def _layout() -> bytes:
    """The snapshot's JSON schema: any change to the state's classes changes the fingerprint."""
    schema = msgspec.json.schema(Snapshot, schema_hook=lambda t: {"type": "array"} if t is np.ndarray else None)
    return msgspec.json.encode(schema, order="sorted")


def _scene(scene: Any) -> bytes:
    try:
        data = msgspec.to_builtins(scene, order="sorted")
        if isinstance(data, dict):
            data.pop("path", None)  # where the file lies is not what it says
        return msgspec.json.encode(data, order="sorted")
    except (TypeError, msgspec.EncodeError):
        return Path(scene.path).read_bytes()


def fingerprint(worker: CameraWorker) -> str:
    """Of the scene, the settings that shape the state, and the snapshot layout."""
    engine = worker.engine
    settings = {"tracker": engine.tracker.params, "classes": sorted(engine.classes), "before_s": engine.before_s,
                "after_s": engine.after_s, "count_window_s": engine.counts.window_s, "riders": engine.riders,
                "events": engine.events.params, "reorder_window_s": worker.buffer.window_s}
    digest = hashlib.sha256()
    for part in (str(FORMAT).encode(), _scene(engine.scene), msgspec.json.encode(settings, order="sorted"), _layout()):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:32]


def take(worker: CameraWorker, *, fingerprint: str, saved_at: float) -> Snapshot:
    engine = worker.engine
    return Snapshot(
        camera=worker.camera_id, fingerprint=fingerprint, stream_seq=worker.stream_seq, saved_at=saved_at,
        next_id=engine.tracker.next_id, tracker_t=engine.tracker.last_t, tracks=list(engine.tracker.tracks),
        infos={track_id: Info(key=info.key, observations=list(info.observations), rules=info.rules,
                              plates=info.plates, counted=info.counted, crossings=info.crossings,
                              pending=info.pending, judged=info.judged,
                              person_path=list(info.person.path) if info.person is not None else None,
                              two_wheeler=info.person.two_wheeler if info.person is not None else False,
                              crossings_out=info.crossings_out)
               for track_id, info in engine.info.items()},
        signals=engine.signals.heads,
        vision={head: Vision(dark=list(reader.reader.dark), filter=reader.filter) for head, reader in engine.vision.items()},
        windows=engine.counts.windows, counts_t=engine.counts.last_t, counts_broken=engine.counts.broken,
        emitted=list(engine.events.recent), duplicates=engine.duplicates, incidents=engine.incidents.state,
        buffered=worker.buffer.held(),
        released=worker.buffer.released, late=worker.late,
    )


def encode(snapshot: Snapshot) -> bytes:
    return _ENCODER.encode(snapshot)


def decode(data: bytes) -> Snapshot:
    """Raises msgspec.DecodeError (or ValidationError) for a snapshot of another layout."""
    return _DECODER.decode(data)


def apply(worker: CameraWorker, snapshot: Snapshot, *, now: float) -> None:
    """Put the snapshot's state into a freshly built worker (its scene and settings match)."""
    engine = worker.engine
    engine.tracker.tracks = snapshot.tracks
    engine.tracker.next_id = snapshot.next_id
    engine.tracker.last_t = snapshot.tracker_t
    engine.info = {}
    for track_id, saved in snapshot.infos.items():
        person = None
        if saved.person_path is not None:
            person = PersonVerdict(path=deque(saved.person_path), two_wheeler=saved.two_wheeler)
        engine.info[track_id] = TrackInfo(
            key=saved.key, observations=deque(saved.observations, maxlen=HISTORY), rules=saved.rules,
            plates=saved.plates, counted=saved.counted, crossings=saved.crossings, pending=saved.pending,
            judged=saved.judged, person=person, crossings_out=saved.crossings_out)
    engine.signals.heads = snapshot.signals
    for head, saved_head in snapshot.vision.items():
        if head in engine.vision:
            engine.vision[head].reader.dark = saved_head.dark
            engine.vision[head].filter = saved_head.filter
    engine.counts.windows = snapshot.windows
    engine.counts.last_t = snapshot.counts_t
    engine.counts.broken = snapshot.counts_broken
    engine.events.recent = deque(snapshot.emitted)
    engine.duplicates = snapshot.duplicates
    engine.incidents.state = snapshot.incidents
    worker.buffer.restore(snapshot.buffered, snapshot.released, now=now)
    worker.late = snapshot.late
    worker.stream_seq = snapshot.stream_seq
