"""A restarted nats-server loses the in-memory lease bucket: the keeper creates it again and
takes its cameras back, and /readyz says "not ready" while its scans fail."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats

from services import localstack
from services.ingest.leases import LeaseKeeper


async def test_leases_come_back_after_a_nats_server_restart(tmp_path: Path) -> None:
    port = localstack.free_port()
    server = localstack.start_nats(tmp_path / "js", port)
    held: set[str] = set()

    async def acquired(camera: str) -> None:
        held.add(camera)

    async def lost(camera: str) -> None:
        held.discard(camera)

    nc = await nats.connect(f"nats://127.0.0.1:{port}", max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    stop = asyncio.Event()
    keeper = LeaseKeeper(nc.jetstream(), bucket="leases_restart", me="replica-a", ttl_s=3, scan_s=0.2, max_cameras=0,
                         on_acquired=acquired, on_lost=lost)
    await keeper.open()
    keeper.configure(["cam-1", "cam-2"])
    task = asyncio.create_task(keeper.run(stop))

    async def until(condition, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            assert asyncio.get_running_loop().time() < deadline, "timed out"
            await asyncio.sleep(0.1)

    try:
        await until(lambda: held == {"cam-1", "cam-2"} and keeper.scanning(), 10)
        localstack.stop_process(server)  # the memory-stored bucket goes with it
        await until(lambda: not keeper.scanning() and not held, 15)  # overdue leases stop the cameras
        server = localstack.start_nats(tmp_path / "js", port)
        await until(lambda: held == {"cam-1", "cam-2"} and keeper.scanning(), 20)
        assert (await nc.jetstream().key_value("leases_restart")) is not None
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await nc.close()
        localstack.stop_process(server)
