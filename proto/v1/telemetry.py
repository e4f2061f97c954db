"""Counts, camera health and signal phases: no personal data, any agency may read them."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from proto.v1.common import CameraId, EventId, Timestamp

NonNegative = Annotated[float, Meta(ge=0)]


class VehicleCount(msgspec.Struct, frozen=True, kw_only=True):
    vehicle_class: str
    count: Annotated[int, Meta(ge=0)]
    lane: str | None = None  # older producers counted per lane
    line: str | None = None  # the scene's count line the vehicles crossed
    direction: Literal["forward", "backward"] | None = None  # which way they crossed it (see the scene)


class VehiclesCounted(msgspec.Struct, frozen=True, kw_only=True):
    id: EventId
    camera_id: CameraId
    occurred_at: Timestamp  # end of the window
    window_start: Timestamp
    # The time the window covered: the full window, or less when it was closed early (a
    # discontinuity in the stream, shutdown, the end of a replay) or the stream began inside it.
    window_s: Annotated[float, Meta(gt=0)]
    counts: tuple[VehicleCount, ...] = ()  # only the non-zero counts
    lines: tuple[str, ...] = ()  # every count line watched in the window, crossed or not


class CameraStatus(msgspec.Struct, frozen=True, kw_only=True):
    id: EventId
    camera_id: CameraId
    occurred_at: Timestamp
    state: Literal["online", "degraded", "offline"]
    reason: str = ""
    heartbeat: bool = False  # True for the periodic report, False for a change of state
    replica: str = ""
    fps_in: NonNegative = 0.0
    fps_out: NonNegative = 0.0
    frames_dropped: Annotated[int, Meta(ge=0)] = 0
    decode_errors: Annotated[int, Meta(ge=0)] = 0
    reconnects: Annotated[int, Meta(ge=0)] = 0
    last_frame_age_s: NonNegative | None = None


class SignalPhase(msgspec.Struct, frozen=True, kw_only=True):
    id: EventId
    intersection_id: str
    camera_id: CameraId | None = None  # set when the phase was read from a camera's image
    occurred_at: Timestamp
    head: str  # the signal head, as named in the scene files
    # unknown: the lamps could not be read steadily (flicker, a tie) or the stream had a gap
    phase: Literal["red", "amber", "green", "off", "flashing", "unknown"]
    source: Literal["controller", "vision"] = "controller"
