"""The drop-oldest hand-off between decode threads and the loop, and the frame headers."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime

from proto.v1.frame import frame_meta_from_headers
from services.ingest.publisher import AsyncDropOldest, DropOldest, OutFrame, frame_message, frame_seq


def test_full_queue_drops_the_oldest_and_counts() -> None:
    queue: DropOldest[int] = DropOldest(3)
    assert [queue.put(i) for i in range(5)] == [0, 0, 0, 1, 1]
    assert queue.dropped == 2 and len(queue) == 3
    assert [queue.get(), queue.get(), queue.get(), queue.get()] == [2, 3, 4, None]


async def test_threads_never_block_and_the_consumer_sees_the_newest() -> None:
    queue: AsyncDropOldest[int] = AsyncDropOldest(4, asyncio.get_running_loop())

    def produce() -> None:
        for i in range(1000):
            queue.put(i)

    producers = [threading.Thread(target=produce) for _ in range(3)]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join(5)
    assert not any(thread.is_alive() for thread in producers)
    received = [await asyncio.wait_for(queue.next(), 1) for _ in range(4)]
    assert queue.dropped == 3000 - 4
    assert 999 in received  # the last frame put is kept, not lost behind old ones


async def test_consumer_wakes_up_on_a_put_from_another_thread() -> None:
    queue: AsyncDropOldest[str] = AsyncDropOldest(2, asyncio.get_running_loop())
    waiter = asyncio.ensure_future(queue.next())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    threading.Thread(target=queue.put, args=("frame",)).start()
    assert await asyncio.wait_for(waiter, 2) == "frame"


def test_headers_follow_the_contract() -> None:
    frame = OutFrame(camera_id="hp-01", captured_at=1_764_400_000.25, width=1006, height=720, jpeg=b"\xff\xd8")
    headers = frame_message(frame)
    meta = frame_meta_from_headers(headers)
    assert meta.camera_id == "hp-01" and (meta.width, meta.height) == (1006, 720)
    assert meta.captured_at == datetime.fromisoformat("2025-11-29T07:06:40.250000+00:00")
    assert meta.frame_seq == 1_764_400_000_250 == frame_seq(frame.captured_at)
    assert headers["Nats-Msg-Id"] == meta.id
    assert frame_message(frame)["Nats-Msg-Id"] == meta.id  # deterministic
