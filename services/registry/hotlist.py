"""Wanted vehicles against every detection: which reads are hotlist hits, and which to announce.

Detections arrive for every frame, so the hotlist is held in memory (a dict by plate) and checked
without a database round trip; the service reloads it when PostgreSQL notifies a change. A
vehicle stays in view for many frames and may pass several replicas, so a hit's id is derived
from the hotlist entry, the camera and a time bucket: every replica computes the same id for the
same passage and JetStream keeps one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from proto import ids
from proto.v1 import DetectionMade, HotlistHit, PlateText
from services.registry import plates


@dataclass(frozen=True)
class Entry:
    id: int
    plate: str  # normalised
    plate_display: str
    reason: str
    agency: str
    valid_from: datetime
    valid_to: datetime | None

    def active(self, at: datetime) -> bool:
        return self.valid_from <= at and (self.valid_to is None or at < self.valid_to)


class Hotlist:
    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self.by_plate: dict[str, list[Entry]] = {}
        for entry in entries:
            self.by_plate.setdefault(entry.plate, []).append(entry)

    def __len__(self) -> int:
        return sum(len(entries) for entries in self.by_plate.values())

    def match(self, read: PlateText, at: datetime) -> list[Entry]:
        """Active entries for the read or a positional correction of it (not the OCR alternatives:
        an alarm on a guess would send officers after the wrong vehicle)."""
        if not self.by_plate:
            return []
        text = plates.normalise(read.text or read.raw)
        if not text:
            return []
        found: list[Entry] = []
        for plate in [text, *(p for p, _ in plates.corrections(text) if p != text)]:
            found += [entry for entry in self.by_plate.get(plate, ()) if entry.active(at)]
        return found


def hits(detection: DetectionMade, hotlist: Hotlist, bucket_s: int) -> list[HotlistHit]:
    """The hotlist hits in one frame's detections, with ids stable per passage."""
    out: list[HotlistHit] = []
    seen: set[int] = set()
    bucket = int(detection.occurred_at.timestamp() // bucket_s)
    for detected in detection.plates:
        for entry in hotlist.match(detected.read, detection.occurred_at):
            if entry.id in seen:
                continue
            seen.add(entry.id)
            out.append(HotlistHit(
                id=ids.event_id("hotlist-hit", entry.id, detection.camera_id, bucket),
                camera_id=detection.camera_id, occurred_at=detection.occurred_at, plate=entry.plate,
                read=detected.read, reason=entry.reason, agency=entry.agency,
                detection_id=detection.id, frame_stream_seq=detection.frame.stream_seq))
    return out


class Recent:
    """Ids announced lately, so that the frames of one passage are not all republished.

    Only an optimisation (JetStream's duplicate window would drop them anyway); bounded so that
    memory stays flat on a busy road.
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._ids: dict[str, None] = {}

    def seen(self, hit_id: str) -> bool:
        return hit_id in self._ids

    def add(self, hit_id: str) -> None:
        """Called once the hit is published: a failed publish must be retried on redelivery."""
        self._ids[hit_id] = None
        if len(self._ids) > self.size:
            del self._ids[next(iter(self._ids))]
