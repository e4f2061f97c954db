"""Sampling by capture time, the motion gate and the stream clock, as pure functions."""

from __future__ import annotations

import numpy as np
import pytest

from services.ingest.sampler import FpsSampler, MotionGate, StreamClock, small_grey


def kept(times, fps: float) -> list[float]:
    sampler = FpsSampler(fps)
    return [t for t in times if sampler.take(t)]


@pytest.mark.parametrize(("source_fps", "target"), [(20.09, 5), (19.97, 5), (30.0, 5), (25.0, 2), (12.5, 5)])
def test_sampled_rate_matches_target_over_a_minute(source_fps: float, target: float) -> None:
    start = 1_764_400_000.123
    times = [start + i / source_fps for i in range(int(60 * source_fps))]
    out = kept(times, target)
    assert len(out) == pytest.approx(60 * target, abs=1)
    gaps = np.diff(out)
    # No bursts: two kept frames are never closer than one source frame interval apart,
    # and never further than one slot plus one source interval.
    assert gaps.min() >= 1 / source_fps - 1e-6
    assert gaps.max() <= 1 / target + 1 / source_fps + 1e-6


def test_slower_source_than_target_keeps_every_frame() -> None:
    times = [100.0 + i / 3 for i in range(30)]
    assert kept(times, 5) == times


def test_irregular_arrivals_still_average_to_target() -> None:
    rng = np.random.default_rng(7)
    times = np.cumsum(rng.uniform(0.01, 0.09, size=2000)) + 50.0  # about 20 fps, jittery
    out = kept(times.tolist(), 5)
    duration = times[-1] - times[0]
    assert len(out) / duration == pytest.approx(5, rel=0.03)


def test_time_going_back_restarts_the_grid() -> None:
    sampler = FpsSampler(5)
    assert sampler.take(1000.0)
    assert not sampler.take(1000.1)
    assert sampler.take(990.0)  # re-anchored clock: follow it instead of going silent for 10 s
    assert not sampler.take(990.1)
    assert sampler.take(990.2)


def test_clock_maps_pts_to_wall_and_reanchors_on_jumps() -> None:
    clock = StreamClock(max_drift_s=2.0)
    assert clock.wall_time(5.0, 1000.0) == 1000.0
    # Arrival jitter does not move capture times: spacing follows the stream.
    assert clock.wall_time(5.2, 1000.9) == pytest.approx(1000.2)
    assert clock.wall_time(5.4, 1000.45) == pytest.approx(1000.4)
    # The stream restarts its timestamps: re-anchor to the arrival time.
    assert clock.wall_time(0.0, 1001.0) == 1001.0
    assert clock.wall_time(0.1, 1001.1) == pytest.approx(1001.1)
    # Frames arrive more than the limit later than their mapped time: re-anchor.
    assert clock.wall_time(10.0, 1014.0) == 1014.0
    assert clock.reanchors == 2
    assert clock.wall_time(None, 1234.5) == 1234.5


def test_clock_never_stamps_a_burst_of_buffered_frames_in_the_future() -> None:
    clock = StreamClock(max_drift_s=2.0)
    # An RTSP session opens with 2.4 s of buffered frames delivered within 50 ms...
    burst = [clock.wall_time(i / 20, 1000.0 + i * 0.001) for i in range(49)]
    assert all(t <= 1000.0 + i * 0.001 + 1e-9 for i, t in enumerate(burst))
    assert burst == sorted(burst)
    # ...then frames arrive live, 40 ms after capture: the spacing is the stream's again.
    live = [clock.wall_time(2.45 + i / 20, 1000.088 + i / 20) for i in range(20)]
    assert np.diff(live) == pytest.approx(1 / 20)
    assert all(t <= 1000.088 + i / 20 + 1e-9 for i, t in enumerate(live))


def frame(value: int, shape=(90, 160)) -> np.ndarray:
    return np.full(shape, value, np.uint8)


def test_motion_gate_skips_still_frames_but_keeps_alive() -> None:
    gate = MotionGate(min_changed=0.01, pixel_threshold=25, keepalive_s=5.0)
    background = frame(100)
    assert gate.take(background, 0.0)  # first frame is always sent
    noisy = background.copy()
    noisy[::7, ::5] += 10  # sensor noise below the per-pixel threshold
    sent = [t for t in np.arange(0.2, 12.0, 0.2) if gate.take(noisy, float(t))]
    assert sent == pytest.approx([5.0, 10.0])  # only the keepalives


def test_motion_gate_sends_when_enough_pixels_change() -> None:
    gate = MotionGate(min_changed=0.01, pixel_threshold=25, keepalive_s=60.0)
    background = frame(100)
    gate.take(background, 0.0)
    small = background.copy()
    small[0:2, 0:5] = 200  # 10 pixels of 14,400: below 1 %
    assert not gate.take(small, 0.2)
    assert gate.last_score == pytest.approx(10 / 14_400)
    moving = background.copy()
    moving[20:40, 30:60] = 200  # a vehicle-sized blob: 600 pixels, about 4 %
    assert gate.take(moving, 0.4)
    # Compared with the last frame sent, so the same scene again is still.
    assert not gate.take(moving.copy(), 0.6)


def test_small_grey_strides_to_about_the_requested_width() -> None:
    luma = np.arange(720 * 1006, dtype=np.uint32).reshape(720, 1006).astype(np.uint8)
    grey = small_grey(luma, width=160)
    assert grey.shape == (120, 168) and grey.flags["C_CONTIGUOUS"]
    assert grey[1, 1] == luma[6, 6]
