"""The camera state machine, heartbeat figures and backoff, driven by snapshots (no I/O)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from services.ingest.health import DEGRADED, OFFLINE, ONLINE, Backoff, Health, Snapshot, Transition

BASE = Snapshot(connected=False, error="", frames_in=0, frames_out=0, dropped=0, decode_errors=0, reconnects=0,
                last_frame_at=None, connected_at=None)


def streaming(health: Health, start: float, seconds: float, fps: float, snap: Snapshot, **more) -> Snapshot:
    """Feed `seconds` of a healthy stream at `fps`, ticking every 0.5 s; return the last snapshot."""
    t = start
    while t < start + seconds - 1e-9:
        t += 0.5
        snap = replace(snap, frames_in=snap.frames_in + int(fps / 2), frames_out=snap.frames_out + 2,
                       last_frame_at=t, **more)
        assert health.evaluate(snap, t) is None
    return snap


def test_goes_online_then_offline_with_reason_then_online_again() -> None:
    health = Health(target_fps=5)
    assert health.evaluate(BASE, 0.0) is None  # nothing known yet: no report
    snap = replace(BASE, connected=True, connected_at=1.0, last_frame_at=1.0, frames_in=1)
    assert health.evaluate(snap, 1.0) == Transition(ONLINE, "receiving frames")
    snap = streaming(health, 1.0, 6.0, 20, snap)
    lost = replace(snap, connected=False, error="no data for 5 s (timeout)")
    assert health.evaluate(lost, 8.0) == Transition(OFFLINE, "no data for 5 s (timeout)")
    refused = replace(lost, error="cannot open: connection refused", reconnects=1)
    assert health.evaluate(refused, 9.0) is None  # still offline: one report per change
    back = replace(refused, connected=True, error="", connected_at=12.0, last_frame_at=12.0,
                   frames_in=refused.frames_in + 1)
    assert health.evaluate(back, 12.0) == Transition(ONLINE, "receiving frames")


def test_first_failure_is_reported_offline() -> None:
    health = Health(target_fps=5)
    assert health.evaluate(replace(BASE, error="cannot open: connection refused"), 0.5) == Transition(
        OFFLINE, "cannot open: connection refused")


def test_connected_without_frames_is_degraded() -> None:
    health = Health(target_fps=5, stall_s=3.0)
    snap = replace(BASE, connected=True, connected_at=0.0, last_frame_at=0.0, frames_in=1)
    assert health.evaluate(snap, 0.0).state == ONLINE
    assert health.evaluate(snap, 2.9) is None
    degraded = health.evaluate(snap, 3.5)
    assert degraded.state == DEGRADED and "no frame for more than 3 s" in degraded.reason


def test_dropped_frames_and_decode_errors_degrade_while_they_last() -> None:
    health = Health(target_fps=5, window_s=5.0)
    snap = replace(BASE, connected=True, connected_at=0.0, last_frame_at=0.0, frames_in=1)
    health.evaluate(snap, 0.0)
    snap = streaming(health, 0.0, 6.0, 20, snap)
    dropping = replace(snap, dropped=3, frames_in=snap.frames_in + 10, last_frame_at=6.5)
    change = health.evaluate(dropping, 6.5)
    assert change.state == DEGRADED and "publishing lags: 3 frames dropped" in change.reason
    # Once the drops are older than the window, the camera is online again.
    snap = streaming(health, 6.5, 4.5, 20, dropping)
    recovered = replace(snap, frames_in=snap.frames_in + 10, last_frame_at=11.5)
    assert health.evaluate(recovered, 11.5) == Transition(ONLINE, "receiving frames")
    errors = replace(recovered, decode_errors=7, frames_in=recovered.frames_in + 10, last_frame_at=12.0)
    change = health.evaluate(errors, 12.0)
    assert change.state == DEGRADED and "7 decode errors" in change.reason


def test_source_slower_than_target_is_degraded_once_measured() -> None:
    health = Health(target_fps=10, window_s=5.0)
    snap = replace(BASE, connected=True, connected_at=0.0, last_frame_at=0.0, frames_in=1)
    health.evaluate(snap, 0.0)
    t = 0.0
    change = None
    while change is None and t < 10:
        t += 0.5
        snap = replace(snap, frames_in=snap.frames_in + 1, last_frame_at=t)  # 2 fps
        change = health.evaluate(snap, t)
    assert change is not None and change.state == DEGRADED
    assert "source delivers 2.0 fps, below the target 10 fps" == change.reason
    assert 4.0 <= t <= 5.5


def test_heartbeat_rates_since_the_previous_heartbeat() -> None:
    health = Health(target_fps=5)
    snap = replace(BASE, connected=True, connected_at=0.0, last_frame_at=9.8, frames_in=100, frames_out=25,
                   dropped=2, decode_errors=1, reconnects=3)
    assert health.heartbeat(snap, 10.0) == (0.0, 0.0)
    later = replace(snap, frames_in=300, frames_out=75, last_frame_at=19.5)
    fps_in, fps_out = health.heartbeat(later, 20.0)
    assert fps_in == pytest.approx(20.0) and fps_out == pytest.approx(5.0)
    assert health.heartbeat(replace(later, frames_in=310, frames_out=77), 22.0) == (5.0, 1.0)


def test_backoff_grows_exponentially_with_jitter_and_caps() -> None:
    backoff = Backoff(initial_s=0.5, maximum_s=8.0, factor=2.0, jitter=0.5, rng=random.Random(1))
    delays = [backoff.next() for _ in range(8)]
    bases = [0.5, 1, 2, 4, 8, 8, 8, 8]
    for delay, base in zip(delays, bases):
        assert base * 0.5 <= delay <= base
    assert len({round(d, 6) for d in delays[4:]}) == 4  # jittered: capped delays differ
    backoff.reset()
    assert backoff.next() <= 0.5
