"""Evidence: the frames around a violation, with an overlay, in the JetStream object store.

Each violation gets, per chosen frame (before, at, after the moment): the frame exactly as the
camera sent it (kind `frame`, the original bytes: nothing drawn on what may go to court) and a
copy with the overlay (kind `overlay`: time, camera, place, rule, measured value, the vehicle's
box and the plate crop as an inset); plus the plate crop alone (kind `plate_crop`). Objects are
named by their SHA-256, so storing the same image twice is harmless and a reader can verify
what it got. Frames come from the FRAMES stream by sequence; when they have expired, the
violation says so (evidence_status, evidence_missing) and nothing is made up in their place.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone

import cv2
import numpy as np

from proto.v1.common import EvidenceRef, Location
from proto.v1.violation import Measurement, ViolationDetected
from services.track.camera import ViolationDraft
from services.track.scenes import Scene

JPEG_QUALITY = 90


@dataclass(frozen=True)
class StoredFrame:
    stream_seq: int
    jpeg: bytes
    captured_at: datetime | None


def ascii_fold(text: str) -> str:
    """OpenCV's fonts are ASCII: 'Ngã tư Lạch Tray' becomes 'Nga tu Lach Tray' on the image
    (the event keeps the real UTF-8 text)."""
    for fancy, plain in (("đ", "d"), ("Đ", "D"), ("–", "-"), ("—", "-"), ("‘", "'"), ("’", "'"), ("“", '"'), ("”", '"')):
        text = text.replace(fancy, plain)
    folded = unicodedata.normalize("NFKD", text)
    return "".join(c for c in folded if not unicodedata.combining(c)).encode("ascii", "replace").decode()


def describe(draft: ViolationDraft) -> str:
    f = draft.finding
    if f.type == "red_light":
        at_least = "at least " if f.parameters.get("phase_age_is_lower_bound") == "true" else ""
        return f"RED LIGHT: crossed {f.element} {at_least}{f.phase_age_s:.1f} s after red"
    if f.type == "speeding":
        return f"SPEEDING: {f.value:.1f} km/h (limit {f.limit:g} + {f.tolerance:g})"
    if f.type == "no_stopping":
        return f"NO STOPPING: stopped {f.value:.1f} s in {f.element} (max {f.limit:g} s)"
    if f.type == "wrong_way":
        return f"WRONG WAY in lane {f.element} ({int(f.value)} frames)"
    return f"WRONG LANE: {draft.vehicle_class} in lane {f.element}"


def decode(jpeg: bytes, *, half: bool = False) -> np.ndarray:
    """`half`: decode at half resolution (about twice as fast), enough to read lamp colours."""
    flag = cv2.IMREAD_REDUCED_COLOR_2 if half else cv2.IMREAD_COLOR
    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), flag)
    if image is None:
        raise ValueError("frame is not a decodable JPEG")
    return image


def plate_crop(image: np.ndarray, box: tuple[float, float, float, float], scale: tuple[float, float]) -> np.ndarray | None:
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    sx, sy = scale
    pad_x, pad_y = (x2 - x1) * 0.15, (y2 - y1) * 0.15
    x1, x2 = int(max(0, (x1 - pad_x) * sx)), int(min(w, (x2 + pad_x) * sx))
    y1, y2 = int(max(0, (y1 - pad_y) * sy)), int(min(h, (y2 + pad_y) * sy))
    if x2 - x1 < 4 or y2 - y1 < 4:
        return None
    return image[y1:y2, x1:x2].copy()


def image_scale(image: np.ndarray, scene: Scene) -> tuple[float, float]:
    """(sx, sy) from the scene's frame size (detections, lines) to this image's pixels."""
    return image.shape[1] / scene.frame_size[0], image.shape[0] / scene.frame_size[1]


def in_image(box: tuple[float, float, float, float], scale: tuple[float, float]) -> tuple[float, float, float, float]:
    sx, sy = scale
    return box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy


def scene_lines(scene: Scene, role: str, captured_at: datetime) -> list[str]:
    """The first lines of an overlay's banner: when (UTC), which frame, camera and place."""
    when = captured_at.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    location = scene.location
    return [f"{when}  [{role}]  camera {scene.camera}: {ascii_fold(scene.name)}",
            ascii_fold(location.address or f"{location.latitude:.5f}, {location.longitude:.5f}") if location else ""]


