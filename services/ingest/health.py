"""Camera health: the online/degraded/offline state machine, heartbeat figures and backoff. Pure.

Streams that stop silently are the operators' first complaint, so every condition that makes a
camera less than useful has a named state and a reason: no connection (offline), connected but
no frames, too few frames, decode errors or frames dropped because publishing lags (degraded).
A state change is reported once, with its reason; the periodic heartbeat carries the figures
and the reason as it stands.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from services.runtime import retry

ONLINE, DEGRADED, OFFLINE = "online", "degraded", "offline"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a camera's reader has reported so far (counters are totals since it started)."""

    connected: bool
    error: str  # reason of the last failure, "" when none
    frames_in: int
    frames_out: int
    dropped: int
    decode_errors: int
    reconnects: int
    last_frame_at: float | None  # monotonic seconds
    connected_at: float | None  # monotonic seconds


@dataclass(frozen=True, slots=True)
class Transition:
    state: str
    reason: str


class Health:
    """Decides the state from successive snapshots; `evaluate` returns a Transition on change."""

    def __init__(self, *, target_fps: float, stall_s: float = 3.0, window_s: float = 5.0,
                 min_fps_ratio: float = 0.5, decode_error_limit: int = 5) -> None:
        self.target_fps = target_fps
        self.stall_s = stall_s
        self.window_s = window_s
        self.min_fps_ratio = min_fps_ratio
        self.decode_error_limit = decode_error_limit
        self.state: str | None = None
        self.reason = ""
        self._samples: deque[tuple[float, Snapshot]] = deque()
        self._beat: tuple[float, Snapshot] | None = None

    def condition(self, snap: Snapshot, now: float) -> tuple[str, str] | None:
        """The state the snapshot calls for and why; None while the first connection is pending."""
        if not snap.connected:
            return (OFFLINE, snap.error) if snap.error else None
        since = snap.last_frame_at if snap.last_frame_at is not None else snap.connected_at
        if since is not None and now - since > self.stall_s:
            return DEGRADED, f"connected but no frame for more than {self.stall_s:g} s"
        start = self._window_start(snap, now)
        if start is not None:
            then_at, then = start
            span = now - then_at
            errors = snap.decode_errors - then.decode_errors
            if errors >= self.decode_error_limit:
                return DEGRADED, f"{errors} decode errors in {span:.0f} s"
            dropped = snap.dropped - then.dropped
            if dropped > 0:
                return DEGRADED, f"publishing lags: {dropped} frames dropped in {span:.0f} s"
            if span >= self.window_s * 0.8 and snap.connected_at is not None and then_at >= snap.connected_at:
                fps_in = (snap.frames_in - then.frames_in) / span
                if fps_in < self.target_fps * self.min_fps_ratio:
                    return DEGRADED, f"source delivers {fps_in:.1f} fps, below the target {self.target_fps:g} fps"
        return ONLINE, "receiving frames"

    def _window_start(self, snap: Snapshot, now: float) -> tuple[float, Snapshot] | None:
        samples = self._samples
        samples.append((now, snap))
        while len(samples) > 1 and now - samples[1][0] >= self.window_s:
            samples.popleft()
        # A reconnect resets the counters' meaning for rate purposes: only look since then.
        if snap.connected_at is not None:
            while len(samples) > 1 and samples[0][0] < snap.connected_at:
                samples.popleft()
        first = samples[0]
        return first if first[0] < now else None

    def evaluate(self, snap: Snapshot, now: float) -> Transition | None:
        wanted = self.condition(snap, now)
        if wanted is None:
            return None
        changed = wanted[0] != self.state
        # The reason follows the present (the heartbeat says why *now*); a report goes out only
        # when the state itself changes, so a flapping reason does not flood the bus.
        self.state, self.reason = wanted
        return Transition(*wanted) if changed else None

    def heartbeat(self, snap: Snapshot, now: float) -> tuple[float, float]:
        """Frames/s decoded and published since the previous heartbeat (0 at the first); the
        totals and the last frame's age are the snapshot's own."""
        previous = self._beat
        self._beat = (now, snap)
        if previous is None or now <= previous[0]:
            return 0.0, 0.0
        span = now - previous[0]
        return (round(max(0, snap.frames_in - previous[1].frames_in) / span, 3),
                round(max(0, snap.frames_out - previous[1].frames_out) / span, 3))


class Backoff:
    """A camera's reconnection delays: runtime's policy with jitter, so that a hundred cameras
    behind one failed VMS do not all reconnect in the same instant when it comes back; counted
    here because a camera's reader thread waits on its stop event, not in the event loop."""

    def __init__(self, *, initial_s: float = 0.5, maximum_s: float = 30.0, factor: float = 2.0,
                 jitter: float = 0.5, rng: random.Random | None = None) -> None:
        self.policy = retry.Backoff(initial_s=initial_s, max_s=maximum_s, factor=factor, jitter=jitter)
        self.rng = rng or random.Random()
        self.attempt = 0

    def next(self) -> float:
        delay = self.policy.delay(self.attempt, self.rng)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
