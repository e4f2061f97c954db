"""Frame message in, DetectionMade out, as plain functions (no I/O) so they test without a bus.

Decoding checks everything that makes a frame unusable (headers, empty or corrupt JPEG) so
the runtime can dead-letter that frame alone with the reason; a frame older than the
freshness limit is not decoded at all: detections for it would reach track too late to
matter, and decoding it would only add to the backlog that made it late.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

import cv2
import numpy as np

from proto import ids
from proto.v1.common import Box, PlateAlternative, PlateText, Point
from proto.v1.detection import DetectedObject, DetectedPlate, DetectionMade, FrameRef
from proto.v1.frame import FrameMeta, frame_meta_from_headers
from services.detect.pipeline import FrameResult, Pipeline
from services.detect.regions import PlanBook
from services.runtime.bus import Invalid


@dataclass(frozen=True)
class Frame:
    meta: FrameMeta
    stream_seq: int
    image: np.ndarray | None  # None for a stale frame, which is skipped
    age_s: float

    @property
    def stale(self) -> bool:
        return self.image is None


def decode_frame(
    data: bytes, headers: Mapping[str, str] | None, stream_seq: int, *, now: datetime, max_age_s: float
) -> Frame:
    """Raises msgspec.ValidationError (bad headers) or Invalid (bad payload)."""
    meta = frame_meta_from_headers(headers)
    if not data:
        raise Invalid("empty payload: a frame must carry a JPEG image")
    age = (now - meta.captured_at).total_seconds()
    if age > max_age_s:
        return Frame(meta, stream_seq, None, age)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise Invalid(f"payload of {len(data)} bytes is not a decodable JPEG image")
    return Frame(meta, stream_seq, image, age)


def detect_frame(pipeline: Pipeline, plans: PlanBook, frame: Frame) -> FrameResult:
    """The camera's detection plan (its scene's roi and slices) when it has one, else the whole frame."""
    assert frame.image is not None
    return pipeline.process(frame.image, plans.for_camera(frame.meta.camera_id))


def _box(b) -> Box:
    return Box(x1=max(0.0, float(b[0])), y1=max(0.0, float(b[1])), x2=max(0.0, float(b[2])), y2=max(0.0, float(b[3])))


def detection_event(frame: Frame, result: FrameResult, *, model: str, now: datetime) -> DetectionMade:
    assert frame.image is not None
    meta = frame.meta
    height, width = frame.image.shape[:2]
    return DetectionMade(
        id=ids.event_id("detection", meta.camera_id, meta.id),
        camera_id=meta.camera_id,
        occurred_at=meta.captured_at,
        frame=FrameRef(stream_seq=frame.stream_seq, frame_seq=meta.frame_seq, captured_at=meta.captured_at,
                       width=width, height=height, discontinuity=meta.discontinuity),
        objects=tuple(DetectedObject(class_name=v.class_name, score=min(1.0, v.score), box=_box(v.box), riders=v.riders)
                      for v in result.vehicles),
        plates=tuple(
            DetectedPlate(
                box=_box(p.read.box),
                corners=tuple(Point(x=x, y=y) for x, y in p.read.corners),
                read=PlateText(
                    text=p.read.plate.text,
                    raw=p.read.plate.raw,
                    confidence=min(1.0, max(0.0, p.read.plate.confidence)),
                    layout=p.read.plate.layout,  # type: ignore[arg-type]
                    format_valid=p.read.plate.format_valid,
                    alternatives=tuple(PlateAlternative(text=t, confidence=min(1.0, c)) for t, c in p.read.plate.alternatives),
                ),
                vehicle_index=p.vehicle_index,
                source=p.read.source,
            )
            for p in result.plates
        ),
        model=model,
        detected_at=now,
    )


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
