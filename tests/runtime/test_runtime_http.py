"""/healthz, /readyz and /metrics as a service serves them."""

from __future__ import annotations

import asyncio

import aiohttp

from services.runtime import http


async def test_probes_and_metrics() -> None:
    nats_ok = {"value": True}
    draining = asyncio.Event()

    async def database() -> bool:
        raise ConnectionRefusedError("postgres is down")

    runner, port = await http.serve(
        0, {"nats": lambda: nats_ok["value"], "database": database}, host="127.0.0.1", draining=draining
    )
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as client:
            async with client.get("/healthz") as response:
                assert response.status == 200 and (await response.json()) == {"status": "ok"}
            async with client.get("/readyz") as response:
                assert response.status == 503
                assert (await response.json())["checks"] == {"nats": True, "database": False}
            async with client.get("/metrics") as response:
                assert response.status == 200
                assert "roadwatch_messages_total" in await response.text()
            async with client.get("/nope") as response:
                assert response.status == 404
        runner2, port2 = await http.serve(0, {"nats": lambda: nats_ok["value"]}, host="127.0.0.1", draining=draining)
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port2}") as client:
                async with client.get("/readyz") as response:
                    assert response.status == 200
                draining.set()
                async with client.get("/readyz") as response:
                    assert response.status == 503 and (await response.json())["checks"]["draining"] is False
        finally:
            await runner2.cleanup()
    finally:
        await runner.cleanup()
