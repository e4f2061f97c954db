"""Evidence images for the letter, from the JetStream object store, checked against their hash:
a letter is legal evidence, so an image that does not match its reference is never printed."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import nats.js.errors
from nats.js import JetStreamContext

from proto.v1 import EvidenceRef

PRINTABLE = ("image/jpeg", "image/png")


class EvidenceCorrupt(Exception):
    """The stored bytes do not match the reference: never retried, never printed."""


class EvidenceMissing(Exception):
    """Not (yet) in the store: retried, and dead-lettered after the consumer's max_deliver."""


async def images(js: JetStreamContext, refs: Sequence[EvidenceRef], limit: int) -> list[bytes]:
    wanted = [ref for ref in refs if ref.content_type in PRINTABLE][:limit]
    if not wanted:
        return []
    found: list[bytes] = []
    stores: dict[str, object] = {}
    for ref in wanted:
        try:
            store = stores.get(ref.bucket) or await js.object_store(ref.bucket)
            stores[ref.bucket] = store
            result = await store.get(ref.name)  # type: ignore[attr-defined]
        except (nats.js.errors.ObjectNotFoundError, nats.js.errors.BucketNotFoundError,
                nats.js.errors.NotFoundError) as exc:
            raise EvidenceMissing(f"evidence {ref.bucket}/{ref.name} not found: {exc!r}") from exc
        data = result.data or b""
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise EvidenceCorrupt(f"evidence {ref.bucket}/{ref.name} does not match its sha256")
        found.append(data)
    return found
