"""The hand-off from a camera's decode thread to the asyncio publisher: bounded, drop-oldest.

A camera never waits for NATS: when publishing lags, the oldest waiting frame is discarded and
counted, because for traffic enforcement a current frame is worth more than a complete
backlog, and an unbounded queue would only turn a slow broker into an out-of-memory kill.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from proto.v1.frame import frame_headers, new_frame_meta

T = TypeVar("T")


class DropOldest(Generic[T]):
    """Thread-safe bounded FIFO; `put` never blocks and returns how many items it pushed out."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self.dropped = 0

    def put(self, item: T) -> int:
        with self._lock:
            pushed_out = 0
            carried = None
            while len(self._items) >= self.maxsize:
                dropped = self._items.popleft()
                carried = carried or getattr(dropped, "discontinuity", None)
                pushed_out += 1
            self._items.append(item)
            if carried:
                # The first frame after a break was dropped: the oldest kept frame now begins the stretch.
                head = self._items[0]
                if dataclasses.is_dataclass(head) and not getattr(head, "discontinuity", None):
                    self._items[0] = dataclasses.replace(head, discontinuity=carried)
            self.dropped += pushed_out
            return pushed_out

    def get(self) -> T | None:
        with self._lock:
            return self._items.popleft() if self._items else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class AsyncDropOldest(DropOldest[T]):
    """A DropOldest whose consumer is a coroutine on `loop`; producers may be any thread."""

    def __init__(self, maxsize: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(maxsize)
        self._loop = loop
        self._ready = asyncio.Event()

    def put(self, item: T) -> int:
        pushed_out = super().put(item)
        try:
            self._loop.call_soon_threadsafe(self._ready.set)
        except RuntimeError:  # loop closed during shutdown: the frame is moot
            pass
        return pushed_out

    async def next(self) -> T:
        while True:
            item = self.get()
            if item is not None:
                return item
            self._ready.clear()
            item = self.get()  # a put may have landed between get() and clear()
            if item is not None:
                return item
            await self._ready.wait()


@dataclass(frozen=True, slots=True)
class OutFrame:
    camera_id: str
    captured_at: float  # wall-clock seconds
    width: int
    height: int
    jpeg: bytes
    discontinuity: str | None = None  # start | reconnect | loop: the first frame after a break


def frame_seq(captured_at: float) -> int:
    """Capture time in milliseconds: monotonic across restarts and replica hand-overs, where a
    counter would start again at zero and make the tracker reorder frames wrongly."""
    return int(round(captured_at * 1000))


def frame_message(frame: OutFrame) -> dict[str, str]:
    """The contract's headers for one frame (Nats-Msg-Id included)."""
    captured = datetime.fromtimestamp(frame.captured_at, tz=UTC)
    meta = new_frame_meta(camera_id=frame.camera_id, frame_seq=frame_seq(frame.captured_at), captured_at=captured,
                          width=frame.width, height=frame.height,
                          discontinuity=frame.discontinuity)  # type: ignore[arg-type]
    return frame_headers(meta)
