"""The message handler as plain functions: frame bytes and headers in, DetectionMade out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import cv2
import msgspec
import pytest

from proto import codec
from proto.v1.detection import DetectionMade
from proto.v1.frame import frame_headers, new_frame_meta
from services.detect.handler import decode_frame, detection_event
from services.runtime.bus import Invalid

NOW = datetime(2026, 11, 29, 7, 0, tzinfo=timezone.utc)


def headers(captured_at=NOW, camera="cam-07", seq=12, size=(1006, 720)):
    return frame_headers(new_frame_meta(camera_id=camera, frame_seq=seq, captured_at=captured_at, width=size[0], height=size[1]))


@pytest.fixture(scope="module")
def jpeg(video_frame) -> bytes:
    ok, data = cv2.imencode(".jpg", video_frame("vn_haiphong_intersection.mp4", 0))
    assert ok
    return data.tobytes()


def test_frame_becomes_a_detection_event(pipeline, jpeg: bytes):
    frame = decode_frame(jpeg, headers(), 345, now=NOW + timedelta(seconds=1), max_age_s=30)
    assert not frame.stale and frame.image.shape == (720, 1006, 3)
    event = detection_event(frame, pipeline.process(frame.image), model="yolox", now=NOW + timedelta(seconds=2))
    assert (event.camera_id, event.frame.stream_seq, event.frame.frame_seq) == ("cam-07", 345, 12)
    assert (event.frame.width, event.frame.height, event.occurred_at) == (1006, 720, NOW)
    assert sum(o.class_name == "car" for o in event.objects) >= 6  # eye-checked: 9 cars in this frame
    for plate in event.plates:
        assert plate.vehicle_index is None or 0 <= plate.vehicle_index < len(event.objects)
    # it survives the wire and validation, and the id is a function of the frame only
    again = codec.decode(codec.encode(event), DetectionMade)
    assert again == event
    assert detection_event(frame, pipeline.process(frame.image), model="yolox", now=NOW).id == event.id


def test_stale_frame_is_not_decoded(jpeg: bytes):
    frame = decode_frame(jpeg, headers(captured_at=NOW - timedelta(minutes=5)), 1, now=NOW, max_age_s=30)
    assert frame.stale and frame.age_s == pytest.approx(300)


def test_corrupt_jpeg_is_invalid(jpeg: bytes):
    with pytest.raises(Invalid, match="not a decodable JPEG"):
        decode_frame(b"\xff\xd8\xff\xe0garbage" * 10, headers(), 1, now=NOW, max_age_s=30)


def test_empty_payload_is_invalid():
    with pytest.raises(Invalid, match="empty payload"):
        decode_frame(b"", headers(), 1, now=NOW, max_age_s=30)


def test_missing_headers_are_named(jpeg: bytes):
    partial = {k: v for k, v in headers().items() if k not in ("Captured-At", "Frame-Seq")}
    with pytest.raises(msgspec.ValidationError, match="Frame-Seq, Captured-At|Captured-At"):
        decode_frame(jpeg, partial, 1, now=NOW, max_age_s=30)
    with pytest.raises(msgspec.ValidationError):
        decode_frame(jpeg, None, 1, now=NOW, max_age_s=30)


def test_camera_with_a_scene_is_detected_with_its_plan(pipeline, jpeg: bytes, tmp_path):
    """The service path: a camera whose scene has a `detection:` block gets its roi and slices
    (here a roi of the left half only), a camera without a scene the whole frame."""
    import re
    from pathlib import Path

    from services.detect.handler import detect_frame
    from services.detect.regions import PlanBook

    scene = Path(__file__).resolve().parents[2] / "deploy" / "local" / "scenes" / "demo-haiphong.yaml"
    text = scene.read_text(encoding="utf-8").replace("camera: demo-haiphong", "camera: cam-07")
    text = re.sub(r"(?m)^  roi: .*$", "  roi: [[0, 0], [500, 0], [500, 720], [0, 720]]", text)
    assert "roi: [[0, 0], [500, 0]" in text
    (tmp_path / "cam-07.yaml").write_text(text, encoding="utf-8")
    plans = PlanBook.from_dir(tmp_path, pipeline.vehicles.class_names)

    planned = decode_frame(jpeg, headers(camera="cam-07"), 1, now=NOW, max_age_s=30)
    other = decode_frame(jpeg, headers(camera="cam-08"), 2, now=NOW, max_age_s=30)
    with_plan, without = detect_frame(pipeline, plans, planned), detect_frame(pipeline, plans, other)
    assert without.vehicles == pipeline.process(other.image).vehicles
    assert with_plan.vehicles and all((v.box[0] + v.box[2]) / 2 <= 500 for v in with_plan.vehicles)
    assert any((v.box[0] + v.box[2]) / 2 > 500 for v in without.vehicles)
    # the tiles see more than the whole frame on the left half
    left = [v for v in without.vehicles if (v.box[0] + v.box[2]) / 2 <= 500]
    assert len(with_plan.vehicles) > len(left)
    # riders fused on the way reach the wire
    event = detection_event(planned, with_plan, model="yolox", now=NOW)
    assert any(o.riders >= 1 and o.class_name == "motorcycle" for o in event.objects)
    assert codec.decode(codec.encode(event), DetectionMade) == event