def banner(out: np.ndarray, lines: list[str]) -> int:
    """Write `lines` in white on a black band across the top of `out` (in place); returns the line height."""
    w = out.shape[1]
    scale = max(0.45, w / 1600)
    line_h = int(28 * scale / 0.6)
    cv2.rectangle(out, (0, 0), (w, line_h * len(lines) + 8), (0, 0, 0), -1)
    for i, text in enumerate(lines):
        cv2.putText(out, text, (8, line_h * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return line_h


def status(missing: list[int], wanted: int) -> str:
    """complete: every wanted frame was stored; expired: none of them (FRAMES had dropped them);
    partial: some."""
    if not missing:
        return "complete"
    if len(missing) >= wanted:
        return "expired"
    return "partial"


def render_overlay(image: np.ndarray, draft: ViolationDraft, scene: Scene, role: str, box: tuple[float, float, float, float],
                   captured_at: datetime | None, crop: np.ndarray | None, plate_text: str | None) -> np.ndarray:
    """The image a reviewer sees: facts in a banner on top, the vehicle boxed, the plate inset."""
    out = image.copy()
    h, w = out.shape[:2]
    sx, sy = image_scale(out, scene)
    colour = (0, 0, 255)
    x1, y1, x2, y2 = (int(v) for v in in_image(box, (sx, sy)))
    cv2.rectangle(out, (x1, y1), (x2, y2), colour, 3)
    for stop in scene.stop_lines if draft.finding.type == "red_light" else ():
        (ax, ay), (bx, by) = stop.line
        cv2.line(out, (int(ax * sx), int(ay * sy)), (int(bx * sx), int(by * sy)), (0, 255, 255), 2)
    lines = [
        *scene_lines(scene, role, captured_at or draft.occurred_at),
        f"{describe(draft)}  |  track {draft.track_id} {draft.vehicle_class}"
        + (f"  |  plate {ascii_fold(plate_text)}" if plate_text else "  |  plate not read"),
    ]
    line_h = banner(out, lines)
    if crop is not None and crop.size:
        target_w = max(120, w // 5)
        inset = cv2.resize(crop, (target_w, max(1, int(crop.shape[0] * target_w / crop.shape[1]))))
        ih = min(inset.shape[0], h - line_h * len(lines) - 20)
        inset = inset[:ih]
        top = h - ih - 8
        out[top:top + ih, w - target_w - 8:w - 8] = inset
        cv2.rectangle(out, (w - target_w - 9, top - 1), (w - 7, top + ih), (0, 255, 255), 2)
    return out


def encode_jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("cannot encode JPEG")
    return data.tobytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class EvidenceObject:
    kind: str
    data: bytes
    captured_at: datetime | None
    subject_box: tuple[float, float, float, float] | None = None  # the violating vehicle, image pixels

    @property
    def sha256(self) -> str:
        return sha256(self.data)


def build(draft: ViolationDraft, scene: Scene, frames: dict[int, StoredFrame]) -> tuple[list[EvidenceObject], list[int]]:
    """The evidence images of one violation from the frames that could still be fetched, and the
    sequences of those that would not decode (reported with the missing ones)."""
    objects: list[EvidenceObject] = []
    crop = None
    sighting = draft.plate_sighting
    images = {}
    for seq, stored in frames.items():
        try:
            images[seq] = decode(stored.jpeg)
        except ValueError:
            continue  # a frame that does not decode is no evidence: left out, and reported
    if sighting is not None and sighting.stream_seq in images:
        image = images[sighting.stream_seq]
        crop = plate_crop(image, sighting.box, image_scale(image, scene))
        if crop is not None:
            objects.append(EvidenceObject("plate_crop", encode_jpeg(crop), frames[sighting.stream_seq].captured_at))
    plate_text = draft.plate.text if draft.plate else None
    for role, observation in draft.frames:
        if observation.stream_seq not in images:
            continue
        stored = frames[observation.stream_seq]
        image = images[observation.stream_seq]
        subject = in_image(observation.box, image_scale(image, scene))
        objects.append(EvidenceObject("frame", stored.jpeg, stored.captured_at, subject))
        overlay = render_overlay(image, draft, scene, role, observation.box, stored.captured_at, crop, plate_text)
        objects.append(EvidenceObject("overlay", encode_jpeg(overlay), stored.captured_at, subject))
    return objects, sorted(set(frames) - set(images))


def wanted_frames(draft: ViolationDraft) -> list[int]:
    seqs = [o.stream_seq for _, o in draft.frames]
    if draft.plate_sighting is not None:
        seqs.append(draft.plate_sighting.stream_seq)
    return sorted(set(seqs))


def violation_event(draft: ViolationDraft, scene: Scene, evidence: list[EvidenceRef], missing: list[int],
                    *, bucket_frames_wanted: int, now: datetime) -> ViolationDetected:
    f = draft.finding
    return ViolationDetected(
        id=draft.id,
        camera_id=draft.camera_id,
        occurred_at=draft.occurred_at,
        type=f.type,  # type: ignore[arg-type]
        location=Location(latitude=scene.location.latitude, longitude=scene.location.longitude,
                          address=scene.location.address, commune_code=scene.location.commune_code),
        vehicle_class=draft.vehicle_class,
        track_id=draft.track_id,
        plate=draft.plate,
        measurement=Measurement(value=f.value, unit=f.unit, limit=f.limit, tolerance=f.tolerance,  # type: ignore[arg-type]
                                phase=f.phase, phase_age_s=f.phase_age_s),  # type: ignore[arg-type]
        rule=f.element,
        evidence=tuple(evidence),
        detected_at=now,
        parameters=dict(f.parameters),
        evidence_status=status(missing, bucket_frames_wanted),  # type: ignore[arg-type]
        evidence_missing=tuple(missing),
    )
