"""One backoff policy and one retry loop for every wait between attempts (no real sleeping here)."""

from __future__ import annotations

import random

import pytest

from services.ingest.health import Backoff as CameraBackoff
from services.notify.config import Retry
from services.notify.sender import backoff as notice_backoff
from services.runtime import bus
from services.runtime.retry import Backoff, retry


def test_delays_double_up_to_the_cap() -> None:
    policy = Backoff(initial_s=0.25, max_s=2.0)
    assert [policy.delay(n) for n in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert policy.delay(10_000) == 2.0  # a huge attempt count stays finite


def test_jitter_only_shortens_and_is_checked() -> None:
    policy = Backoff(initial_s=1.0, max_s=8.0, jitter=0.5)
    rng = random.Random(3)
    for attempt, base in enumerate([1, 2, 4, 8, 8]):
        assert base * 0.5 <= policy.delay(attempt, rng) <= base
    with pytest.raises(ValueError):
        Backoff(initial_s=1.0, max_s=8.0, jitter=1.5)


def test_the_services_delays_are_what_they_were() -> None:
    assert [bus.nak_delay(n) for n in (0, 1, 2, 3, 5, 6, 7, 100)] == [2, 2, 4, 8, 32, 60, 60, 60]
    assert [notice_backoff(Retry(base_s=30, max_s=3600), n) for n in (0, 1, 2, 3, 8)] == [30, 30, 60, 120, 3600]
    camera = CameraBackoff(initial_s=0.5, maximum_s=30.0, jitter=0.5, rng=random.Random(7))
    rng = random.Random(7)
    expected = [min(30.0, 0.5 * 2 ** n) * (1 - 0.5 * rng.random()) for n in range(8)]
    assert [camera.next() for _ in range(8)] == pytest.approx(expected)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.slept.append(delay)
        self.now += delay


async def test_retry_waits_out_transient_failures() -> None:
    clock, failures, seen = Clock(), [OSError("down"), OSError("still down")], []

    async def call() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    result = await retry(call, backoff=Backoff(initial_s=0.25, max_s=2.0), retry_on=OSError, deadline_s=5,
                         on_retry=lambda exc, delay: seen.append((str(exc), delay)), sleep=clock.sleep, clock=clock)
    assert result == "done" and clock.slept == [0.25, 0.5]
    assert seen == [("down", 0.25), ("still down", 0.5)]


async def test_retry_gives_up_before_the_deadline_and_lets_other_errors_through() -> None:
    clock, calls = Clock(), []

    async def down() -> None:
        calls.append(clock.now)
        raise ConnectionRefusedError("down")

    with pytest.raises(ConnectionRefusedError):
        await retry(down, backoff=Backoff(initial_s=0.25, max_s=2.0), retry_on=OSError, deadline_s=3,
                    sleep=clock.sleep, clock=clock)
    assert clock.slept == [0.25, 0.5, 1.0] and clock.now - 100.0 <= 3  # the next 2 s wait would pass it

    async def wrong() -> None:
        raise ValueError("never retried")

    with pytest.raises(ValueError):
        await retry(wrong, backoff=Backoff(initial_s=0.25, max_s=2.0), retry_on=OSError, deadline_s=3,
                    sleep=clock.sleep, clock=clock)
