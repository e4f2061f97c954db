"""Incidents from the track service on the real nats-server: scripted detections over a real
frame of the Sài Gòn clip, a controller's phases; the events land on the INCIDENTS stream, decode
into their Structs, carry evidence stored by SHA-256, and a second pass over the same detections
(the camera's consumer deleted and created again, as after a lost position) publishes nothing new:
the stream drops the repeats by id."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta, timezone

from proto import codec, ids, streams, subjects
from proto.v1.incident import IncidentCleared, IncidentDetected
from proto.v1.telemetry import SignalPhase
from services.runtime import bus
from services.track import scenes
from services.track.settings import Settings
from track_bus import Service, controller_scene, detection, publish_frame, saigon_jpeg  # noqa: F401

TYPES = {"detected": IncidentDetected, "cleared": IncidentCleared}


async def stored(js, camera: str) -> list[tuple[str, object]]:
    """Every incident event of the camera in INCIDENTS, decoded into its Struct."""
    out = []
    info = await js.stream_info(streams.INCIDENTS.name, subjects_filter=f"traffic.incident.*.v1.{camera}.>")
    for subject in sorted(info.state.subjects or {}):
        action = subject.split(".")[2]
        msg = await js.get_last_msg(streams.INCIDENTS.name, subject)
        out.append((action, codec.decode(msg.data, TYPES[action])))
    return out


async def count(js, camera: str) -> int:
    info = await js.stream_info(streams.INCIDENTS.name, subjects_filter=f"traffic.incident.*.v1.{camera}.>")
    return sum((info.state.subjects or {}).values())


async def drained(js, camera: str):
    try:
        info = await js.consumer_info("DETECTIONS", f"track-{camera}")
    except Exception:
        return None
    return info if info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq > 0 else None


async def test_a_stopped_car_is_detected_and_cleared_on_incidents_once_even_when_replayed(
        nc, js, nats_url, unique, tmp_path, repo_dir, saigon_jpeg, wait_for):
    camera, intersection = f"sg-inc-{unique}", f"x-inc-{unique}"
    controller_scene(repo_dir, tmp_path, camera, intersection)
    scene_map = scenes.load_dir(tmp_path)
    assert scene_map[camera].incidents is not None and scene_map[camera].incidents.stopped_vehicle.after_s == 2.5
    settings = Settings(nats_url=nats_url, http_port=0, scenes_dir=str(tmp_path), reorder_window_s=0.3)
    await bus.ensure_streams(js)
    t0 = datetime.now(timezone.utc) - timedelta(seconds=60)
    at = t0 - timedelta(seconds=10)
    await js.publish(subjects.signal_phase(intersection), codec.encode(SignalPhase(
        id=ids.event_id("signal", intersection, "main", at.isoformat()), intersection_id=intersection,
        occurred_at=at, head="main", phase="green")))
    # A car stands in the middle lane, far behind the stop line (y=388) with nothing ahead, for
    # 6 s while the light is green, then drives off up the lane at 100 px/s for 4 s.
    for i in range(100):
        t = t0 + timedelta(seconds=i / 10)
        seq = await publish_frame(js, camera, i, t, saigon_jpeg)
        bottom = 640 if i < 60 else 640 - 10 * (i - 60)
        await js.publish(subjects.detection_made(camera), codec.encode(
            detection(camera, i, seq, t, [(460, bottom - 110, 600, bottom)])))

    service = Service(settings, scene_map)
    try:
        await wait_for(lambda: drained(js, camera), timeout=30, what="the detections tracked")

        async def both():
            events = await stored(js, camera)
            return events if {a for a, _ in events} == {"detected", "cleared"} else None
        got = await wait_for(both, timeout=20, what="detected and cleared on INCIDENTS")
    finally:
        await service.close()

    detected = next(e for a, e in got if a == "detected")
    cleared = next(e for a, e in got if a == "cleared")
    assert await count(js, camera) == 2, "one incident: detected once, cleared once"
    assert detected.type == "stopped_vehicle" and detected.lane == "middle" and detected.vehicle_class == "car"
    assert detected.camera_id == camera and detected.location.address.startswith("Nguyễn Huệ")
    assert detected.occurred_at < detected.detected_at <= t0 + timedelta(seconds=6)
    assert detected.duration_s >= 2.5 and detected.parameters["after_s"] == 2.5
    assert cleared.incident_id == detected.incident_id and cleared.reason == "resolved"
    assert t0 + timedelta(seconds=6) <= cleared.occurred_at <= t0 + timedelta(seconds=10)
    assert cleared.started_at == detected.occurred_at
    # Evidence: where it began and where it was reported, each as the original and an overlay.
    assert detected.evidence_status == "complete"
    assert sorted(e.kind for e in detected.evidence) == ["frame", "frame", "overlay", "overlay"]
    store = await js.object_store("evidence")
    for ref in detected.evidence:
        data = (await store.get(ref.name)).data
        assert hashlib.sha256(data).hexdigest() == ref.sha256 and ref.subject_box is not None
    frames = [e for e in detected.evidence if e.kind == "frame"]
    assert (await store.get(frames[0].name)).data == saigon_jpeg  # the original, untouched

    # The same detections tracked again from the start: the same ids, dropped by the stream.
    await js.delete_consumer("DETECTIONS", f"track-{camera}")
    service = Service(settings, scene_map)
    try:
        await wait_for(lambda: drained(js, camera), timeout=30, what="the detections tracked again")
        await asyncio.sleep(1.0)  # the outbox is flushed on each detection and tick
    finally:
        await service.close()
    assert await count(js, camera) == 2
    assert [(a, e.id) for a, e in await stored(js, camera)] == [(a, e.id) for a, e in got]
