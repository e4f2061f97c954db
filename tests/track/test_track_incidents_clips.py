"""Incidents on REAL detections of the two Vietnamese clips, against the labeller's incident truth.

Detections: tests/track/data/vn_{haiphong,saigon}_10fps.json, made once by the real detect
pipeline (record_detections.py), resampled to 5 and 10 frames/s as ingest samples, boxes under
0.3 left out as the detect service does; through the real CameraTracker and incident detector
with the scenes of the demo cameras. The lamps come from the clips' truth timeline (red main head
for the whole of both clips), so these tests judge the incident logic, not lamp reading; after
the Hải Phòng splice (frame 64, marked a discontinuity as ingest marks a reconnect) the phase is
unknown until read again, and the truth's red is observed again from that frame.

Truth: eval/truth/<clip>.incidents.json. A person sees no incident on either clip: the only
standing vehicles wait at the red light (three cars and, after the splice, motorbikes in Hải
Phòng; two cars, a taxi and riders in Sài Gòn). So the target checked here is "none reported, and
none at a red-light queue"; the counterfactual runs with the light taken as green show that the
same standing vehicles would be reported (the queue's heads only), i.e. what keeps them out is
the red light, not a blind detector.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from eval import metrics
from measure_crossings import T0, events
from services.track import scenes
from services.track.camera import CameraTracker

DATA = Path(__file__).parent / "data"
TRUTH = Path(__file__).parents[2] / "eval" / "truth"
CLASSES = frozenset({"car", "motorcycle", "bus", "truck", "bicycle", "person"})
CLIPS = {
    "haiphong": ("vn_haiphong_10fps.json", "deploy/local/scenes/demo-haiphong.yaml", "vn_haiphong_intersection"),
    "saigon": ("vn_saigon_10fps.json", "deploy/local/scenes/demo-saigon.yaml", "vn_saigon_intersection"),
}


@pytest.fixture(scope="module")
def recordings():
    return {name: json.loads((DATA / rec).read_text(encoding="utf-8")) for name, (rec, _, _) in CLIPS.items()}


def truth(stem: str) -> tuple[dict, dict]:
    clip = json.loads((TRUTH / f"{stem}.json").read_text(encoding="utf-8"))
    incidents = json.loads((TRUTH / f"{stem}.incidents.json").read_text(encoding="utf-8"))
    return clip, incidents


def run(recording: dict, repo_dir: Path, name: str, fps: float, *, light: str | None = None) -> list:
    """(frame of the detection frame, draft) of every incident event; `light`: every head held at
    this phase instead of the truth's timeline."""
    _, scene_path, stem = CLIPS[name]
    scene = scenes.load(repo_dir / scene_path)
    clip, _ = truth(stem)
    engine = CameraTracker(scene, classes=CLASSES)
    native = clip["video"]["fps"]

    def observe(after: float | None = None) -> None:
        """Each span of the truth's timeline from its first frame, or (after a break) the span in force then."""
        for span in clip["signal"]:
            start, end = (T0.timestamp() + span[k] / native for k in ("from_frame", "to_frame"))
            if after is None:
                engine.observe_signal(span["head"], start, light or span["state"])
            elif start <= after <= end:
                engine.observe_signal(span["head"], after, light or span["state"])

    observe()
    cuts = list(clip.get("cuts", []))
    out = []
    for event in events(recording, fps, min_score=0.3, camera=scene.camera):
        if cuts and event.frame.frame_seq >= cuts[0]:
            cuts.pop(0)
            event = msgspec.structs.replace(event, frame=msgspec.structs.replace(event.frame, discontinuity="reconnect"))
            step = engine.process(event)
            observe(event.frame.captured_at.timestamp())  # the lamps read again after the break
        else:
            step = engine.process(event)
        out += [(event.frame.frame_seq, d) for d in step.incidents]
    last = out[-1][0] if out else 0
    out += [(last, d) for d in engine.finish_incidents()]
    return out


def reported(found: list) -> list[dict]:
    """The `detected` events as `roadwatch replay` reports them, for eval.metrics."""
    out = []
    for _, draft in found:
        if draft.action != "detected":
            continue
        e = draft.event
        start, at = draft.frames[0][1], draft.frames[-1][1]
        out.append({"type": e.type, "frame": int(at[2]), "started_frame": int(start[2]), "lane": e.lane,
                    "zone": e.zone, "box": list(at[3:7]) if draft.box_roles else None, "tracks": list(e.track_ids)})
    return out


@pytest.mark.parametrize("fps", [5, 10])
@pytest.mark.parametrize("name", ["haiphong", "saigon"])
def test_every_incident_a_person_sees_and_none_at_the_red_light_queue(recordings, repo_dir, name, fps):
    _, incidents = truth(CLIPS[name][2])
    found = run(recordings[name], repo_dir, name, fps)
    score = metrics.score_incidents(incidents, reported(found))
    assert (score.found, score.missed, score.false, score.duplicate) == (len(incidents["incidents"]), [], [], 0)
    assert score.at_red_queue == []
    assert [d for _, d in found] == [], "nothing opened, so nothing to clear"


def test_the_same_queues_at_a_green_light_would_be_reported_and_the_splice_clears_them(recordings, repo_dir):
    """Counterfactual: the Hải Phòng light taken as green. The white SUV (left lane) and the white
    sedan (middle lane) stand at the line: each is reported once, both on the truth's red-light
    queue; the red car behind the sedan is queued behind it and is not. At the splice both are
    cleared (stream_break); no track of the first half appears in the second half's events."""
    _, incidents = truth("vn_haiphong_intersection")
    found = run(recordings["haiphong"], repo_dir, "haiphong", 5, light="green")
    detected = reported(found)
    before = [e for e in detected if e["frame"] < 64]
    assert sorted((e["type"], e["lane"]) for e in before) == [("stopped_vehicle", "left"), ("stopped_vehicle", "middle")]
    score = metrics.score_incidents(incidents, detected)
    assert len(score.at_red_queue) == len(score.false) >= 2  # every one of them is a vehicle of the red queue
    cleared_at_cut = [d.event for frame, d in found if d.action == "cleared" and frame == 64]
    assert sorted(c.reason for c in cleared_at_cut) == ["stream_break", "stream_break"]
    first_half_tracks = {t for e in before for t in e["tracks"]}
    assert not first_half_tracks & {t for e in detected if e["frame"] >= 64 for t in e["tracks"]}
    ids = [d.event.incident_id for _, d in found if d.action == "detected"]
    assert len(ids) == len(set(ids))


def test_saigon_at_a_green_light_reports_the_taxi_not_the_car_behind_the_one_the_detector_scores_low(recordings, repo_dir):
    """Counterfactual on Sài Gòn: the taxi heading the right lane's queue is reported; the rear
    black SUV is not, although the SUV at the line ahead of it is scored too low to be tracked:
    it stays put, box after box, and that is enough to queue the one behind it."""
    found = run(recordings["saigon"], repo_dir, "saigon", 5, light="green")
    stopped = [e for e in reported(found) if e["type"] == "stopped_vehicle"]
    assert [e["lane"] for e in stopped] == ["right"]
    _, incidents = truth("vn_saigon_intersection")
    taxi = incidents["not_incidents"][1]["vehicles"][0]["box"]
    assert metrics.iou(stopped[0]["box"], taxi) >= 0.3
