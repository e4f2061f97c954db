"""Tracking and judging at the 5 frames/s of sampled cameras, on scripted detections.

The scene (track_samples.SCENE) is a straight road in a 1000x1000 frame, traffic moving up the
image, a stop line at y=500, a controller-fed signal. Every case is one the IoU-only tracker
lost: a motorbike that moves more than its own height between frames, a frame dropped at the
line, a track split at the line, a rider boxed as `person` only, a pedestrian, one vehicle
boxed twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from proto.v1.common import Box, PlateText
from proto.v1.detection import DetectedObject, DetectedPlate, DetectionMade, FrameRef
from services.track import geometry
from services.track.camera import CameraTracker
from services.track.events import EmittedEvents
from services.track.riders import LoneRiderParams
from services.track.rules import Finding, Observation
from services.track.tracker import Detection, Tracker, iou_matrix
from track_samples import SCENE, load_scene

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)
CLASSES = frozenset({"car", "motorcycle", "bus", "truck", "bicycle", "person"})


def frame(t: float, objects, plates=()) -> DetectionMade:
    """objects: (class, (x1, y1, x2, y2)[, score]); t: seconds from T0; frame_seq = round(t * 20)."""
    at = T0 + timedelta(seconds=t)
    seq = round(t * 20)
    return DetectionMade(
        id=f"d-{seq}", camera_id="test-cam", occurred_at=at,
        frame=FrameRef(stream_seq=100 + seq, frame_seq=seq, captured_at=at, width=1000, height=1000),
        objects=tuple(DetectedObject(class_name=o[0], score=o[2] if len(o) > 2 else 0.9,
                                     box=Box(x1=o[1][0], y1=o[1][1], x2=o[1][2], y2=o[1][3])) for o in objects),
        plates=tuple(plates))


# The sample scene with a count line on its stop line: a vehicle over the line is counted once.
COUNTED_SCENE = SCENE + """
count_lines:
  - id: stop
    line: [[0, 500], [1000, 500]]
    direction: [0, -1]
