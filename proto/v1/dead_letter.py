"""A message a service could not use, kept with the reason so that nothing is silently dropped."""

from __future__ import annotations

from typing import Literal

import msgspec

from proto.v1.common import EventId, Timestamp


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    id: EventId
    camera_id: str | None = None  # from the original headers or subject, when known
    occurred_at: Timestamp
    service: str
    reason: str
    error: Literal["decode", "invalid", "oversize", "gave_up"]
    subject: str
    stream: str = ""
    stream_seq: int | None = None
    consumer: str = ""
    num_delivered: int = 1
    headers: dict[str, str] = {}
    payload: bytes = b""  # base64 in JSON; empty when payload_truncated
    payload_size: int = 0
    payload_truncated: bool = False  # too big to copy: fetch it from `stream` at `stream_seq`
