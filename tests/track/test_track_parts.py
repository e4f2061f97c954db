"""The small parts: reorder buffer, partitioning, plate voting, counts, signal history and lamps."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from proto.v1.common import PlateText
from services.track import partition
from services.track.counts import CountWindows
from services.track.plates import PlateSighting, PlateVotes
from services.track.reorder import ReorderBuffer
from services.track.signals import PhaseFilter, SignalState
from services.track.tracker import Detection, Tracker, TrackerParams, merge_duplicates


# --- reorder ---------------------------------------------------------------------------------------
def test_reorder_puts_frames_back_in_order_and_tolerates_gaps():
    buf: ReorderBuffer[int] = ReorderBuffer(window_s=0.5)
    released = []
    # Frames 0..9 at 0.1 s, arriving as 1,0,3,2,(4 missing),6,5,7,9,8
    for seq in [1, 0, 3, 2, 6, 5, 7, 9, 8]:
        out, accepted = buf.push(seq * 0.1, seq, seq, now=0.0)
        assert accepted
        released += out
    released += buf.drain()
    assert released == [0, 1, 2, 3, 5, 6, 7, 8, 9]


def test_reorder_releases_on_wall_time_and_reports_late_ones():
    buf: ReorderBuffer[int] = ReorderBuffer(window_s=0.5)
    assert buf.push(1.0, 10, 10, now=100.0) == ([], True)
    assert buf.release(100.2) == []
    assert buf.release(100.6) == [10]  # nobody newer came: not held forever
    out, accepted = buf.push(0.9, 9, 9, now=100.7)  # older than what was tracked
    assert (out, accepted) == ([], False)
    out, accepted = buf.push(1.1, 11, 11, now=100.7)
    assert accepted and buf.drain() == [11]


# --- partition -------------------------------------------------------------------------------------
def test_partition_is_stable_and_moves_few_cameras_on_scale_up():
    cameras = [f"cam-{i:03d}" for i in range(300)]
    three = {c: partition.owner(c, 3) for c in cameras}
    four = {c: partition.owner(c, 4) for c in cameras}
    assert three == {c: partition.owner(c, 3) for c in cameras}  # same answer every time
    assert sorted(c for i in range(3) for c in partition.owned(cameras, i, 3)) == sorted(cameras)  # each once
    moved = [c for c in cameras if three[c] != four[c]]
    assert all(four[c] == 3 for c in moved)  # only to the new replica
    assert 0.15 < len(moved) / len(cameras) < 0.35  # about a quarter
    assert min(list(three.values()).count(i) for i in range(3)) > 70  # roughly balanced


# --- plates ----------------------------------------------------------------------------------------
def read(text: str, conf: float, valid: bool = True) -> PlateSighting:
    return PlateSighting(PlateText(text=text, confidence=conf, format_valid=valid), 1, (0, 0, 10, 5))


def test_plate_vote_prefers_agreement_and_valid_format():
    votes = PlateVotes()
    for sighting in [read("30K-558.78", 0.7), read("30K-558.78", 0.6), read("30T-558.78", 0.9),
                     read("3OK55878", 0.99, valid=False), read("30K-558.78", 0.65)]:
        votes.add(sighting)
    best = votes.best()
    assert best is not None and best.text == "30K-558.78" and best.format_valid
    assert [a.text for a in best.alternatives] == ["30T-558.78"]
    assert 0 < best.confidence < 0.65  # split vote lowers it below the mean read confidence
    only_invalid = PlateVotes()
    only_invalid.add(read("ABC", 0.4, valid=False))
    assert only_invalid.best().text == "ABC" and not only_invalid.best().format_valid
    assert PlateVotes().best() is None


# --- counts ----------------------------------------------------------------------------------------
def test_counts_close_by_capture_time_with_grace():
    counts = CountWindows("cam-x", window_s=60, grace_s=5)
    t0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc).timestamp()
    counts.add(t0 + 1, "main", "forward", "car")
    counts.add(t0 + 2, "main", "forward", "car")
    counts.add(t0 + 30, "main", "backward", "motorcycle")
    assert counts.close(t0 + 64) == []
    [event] = counts.close(t0 + 65)
    assert event.window_start == datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc) and event.window_s == 60
    assert {(c.line, c.direction, c.vehicle_class, c.count) for c in event.counts} == {
        ("main", "forward", "car", 2), ("main", "backward", "motorcycle", 1)}
    again = CountWindows("cam-x", window_s=60, grace_s=5)
    again.add(t0 + 5, "main", "forward", "car")
    assert again.close(t0 + 70)[0].id == event.id  # a replay has the same id


# --- signals ---------------------------------------------------------------------------------------
def test_signal_history_answers_for_past_times():
    state = SignalState()
    assert state.observe("main", 10.0, "green")
    assert not state.observe("main", 11.0, "green")
    assert state.observe("main", 20.0, "amber")
    assert state.observe("main", 23.0, "red")
    assert state.observe("main", 15.0, "green") is False  # already green then
    assert state.at("main", 9.0) is None
    assert state.at("main", 21.0).phase == "amber"
    red = state.at("main", 25.5)
    assert red.phase == "red" and red.age(25.5) == pytest.approx(2.5)


def test_phase_filter_holds_through_flicker_and_dates_changes_back():
    head = PhaseFilter(hold_s=1.0, min_phase_s=0.3)
    assert head.read(0.0, "red") == []  # not known until it held min_phase_s...
    assert head.read(0.3, "red") == [(0.0, "red")]  # ... then dated at its first frame
    assert head.read(0.5, "off") == []  # LED flicker: still red
    assert head.read(0.6, "green") == []  # not yet held long enough
    assert head.read(0.8, "green") == []
    assert head.read(0.9, "green") == [(0.6, "green")]  # dated at its first frame
    assert head.read(1.5, "off") == []
    assert head.read(2.0, "off") == [(1.5, "off")]  # dark for longer than hold_s: off from the first dark frame
    assert head.read(2.1, "red") == [] and head.read(2.5, "red") == [(2.1, "red")]


def test_phase_filter_calls_a_flickering_head_unknown():
    head = PhaseFilter(hold_s=1.0, min_phase_s=0.3)
    head.read(-0.5, "red")
    head.read(0.0, "red")
    changes = []
    for i, reading in enumerate(["green", "red", "green", "red", "green"]):
        changes += head.read(0.1 * (i + 1), reading)
    assert changes == [(0.1, "unknown")]  # from the first change of the flicker
    committed_at = None
    for i in range(30):  # green, steadily, for 3 s: the flicker ages out
        t = 0.6 + 0.1 * i
        new = head.read(t, "green")
        if new:
            committed_at = t
        changes += new
    # green from its last flicker frame (0.5 s) on, known only once fewer than 3 changes are left in
    # the 2-s window (at 2.3 s only the changes at 0.4 and 0.5 s are)
    assert changes[-1] == (0.5, "green") and committed_at == pytest.approx(2.3)
    assert head.read(4.0, "tie") == [(4.0, "unknown")]  # two lamps equally lit, hue cannot tell


def test_phase_age_is_a_lower_bound_until_a_change_is_seen():
    state = SignalState()
    state.observe("main", 10.0, "red")  # already red when first seen
    assert state.at("main", 12.0).lower_bound
    state.observe("main", 20.0, "green")
    state.observe("main", 30.0, "red")
    assert not state.at("main", 31.0).lower_bound and state.at("main", 31.0).age(31.0) == 1.0


# --- tracker ---------------------------------------------------------------------------------------


def box_at(x: float, y: float) -> tuple[float, float, float, float]:
    return (x, y, x + 60, y + 120)


def test_tracker_keeps_the_id_through_a_short_occlusion_and_weak_detections():
    tracker = Tracker()
    ids = []
    for i in range(40):
        t = i / 10
        y = 600 - 12 * i
        if 10 <= i < 16:
            detections = []  # hidden behind a bus for 0.6 s
        elif 20 <= i < 25:
            detections = [Detection(box_at(300, y), 0.2, "car", 0)]  # half hidden: scored low
        else:
            detections = [Detection(box_at(300, y), 0.8, "car", 0)]
        matched, finished = tracker.update(t, detections)
        ids += [track.id for track in matched]
        assert finished == []
    assert set(ids) == {1} and len(ids) == 40 - 6


def test_weak_detections_start_no_track_and_lost_tracks_end():
    tracker = Tracker()
    matched, _ = tracker.update(0.0, [Detection(box_at(100, 100), 0.3, "car", 0)])
    assert matched == [] and tracker.tracks == []
    for i in range(3):
        tracker.update(i / 10, [Detection(box_at(100, 100), 0.9, "car", 0)])
    finished = []
    for i in range(3, 30):
        finished += tracker.update(i / 10, [])[1]
    assert [t.id for t in finished] == [1] and tracker.tracks == []
    matched, _ = tracker.update(3.0, [Detection(box_at(100, 100), 0.9, "car", 0)])
    assert [t.id for t in matched] == [2]  # ids are never reused


def test_one_vehicle_boxed_under_three_classes_is_one_detection():
    taxi = [Detection((680, 390, 830, 602), 0.42, "truck", 0), Detection((682, 405, 828, 602), 0.33, "bus", 1),
            Detection((682, 411, 828, 602), 0.33, "car", 2), Detection((385, 52, 476, 121), 0.44, "car", 3)]
    assert [d.index for d in merge_duplicates(taxi, 0.7)] == [0, 3]


def test_partial_reads_back_the_valid_read_that_contains_them():
    votes = PlateVotes()
    votes.add(read("30K-558.78", 0.3))
    votes.add(read("51F-999.99", 0.5))
    for _ in range(10):
        votes.add(read("55878", 0.8, valid=False))
    best = votes.best()
    assert best.text == "30K-558.78" and [a.text for a in best.alternatives] == ["51F-999.99"]
    assert best.confidence == pytest.approx(0.3 * 0.3 / 0.8, abs=1e-3)  # its own share, not the partial reads'


def head_image(lit: dict[int, tuple[int, int, int]], lamps: int = 3) -> np.ndarray:
    """A dark vertical head 20 px wide, 20 px per lamp; `lit`: lamp index -> BGR colour."""
    image = np.full((20 * lamps, 20, 3), 35, dtype=np.uint8)
    for i, bgr in lit.items():
        image[20 * i + 3:20 * i + 17, 3:17] = bgr
    return image


def test_lamp_reader_goes_by_position_and_uses_hue_only_for_ties():
    from services.track.signals import LampReader
    red, green, orange = (40, 40, 230), (120, 230, 40), (30, 150, 250)
    reader = LampReader(("red", "amber", "green"), "vertical")
    assert reader.read(head_image({0: orange})) == 0  # the top lamp, whatever it looks like
    assert reader.read(head_image({2: orange})) == 2
    assert reader.read(head_image({})) == "off"
    # Two lamps equally lit: the one whose colour fits its place wins; if both fit, a tie.
    assert reader.read(head_image({0: red, 2: red})) == 0
    assert reader.read(head_image({0: green, 2: green})) == 2
    assert LampReader(("red", "amber", "green"), "vertical").read(head_image({0: red, 2: green})) == "tie"


def test_a_gap_longer_than_max_lost_ends_every_track_before_the_next_frame():
    """A track is never continued over a gap it could not have been lost for (a stalled stream, a
    resume from an old checkpoint): it ends, and the next frame's car is a new track."""
    tracker = Tracker(TrackerParams(max_lost_s=1.5))
    car = Detection((100, 100, 200, 180), 0.9, "car", 0)
    for i in range(4):
        tracker.update(i * 0.2, [car])
    (track,) = tracker.tracks
    matched, finished = tracker.update(0.6 + 1.6, [car])
    assert [t.id for t in finished] == [track.id]
    assert [t.id for t in matched] == [t.id for t in tracker.tracks] == [track.id + 1]
