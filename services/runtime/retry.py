"""Retry with exponential backoff: one policy for every wait between attempts in roadwatch.

A `Backoff` says how long to wait before retry number N (the NATS connection at start, a
PostgreSQL outage in the registry, a nak's redelivery delay, a camera's reconnection, a notice's
next send); `retry()` awaits a call until it succeeds or the next wait would pass a deadline.
JetStream redelivery (nak with a delay) and the notify scheduler keep their retries durable;
this only computes their delays.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

# Beyond this many doublings every delay is the cap anyway; it keeps float powers finite.
_MAX_EXPONENT = 64


@dataclass(frozen=True)
class Backoff:
    """initial_s, then `factor` times longer per attempt, at most max_s; with `jitter` > 0 each
    delay is shortened by up to that share at random, so that many clients failing at once (a
    hundred cameras behind one failed VMS) do not all come back in the same instant."""

    initial_s: float
    max_s: float
    factor: float = 2.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        if self.initial_s < 0 or self.max_s < 0 or self.factor < 1:
            raise ValueError("delays must not be negative and factor must be at least 1")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait before retry number `attempt` (0: the first retry)."""
        base = min(self.max_s, self.initial_s * self.factor ** min(max(attempt, 0), _MAX_EXPONENT))
        if self.jitter:
            base *= 1 - self.jitter * (rng or random).random()
        return base


async def retry(call: Callable[[], Awaitable[T]], *, backoff: Backoff, retry_on: type[BaseException]
                | tuple[type[BaseException], ...], deadline_s: float,
                on_retry: Callable[[BaseException, float], None] | None = None,
                sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                clock: Callable[[], float] = time.monotonic) -> T:
    """Await call() until it returns. On an exception of `retry_on`, call on_retry(exc, delay),
    wait and try again; when the next wait would end after `deadline_s`, re-raise instead.
    Any other exception propagates at once."""
    deadline = clock() + deadline_s
    attempt = 0
    while True:
        try:
            return await call()
        except retry_on as exc:
            delay = backoff.delay(attempt)
            if clock() + delay > deadline:
                raise
            if on_retry is not None:
                on_retry(exc, delay)
            await sleep(delay)
            attempt += 1
