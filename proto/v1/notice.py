"""Notices sent (or not) to owners, communes and the vehicle-inspection registry."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from proto.v1.common import CameraId, EventId, Timestamp

NoticeKind = Literal["owner_notice", "commune_transfer", "inspection_warning", "inspection_lifted"]
Channel = Literal["email", "sms", "post", "webhook", "inspection_registry", "commune_police"]


class _NoticeDelivery(msgspec.Struct, frozen=True, kw_only=True):
    """The fields a notice's delivery events share; their subjects end in the channel."""

    id: EventId
    camera_id: CameraId
    occurred_at: Timestamp
    case_id: str
    notice_id: str
    kind: NoticeKind
    channel: Channel


class NoticeSent(_NoticeDelivery, frozen=True, kw_only=True):
    recipient: str  # an agency or unit id; for owner notices "owner" (the address is not repeated here)
    document_sha256: Annotated[str, Meta(pattern=r"^([0-9a-f]{64})?$")] = ""
    respond_by: Timestamp | None = None


class NoticeFailed(_NoticeDelivery, frozen=True, kw_only=True):
    reason: str
    attempt: Annotated[int, Meta(ge=1)]
    will_retry: bool


class NoticeHeld(msgspec.Struct, frozen=True, kw_only=True):
    """notify did not send the notices of a confirmed case, and will not until a person acts:
    `no_legal_basis`: the configuration has no legal basis and fine for this violation type and
    vehicle class ("cần căn cứ pháp lý"); `possible_duplicate`: another case of the same plate,
    violation and place within the duplicate window already has its notices (`duplicate_of`)."""

    id: EventId
    camera_id: CameraId
    occurred_at: Timestamp
    case_id: str
    reason: Literal["no_legal_basis", "possible_duplicate"]
    detail: str = ""  # for the reviewer, e.g. "red_light × bicycle has no entry in NOTIFY_CONFIG"
    violation_type: str = ""
    vehicle_class: str = ""  # the decree's class the case fell in ("" when the type has none)
    duplicate_of: str = ""  # the earlier case, for possible_duplicate
