"""Which of the frames in hand are worth detecting when detect cannot keep up, and which not.

A durable consumer hands out frames in stream order, so a detect pool that falls behind works
on the oldest frames first, and a drop by age alone hits whichever camera's frames happen to be
oldest. Instead (docs/ARCHITECTURE.md, "Overload"): detect takes the whole backlog that is
already waiting (the consumer's look-ahead), drops frames older than MAX_FRAME_AGE_S as stale,
and when more frames are in hand than one batch (BATCH_SIZE: detect is behind), detects of each
camera only its newest FRAMES_PER_CAMERA, dropping the older ones as superseded. Every camera then gets the same number of frames per round, the
freshest ones: under overload each camera's effective frame rate falls evenly, and latency stays
at about one round instead of growing with the backlog. Plain functions, no I/O.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from proto.v1.frame import FrameMeta

T = TypeVar("T")

STALE = "stale"
SUPERSEDED = "superseded"


@dataclass(frozen=True)
class Waiting:
    """A frame message whose headers were read, its JPEG not yet decoded (dropping is cheap)."""

    meta: FrameMeta
    stream_seq: int
    age_s: float


@dataclass
class Admission(Generic[T]):
    kept: list[tuple[Waiting, T]] = field(default_factory=list)
    stale: list[tuple[Waiting, T]] = field(default_factory=list)
    superseded: list[tuple[Waiting, T]] = field(default_factory=list)


def admit(items: list[tuple[Waiting, T]], *, per_camera: int, max_age_s: float, batch: int) -> Admission[T]:
    """Split the frames in hand into kept, stale and superseded. Up to `batch` fresh frames are
    all kept (a burst, not a backlog). Kept frames come round-robin over the cameras (each
    camera's in capture order), so that the worker threads, which start them in this order,
    serve every camera alike."""
    out: Admission[T] = Admission()
    by_camera: dict[str, list[tuple[Waiting, T]]] = defaultdict(list)
    for item in items:
        if item[0].age_s > max_age_s:
            out.stale.append(item)
        else:
            by_camera[item[0].meta.camera_id].append(item)
    behind = sum(len(frames) for frames in by_camera.values()) > batch
    queues = []
    for camera in sorted(by_camera):
        frames = sorted(by_camera[camera], key=lambda item: (item[0].meta.captured_at, item[0].meta.frame_seq))
        if behind and len(frames) > per_camera:
            out.superseded += frames[:-per_camera]
            frames = frames[-per_camera:]
        queues.append(frames)
    for round_ in range(max((len(queue) for queue in queues), default=0)):
        out.kept += [queue[round_] for queue in queues if round_ < len(queue)]
    return out


@dataclass
class DropLog:
    """Counts per camera of dropped and detected frames, for one WARNING per interval: the first
    drop after a quiet interval is reported at once, later ones together when the interval ends."""

    interval_s: float
    last_report: float = -math.inf
    dropped: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    detected: Counter = field(default_factory=Counter)
    since: float | None = None

    def count(self, now: float, camera: str, result: str, n: int = 1) -> None:
        if self.since is None:
            self.since = now
        if result == "detected":
            self.detected[camera] += n
        else:
            self.dropped[camera][result] += n

    def report(self, now: float) -> dict | None:
        """The fields of the WARNING to log now, or None (nothing dropped, or logged recently)."""
        if not self.dropped or now - self.last_report < self.interval_s:
            return None
        cameras = sorted(set(self.dropped) | set(self.detected))
        fields = {
            "seconds": round(now - (self.since if self.since is not None else now), 1),
            "dropped": sum(sum(c.values()) for c in self.dropped.values()),
            "detected": sum(self.detected.values()),
            "per_camera": {camera: {"detected": self.detected[camera], **self.dropped.get(camera, {})}
                           for camera in cameras},
        }
        self.last_report = now
        self.dropped = defaultdict(Counter)
        self.detected = Counter()
        self.since = None
        return fields