"""


def engine(tmp_path, red_from: float = -10.0, **kwargs) -> CameraTracker:
    cam = CameraTracker(load_scene(tmp_path, COUNTED_SCENE), classes=CLASSES, after_s=0.6, **kwargs)
    cam.observe_signal("main", T0.timestamp() - 20, "green")
    cam.observe_signal("main", T0.timestamp() + red_from, "red")
    return cam


def red(drafts):
    return [d for d in drafts if d.finding.type == "red_light"]


def run(cam: CameraTracker, frames: list[DetectionMade]):
    drafts, crossings, counted = [], [], []
    for f in frames:
        step = cam.process(f)
        drafts += step.drafts
        crossings += step.crossings
        counted += [c.vehicle_class for c in step.counted]
    drafts += cam.finish()
    return drafts, crossings, counted


def bike(x: float, bottom: float, h: float = 60, w: float = 30) -> tuple[float, float, float, float]:
    return (x - w / 2, bottom - h, x + w / 2, bottom)


# --- geometry -------------------------------------------------------------------------------------

def test_crossing_time_and_point_are_interpolated_over_the_gap():
    line = ((0.0, 500.0), (1000.0, 500.0))
    t, (x, y) = geometry.crossing(line, (200.0, 550.0), 10.0, (260.0, 460.0), 10.6)
    assert t == pytest.approx(10.0 + 0.6 * 50 / 90) and x == pytest.approx(200 + 60 * 50 / 90) and y == pytest.approx(500)
    assert geometry.crossing(line, (200.0, 550.0), 10.0, (200.0, 520.0), 10.2) is None  # not there yet
    # On the line: counted for the step that arrived there, not for the one that leaves it.
    assert geometry.crossing(line, (200.0, 520.0), 10.0, (200.0, 500.0), 10.2)[0] == pytest.approx(10.2)
    assert geometry.crossing(line, (200.0, 500.0), 10.2, (200.0, 480.0), 10.4) is None
    assert geometry.crossing(line, (200.0, 500.0), 10.2, (200.0, 500.0), 10.4) is None


# --- association ------------------------------------------------------------------------------------

def test_a_motorbike_faster_than_its_height_per_frame_keeps_one_track():
    boxes = [bike(200, 900 - 80 * i) for i in range(10)]  # 80 px per frame, 60 px tall: IoU 0
    assert all(iou_matrix([a], [b])[0, 0] == 0 for a, b in zip(boxes, boxes[1:]))
    tracker = Tracker()
    ids = []
    for i, box in enumerate(boxes):
        matched, finished = tracker.update(i * 0.2, [Detection(box, 0.8, "motorcycle", 0)])
        ids += [tr.id for tr in matched]
        assert finished == []
    assert ids == [1] * 10


def test_two_motorbikes_side_by_side_keep_their_own_tracks():
    tracker = Tracker()
    for i in range(12):
        a = Detection(bike(200, 900 - 70 * i), 0.8, "motorcycle", 0)
        b = Detection(bike(245, 880 - 75 * i), 0.8, "motorcycle", 1)
        matched, _ = tracker.update(i * 0.2, [a, b])
        by_index = {tr.detection.index: tr.id for tr in matched}
        assert by_index == {0: 1, 1: 2}


def test_a_lost_track_is_taken_up_only_ahead_of_where_it_was_heading(tmp_path):
    tracker = Tracker()
    for i in range(6):
        tracker.update(i * 0.2, [Detection(bike(200, 900 - 50 * i), 0.8, "motorcycle", 0)])
    tracker.update(1.2, [])  # lost; it was at y=650 going up at 250 px/s
    behind = tracker.update(1.4, [Detection(bike(200, 700), 0.8, "motorcycle", 0)])[0]
    assert [tr.id for tr in behind] == [2]  # something behind it is another vehicle
    tracker2 = Tracker()
    for i in range(6):
        tracker2.update(i * 0.2, [Detection(bike(200, 900 - 50 * i), 0.8, "motorcycle", 0)])
    tracker2.update(1.2, [])
    ahead = tracker2.update(1.4, [Detection(bike(200, 560), 0.8, "motorcycle", 0)])[0]
    assert [tr.id for tr in ahead] == [1]


def test_a_car_does_not_take_over_a_motorbike_track():
    tracker = Tracker()
    for i in range(5):
        tracker.update(i * 0.2, [Detection(bike(200, 900 - 50 * i), 0.8, "motorcycle", 0)])
    # Where the motorbike was heading, barely overlapping its predicted box (IoU 0.03).
    matched, _ = tracker.update(1.0, [Detection((210, 560, 300, 650), 0.8, "car", 0)])
    assert [tr.id for tr in matched] == [2]


# --- crossings over gaps and splits --------------------------------------------------------------------

def car_at(t: float) -> tuple[float, float, float, float]:
    bottom = 700 - 150 * t  # crosses the stop line (y=500) at t = 1.333
    return (180, bottom - 60, 240, bottom)


@pytest.mark.parametrize("red_from, expected", [(1.25, True), (1.42, False)])
def test_a_frame_dropped_at_the_line_is_judged_at_the_interpolated_crossing(tmp_path, red_from, expected):
    """Frames at t=1.2 and 1.4 are missing; last seen below the line at 1.0, first above at 1.6.
    The crossing is at 1.333: red from 1.25 is a violation, red from 1.42 is not (the light was
    still green when the car crossed, though it was red when the car was next seen)."""
    cam = engine(tmp_path, red_from=red_from)
    times = [round(0.2 * i, 1) for i in range(20) if i not in (6, 7)]
    drafts, crossings, _ = run(cam, [frame(t, [("car", car_at(t))]) for t in times])
    assert len(crossings) == 1
    track_id, cls, crossing = crossings[0]
    assert cls == "car" and crossing.t - T0.timestamp() == pytest.approx(4 / 3, abs=0.05)
    assert [d.finding.type for d in drafts] == (["red_light"] if expected else [])
    if expected:
        assert drafts[0].finding.t - T0.timestamp() == pytest.approx(4 / 3, abs=0.05)
        assert drafts[0].finding.phase_age_s == pytest.approx(4 / 3 - red_from, abs=0.05)


def test_a_track_split_at_the_line_is_one_crossing_and_one_violation(tmp_path):
    """The motorbike is lost for 0.6 s right at the line (below it at 1.0 s, above it at 1.6 s),
    and comes back boxed as its rider only (taller, narrower, `person`): the same track."""
    cam = engine(tmp_path)
    frames = []
    for i in range(16):
        t = round(0.2 * i, 1)
        bottom = 800 - 60 * i / 0.2 * 0.2  # 300 px/s: y=500 at t = 1.0 + 1/3 * ... (between 1.0 and 1.2)
        if 1.0 < t < 1.6:
            frames.append(frame(t, []))
        elif t < 1.6:
            frames.append(frame(t, [("motorcycle", bike(300, bottom))]))
        else:
            frames.append(frame(t, [("person", (288, bottom - 75, 312, bottom))]))
    drafts, crossings, counted = run(cam, frames)
    assert cam.tracker.next_id == 2  # one track, never a second
    assert len(crossings) == 1 and crossings[0][1] == "motorcycle"
    assert crossings[0][2].t - T0.timestamp() == pytest.approx(1.0, abs=0.1)
    assert [(d.finding.type, d.vehicle_class) for d in red(drafts)] == [("red_light", "motorcycle")]
    roles = dict(red(drafts)[0].frames)
    assert roles["before"].t < T0.timestamp() + 1.0 < roles["after"].t
    assert counted == ["motorcycle"]


def test_a_young_track_started_where_a_lost_one_was_heading_is_folded_into_it(tmp_path):
    """The rider speeds up off the line while unseen: it comes back farther ahead than the lost
    track's gate, so a new track starts; two frames later its own motion shows it is the same
    vehicle, and it is folded into the older track, crossing and all."""
    cam = engine(tmp_path)
    frames = []
    for i in range(6):  # slow approach, 100 px/s, last seen at y=540 (1.0 s)
        t = round(0.2 * i, 1)
        frames.append(frame(t, [("motorcycle", bike(300, 640 - 20 * i))]))
    frames.append(frame(1.2, []))
    frames.append(frame(1.4, []))
    # Back at 1.6 s at y=380, 100 px beyond where the lost track expected it (480), then 300 px/s.
    for k, t in enumerate((1.6, 1.8, 2.0, 2.2, 2.4, 2.6)):
        frames.append(frame(t, [("motorcycle", bike(300, 380 - 60 * k))]))
    drafts, crossings, _ = run(cam, frames)
    assert cam.tracker.next_id == 3  # a second track was started ...
    assert [tid for tid, _, _ in crossings] == [1]  # ... and folded into the first
    assert [(d.finding.type, d.track_id) for d in red(drafts)] == [("red_light", 1)]
    assert red(drafts)[0].finding.t - T0.timestamp() == pytest.approx(1.0 + 0.6 * 40 / 160, abs=0.05)


# --- persons --------------------------------------------------------------------------------------

def test_a_lone_person_walking_across_the_crosswalk_stays_a_pedestrian(tmp_path):
    cam = engine(tmp_path)
    frames = [frame(round(0.2 * i, 1), [("person", (100 + 10 * i, 410, 125 + 10 * i, 480))]) for i in range(40)]
    drafts, crossings, counted = run(cam, frames)
    assert drafts == [] and crossings == [] and counted == []
    assert cam.tracker.next_id == 2  # tracked, but never judged


def test_a_lone_person_standing_in_the_lane_stays_a_pedestrian(tmp_path):
    """Standing by the stop line for 8 s, the box jittering by a few pixels (as detected boxes
    do), is not moving with the traffic."""
    cam = engine(tmp_path)
    jitter = [0, 4, -3, 5, -4, 2, -5, 3]
    frames = [frame(round(0.2 * i, 1), [("person", (200, 440 + jitter[i % 8], 225, 510 + jitter[i % 8]))])
              for i in range(40)]
    drafts, crossings, counted = run(cam, frames)
    assert drafts == [] and crossings == [] and counted == []


def test_where_people_walk_in_the_lanes_walking_pace_can_be_set_apart(tmp_path):
    """Along the lane, across the line on red, at walking pace (0.8 body heights a second): by
    default a rider crawling in a queue (riders do, at 0.6-0.9); with LONE_RIDER_SPEED 1.0, a
    pedestrian, never judged."""
    walk = [frame(round(0.2 * i, 1), [("person", (200, 560 - 70 - 11 * i, 225, 560 - 11 * i))]) for i in range(30)]
    drafts, _, counted = run(engine(tmp_path), walk)
    assert [d.vehicle_class for d in red(drafts)] == ["motorcycle"] and counted == ["motorcycle"]
    drafts, crossings, counted = run(engine(tmp_path, riders=LoneRiderParams(min_speed_heights_s=1.0)), walk)
    assert drafts == [] and crossings == [] and counted == []


def test_a_lone_person_moving_with_the_traffic_is_a_two_wheeler(tmp_path):
    """A rider whose bike is never boxed: in the lane, along it, at 3 body heights a second."""
    cam = engine(tmp_path)
    frames = [frame(round(0.2 * i, 1), [("person", (200, 800 - 75 - 45 * i, 226, 800 - 45 * i))]) for i in range(15)]
    drafts, crossings, counted = run(cam, frames)
    assert [(d.finding.type, d.vehicle_class) for d in red(drafts)] == [("red_light", "motorcycle")]
    assert [cls for _, cls, _ in crossings] == ["motorcycle"] and counted == ["motorcycle"]


def test_lone_rider_rule_is_configurable(tmp_path):
    cam = engine(tmp_path, riders=LoneRiderParams(min_speed_heights_s=4.0))  # 3 heights/s is not enough now
    frames = [frame(round(0.2 * i, 1), [("person", (200, 800 - 75 - 45 * i, 226, 800 - 45 * i))]) for i in range(15)]
    drafts, crossings, counted = run(cam, frames)
    assert drafts == [] and counted == []
    with pytest.raises(ValueError, match="min_frames"):
        LoneRiderParams(min_frames=0)


def test_a_rider_on_a_bike_is_one_two_wheeler_with_its_rider_counted(tmp_path):
    tracker = Tracker()
    for i in range(5):
        bottom = 900 - 50 * i
        rider = Detection((188, bottom - 90, 214, bottom - 20), 0.8, "person", 0)  # feet on the bike
        motorbike = Detection((185, bottom - 45, 217, bottom), 0.35, "motorcycle", 1)  # scored low
        matched, _ = tracker.update(i * 0.2, [rider, motorbike])
        assert len(matched) == 1 and matched[0].class_name == "motorcycle" and matched[0].riders == 1
        assert matched[0].detection.box == (185, bottom - 90, 217, bottom)  # head to wheel
    assert tracker.next_id == 2


# --- one event, one violation ---------------------------------------------------------------------------

def test_one_van_boxed_as_car_and_truck_is_one_violation(tmp_path):
    """Two overlapping boxes (IoU 0.6, under the duplicate merge) make two tracks on one van:
    both cross the line on red at the same moment, and one violation is emitted."""
    cam = engine(tmp_path)
    frames = []
    for i in range(20):
        bottom = 800 - 30 * i
        frames.append(frame(round(0.2 * i, 1), [("car", (150, bottom - 100, 250, bottom)),
                                                ("truck", (150, bottom - 150, 250, bottom + 10), 0.8)]))
    assert iou_matrix([(150, 0, 250, 100)], [(150, -50, 250, 110)])[0, 0] < 0.7
    drafts, crossings, _ = run(cam, frames)
    assert len({tid for tid, _, _ in crossings}) == 2
    # (the truck track also makes a wrong_lane case: trucks are not allowed in that lane)
    assert [d.finding.type for d in red(drafts)] == ["red_light"] and cam.duplicates == 1


def test_two_riders_crossing_together_are_two_violations(tmp_path):
    cam = engine(tmp_path)
    frames = [frame(round(0.2 * i, 1), [("motorcycle", bike(150, 800 - 40 * i)), ("motorcycle", bike(330, 800 - 40 * i))])
              for i in range(16)]
    drafts, _, _ = run(cam, frames)
    assert [d.finding.type for d in drafts] == ["red_light", "red_light"] and cam.duplicates == 0


def test_a_stopped_car_whose_track_broke_is_one_no_stopping_violation(tmp_path):
    """Parked in the kerb zone (max 10 s); the detector loses it for 2 s (its track ends), a new
    track picks it up where it stood and would time 10 s again: the same event."""
    cam = engine(tmp_path)
    box = (200, 790, 260, 850)
    frames = [frame(round(0.5 * i, 1), [("car", box)]) for i in range(26)]  # 0 .. 12.5 s
    frames += [frame(round(12.5 + 0.5 * k, 1), []) for k in range(1, 5)]  # unseen 13.0 .. 14.5: track ends
    frames += [frame(round(15.0 + 0.5 * i, 1), [("car", box)]) for i in range(26)]  # 15.0 .. 27.5 s
    drafts, _, _ = run(cam, frames)
    assert cam.tracker.next_id == 3
    assert [d.finding.type for d in drafts] == ["no_stopping"] and cam.duplicates == 1


def test_different_plates_are_different_events():
    events = EmittedEvents()
    at = Observation(100.0, 1, 1, (180, 440, 240, 500), (0, -150))
    finding = Finding("red_light", "stop", 100.0, at, 1.0, "s")
    events.add(finding, 1, "30A-123.45", at)
    assert events.duplicate_of(finding, 2, at, "30A-123.45") is not None
    assert events.duplicate_of(finding, 2, at, None) is not None  # no plate on one: same place and time decide
    assert events.duplicate_of(finding, 2, at, "51F-999.99") is None
    far = Observation(100.1, 2, 2, (400, 440, 460, 500), (0, -150))
    assert events.duplicate_of(Finding("red_light", "stop", 100.1, far, 1.0, "s"), 2, far, None) is None


def test_plates_read_on_both_halves_of_a_split_are_voted_together(tmp_path):
    """A young track folded into a lost one brings its plate reads along."""
    cam = engine(tmp_path)
    read = PlateText(text="29B1-123.45", raw="29B1-123.45", confidence=0.9, format_valid=True)
    frames = []
    for i in range(6):
        frames.append(frame(round(0.2 * i, 1), [("motorcycle", bike(300, 640 - 20 * i))]))
    frames += [frame(1.2, []), frame(1.4, [])]
    for k, t in enumerate((1.6, 1.8, 2.0, 2.2, 2.4, 2.6)):
        bottom = 380 - 60 * k
        plate = DetectedPlate(box=Box(x1=290, y1=bottom - 15, x2=310, y2=bottom - 5), read=read, vehicle_index=0)
        frames.append(frame(t, [("motorcycle", bike(300, bottom))], plates=[plate]))
    drafts, _, _ = run(cam, frames)
    assert [(d.track_id, d.plate.text) for d in red(drafts)] == [(1, "29B1-123.45")]


def test_person_is_tracked_by_default_and_lone_rider_settings_are_checked():
    from services.runtime.settings import SettingError
    from services.track.settings import Settings

    assert "person" in Settings().track_classes
    with pytest.raises(SettingError, match="LONE_RIDER_FRAMES"):
        Settings(lone_rider_frames=0)
    with pytest.raises(SettingError, match="LONE_RIDER_SPEED"):
        Settings(lone_rider_speed=0)
    with pytest.raises(SettingError, match="TRACK_CLASSES.*tank"):
        Settings(track_classes=["person", "tank"])


def test_assignment_is_optimal_where_greedy_is_not():
    """Groups of competing tracks and detections are solved exactly: as many pairs as possible,
    then the best total score (checked against every matching of small random problems)."""
    import itertools

    import numpy as np

    from services.track.tracker import assign

    # Greedy takes the best pair (0, 0) and leaves track 1 with nothing; optimal gives both a match.
    assert assign(np.array([[0.9, 0.8], [0.85, 0.0]])) == [(0, 1), (1, 0)]
    rng = np.random.default_rng(7)
    for _ in range(200):
        n, m = (int(v) for v in rng.integers(1, 5, size=2))
        score = rng.random((n, m)) * (rng.random((n, m)) > 0.4)
        best = (0, 0.0)
        for k in range(min(n, m), 0, -1):
            for rows in itertools.combinations(range(n), k):
                for cols in itertools.permutations(range(m), k):
                    if all(score[r, c] > 0 for r, c in zip(rows, cols)):
                        best = max(best, (k, sum(score[r, c] for r, c in zip(rows, cols))))
        pairs = assign(score)
        assert (len(pairs), sum(score[r, c] for r, c in pairs)) == pytest.approx(best)
