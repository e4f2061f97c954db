"""Each service starts on the real servers, answers its probes, logs JSON and drains on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import aiohttp
import pytest

from services import localstack

SKELETONS = {"track": False, "portal": True, "notify": True}  # service -> needs a database


@pytest.mark.parametrize("service", sorted(SKELETONS))
async def test_service_serves_probes_and_stops_cleanly(service: str, nats_url: str, database_url: str,
                                                       tmp_path) -> None:
    port = localstack.free_port()
    env = {**os.environ, "NATS_URL": nats_url, "HTTP_PORT": str(port), "LOG_LEVEL": "INFO"}
    if SKELETONS[service]:
        env["DATABASE_URL"] = database_url
    # The log goes to a file, not a pipe nobody reads while the service runs: on a nats-server that
    # other tests filled, a service logs a dead letter per stale message, a full pipe blocks its
    # writes, and with them its event loop (and its SIGTERM).
    log = tmp_path / f"{service}.log"
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen([sys.executable, "-m", "services.cli", service], env=env, stderr=out, text=True)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as client:
            for _ in range(200):
                try:
                    async with client.get("/readyz") as response:
                        if response.status == 200:
                            checks = (await response.json())["checks"]
                            break
                except aiohttp.ClientError:
                    pass
                assert process.poll() is None, log.read_text(encoding="utf-8")
                await asyncio.sleep(0.05)
            else:
                pytest.fail(f"{service} never became ready")
            assert checks["nats"] is True
            assert checks.get("database", not SKELETONS[service]) is True
            async with client.get("/healthz") as response:
                assert response.status == 200
            async with client.get("/metrics") as response:
                assert response.status == 200 and "python_info" in await response.text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
        assert {line["service"] for line in lines} == {service}
        assert [line["msg"] for line in lines if line["msg"] in ("ready", "stopping", "stopped")] == ["ready", "stopping", "stopped"]
    finally:
        if process.poll() is None:
            process.kill()
