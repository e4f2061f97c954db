"""Evidence images from frames, as plain functions: originals kept byte for byte, overlays drawn,
the plate crop made, and a frame that will not decode reported instead of replaced."""

from __future__ import annotations

from datetime import datetime, timezone

import cv2
import numpy as np
import pytest

from proto.v1.common import PlateText
from services.track import evidence
from services.track.camera import ViolationDraft
from services.track.plates import PlateSighting
from services.track.rules import Finding, Observation
from track_samples import load_scene


@pytest.fixture(scope="module")
def jpeg(shared_dir) -> bytes:
    import av
    with av.open(str(shared_dir / "data/video/vn_haiphong_intersection.mp4")) as container:
        image = next(container.decode(video=0)).to_ndarray(format="bgr24")
    return cv2.imencode(".jpg", image)[1].tobytes()


def draft(seqs: list[int], plate_seq: int | None) -> ViolationDraft:
    obs = [Observation(t=1000.0 + i, stream_seq=s, frame_seq=i, box=(441, 406, 643, 596), velocity=(0, -50))
           for i, s in enumerate(seqs)]
    finding = Finding("red_light", "stop", 1001.0, obs[1], 1.5, "s", phase="red", phase_age_s=1.5,
                      parameters={"phase_age_is_lower_bound": "false"})
    sighting = None if plate_seq is None else PlateSighting(
        PlateText(text="30K-558.78", confidence=0.8, format_valid=True), plate_seq, (524, 522, 561, 541))
    return ViolationDraft(id="violation-x", camera_id="test-cam", finding=finding, track_id=7, vehicle_class="car",
                          frames=list(zip(["before", "at", "after"], obs)),
                          plate=sighting.read if sighting else None, plate_sighting=sighting)


def test_originals_overlays_and_plate_crop(tmp_path, jpeg):
    scene = load_scene(tmp_path)
    at = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)
    frames = {s: evidence.StoredFrame(s, jpeg, at) for s in (11, 12, 13)}
    objects, bad = evidence.build(draft([11, 12, 13], 12), scene, frames)
    assert bad == []
    assert [o.kind for o in objects] == ["plate_crop", "frame", "overlay", "frame", "overlay", "frame", "overlay"]
    assert all(o.data == jpeg for o in objects if o.kind == "frame")
    overlay = cv2.imdecode(np.frombuffer(objects[2].data, np.uint8), cv2.IMREAD_COLOR)
    original = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert overlay.shape == original.shape
    assert overlay[:40].mean() < original[:40].mean() - 30  # the dark banner with the facts
    crop = cv2.imdecode(np.frombuffer(objects[0].data, np.uint8), cv2.IMREAD_COLOR)
    assert crop.shape[1] > crop.shape[0] > 10  # a plate-shaped crop
    assert evidence.sha256(objects[1].data) == objects[1].sha256
    # The violating vehicle's box, in the image's pixels, on every frame and overlay (the public copy keeps only it).
    assert objects[0].subject_box is None
    for o in objects[1:]:
        x1, y1, x2, y2 = o.subject_box
        assert 0 <= x1 < x2 <= original.shape[1] and 0 <= y1 < y2 <= original.shape[0]


def test_undecodable_and_missing_frames_are_not_replaced(tmp_path, jpeg):
    scene = load_scene(tmp_path)
    frames = {11: evidence.StoredFrame(11, jpeg, None), 12: evidence.StoredFrame(12, jpeg[:200], None)}
    objects, bad = evidence.build(draft([11, 12, 13], 12), scene, frames)
    assert bad == [12]
    assert [o.kind for o in objects] == ["frame", "overlay"]  # only frame 11; 13 was never there
    event = evidence.violation_event(draft([11, 12, 13], 12), scene, [], [12, 13], bucket_frames_wanted=3,
                                     now=datetime.now(timezone.utc))
    assert event.evidence_status == "partial" and event.evidence_missing == (12, 13)
    assert event.plate.text == "30K-558.78" and event.measurement.phase == "red"


def test_overlay_text_is_ascii_folded():
    assert evidence.ascii_fold("Ngã tư Lạch Tray – Văn Cao, Đà Nẵng") == "Nga tu Lach Tray - Van Cao, Da Nang"
