"""A captured frame: the raw JPEG bytes are the payload, this metadata travels in NATS headers.

Frames are the bulk of the traffic, so they are not wrapped in JSON; `frame_headers` and
`frame_meta_from_headers` are the one place that maps between the Struct and the headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

import msgspec

from proto import ids
from proto.v1.common import CameraId, EventId, Timestamp

HEADER_CAMERA_ID = "Camera-Id"
HEADER_FRAME_SEQ = "Frame-Seq"
HEADER_CAPTURED_AT = "Captured-At"
HEADER_WIDTH = "Width"
HEADER_HEIGHT = "Height"
HEADER_MSG_ID = "Nats-Msg-Id"
HEADER_DISCONTINUITY = "Discontinuity"  # optional: only on the first frame after a break
DISCONTINUITIES = ("start", "reconnect", "loop")
# start: the source was opened (ingest started or took the camera over); reconnect: opened again
# after a failure; loop: a recorded file began again. What came before says nothing about after.
# start, reconnect, loop: marked by ingest; cut: a recording known to be edited (spliced) there,
# marked by `roadwatch replay --break-at`.
Discontinuity = Literal["start", "reconnect", "loop", "cut"]
CONTENT_TYPE = "image/jpeg"


class FrameMeta(msgspec.Struct, frozen=True, kw_only=True):
    id: EventId
    camera_id: CameraId
    frame_seq: int
    captured_at: Timestamp
    width: int
    height: int
    discontinuity: Discontinuity | None = None

    def __post_init__(self) -> None:
        if self.frame_seq < 0:
            raise ValueError("frame_seq must be >= 0")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"frame size must be positive, got {self.width}x{self.height}")


def frame_id(camera_id: str, captured_at: datetime, frame_seq: int) -> str:
    """Unique per capture, stable across retries; the capture time keeps ids apart after a restart resets frame_seq."""
    return ids.event_id("frame", camera_id, captured_at.isoformat(), frame_seq)


def new_frame_meta(*, camera_id: str, frame_seq: int, captured_at: datetime, width: int, height: int,
                   discontinuity: Discontinuity | None = None) -> FrameMeta:
    return FrameMeta(
        id=frame_id(camera_id, captured_at, frame_seq),
        camera_id=camera_id,
        frame_seq=frame_seq,
        captured_at=captured_at,
        width=width,
        height=height,
        discontinuity=discontinuity,
    )


def frame_headers(meta: FrameMeta) -> dict[str, str]:
    headers = {
        HEADER_MSG_ID: meta.id,
        HEADER_CAMERA_ID: meta.camera_id,
        HEADER_FRAME_SEQ: str(meta.frame_seq),
        HEADER_CAPTURED_AT: meta.captured_at.isoformat(),
        HEADER_WIDTH: str(meta.width),
        HEADER_HEIGHT: str(meta.height),
    }
    if meta.discontinuity is not None:
        headers[HEADER_DISCONTINUITY] = meta.discontinuity
    return headers


def frame_meta_from_headers(headers: Mapping[str, str] | None) -> FrameMeta:
    """Parse frame headers; raises msgspec.ValidationError naming the missing or bad header."""
    headers = headers or {}
    missing = [
        name
        for name in (HEADER_MSG_ID, HEADER_CAMERA_ID, HEADER_FRAME_SEQ, HEADER_CAPTURED_AT, HEADER_WIDTH, HEADER_HEIGHT)
        if not headers.get(name)
    ]
    if missing:
        raise msgspec.ValidationError(f"frame is missing header(s) {', '.join(missing)}")
    raw = {
        "id": headers[HEADER_MSG_ID],
        "camera_id": headers[HEADER_CAMERA_ID],
        "frame_seq": headers[HEADER_FRAME_SEQ],
        "captured_at": headers[HEADER_CAPTURED_AT],
        "width": headers[HEADER_WIDTH],
        "height": headers[HEADER_HEIGHT],
    }
    if headers.get(HEADER_DISCONTINUITY):
        raw["discontinuity"] = headers[HEADER_DISCONTINUITY]
    try:
        return msgspec.convert(raw, FrameMeta, strict=False)
    except msgspec.ValidationError as exc:
        raise msgspec.ValidationError(f"bad frame header: {exc}") from None
