"""Types shared by several v1 events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Timestamp = Annotated[datetime, Meta(tz=True, description="RFC 3339 time with a UTC offset")]
EventId = Annotated[str, Meta(min_length=1, max_length=128, description="Deterministic id; also the Nats-Msg-Id")]
CameraId = Annotated[
    str,
    Meta(pattern=r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$", max_length=64, description="Lowercase, '-' inside, no dots"),
]
Score = Annotated[float, Meta(ge=0.0, le=1.0)]
Pixels = Annotated[float, Meta(ge=0.0)]

VehicleClass = Literal["car", "motorcycle", "bus", "truck", "bicycle", "person", "other"]
ViolationType = Literal["red_light", "wrong_way", "wrong_lane", "no_stopping", "speeding", "no_helmet"]
PlateLayout = Literal["one_line", "two_line"]


class Box(msgspec.Struct, frozen=True, kw_only=True):
    """Axis-aligned box in pixels of the frame it was found in."""

    x1: Pixels
    y1: Pixels
    x2: Pixels
    y2: Pixels


class Point(msgspec.Struct, frozen=True, kw_only=True):
    x: float
    y: float


class Location(msgspec.Struct, frozen=True, kw_only=True):
    latitude: Annotated[float, Meta(ge=-90, le=90)]
    longitude: Annotated[float, Meta(ge=-180, le=180)]
    address: str = ""
    commune_code: str = ""


class PlateAlternative(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    confidence: Score


class PlateText(msgspec.Struct, frozen=True, kw_only=True):
    """A plate's text as read: normalised when it fits a Vietnamese pattern, raw otherwise."""

    text: Annotated[
        str, Meta(description="Formatted plate, e.g. '30A-123.45' or '29-B1 123.45'; the raw read when format_valid is false")
    ]
    raw: str = ""
    confidence: Score
    layout: PlateLayout = "one_line"
    format_valid: bool
    alternatives: tuple[PlateAlternative, ...] = ()


class EvidenceRef(msgspec.Struct, frozen=True, kw_only=True):
    """One evidence object in the JetStream object store, addressed by its SHA-256."""

    bucket: str
    name: str
    sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    kind: Literal["frame", "plate_crop", "overlay", "clip"]
    content_type: str = "image/jpeg"
    size: Annotated[int, Meta(ge=0)]
    captured_at: Timestamp | None = None
    # The violating vehicle in this image (frame, overlay), in its pixels: the public copy shows
    # it and blurs everything else (other vehicles, plates, people). None: no public copy.
    subject_box: Box | None = None
