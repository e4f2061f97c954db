"""Builders of the events the portal consumes, with real evidence images in the object store."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import cv2
import msgspec
import nats.js.api

from proto import codec, ids, subjects
from proto.v1 import (CameraStatus, IncidentCleared, IncidentDetected, IncidentUpdated, LaneTraffic, SignalPhase,
                      ViolationIdentified, ViolationUnidentified)
from proto.v1.frame import FrameMeta, frame_headers, frame_id
from proto.v1.common import Box, EvidenceRef, Location, PlateAlternative, PlateText
from proto.v1.violation import Measurement, Owner, Vehicle, ViolationDetected
from services.runtime import bus

ICT = timezone(timedelta(hours=7))
BUCKET = "evidence"
# Lạch Tray: the commune of the demo commune police in agencies.example.yaml.
LACH_TRAY = "11311"
OTHER_COMMUNE = "11329"

OWNERS = {
    LACH_TRAY: Owner(kind="person", name="Nguyễn Văn An", national_id="031089001234",
                     address="Số 12 Lạch Tray, phường Lạch Tray, Hải Phòng", commune_code=LACH_TRAY,
                     province="Hải Phòng", phone="0912345678", email="nguyenvanan@example.vn"),
    OTHER_COMMUNE: Owner(kind="person", name="Trần Thị Bích Ngọc", national_id="031190004321",
                         address="Số 8 Đà Nẵng, phường Cầu Tre, Hải Phòng", commune_code=OTHER_COMMUNE,
                         province="Hải Phòng", phone="0987654321", email="ngoc.tran@example.vn"),
}
# Every owner value that must never reach a role without the "owner" permission.
OWNER_SECRETS = [v for o in OWNERS.values() for v in (o.name, o.national_id, o.address, o.phone, o.email)]


AMBULANCE = Box(x1=285, y1=255, x2=558, y2=630)  # in vn_cam_video1_78.jpg (1280×720)


async def put_evidence(js, street_dir: Path, image: str = "vn_cam_video1_78.jpg",
                       crop: tuple[int, int, int, int] = (405, 585, 505, 635), *,
                       bucket: str = BUCKET, subject_box: Box | None = AMBULANCE) -> tuple[EvidenceRef, ...]:
    """Store a real camera frame and a crop of it under their SHA-256, as track does (the
    default crop is the ambulance's plate, 68H-5984, in vn_cam_video1_78.jpg; `subject_box`
    the violating vehicle in the frame, the ambulance, checked by eye)."""
    frame = (street_dir / image).read_bytes()
    decoded = cv2.imread(str(street_dir / image))
    x1, y1, x2, y2 = crop
    ok, crop_jpeg = cv2.imencode(".jpg", decoded[y1:y2, x1:x2], [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    try:
        store = await js.object_store(bucket)
    except nats.js.errors.BucketNotFoundError:
        store = await js.create_object_store(bucket)
    refs = []
    for kind, data in (("frame", frame), ("plate_crop", crop_jpeg.tobytes())):
        sha = hashlib.sha256(data).hexdigest()
        await store.put(sha, data)
        refs.append(EvidenceRef(bucket=bucket, name=sha, sha256=sha, kind=kind, size=len(data),
                                captured_at=datetime(2026, 11, 20, 7, 45, 12, tzinfo=ICT),
                                subject_box=subject_box if kind == "frame" else None))
    return tuple(refs)


def detected(camera: str, n: int, *, plate: str | None = "15A-123.45", type_: str = "red_light",
             at: datetime | None = None, evidence: tuple[EvidenceRef, ...] = (),
             commune: str = LACH_TRAY) -> ViolationDetected:
    at = at or datetime(2026, 11, 20, 7, 45, 12, tzinfo=ICT) + timedelta(minutes=n)
    read = None if plate is None else PlateText(
        text=plate, raw=plate.replace("-", "").replace(".", "").replace(" ", ""), confidence=0.91,
        format_valid=True, alternatives=(PlateAlternative(text=plate[:-1] + "6", confidence=0.05),))
    return ViolationDetected(
        id=ids.event_id("vio", camera, n), camera_id=camera, occurred_at=at, type=type_,
        location=Location(latitude=20.8449, longitude=106.6881, address="Ngã tư Lạch Tray – Văn Cao, Ngô Quyền, Hải Phòng",
                          commune_code=commune),
        vehicle_class="car", vehicle_colour="white", track_id=n, plate=read,
        measurement=Measurement(value=68.4, unit="km/h", limit=50.0) if type_ == "speeding" else None,
        rule="stop-line-north", evidence=evidence, detected_at=at + timedelta(seconds=2))


def identified(camera: str, n: int, *, plate: str = "15A-123.45", owner_commune: str = LACH_TRAY,
               evidence: tuple[EvidenceRef, ...] = (), **kw) -> ViolationIdentified:
    v = detected(camera, n, plate=plate, evidence=evidence, **kw)
    bare = plate.replace("-", "").replace(".", "").replace(" ", "")
    return ViolationIdentified(
        id=ids.event_id("idf", v.id), camera_id=camera, occurred_at=v.occurred_at, violation=v,
        vehicle=Vehicle(plate=bare, plate_printed=plate, plate_colour="white", vehicle_type="car", brand="Toyota Vios",
                        colour="white", inspection_status="valid"),
        owner=OWNERS[owner_commune], match="exact", matched_plate=bare)


def unidentified(camera: str, n: int, *, plate: str | None = "15A-999.99", evidence: tuple[EvidenceRef, ...] = (),
                 **kw) -> ViolationUnidentified:
    v = detected(camera, n, plate=plate, evidence=evidence, **kw)
    return ViolationUnidentified(id=ids.event_id("unid", v.id), camera_id=camera, occurred_at=v.occurred_at,
                                 violation=v, reason="no_record" if plate else "no_read")


async def publish_violation(js, event) -> None:
    kind = "identified" if hasattr(event, "owner") else "unidentified"
    subject = (subjects.violation_identified if kind == "identified" else subjects.violation_unidentified)(
        event.camera_id, event.violation.type)
    await bus.publish(js, subject, event, service="tests")


async def case_for(database_url: str, violation_id: str) -> dict | None:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT * FROM portal.cases WHERE violation_id = $1", violation_id)
        return dict(row) if row else None
    finally:
        await conn.close()


# --- incidents (proto/v1/incident.py) -------------------------------------------------------------
def incident_events(camera: str, n: int, *, type_: str = "stopped_vehicle", evidence: tuple[EvidenceRef, ...] = (),
                    start: datetime | None = None) -> tuple[IncidentDetected, IncidentUpdated, IncidentCleared]:
    """One incident's three events as track would publish them: a vehicle stopped in lane 2 for
    30 s is reported (critical after 2 min), then it drives off."""
    start = start or datetime(2026, 11, 20, 8, 5, 0, tzinfo=ICT) + timedelta(minutes=n)
    incident_id = ids.event_id("inc", camera, type_, n)
    place = Location(latitude=20.8449, longitude=106.6881, address="Ngã tư Lạch Tray – Văn Cao, Ngô Quyền, Hải Phòng",
                     commune_code=LACH_TRAY)
    congestion = type_ == "congestion"
    lane = LaneTraffic(lane="lane-2", occupancy=0.62, queue_vehicles=9, vehicles=14, mean_speed=3.5, level="heavy")
    detected_ = IncidentDetected(
        id=ids.event_id("incd", incident_id), incident_id=incident_id, camera_id=camera, occurred_at=start,
        detected_at=start + timedelta(seconds=30), type=type_, severity="warning", location=place, lane="lane-2",
        zone=None if congestion else "no-stopping-1", track_ids=() if congestion else (40 + n,),
        vehicle_class=None if congestion else "car", duration_s=30.0, traffic=lane if congestion else None,
        parameters={"max_dwell_s": 30.0}, evidence=evidence, evidence_status="complete" if evidence else "not_collected")
    updated = IncidentUpdated(
        id=ids.event_id("incu", incident_id, 1), incident_id=incident_id, camera_id=camera,
        occurred_at=start + timedelta(seconds=120), type=type_, severity="critical", duration_s=120.0,
        traffic=msgspec.structs.replace(lane, level="jammed", occupancy=0.9) if congestion else None,
        track_ids=() if congestion else (40 + n,), change="level heavy -> jammed" if congestion else "dwell 120 s")
    cleared = IncidentCleared(
        id=ids.event_id("incc", incident_id), incident_id=incident_id, camera_id=camera,
        occurred_at=start + timedelta(seconds=200), type=type_, started_at=start, duration_s=200.0, reason="resolved")
    return detected_, updated, cleared


async def publish_incident(js, event: IncidentDetected | IncidentUpdated | IncidentCleared, *,
                           msg_id: str | None = None) -> None:
    subject = {IncidentDetected: subjects.incident_detected, IncidentUpdated: subjects.incident_updated,
               IncidentCleared: subjects.incident_cleared}[type(event)](event.camera_id, event.type)
    await js.publish(subject, codec.encode(event), headers={bus.MSG_ID: msg_id or event.id}, timeout=5)


# --- camera frames (FRAMES), as ingest publishes them ----------------------------------------------
def clip_frames(path: Path, count: int, *, every: int = 5, width: int = 640) -> list[bytes]:
    """`count` JPEG frames of a real clip, one every `every` decoded frames, `width` pixels wide."""
    capture = cv2.VideoCapture(str(path))
    frames: list[bytes] = []
    index = 0
    try:
        while len(frames) < count:
            ok, image = capture.read()
            if not ok:
                break
            if index % every == 0:
                height = round(image.shape[0] * width / image.shape[1])
                ok, jpeg = cv2.imencode(".jpg", cv2.resize(image, (width, height)), [cv2.IMWRITE_JPEG_QUALITY, 80])
                assert ok
                frames.append(jpeg.tobytes())
            index += 1
    finally:
        capture.release()
    assert len(frames) == count, f"{path} gave {len(frames)} frames, wanted {count}"
    return frames


async def publish_frame(js, camera: str, jpeg: bytes, *, at: datetime | None = None) -> int:
    """Publish one frame with ingest's headers; returns its stream sequence."""
    at = at or datetime.now(timezone.utc)
    seq = int(at.timestamp() * 1000)
    meta = FrameMeta(id=frame_id(camera, at, seq), camera_id=camera, frame_seq=seq, captured_at=at, width=640,
                     height=360)
    ack = await js.publish(subjects.frame_captured(camera), jpeg, headers=frame_headers(meta), timeout=5)
    return ack.seq


def camera_status(camera: str, state: str = "online", *, at: datetime | None = None) -> CameraStatus:
    at = at or datetime.now(timezone.utc)
    return CameraStatus(id=ids.event_id("cst", camera, at.isoformat()), camera_id=camera, occurred_at=at, state=state,
                        fps_in=25.0, fps_out=5.0, last_frame_age_s=0.2)


def signal_phase(intersection: str, camera: str, head: str, phase: str, *, at: datetime | None = None) -> SignalPhase:
    at = at or datetime.now(timezone.utc)
    return SignalPhase(id=ids.event_id("sig", intersection, head, at.isoformat()), intersection_id=intersection,
                       camera_id=camera, occurred_at=at, head=head, phase=phase, source="vision")
