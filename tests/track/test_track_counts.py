"""Count lines: the crossing, once per vehicle, per line and direction; windows that close on
time and on flush; and counts on the real Hai Phong clip (real detections) against the stop-line
crossings the labellers checked by eye."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from proto.v1.common import Box
from proto.v1.detection import DetectedObject, DetectionMade, FrameRef
from services.track import scenes
from services.track.camera import CameraTracker
from services.track.counts import BACKWARD, FORWARD, CountWindows, crossing, direction_of
from track_clips import clip_detections
from track_samples import load_scene

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)
COUNT_SCENE = """
camera: test-cam
name: "Đường đếm xe"
frame_size: [1000, 1000]
count_lines:
  - id: both-ways
    line: [[0, 500], [1000, 500]]
  - id: up
    line: [[0, 300], [1000, 300]]
    direction: [0, -1]
"""


# --- the crossing -------------------------------------------------------------------------------------
def test_crossing_is_interpolated_and_gap_proof():
    line = ((0.0, 500.0), (1000.0, 500.0))
    # Two observations 2 s apart (the track was lost in between): the path still crossed.
    found = crossing(line, (400.0, 700.0), 10.0, (600.0, 300.0), 12.0)
    assert found is not None and found.t == pytest.approx(11.0) and found.point == pytest.approx((500.0, 500.0))
    # The forward normal of a line drawn left to right is (y2 - y1, x1 - x2) = (0, -1000): up the image.
    assert found.side == 1


def test_touching_or_missing_the_segment_is_not_crossing():
    line = ((0.0, 500.0), (1000.0, 500.0))
    assert crossing(line, (100.0, 700.0), 0.0, (100.0, 500.0), 1.0).t == 1.0  # arrives on the line: crossed
    assert crossing(line, (100.0, 500.0), 1.0, (100.0, 500.0), 1.5) is None  # stays there
    assert crossing(line, (100.0, 500.0), 1.5, (100.0, 300.0), 2.0) is None  # leaves it: not a second time
    assert crossing(line, (1100.0, 700.0), 0.0, (1100.0, 300.0), 1.0) is None  # beside the segment
    assert crossing(line, (100.0, 700.0), 0.0, (200.0, 600.0), 1.0) is None  # same side


def test_direction_forward_backward_and_declared(tmp_path):
    scene = scenes.load(_write(tmp_path, COUNT_SCENE))
    both, up = scene.count_lines
    up_path, down_path = ((500.0, 700.0), (500.0, 100.0)), ((500.0, 100.0), (500.0, 700.0))
    assert direction_of(both, crossing(both.line, up_path[0], 0, up_path[1], 1)) == FORWARD  # the normal: up
    assert direction_of(both, crossing(both.line, down_path[0], 0, down_path[1], 1)) == BACKWARD
    assert direction_of(up, crossing(up.line, up_path[0], 0, up_path[1], 1)) == FORWARD  # declared: up
    assert direction_of(up, crossing(up.line, down_path[0], 0, down_path[1], 1)) == BACKWARD
    # A declared direction against the normal turns the names round: down is forward.
    down = scenes.CountLine("down", both.line, (0.0, 1.0))
    assert direction_of(down, crossing(down.line, down_path[0], 0, down_path[1], 1)) == FORWARD
    assert direction_of(down, crossing(down.line, up_path[0], 0, up_path[1], 1)) == BACKWARD


# --- windows ------------------------------------------------------------------------------------------
def test_flush_closes_the_open_window_with_the_time_it_covered():
    counts = CountWindows("cam", window_s=60)
    t0 = T0.timestamp()
    for k in range(71):  # 7 s of frames at 10 frames/s: the 60-s window never ends on time
        counts.seen(t0 + k / 10)
    counts.add(t0 + 3, "main", FORWARD, "car")
    assert counts.close(t0 + 7) == []
    [event] = counts.flush()
    assert event.window_s == pytest.approx(7.0) and event.window_start == T0
    assert [(c.line, c.direction, c.vehicle_class, c.count) for c in event.counts] == [("main", FORWARD, "car", 1)]
    # The stream goes on after the break (a loop): the rest of the minute is a window of its own.
    for k in range(71, 100):
        counts.seen(t0 + k / 10)
    counts.add(t0 + 8, "main", FORWARD, "car")
    [after] = counts.flush()
    assert after.window_start == T0 + timedelta(seconds=7.1) and after.id != event.id
    assert after.window_s == pytest.approx(2.8)
    assert counts.flush() == []


# --- one vehicle, one count ---------------------------------------------------------------------------
def event(i: int, boxes, fps: float = 10.0) -> DetectionMade:
    t = T0 + timedelta(seconds=i / fps)
    return DetectionMade(id=f"d-{i}", camera_id="test-cam", occurred_at=t,
                         frame=FrameRef(stream_seq=100 + i, frame_seq=i, captured_at=t, width=1000, height=1000),
                         objects=tuple(DetectedObject(class_name=c, score=0.9, box=Box(x1=x1, y1=y1, x2=x2, y2=y2))
                                       for c, (x1, y1, x2, y2) in boxes))


def test_a_vehicle_is_counted_once_per_line_even_when_it_wobbles_over_it(tmp_path):
    scene = scenes.load(_write(tmp_path, COUNT_SCENE))
    engine = CameraTracker(scene, classes=frozenset({"car"}))
    counted = []
    bottoms = [560, 540, 520, 505, 495, 505, 495, 480, 460, 400, 340, 310, 290, 270, 250]  # wobbles at y=500
    for i, bottom in enumerate(bottoms):
        counted += engine.process(event(i, [("car", (480, bottom - 60, 520, bottom))])).counted
    assert sorted((c.line, c.direction) for c in counted) == [("both-ways", FORWARD), ("up", FORWARD)]
    [window] = engine.flush_counts()
    assert {(c.line, c.direction, c.count) for c in window.counts} == {("both-ways", FORWARD, 1), ("up", FORWARD, 1)}
    assert window.lines == ("both-ways", "up")


def test_a_track_too_short_to_be_confirmed_is_not_counted(tmp_path):
    scene = scenes.load(_write(tmp_path, COUNT_SCENE))
    engine = CameraTracker(scene, classes=frozenset({"car"}))
    counted = []
    for i, bottom in enumerate([520, 480]):  # two frames, then gone: a false detection
        counted += engine.process(event(i, [("car", (480, bottom - 60, 520, bottom))])).counted
    for i in range(2, 40):
        counted += engine.process(event(i, [])).counted
    assert counted == []
    [window] = engine.flush_counts()
    assert window.counts == () and window.lines == ("both-ways", "up")  # a zero count is a count


def test_scene_with_lanes_but_no_count_line_counts_nothing(tmp_path):
    engine = CameraTracker(load_scene(tmp_path), classes=frozenset({"car"}))
    engine.observe_signal("main", T0.timestamp() - 10, "green")
    counted = []
    for i in range(40):
        bottom = 700 - 10 * i
        counted += engine.process(event(i, [("car", (180, bottom - 60, 220, bottom))])).counted
    assert counted == [] and engine.flush_counts()[0].counts == ()


def _write(tmp_path, text):
    path = tmp_path / "test-cam.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --- the real clips -----------------------------------------------------------------------------------
# Stop-line crossings (line approach-north, in the lane direction) from the labellers' eye-checked
# clip: (camera, scene, last frame, fps, fewest labelled crossings that must be counted, most
# counts allowed without a labelled crossing). Measured at 10 frames/s: Hai Phong 5 of 5, none
# false. Sai Gon 1 of 5 within tolerance and 2 without: riders seen only as `person` in the
# queue are counted ~0.5 s early (the Grab rider at frame 66 at ~56) and one id swap in the
# queue on the crosswalk counts a rider at x 666 who is not over the line (see docs/ACCURACY.md).
CLIPS = {
    "vn_haiphong_intersection.mp4": ("demo-haiphong", "deploy/local/scenes/demo-haiphong.yaml", 141, 20.09, 5, 0),
    "vn_saigon_intersection.mp4": ("demo-saigon", "deploy/local/scenes/demo-saigon.yaml", 204, 19.97, 1, 2),
}
# The same tolerance as `make eval-video`: the track's bottom centre is a filtered box edge, a
# few frames off the wheel, and the labeller's crossing frame is itself +-2 frames where the
# wheel was hidden.
MATCH_S = 0.5
MATCH_PX = 60


def labelled_crossings(repo_dir, clip: str) -> list[tuple[float, float, str]]:
    """(frame, x, class) of every stop-line crossing in the person-checked truth."""
    truth = json.loads((repo_dir / "eval" / "truth" / clip.replace(".mp4", ".json")).read_text(encoding="utf-8"))
    return [(c["frame"], c["x"], c["class"]) for c in truth["crossings"]]


# The Hai Phong clip (71 frames) runs in the suite; Sai Gon's whole 103 frames are `slow`
# (make test-slow): the same check on a second, longer clip.
@pytest.mark.parametrize("clip", [pytest.param(clip, marks=[pytest.mark.slow] if "saigon" in clip else [])
                                  for clip in sorted(CLIPS)])
def test_counts_on_the_vn_clips_against_the_labelled_crossings(shared_dir, repo_dir, clip):
    """Real detections (the detect pipeline's models) at 10 frames/s, the demo scene's count line
    on the stop line. Asserted: no count without a labelled crossing (class, frame, place), none
    counted twice, at least the measured number of labelled crossings counted, and the published
    window agrees with the vehicles counted."""
    camera, scene_path, last, fps, at_least, at_most_false = CLIPS[clip]
    events, _ = clip_detections(shared_dir, clip, camera, 0, last, 2)
    scene = scenes.load(repo_dir / scene_path)
    engine = CameraTracker(scene, classes=frozenset({"car", "motorcycle", "bus", "truck", "bicycle", "person"}))
    counted = []
    for detection in events:
        counted += engine.process(detection).counted
    engine.finish()
    [window] = engine.flush_counts()
    truth = labelled_crossings(repo_dir, clip)
    matched: set[int] = set()
    false: list[str] = []
    for c in counted:
        frame = (c.t - T0.timestamp()) * fps
        hits = [k for k, (f, x, cls) in enumerate(truth)
                if abs(frame - f) <= MATCH_S * fps and abs(c.point[0] - x) <= MATCH_PX and cls == c.vehicle_class]
        if not hits:
            false.append(f"frame {frame:.1f}, x {c.point[0]:.0f} ({c.vehicle_class})")
            continue
        assert hits[0] not in matched, f"crossing {truth[hits[0]]} counted twice"
        matched.add(hits[0])
    assert len(false) <= at_most_false, f"counted without a labelled crossing: {false}"
    assert len(matched) >= at_least, f"{len(matched)} of {len(truth)} labelled crossings counted"
    assert sum(c.count for c in window.counts) == len(counted)
    assert all((c.line, c.direction) == ("approach-north", FORWARD) for c in window.counts)
    assert window.lines == ("approach-north",) and window.window_s == pytest.approx(last / fps, abs=0.1)
