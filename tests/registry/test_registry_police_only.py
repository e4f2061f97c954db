"""lookup-owner replies carry owner personal data: only the police account may reach them.

On a real nats-server with one account per agency (DESIGN.md §5): the services' account exports
the lookup subject to POLICE only; POLICE gets answers, TRANSPORT has no route to it, and a
configuration that tries to give TRANSPORT the import is refused by the server at start.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import nats
import nats.errors
import pytest

from services import localstack
from services.registry import main as registry_main
from services.registry.settings import Settings
from registry_samples import load_vehicles

ACCOUNTS = """
port: {port}
jetstream {{ store_dir: "{store}" }}
accounts {{
  ROADWATCH {{
    jetstream: enabled
    users [ {{user: registry, password: registry-secret}} ]
    exports [ {{ service: "traffic.registry.v1.lookup-owner", accounts: [POLICE] }} ]
  }}
  POLICE {{
    users [ {{user: officer, password: officer-secret}} ]
    imports [ {{ service: {{account: ROADWATCH, subject: "traffic.registry.v1.lookup-owner"}} }} ]
  }}
  TRANSPORT {{
    users [ {{user: transport, password: transport-secret}} ]
    {transport_imports}
  }}
}}
"""
IMPORT_LOOKUP = 'imports [ { service: {account: ROADWATCH, subject: "traffic.registry.v1.lookup-owner"} } ]'


def write_config(tmp_path: Path, port: int, transport_imports: str = "") -> Path:
    path = tmp_path / f"nats-{port}.conf"
    path.write_text(ACCOUNTS.format(port=port, store=tmp_path / f"js-{port}", transport_imports=transport_imports))
    return path


def test_server_refuses_to_give_transport_the_lookup(tmp_path: Path) -> None:
    config = write_config(tmp_path, localstack.free_port(), IMPORT_LOOKUP)
    done = subprocess.run([localstack.nats_server_binary(), "-c", str(config)], capture_output=True, text=True,
                          timeout=20)
    assert done.returncode != 0
    assert "service import not authorized" in done.stdout + done.stderr


@pytest.fixture
def accounts_server(tmp_path: Path):
    port = localstack.free_port()
    config = write_config(tmp_path, port)
    process = subprocess.Popen([localstack.nats_server_binary(), "-c", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    localstack.wait_port("127.0.0.1", port, 15, process)
    yield port
    localstack.stop_process(process)


async def test_police_gets_owner_data_transport_cannot_reach_it(accounts_server: int, registry_url: str,
                                                                 tmp_path: Path) -> None:
    await load_vehicles(registry_url, tmp_path)
    port = accounts_server
    config = Settings(nats_url=f"nats://registry:registry-secret@127.0.0.1:{port}", database_url=registry_url,
                      http_port=0, db_pool_size=2)
    stop, ready = asyncio.Event(), asyncio.get_running_loop().create_future()
    task = asyncio.create_task(registry_main.run(config, stop=stop, ready=ready))
    try:
        await asyncio.wait_for(asyncio.shield(ready), 30)
        officer = await nats.connect(f"nats://officer:officer-secret@127.0.0.1:{port}")
        transport = await nats.connect(f"nats://transport:transport-secret@127.0.0.1:{port}")
        try:
            reply = await officer.request(registry_main.LOOKUP_OWNER, b'{"plate": "30A-123.45"}', timeout=5)
            assert json.loads(reply.data)["owner"]["national_id"] == "001090123456"
            with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError)):
                await transport.request(registry_main.LOOKUP_OWNER, b'{"plate": "30A-123.45"}', timeout=2)
        finally:
            await officer.close()
            await transport.close()
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0
