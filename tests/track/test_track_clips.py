"""The tracker and the rules on real detections of the Hai Phong clip (10 frames/s).

The reference boxes were checked by eye on a contact sheet of frames 0, 20, 40 and 60 with the
tracks drawn on: the white Mercedes and the white Mitsubishi waiting at the line, the red car
driving up behind them, the blue scooter turning left across the junction, the teal scooter
waiting on the right. Each must keep one id over the frames where it is visible.
"""

from __future__ import annotations

import pytest

from services.track import scenes
from services.track.camera import CameraTracker
from services.track.tracker import Detection, Tracker, iou_matrix
from track_clips import clip_detections

CLIP = "vn_haiphong_intersection.mp4"
CLASSES = frozenset({"car", "motorcycle", "bus", "truck", "bicycle"})

# name -> (frame, box) pairs seen by eye
FOLLOWED = {
    "white mercedes": ((0, (441, 406, 643, 596)), (60, (444, 400, 638, 589))),
    "white mitsubishi": ((0, (53, 331, 222, 475)), (60, (52, 324, 225, 477))),
    "red car": ((0, (247, 655, 521, 717)), (60, (266, 560, 504, 716))),
    "blue scooter turning left": ((20, (555, 214, 635, 292)), (40, (382, 229, 466, 312)), (60, (162, 256, 249, 343))),
    "teal scooter": ((20, (762, 172, 843, 245)), (60, (757, 175, 833, 247))),
}


@pytest.fixture(scope="module")
def haiphong(shared_dir):
    return clip_detections(shared_dir, CLIP, "demo-haiphong", 0, 60, 2)


def test_ids_stay_stable_for_vehicles_followed_by_eye(haiphong):
    events, _ = haiphong
    tracker = Tracker()
    seen: dict[int, dict[int, tuple]] = {}  # frame -> track id -> box
    for event in events:
        detections = [Detection((o.box.x1, o.box.y1, o.box.x2, o.box.y2), o.score, o.class_name, i)
                      for i, o in enumerate(event.objects) if o.class_name in CLASSES]
        matched, _ = tracker.update(event.frame.captured_at.timestamp(), detections)
        seen[event.frame.frame_seq] = {t.id: t.detection.box for t in matched}
    ids = {}
    for name, sightings in FOLLOWED.items():
        found = []
        for frame, box in sightings:
            tracks = list(seen[frame].items())
            overlaps = iou_matrix([box], [b for _, b in tracks])[0]
            best = int(overlaps.argmax())
            assert overlaps[best] >= 0.5, f"{name}: no track on it in frame {frame}"
            found.append(tracks[best][0])
        assert len(set(found)) == 1, f"{name}: ids {found} over frames {[f for f, _ in sightings]}"
        ids[name] = found[0]
    assert len(set(ids.values())) == len(ids)  # five vehicles, five tracks


def test_red_light_runners_on_the_haiphong_clip(haiphong, repo_dir):
    """Riders in the right lane who go straight on (not right, where the arrow is green) while
    the main head is red. Checked by eye on the overlays: one crosses the line at frame ~8
    (x ~ 670), the next waits at the line and goes at frame ~30-46 (x ~ 760-820)."""
    events, frames = haiphong
    scene = scenes.load(repo_dir / "deploy/local/scenes/demo-haiphong.yaml")
    engine = CameraTracker(scene, classes=CLASSES)
    drafts = []
    for event in events:
        engine.observe_signal_image(event.frame.captured_at.timestamp(), frames[event.frame.frame_seq])
        drafts += engine.process(event).drafts
    drafts += engine.finish()
    drafts.sort(key=lambda d: d.finding.t)
    assert [(d.finding.type, d.vehicle_class, d.finding.parameters["movement"], d.finding.parameters["lane"])
            for d in drafts] == [("red_light", "motorcycle", "straight", "right")] * 2
    for draft in drafts:
        assert draft.finding.parameters["signal_source"] == "vision" and draft.finding.phase == "red"
        # Red from the clip's first frame: how long before that it turned red is unknown, and said so.
        assert draft.finding.parameters["phase_age_is_lower_bound"] == "true"
        assert [role for role, _ in draft.frames] == ["before", "at", "after"]
    first, second = (dict(d.frames)["at"] for d in drafts)
    assert 4 <= first.frame_seq <= 12 and 630 < (first.box[0] + first.box[2]) / 2 < 720
    assert 28 <= second.frame_seq <= 48 and 740 < (second.box[0] + second.box[2]) / 2 < 830
    assert drafts[0].track_id != drafts[1].track_id
    # The count line lies on the stop line: both runners are counted there (once each).
    [window] = engine.flush_counts()
    assert [(c.line, c.direction, c.vehicle_class) for c in window.counts] == [("approach-north", "forward", "motorcycle")]
    assert window.counts[0].count >= 2
