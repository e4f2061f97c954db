"""Evidence of an incident: the frame where it began and the frame where it was reported.

Stored as violations' evidence is (evidence.py): the original JPEG as the camera sent it (kind
`frame`) and a copy with an overlay (kind `overlay`: time, camera, place, what was found, the
road user boxed or the lane outlined), each named by its SHA-256 in the evidence bucket. Frames
that have expired from FRAMES are listed as missing and the event says so (`evidence_status`):
nothing is drawn in their place.
"""

from __future__ import annotations

from datetime import datetime, timezone

import cv2
import msgspec
import numpy as np

from proto.v1.common import EvidenceRef
from proto.v1.incident import IncidentDetected
from services.track import evidence
from services.track.evidence import EvidenceObject, StoredFrame
from services.track.incidents import IncidentDraft
from services.track.scenes import Scene


def wanted_frames(draft: IncidentDraft) -> list[int]:
    return sorted({int(mark[1]) for _, mark in draft.frames})


def render_overlay(image: np.ndarray, draft: IncidentDraft, scene: Scene, role: str, box, captured_at: datetime | None,
                   ) -> np.ndarray:
    out = image.copy()
    sx, sy = evidence.image_scale(out, scene)
    colour = (0, 140, 255)
    if draft.polygon:
        points = np.array([[x * sx, y * sy] for x, y in draft.polygon], np.int32)
        cv2.polylines(out, [points], True, (0, 255, 255), 2)
    if box is not None:
        x1, y1, x2, y2 = (int(v) for v in evidence.in_image(box, (sx, sy)))
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 3)
    evidence.banner(out, [*evidence.scene_lines(scene, role, captured_at or datetime.fromtimestamp(0, timezone.utc)),
                          f"{draft.description}  |  incident {draft.event.incident_id[-12:]}"])
    return out


def build(draft: IncidentDraft, scene: Scene, frames: dict[int, StoredFrame]) -> tuple[list[EvidenceObject], list[int]]:
    """The evidence images of one detected incident from the frames that could be fetched, and the
    sequences of those that would not decode."""
    objects: list[EvidenceObject] = []
    bad: list[int] = []
    for role, mark in draft.frames:
        seq = int(mark[1])
        stored = frames.get(seq)
        if stored is None:
            continue
        try:
            image = evidence.decode(stored.jpeg)
        except ValueError:
            bad.append(seq)
            continue
        box = tuple(mark[3:7]) if draft.box_roles else None
        subject = evidence.in_image(box, evidence.image_scale(image, scene)) if box is not None else None
        objects.append(EvidenceObject("frame", stored.jpeg, stored.captured_at, subject))
        overlay = render_overlay(image, draft, scene, role, box, stored.captured_at)
        objects.append(EvidenceObject("overlay", evidence.encode_jpeg(overlay), stored.captured_at, subject))
    return objects, sorted(set(bad))


def detected_event(draft: IncidentDraft, refs: list[EvidenceRef], missing: list[int], wanted: int) -> IncidentDetected:
    event = draft.event
    assert isinstance(event, IncidentDetected)
    status = "not_collected" if wanted == 0 else evidence.status(missing, wanted)
    return msgspec.structs.replace(event, evidence=tuple(refs), evidence_status=status)
