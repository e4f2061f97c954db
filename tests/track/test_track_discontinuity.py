"""A file that loops: the first frame of the second pass is marked `loop` (as ingest marks it),
and track must close what spans the break. The Hai Phong clip played twice with continuous
capture times (as ingest's looping reader produces them), real detections, lamps read off the
real frames."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from services.track import scenes
from services.track.camera import CameraTracker
from track_clips import T0, clip_detections
from test_track_signal_clips import as_worker_sees

CLIP = "vn_haiphong_intersection.mp4"
FPS = 20.09
PASS_S = 142 / FPS  # one pass through the clip
CLASSES = frozenset({"car", "motorcycle", "bus", "truck", "bicycle"})


@pytest.fixture(scope="module")
def looped(shared_dir, repo_dir):
    events, frames = clip_detections(shared_dir, CLIP, "demo-haiphong", 0, 141, 2)
    scene = scenes.load(repo_dir / "deploy/local/scenes/demo-haiphong.yaml")
    images = {e.id: as_worker_sees(frames[e.frame.frame_seq]) for e in events}

    def second_pass(marked: bool):
        for k, e in enumerate(events):
            at = e.frame.captured_at + timedelta(seconds=PASS_S)
            frame = msgspec.structs.replace(e.frame, captured_at=at, stream_seq=e.frame.stream_seq + 1000,
                                            discontinuity="loop" if marked and k == 0 else None)
            yield msgspec.structs.replace(e, id=e.id + "-2", occurred_at=at, frame=frame), images[e.id]

    def play(marked: bool):
        engine = CameraTracker(scene, classes=CLASSES)
        steps = [engine.process(e, images[e.id]) for e in events]
        ids_before = {t.id for t in engine.tracker.tracks}
        second = [(e, engine.process(e, image)) for e, image in second_pass(marked)]
        return engine, steps, ids_before, second

    def single_pass_then_shutdown() -> list[str]:
        engine = CameraTracker(scene, classes=CLASSES)
        drafts = [d.id for e in events for d in engine.process(e, images[e.id]).drafts]
        return drafts + [d.id for d in engine.finish()]

    play.single_pass_then_shutdown = single_pass_then_shutdown  # type: ignore[attr-defined]
    return play


def test_a_loop_closes_tracks_and_counts_and_finishes_pending_violations(looped):
    engine, first, ids_before, second = looped(True)
    shutdown_drafts = looped.single_pass_then_shutdown()
    loop_event, loop_step = second[0]
    assert loop_step.discontinuity == "loop"
    # Tracks: none of the first pass's tracks goes on after the loop.
    after_loop = {t.id for t in engine.tracker.tracks}
    assert ids_before and not (ids_before & after_loop)
    # Violations: the first pass's, all out by the loop (pending ones finished with the frames
    # there were), exactly as a single pass ended by a shutdown gives them.
    first_drafts = [d.id for s in first for d in s.drafts] + [d.id for d in loop_step.drafts]
    assert all(d.finding.t < loop_event.frame.captured_at.timestamp() for d in loop_step.drafts)
    assert sorted(first_drafts) == sorted(shutdown_drafts) and first_drafts
    # Counts: the first pass's window is published at the loop, with the 7 s it covered.
    [closed] = loop_step.counts
    assert closed.window_s == pytest.approx(PASS_S - 2 / FPS, abs=0.05) and closed.window_start == T0
    counted_first = sum(c.count for c in closed.counts)
    [rest] = engine.flush_counts()
    assert rest.id != closed.id and rest.window_start == loop_event.frame.captured_at
    assert sum(c.count for c in rest.counts) == counted_first  # the same clip again, counted again, once


def test_no_red_phase_age_over_the_loop(looped):
    engine, first, _, second = looped(True)
    end = second[-1][0].frame.captured_at.timestamp()
    loop_t = second[0][0].frame.captured_at.timestamp()
    red = engine.signals.at("main", end)
    assert red.phase == "red" and red.lower_bound  # first seen red at the loop: a lower bound
    assert red.since == pytest.approx(loop_t) and red.age(end) < PASS_S
    # During the few frames the lamps need to be read again, the phase is unknown: nothing judged.
    assert engine.signals.at("main", loop_t) is None or engine.signals.at("main", loop_t).since >= loop_t
    # Runs of the first pass still pending at the loop are finished by the loop's frame: only the
    # second pass's own runs are judged on phases read after the loop.
    drafts = [d for _, s in second for d in s.drafts if d.finding.t >= loop_t]
    red_runs = [d for d in drafts if d.finding.type == "red_light"]
    assert red_runs, "the second pass has the same red-light runners"
    for d in red_runs:
        assert d.finding.parameters["phase_age_is_lower_bound"] == "true"
        assert d.finding.phase_age_s < d.finding.t - loop_t + 0.01
    # Without the mark the red phase would run on over the loop: the age the issue saw grow.
    unmarked, _, _, _ = looped(False)
    assert unmarked.signals.at("main", end).age(end) > 2 * PASS_S - 0.2
