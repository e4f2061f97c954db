"""A publish in flight when nats-server is killed and restarted: sent again on the new connection,
not left waiting out its whole timeout for an ack that died with the server."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import nats

from services import localstack
from services.runtime import bus


async def test_a_publish_whose_server_died_is_sent_again_after_the_restart(tmp_path: Path) -> None:
    port = localstack.free_port()
    server = localstack.start_nats(tmp_path / "js", port)

    async def quiet(_: Exception) -> None:  # reconnect errors while the server is away are expected
        pass

    nc = await nats.connect(f"nats://127.0.0.1:{port}", max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                            error_cb=quiet)
    js = nc.jetstream()
    try:
        await js.add_stream(name="RESTART", subjects=["restart.>"])
        await bus.publish_bytes(js, "restart.a", b"first", headers={bus.MSG_ID: "first"})
        # The server takes the request and answers no more (busy, then killed): the ack never comes.
        server.send_signal(signal.SIGSTOP)
        publishing = asyncio.create_task(bus.publish_bytes(js, "restart.a", b"second", headers={bus.MSG_ID: "second"},
                                                           timeout=30))
        await asyncio.sleep(0.3)
        server.send_signal(signal.SIGKILL)
        server.wait()
        server = localstack.start_nats(tmp_path / "js", port)
        back = time.monotonic()
        ack = await asyncio.wait_for(publishing, 30)
        assert time.monotonic() - back < 10  # the reconnection (0.2 s) and one round trip, not the 30 s timeout
        assert ack.stream == "RESTART" and ack.seq == 2
        # Sent once more after the restart: stored once (the same Nats-Msg-Id).
        again = await bus.publish_bytes(js, "restart.a", b"second", headers={bus.MSG_ID: "second"})
        assert again.duplicate and (await js.stream_info("RESTART")).state.messages == 2
    finally:
        await nc.close()
        localstack.stop_process(server)
