"""Tracking and stop-line judgement at 5 and 10 frames/s on REAL detections of the Hai Phong clip.

Detections: tests/track/data/vn_haiphong_10fps.json, made once by the real detect pipeline
(YOLOX-nano, plates, OCR) over the clip sampled at 10 frames/s by presentation time, as ingest
samples (tests/track/record_detections.py says how; the 5 frames/s sampling is a subset of it).
Boxes scored under 0.3 are left out, as the detect service's default VEHICLE_CONF does.

Truth: the hand-checked eval/truth/vn_haiphong_intersection.json: five stop-line crossings, three of them red-light runs
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
TRUTH = Path(__file__).parents[2] / "eval" / "truth"
CLASSES = frozenset({"car", "motorcycle", "bus", "truck", "bicycle", "person"})


@pytest.fixture(scope="module")
def recording():
    return json.loads((DATA / "vn_haiphong_10fps.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def truth():
    return json.loads((TRUTH / "vn_haiphong_intersection.json").read_text(encoding="utf-8"))


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


@pytest.mark.parametrize("fps", [5, 10])
def test_a_rider_boxed_only_as_person_runs_the_red_on_the_saigon_clip(repo_dir, fps):
    """Sai Gon (truth: eval/truth/vn_saigon_intersection.json): the
    yellow-helmet rider crosses at frame 99 (x 785) and goes on into the junction on red. The
    detector never boxes the bike, only the `person`: the track is a person-only track, judged
    a two-wheeler because it moves with the traffic in the right lane, and its run is found.
    The pedestrian standing on the pavement by the pole (x~868, y~331) is tracked all clip long
    and never judged. Known gaps (see the README): riders crawling over the line late in the clip,
    boxed weakly, are not followed over it; an id swap makes one false run here."""
    recording = json.loads((DATA / "vn_saigon_10fps.json").read_text(encoding="utf-8"))
    truth = json.loads((TRUTH / "vn_saigon_intersection.json").read_text(encoding="utf-8"))
    scene = scenes.load(repo_dir / "deploy/local/scenes/demo-saigon.yaml")
    cam = CameraTracker(scene, classes=CLASSES)
    truth_signal(cam, truth, truth["video"]["fps"])
    drafts, standing, person_only, vehicle = [], set(), set(), set()
    for event in events(recording, fps, min_score=0.3, camera=scene.camera):
        drafts += cam.process(event).drafts
        for tr in cam.tracker.tracks:
            (person_only if tr.person_only else vehicle).add(tr.id)
        standing |= {tr.id for tr in cam.tracker.tracks if tr.detection is not None and tr.person_only
                     and abs((tr.box[0] + tr.box[2]) / 2 - 868) < 15 and abs(tr.box[3] - 331) < 15}
    drafts += cam.finish()
    run_99 = next(v for v in truth["violations"] if v["frame"] == 99)
    found = [d for d in drafts if d.finding.type == "red_light"
             and abs(d.finding.t - T0.timestamp() - run_99["t"]) <= 0.5
             and abs(d.finding.observation.anchor[0] - run_99["x"]) <= 80]
    assert len(found) == 1 and found[0].vehicle_class == "motorcycle"
    assert found[0].track_id in person_only - vehicle  # never boxed as a vehicle
    assert found[0].finding.parameters["movement"] == "straight"
    assert standing and not any(d.track_id in standing for d in drafts)
