"""The head of an append-only audit chain, published so that a cut or rewritten tail shows."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from proto.v1.common import EventId, Timestamp

Sha256Hex = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$", description="SHA-256, lowercase hex")]


class AuditAnchored(msgspec.Struct, frozen=True, kw_only=True):
    """The chain's last row (`seq`, `hash`) at `occurred_at`, signed with the anchoring key.

    `signature` is HMAC-SHA256, lowercase hex, keyed with the key named by `key_id`, over the
    UTF-8 of `chain|seq|hash|occurred_at` (occurred_at in UTC, ISO 8601 with microseconds).
    """

    id: EventId
    occurred_at: Timestamp
    chain: Annotated[str, Meta(pattern=r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$", max_length=64)]  # e.g. "portal"
    seq: Annotated[int, Meta(ge=0)]  # 0: the chain is empty
    hash: Sha256Hex                  # the hash of row `seq` (64 zeros for an empty chain)
    rows: Annotated[int, Meta(ge=0)]  # rows in the chain at that moment
    reason: Literal["interval", "report", "start"]
    key_id: Annotated[str, Meta(min_length=1, max_length=64)]
    signature: Sha256Hex
