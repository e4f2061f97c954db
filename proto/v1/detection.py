"""What the detect service found in one frame."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from proto.v1.common import Box, CameraId, EventId, PlateText, Point, Score, Timestamp


class FrameRef(msgspec.Struct, frozen=True, kw_only=True):
    """Where the frame is: the FRAMES stream sequence lets track fetch it for evidence."""

    stream: str = "FRAMES"
    stream_seq: Annotated[int, Meta(ge=0)]
    frame_seq: Annotated[int, Meta(ge=0)]
    captured_at: Timestamp
    width: Annotated[int, Meta(gt=0)]
    height: Annotated[int, Meta(gt=0)]
    # Set on the first frame after a break in the camera's stream (proto.v1.frame.DISCONTINUITIES):
    # track then closes its tracks and count windows and forgets the signal phase.
    discontinuity: Literal["start", "reconnect", "loop", "cut"] | None = None


class DetectedObject(msgspec.Struct, frozen=True, kw_only=True):
    class_name: str = msgspec.field(name="class")
    score: Score
    box: Box  # a two-wheeler with riders: the union of the bike and its riders
    riders: Annotated[int, Meta(ge=0)] = 0  # people fused into this two-wheeler (0: none seen, or not a two-wheeler)


class DetectedPlate(msgspec.Struct, frozen=True, kw_only=True):
    box: Box
    corners: tuple[Point, ...] = ()  # four corners, clockwise from top-left
    read: PlateText
    vehicle_index: int | None = None  # index into `objects` of the vehicle box that contains it
    source: str = "plate_detector"


class DetectionMade(msgspec.Struct, frozen=True, kw_only=True):
    id: EventId
    camera_id: CameraId
    occurred_at: Timestamp  # the frame's capture time
    frame: FrameRef
    objects: tuple[DetectedObject, ...] = ()
    plates: tuple[DetectedPlate, ...] = ()
    model: str = ""
    detected_at: Timestamp | None = None
