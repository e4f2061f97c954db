"""A consumer in its own process, so that a test can kill -9 it in the middle of a batch.

usage: consumer_process.py NATS_URL STREAM CONSUMER FILTER HANDLED_FILE
Each handled event id is appended to HANDLED_FILE before the (slow) handler returns and acks.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from proto import streams
from proto.v1 import CameraStatus
from services.runtime import bus


async def main(url: str, stream: str, consumer: str, subject_filter: str, handled: Path) -> None:
    nc = await bus.connect(url, "killable-consumer")
    js = nc.jetstream()

    async def handle(event: CameraStatus, msg) -> None:
        with handled.open("a") as out:
            out.write(event.id + "\n")
        await asyncio.sleep(0.3)

    spec = streams.Consumer(name=consumer, stream=stream, filter_subjects=(subject_filter,), ack_wait_s=2.0, max_deliver=5)
    await bus.Consumer(js, service="killable", consumer=spec, decode=bus.json_decoder(CameraStatus), handle=handle, batch=10).run(
        asyncio.Event()
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], Path(sys.argv[5])))
