"""Deterministic event ids.

An event's id is derived from what makes it unique (camera, frame, track, rule...), never from
the clock or a random source, so that a retry or a replay publishes the same id and JetStream's
duplicate window (`Nats-Msg-Id`) and each consumer's idempotency drop it.
"""

from __future__ import annotations

import uuid

# Fixed namespace so that ids are stable across processes, machines and releases.
NAMESPACE = uuid.UUID("6f1d3c1e-2b7a-4e0b-9a55-0c1f7d2a9b41")


def event_id(kind: str, *parts: object) -> str:
    """`<kind>-<uuid5 of the parts>`; the kind prefix keeps ids readable in logs and the DLQ."""
    if not kind or not kind.replace("-", "").isalnum() or kind.lower() != kind:
        raise ValueError(f"event kind must be lowercase letters, digits and '-': {kind!r}")
    key = "\x1f".join(str(part) for part in (kind, *parts))
    return f"{kind}-{uuid.uuid5(NAMESPACE, key)}"
