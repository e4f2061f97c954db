"""Which replica tracks which camera: rendezvous (highest random weight) hashing.

A camera's tracks live in one process, so every replica must agree, without talking to each
other, on who owns it. Each replica scores every camera with a hash of (camera, replica index)
and a camera belongs to the replica with the highest score. Going from N to N+1 replicas moves
only the cameras the new replica wins (about 1/(N+1) of them), not nearly all of them as
`hash % N` would; each camera's durable consumer (`track-<camera>`) keeps its position in the
DETECTIONS stream, so the new owner carries on where the old one stopped.
"""

from __future__ import annotations

import hashlib


def score(camera_id: str, replica: int) -> int:
    digest = hashlib.blake2b(f"{camera_id}\x1f{replica}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(camera_id: str, replicas: int) -> int:
    if replicas < 1:
        raise ValueError("there must be at least one replica")
    return max(range(replicas), key=lambda replica: score(camera_id, replica))


def owned(camera_ids: list[str], replica: int, replicas: int) -> list[str]:
    return sorted(camera for camera in camera_ids if owner(camera, replicas) == replica)
