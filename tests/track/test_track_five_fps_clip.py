"""Tracking and stop-line judgement at 5 and 10 frames/s on REAL detections of the Hai Phong clip.

Detections: tests/track/data/vn_haiphong_10fps.json, made once by the real detect pipeline
(YOLOX-nano, plates, OCR) over the clip sampled at 10 frames/s by presentation time, as ingest
samples (tests/track/record_detections.py says how; the 5 frames/s sampling is a subset of it).
Boxes scored under 0.3 are left out, as the detect service's default VEHICLE_CONF does.

Truth: tests/track/data/vn_haiphong_truth.json, copied from the labellers' hand-checked
eval/truth/vn_haiphong_intersection.json: five stop-line crossings, three of them red-light runs
(the main head is red for the whole clip, the right-turn arrow green), with the labeller's box of
each crossing vehicle every four frames. The lamp timeline comes from that truth too, so these
tests judge tracking, not lamp reading.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from measure_crossings import T0, compare, events, truth_signal
from services.track import scenes
from services.track.camera import CameraTracker
from services.track.tracker import iou_matrix

DATA = Path(__file__).parent / "data"
CLASSES = frozenset({"car", "motorcycle", "bus", "truck", "bicycle", "person"})


@pytest.fixture(scope="module")
def recording():
    return json.loads((DATA / "vn_haiphong_10fps.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def truth():
    return json.loads((DATA / "vn_haiphong_truth.json").read_text(encoding="utf-8"))


def replay(recording, truth, repo_dir, fps):
    scene = scenes.load(repo_dir / "deploy/local/scenes/demo-haiphong.yaml")
    cam = CameraTracker(scene, classes=CLASSES)
    truth_signal(cam, truth, truth["video"]["fps"])
    crossings, drafts, boxes = [], [], {}
    for event in events(recording, fps, min_score=0.3, camera=scene.camera):
        step = cam.process(event)
        drafts += step.drafts
        crossings += [{"t": c.t - T0.timestamp(), "x": c.point[0], "track": tid, "class": cls} for tid, cls, c in step.crossings]
        boxes[event.frame.frame_seq] = {tr.id: tr.detection.box for tr in cam.tracker.tracks if tr.detection is not None}
    drafts += cam.finish()
    red = [{"t": d.finding.t - T0.timestamp(), "x": d.finding.observation.anchor[0], "track": d.track_id}
           for d in drafts if d.finding.type == "red_light"]
    return crossings, red, boxes


def test_every_crossing_at_10_fps_and_every_red_light_run(recording, truth, repo_dir):
    crossings, red, _ = replay(recording, truth, repo_dir, 10)
    c = compare(crossings, truth["crossings"])
    assert (c["matched"], c["missed"], c["false"]) == (5, [], [])
    r = compare(red, [v for v in truth["violations"] if v["type"] == "red_light"])
    assert (r["matched"], r["missed"], r["false"]) == (3, [], [])


def test_crossings_and_red_light_runs_at_5_fps(recording, truth, repo_dir):
    """At 5 frames/s four of the five crossings are found, both right turns on the green arrow
    are not judged, two red-light runs are found, nothing false and nothing twice.

    The fifth crossing (frame 60, the woman on the pink scooter) cannot be seen at 5 fps in this
    clip: in frame 60 the detector's box still ends 3 px short of the line (y=395, line y=392),
    and the next 5 fps sample, frame 64, is after the clip's cut to another moment (the
    labeller: "the clip CUTS after frame 63"). It is asserted missed, not papered over."""
    crossings, red, _ = replay(recording, truth, repo_dir, 5)
    c = compare(crossings, truth["crossings"])
    assert c["false"] == [] and [(e["frame"], e["x"]) for e in c["missed"]] == [(60, 745)]
    r = compare(red, [v for v in truth["violations"] if v["type"] == "red_light"])
    assert r["false"] == [] and [(e["frame"], e["x"]) for e in r["missed"]] == [(60, 745)]
    assert len(red) == 2 and len({v["track"] for v in red}) == 2


@pytest.mark.parametrize("fps", [5, 10])
def test_each_crossing_vehicle_keeps_one_track_across_the_line(recording, truth, repo_dir, fps):
    """The labeller's boxes of each vehicle, in the sampled frames they fall on, before and after
    its crossing, all lie on the same track: no split at the line."""
    _, _, boxes = replay(recording, truth, repo_dir, fps)
    for crossing in truth["crossings"]:
        ids = {}
        for sighting in crossing["track"]:
            tracks = boxes.get(sighting["frame"])
            if not tracks:
                continue
            overlaps = iou_matrix([tuple(sighting["box"])], list(tracks.values()))[0]
            best = int(overlaps.argmax())
            if overlaps[best] >= 0.3:
                ids[sighting["frame"]] = list(tracks)[best]
        before = [f for f in ids if f < crossing["frame"]]
        after = [f for f in ids if f >= crossing["frame"]]
        if crossing["frame"] == 60:
            continue  # nothing after the line at 5 fps (the clip cuts at 64), checked above
        assert before and after, f"crossing at frame {crossing['frame']}: tracked {sorted(ids)}"
        assert len(set(ids.values())) == 1, f"crossing at frame {crossing['frame']}: tracks {ids}"
