"""Notices sent (or not) to owners, communes and the vehicle-inspection registry."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from proto.v1.common import CameraId, EventId, Timestamp

NoticeKind = Literal["owner_notice", "commune_transfer", "inspection_warning", "inspection_lifted"]
Channel = Literal["email", "sms", "post", "webhook", "inspection_registry", "commune_police"]


class NoticeSent(msgspec.Struct, frozen=True, kw_only=True):
    id: EventId
    camera_id: CameraId
    occurred_at: Timestamp
    case_id: str
    notice_id: str
    kind: NoticeKind
    channel: Channel
    recipient: str  # an agency or unit id; for owner notices "owner" (the address is not repeated here)
    document_sha256: Annotated[str, Meta(pattern=r"^([0-9a-f]{64})?$")] = ""
    respond_by: Timestamp | None = None


class NoticeFailed(msgspec.Struct, frozen=True, kw_only=True):
    id: EventId
    camera_id: CameraId
    occurred_at: Timestamp
    case_id: str
    notice_id: str
    kind: NoticeKind
    channel: Channel
    reason: str
    attempt: Annotated[int, Meta(ge=1)]
    will_retry: bool
