"""Put one camera's detections back in capture order.

The detect pool is stateless and parallel, so detections of one camera arrive a few frames out
of order. Tracking needs them in order; it does not need every one of them. A detection waits
in the buffer until either a detection captured `window_s` later has arrived or it has waited
`window_s` of wall time; a missing frame is never waited for beyond that (gaps are normal: the
ingest motion gate skips still frames, detect skips stale ones). A detection older than one
already released is too late to track and is reported, not silently dropped.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(order=True)
class _Entry(Generic[T]):
    key: tuple[float, int]
    arrived: float = field(compare=False)
    item: T = field(compare=False)


class ReorderBuffer(Generic[T]):
    def __init__(self, window_s: float = 1.0, max_items: int = 64) -> None:
        self.window_s = window_s
        self.max_items = max_items
        self.heap: list[_Entry[T]] = []
        self.released: tuple[float, int] | None = None
        self.seen: set[tuple[float, int]] = set()

    def push(self, t: float, seq: int, item: T, *, now: float) -> tuple[list[T], bool]:
        """Add a detection (capture time t, frame seq). Returns (released in order, accepted).

        Not accepted: it is older than what was already released, or a duplicate.
        """
        key = (t, seq)
        if (self.released is not None and key <= self.released) or key in self.seen:
            return self.release(now), False
        self.seen.add(key)
        heapq.heappush(self.heap, _Entry(key, now, item))
        return self.release(now), True

    def release(self, now: float) -> list[T]:
        """What may go now: behind the newest capture by the window, waited long enough, or overflow."""
        out: list[T] = []
        newest = max((entry.key[0] for entry in self.heap), default=None)
        while self.heap:
            head = self.heap[0]
            due = (newest is not None and newest - head.key[0] >= self.window_s) or now - head.arrived >= self.window_s \
                or len(self.heap) > self.max_items
            if not due:
                break
            heapq.heappop(self.heap)
            self.seen.discard(head.key)
            self.released = head.key
            out.append(head.item)
        return out

    def drain(self) -> list[T]:
        out = []
        while self.heap:
            head = heapq.heappop(self.heap)
            self.released = head.key
            out.append(head.item)
        self.seen.clear()
        return out

    def held(self) -> list[tuple[tuple[float, int], T]]:
        """What waits, as (capture time and frame seq, item): for a checkpoint."""
        return [(entry.key, entry.item) for entry in self.heap]

    def restore(self, held: list[tuple[tuple[float, int], T]], released: tuple[float, int] | None, *,
                now: float) -> None:
        """Back to a checkpoint's buffer; each item waits its window again from `now` (wall time is not kept)."""
        self.heap = [_Entry(key, now, item) for key, item in held]
        heapq.heapify(self.heap)
        self.seen = {key for key, _ in held}
        self.released = released

    def __len__(self) -> int:
        return len(self.heap)
