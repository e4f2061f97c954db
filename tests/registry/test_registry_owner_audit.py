"""Owner lookups over the bus on the production accounts (deploy/nats/accounts.conf, the session's
nats-server): the police and the services get owners, each request leaves an audit line (who,
which plate, which case) before its reply; transport and citizens cannot reach owner data and
the server says so (permissions / authorization violation)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import asyncpg
import nats
import nats.errors
import pytest

from proto import codec, subjects
from proto.v1 import ENDPOINTS, OwnerLookupReply, OwnerLookupRequest
from registry_samples import load_vehicles
from services import localstack
from services.registry import main as registry_main
from services.registry.settings import Settings

LOOKUP = subjects.request("registry", "lookup-owner")
OWNER_DATA = subjects.violation_identified("cam-07", "red_light")
PERMISSION = re.compile(r'permissions violation for (subscription|publish) to "([^"]+)"', re.IGNORECASE)


class Client:
    """A connection as one NATS user, keeping the violations the server reports to it."""

    def __init__(self) -> None:
        self.refused: set[tuple[str, str]] = set()
        self.nc: nats.NATS | None = None

    @classmethod
    async def as_user(cls, port: int, user: str, passwords: dict[str, str], name: str = "") -> "Client":
        client = cls()

        async def on_error(exc: Exception) -> None:
            found = PERMISSION.search(str(exc))
            if found:
                client.refused.add((found.group(1).lower(), found.group(2).lower()))

        client.nc = await nats.connect(localstack.nats_url(port, user, passwords), name=name or user,
                                       error_cb=on_error, allow_reconnect=False)
        return client


@pytest.fixture
async def registry_running(nats_server, registry_url: str, tmp_path, unique: str) -> AsyncIterator[str]:
    """The real registry service as the `registry` user, answering on the real lookup subject."""
    await load_vehicles(registry_url, tmp_path)
    port, passwords = nats_server
    config = Settings(nats_url=localstack.nats_url(port, "registry", passwords), database_url=registry_url,
                      http_port=0, db_pool_size=2)
    from proto import streams

    stop, ready = asyncio.Event(), asyncio.get_running_loop().create_future()
    task = asyncio.create_task(registry_main.run(
        config, stop=stop, ready=ready,
        violations_consumer=streams.Consumer(name=f"registry-{unique}", stream="VIOLATIONS",
                                             filter_subjects=(f"traffic.violation.detected.v1.cam-{unique}.>",)),
        detections_consumer=streams.Consumer(name=f"registry-hotlist-{unique}", stream="DETECTIONS",
                                             filter_subjects=(subjects.detection_made(f"cam-{unique}"),))))
    done, _ = await asyncio.wait([ready, task], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    assert ready in done, f"registry did not start: {task.result() if task.done() else 'timeout'}"
    yield registry_url
    stop.set()
    assert await asyncio.wait_for(task, 30) == 0


async def audit_rows(url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch("SELECT * FROM registry.owner_lookup_audit ORDER BY seq")
    finally:
        await conn.close()


def ask(plate: str, **fields: str) -> bytes:
    return codec.encode(OwnerLookupRequest(plate=plate, **fields))


def test_the_endpoint_is_in_the_contract() -> None:
    (endpoint,) = [e for e in ENDPOINTS if e.name == "lookup_owner"]
    assert endpoint.subject == LOOKUP == registry_main.LOOKUP_OWNER
    assert endpoint.personal_data


async def test_police_lookup_is_answered_and_audited_with_the_attested_user(nats_server, registry_running) -> None:
    port, passwords = nats_server
    police = await Client.as_user(port, "police", passwords, name="officer-app")
    try:
        reply = await police.nc.request(LOOKUP, ask("30A-123.45", case_id="HP-2026-000123", requested_by="officer 17",
                                                    purpose="review"), timeout=10)
    finally:
        await police.nc.close()
    answer = codec.decode(reply.data, OwnerLookupReply)
    assert answer.found and answer.owner is not None and answer.owner.national_id == "001090123456"
    (row,) = await audit_rows(registry_running)
    assert (row["caller_account"], row["caller_user"], row["caller_name"]) == ("POLICE", "police", "officer-app")
    assert (row["case_id"], row["requested_by"], row["purpose"]) == ("HP-2026-000123", "officer 17", "review")
    assert (row["plate"], row["plate_normalised"], row["outcome"]) == ("30A-123.45", "30A12345", "found")


async def test_a_service_lookup_is_audited_as_the_services_account(nats_server, registry_running) -> None:
    port, passwords = nats_server
    notify = await Client.as_user(port, "notify", passwords)
    try:
        found = await notify.nc.request(LOOKUP, ask("30A12345", case_id="HP-2026-000124", requested_by="notify",
                                                    purpose="notice"), timeout=10)
        missing = await notify.nc.request(LOOKUP, b'{"plate": "99Z-999.99"}', timeout=10)  # an old, plate-only request
    finally:
        await notify.nc.close()
    assert json.loads(found.data)["found"] is True and json.loads(missing.data)["found"] is False
    rows = await audit_rows(registry_running)
    assert [(r["caller_account"], r["requested_by"], r["case_id"], r["plate_normalised"], r["outcome"]) for r in rows] == [
        (None, "notify", "HP-2026-000124", "30A12345", "found"),
        (None, "", "", "99Z99999", "not_found"),
    ]


async def test_notify_names_the_case_it_reads_the_owner_for(nats_server, registry_running) -> None:
    """notify's own lookup (services/notify/owners.py), not a hand-made request: its audit line
    carries the case, the service and the purpose."""
    from services.notify import owners

    port, passwords = nats_server
    notify = await Client.as_user(port, "notify", passwords)
    try:
        vehicle, owner = await owners.lookup(notify.nc, LOOKUP, "30A-123.45", 10, case_id="HP-2026-000127")
        with pytest.raises(owners.NotRegistered):
            await owners.lookup(notify.nc, LOOKUP, "99Z-999.99", 10, case_id="HP-2026-000128")
    finally:
        await notify.nc.close()
    assert vehicle.plate == "30A12345" and owner.national_id == "001090123456"
    rows = await audit_rows(registry_running)
    assert [(r["requested_by"], r["purpose"], r["case_id"], r["plate_normalised"], r["outcome"]) for r in rows] == [
        ("notify", "notice", "HP-2026-000127", "30A12345", "found"),
        ("notify", "notice", "HP-2026-000128", "99Z99999", "not_found"),
    ]


async def test_transport_cannot_subscribe_to_owner_data_nor_call_the_lookup(nats_server, registry_running) -> None:
    port, passwords = nats_server
    transport = await Client.as_user(port, "transport", passwords)
    police = await Client.as_user(port, "police", passwords)
    registry = await Client.as_user(port, "registry", passwords)
    got: list[bytes] = []
    try:
        async def keep(msg) -> None:
            got.append(msg.data)

        await transport.nc.subscribe(OWNER_DATA, cb=keep)
        await police.nc.subscribe(OWNER_DATA, cb=keep)  # the control: the same event reaches the police
        await transport.nc.flush()
        await police.nc.flush()
        await asyncio.sleep(0.2)
        await registry.nc.publish(OWNER_DATA, b"owner data")
        await registry.nc.flush()
        with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError)):
            await transport.nc.request(LOOKUP, ask("30A-123.45", case_id="HP-2026-000125"), timeout=1)
        await asyncio.sleep(0.3)
        assert ("subscription", OWNER_DATA.lower()) in transport.refused
        assert ("publish", LOOKUP) in transport.refused
        assert got == [b"owner data"], "only the police subscription received it"
        assert transport.nc.is_connected
    finally:
        for client in (transport, police, registry):
            await client.nc.close()
    assert await audit_rows(registry_running) == [], "a refused request never reached the registry"


@pytest.mark.parametrize("credentials", ["", "citizen:citizen@", "transport:wrong@"])
async def test_citizens_have_no_way_onto_the_bus(nats_server, credentials: str) -> None:
    """There is no citizen user: the public lookup is the portal's. Anonymous, made-up and wrong
    credentials are refused at connect (authorization violation), so no subject is reachable."""
    port, _ = nats_server
    with pytest.raises(Exception) as refused:
        await nats.connect(f"nats://{credentials}127.0.0.1:{port}", allow_reconnect=False, max_reconnect_attempts=0,
                           connect_timeout=2)
    assert "authorization violation" in str(refused.value).lower()


async def test_no_audit_line_no_owner_data(nats_server, registry_running) -> None:
    conn = await asyncpg.connect(registry_running)
    try:
        await conn.execute("ALTER TABLE registry.owner_lookup_audit ADD CONSTRAINT closed CHECK (false) NOT VALID")
    finally:
        await conn.close()
    port, passwords = nats_server
    police = await Client.as_user(port, "police", passwords)
    try:
        reply = await police.nc.request(LOOKUP, ask("30A-123.45", case_id="HP-2026-000126"), timeout=10)
    finally:
        await police.nc.close()
    assert reply.headers and reply.headers.get("Nats-Service-Error-Code") == "503"
    assert b"001090123456" not in reply.data and b"Nguy" not in reply.data


async def test_audit_lines_cannot_be_changed(registry_url: str) -> None:
    conn = await asyncpg.connect(registry_url)
    try:
        await conn.execute("INSERT INTO registry.owner_lookup_audit (plate, plate_normalised, outcome) "
                           "VALUES ('30A-123.45', '30A12345', 'found')")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE registry.owner_lookup_audit SET case_id = 'forged'")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("TRUNCATE registry.owner_lookup_audit")
    finally:
        await conn.close()
