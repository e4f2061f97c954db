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
    h, w = out.shape[:2]
    sx, sy = w / scene.frame_size[0], h / scene.frame_size[1]
    colour = (0, 140, 255)
    if draft.polygon:
        points = np.array([[x * sx, y * sy] for x, y in draft.polygon], np.int32)
        cv2.polylines(out, [points], True, (0, 255, 255), 2)
    if box is not None:
        cv2.rectangle(out, (int(box[0] * sx), int(box[1] * sy)), (int(box[2] * sx), int(box[3] * sy)), colour, 3)
    event = draft.event
    when = (captured_at or datetime.fromtimestamp(0, timezone.utc)).astimezone(timezone.utc).isoformat(timespec="milliseconds")
    location = scene.location
    lines = [f"{when}  [{role}]  camera {scene.camera}: {evidence.ascii_fold(scene.name)}",
             evidence.ascii_fold(location.address or f"{location.latitude:.5f}, {location.longitude:.5f}") if location else "",
             f"{draft.description}  |  incident {event.incident_id[-12:]}"]
    scale = max(0.45, w / 1600)
    line_h = int(28 * scale / 0.6)
    cv2.rectangle(out, (0, 0), (w, line_h * len(lines) + 8), (0, 0, 0), -1)
    for i, text in enumerate(lines):
        cv2.putText(out, text, (8, line_h * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
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
        sx, sy = image.shape[1] / scene.frame_size[0], image.shape[0] / scene.frame_size[1]
        box = tuple(mark[3:7]) if draft.box_roles else None
        in_image = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy) if box is not None else None
        objects.append(EvidenceObject("frame", stored.jpeg, stored.captured_at, in_image))
        overlay = render_overlay(image, draft, scene, role, box, stored.captured_at)
        objects.append(EvidenceObject("overlay", evidence.encode_jpeg(overlay), stored.captured_at, in_image))
    return objects, sorted(set(bad))


def detected_event(draft: IncidentDraft, refs: list[EvidenceRef], missing: list[int], wanted: int) -> IncidentDetected:
    event = draft.event
    assert isinstance(event, IncidentDetected)
    if wanted == 0:
        status = "not_collected"
    elif not missing:
        status = "complete"
    elif len(missing) >= wanted:
        status = "expired"
    else:
        status = "partial"
    return msgspec.structs.replace(event, evidence=tuple(refs), evidence_status=status)
