"""The per-agency NATS accounts (deploy/nats/accounts.conf) on a real nats-server.

Each agency's user subscribes to a sample subject of every v1 message (notices once per
channel), the services' account publishes one message on each, and what each agency received
and what the server refused must be exactly the matrix below: DESIGN.md §5 written out by hand,
not read from the configuration under test. A new message in proto/v1 without a row here fails.
"""

from __future__ import annotations

import asyncio
import re
import typing
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.errors
import pytest
import yaml

from proto import subjects
from proto.v1 import MESSAGES
from proto.v1.notice import Channel
from deploy_support import ACCOUNTS, check_config, passwords, start_server, url
from services import localstack

REPO = Path(__file__).resolve().parents[2]
HELM_VALUES = REPO / "deploy" / "nats" / "values.yaml"

SERVICES = ("ingest", "detect", "track", "registry", "portal", "notify")
AGENCIES = ("police", "commune_police", "transport", "operations_centre")
CHANNELS = typing.get_args(Channel)
PLACEHOLDERS = {"camera_id": "cam-07", "type": "red_light", "decision": "confirmed",
                "intersection_id": "ix-03", "service": "track", "chain": "portal",
                "incident_type": "congestion", "model": "vehicle"}
LOOKUP_OWNER = subjects.request("registry", "lookup-owner")


def samples() -> dict[str, str]:
    """name -> one concrete subject, for every v1 message (notices once per channel)."""
    out: dict[str, str] = {}
    for message in MESSAGES:
        if "{channel}" in message.subject:
            for channel in CHANNELS:
                out[f"{message.name}:{channel}"] = message.subject.format(channel=channel, **PLACEHOLDERS)
        else:
            out[message.name] = message.subject.format(**PLACEHOLDERS)
    return out


SAMPLES = samples()
ALL = set(SAMPLES)
# DESIGN.md §5. police: everything, owner data included. commune_police: transfers to commune
# units. transport: inspection holds, counts, camera health, incidents. operations_centre:
# statistics, camera health and incidents, no owner data. citizen: no bus access at all (public lookup in the portal).
# model_promoted (which detector version ran when, who promoted it, why): the police only, with
# everything else; it is the provenance of the evidence they defend, and of no use to the others.
EXPECTED: dict[str, set[str]] = {
    "police": ALL,
    "commune_police": {"notice_sent:commune_police", "notice_failed:commune_police"},
    "transport": {"notice_sent:inspection_registry", "notice_failed:inspection_registry",
                  "vehicles_counted", "camera_status", "signal_phase",
                  "incident_detected", "incident_updated", "incident_cleared"},
    "operations_centre": {"violation_detected", "violation_unidentified", "case_reviewed", "case_resolved",
                          "vehicles_counted", "camera_status", "signal_phase",
                          "incident_detected", "incident_updated", "incident_cleared"},
}
# nats-py lowercases the server's -ERR text; subjects are lowercase anyway.
PERMISSION = re.compile(r'permissions violation for (subscription|publish) to "([^"]+)"', re.IGNORECASE)


def test_matrix_covers_every_message_and_keeps_owner_data_with_the_police() -> None:
    assert set(EXPECTED) == set(AGENCIES)
    for agency, allowed in EXPECTED.items():
        assert allowed <= ALL, f"{agency}: {allowed - ALL} are not v1 messages"
    personal = {name for name in ALL if name.split(":")[0] in {m.name for m in MESSAGES if m.personal_data}}
    assert personal == {"violation_identified"}, "a new personal-data message needs its own row"
    for agency in AGENCIES:
        if agency != "police":
            assert not personal & EXPECTED[agency], agency


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    directory = tmp_path_factory.mktemp("nats-accounts")
    process, port = start_server(directory, ACCOUNTS.read_text())
    SERVER_LOGS[port] = directory / "nats.log"
    yield port
    localstack.stop_process(process)


SERVER_LOGS: dict[int, Path] = {}  # port -> log, quoted when something unexpected happens


class Agency:
    """One agency's connection, with the permission violations the server reported to it."""

    def __init__(self) -> None:
        self.refused: set[tuple[str, str]] = set()
        self.nc: nats.NATS | None = None

    async def connect(self, port: int, user: str) -> Agency:
        async def on_error(exc: Exception) -> None:
            found = PERMISSION.search(str(exc))
            if found:
                self.refused.add((found.group(1).lower(), found.group(2)))

        self.nc = await nats.connect(url(port, user), error_cb=on_error, allow_reconnect=False, name=user)
        return self


@pytest.mark.parametrize("agency", AGENCIES)
async def test_each_agency_receives_exactly_its_subjects(server: int, agency: str) -> None:
    client = await Agency().connect(server, agency)
    services = await nats.connect(url(server, "track"))
    received: dict[str, asyncio.Future] = {}
    try:
        for name, subject in SAMPLES.items():
            received[name] = asyncio.get_running_loop().create_future()

            async def got(msg, name=name) -> None:
                if not received[name].done():
                    received[name].set_result(msg.data)

            await client.nc.subscribe(subject, cb=got)
        await client.nc.flush()
        await asyncio.sleep(0.2)  # permission errors arrive asynchronously after the SUBs
        for name, subject in SAMPLES.items():
            await services.publish(subject, name.encode())
        await services.flush()
        allowed = EXPECTED[agency]
        await asyncio.wait([received[name] for name in allowed], timeout=5)
        await asyncio.sleep(0.3)  # give anything that should not come a chance to arrive
        got_names = {name for name, future in received.items() if future.done()}
        assert got_names == allowed, f"{agency} got {sorted(got_names - allowed)}, missed {sorted(allowed - got_names)}"
        assert all(received[name].result() == name.encode() for name in allowed)
        refused = {subject for kind, subject in client.refused if kind == "subscription"}
        assert refused == {SAMPLES[name] for name in ALL - allowed}
        assert client.nc.is_connected
    finally:
        await client.nc.close()
        await services.close()


@pytest.mark.parametrize("agency", AGENCIES)
async def test_owner_lookup_answers_the_police_only(server: int, agency: str) -> None:
    registry = await nats.connect(url(server, "registry"))
    client = await Agency().connect(server, agency)
    try:
        async def answer(msg) -> None:
            await msg.respond(b'{"owner":"found"}')

        await registry.subscribe(LOOKUP_OWNER, queue="q", cb=answer)
        await registry.flush()
        if agency == "police":
            # The registry's interest reaches the importing account asynchronously: on a loaded
            # machine the first request can find no responder yet. A permission problem never heals.
            for attempt in range(20):
                try:
                    reply = await client.nc.request(LOOKUP_OWNER, b'{"plate":"30A-123.45"}', timeout=5)
                    break
                except nats.errors.NoRespondersError as exc:
                    if attempt == 19 or client.refused:
                        pytest.fail(f"police lookup failed: {exc!r}, refused {client.refused}; "
                                    f"server log: {SERVER_LOGS[server].read_text()[-3000:]}")
                    await asyncio.sleep(0.1)
            assert reply.data == b'{"owner":"found"}'
        else:
            with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
                await client.nc.request(LOOKUP_OWNER, b'{"plate":"30A-123.45"}', timeout=0.5)
            await asyncio.sleep(0.2)
            assert ("publish", LOOKUP_OWNER) in client.refused
    finally:
        await client.nc.close()
        await registry.close()


@pytest.mark.parametrize("agency", [a for a in AGENCIES if a != "police"])
async def test_agencies_cannot_publish_events(server: int, agency: str) -> None:
    client = await Agency().connect(server, agency)
    services = await nats.connect(url(server, "portal"))
    seen: list[bytes] = []
    try:
        subject = subjects.case_reviewed("cam-07", "confirmed")
        async def record(msg) -> None:
            seen.append(msg.data)

        await services.subscribe(subject, cb=record)
        await services.flush()
        await client.nc.publish(subject, b"forged decision")
        await client.nc.flush()
        await asyncio.sleep(0.3)
        assert ("publish", subject) in client.refused
        assert seen == []
    finally:
        await client.nc.close()
        await services.close()


async def test_no_credentials_no_bus(server: int) -> None:
    """Citizens have no account: an anonymous or wrong-password connection is refused."""
    for address in (f"nats://127.0.0.1:{server}", f"nats://police:wrong@127.0.0.1:{server}"):
        with pytest.raises(Exception) as refused:
            await nats.connect(address, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2)
        assert "authorization" in str(refused.value).lower()


@pytest.mark.parametrize("agency", AGENCIES)
async def test_an_agency_stream_keeps_exactly_what_the_agency_may_see(server: int, agency: str, unique: str) -> None:
    """An agency keeps a durable copy in its own account's JetStream: a stream on all of traffic.>
    there captures only the imported subjects, so it cannot widen what the agency sees."""
    client = await Agency().connect(server, agency)
    services = await nats.connect(url(server, "notify"))
    js = client.nc.jetstream()
    name = f"COPY_{unique}"
    try:
        await js.add_stream(name=name, subjects=["traffic.>"])
        # The new stream's interest in the imported subjects is set up asynchronously: wait until
        # one subject the agency may see is kept, then start from an empty stream.
        probe = SAMPLES[sorted(EXPECTED[agency])[0]]
        for _ in range(50):
            await services.publish(probe, b"probe")
            await services.flush()
            await asyncio.sleep(0.05)
            if (await js.stream_info(name)).state.messages:
                break
        await js.purge_stream(name)
        for sample, subject in SAMPLES.items():
            await services.publish(subject, sample.encode())
        await services.flush()
        reader = await js.pull_subscribe("traffic.>", durable=f"reader-{unique}", stream=name)
        kept: set[str] = set()
        for _ in range(10):
            try:
                batch = await reader.fetch(len(SAMPLES), timeout=0.5)
            except nats.errors.TimeoutError:
                break
            for msg in batch:
                kept.add(msg.data.decode())
                await msg.ack()
        assert kept == EXPECTED[agency]
        assert (await js.stream_info(name)).state.messages == len(EXPECTED[agency])
        assert not client.refused
    finally:
        await js.delete_stream(name)
        await client.nc.close()
        await services.close()


async def test_services_have_jetstream(server: int) -> None:
    nc = await nats.connect(url(server, "detect"))
    try:
        info = await nc.jetstream().account_info()
        assert info.limits is not None
    finally:
        await nc.close()


@pytest.mark.parametrize("agency", ["COMMUNE_POLICE", "TRANSPORT", "OPERATIONS_CENTRE"])
@pytest.mark.parametrize("owner_data", [
    '{stream: {account: ROADWATCH, subject: "traffic.violation.identified.v1.>"}}',
    '{service: {account: ROADWATCH, subject: "traffic.registry.v1.lookup-owner"}}',
])
def test_an_owner_data_import_outside_the_police_is_refused(tmp_path: Path, agency: str, owner_data: str) -> None:
    """Defence in depth: the exports name POLICE, so an import added by mistake stops the server."""
    text = ACCOUNTS.read_text()
    block = re.compile(rf"(\n  {agency} \{{.*?\n    imports: \[\n)", re.DOTALL)
    assert block.search(text), f"no imports block for {agency}"
    loosened = block.sub(lambda m: m.group(1) + "      " + owner_data + "\n", text, count=1)
    checked = check_config(tmp_path, loosened)
    assert checked.returncode != 0
    assert "import not authorized" in checked.stdout + checked.stderr


def test_server_config_checks_and_the_helm_values_carry_the_same_accounts(tmp_path: Path) -> None:
    """`nats-server -t` accepts the file, and values.yaml embeds it byte for byte."""
    checked = check_config(tmp_path, ACCOUNTS.read_text())
    assert checked.returncode == 0, checked.stdout + checked.stderr
    values = yaml.safe_load(HELM_VALUES.read_text())
    assert values["configMap"]["merge"]["data"]["accounts.conf"] == ACCOUNTS.read_text(), (
        "deploy/nats/values.yaml must embed deploy/nats/accounts.conf unchanged (run deploy/nats/sync-values)")
    assert values["config"]["merge"]["00$include"] == "accounts.conf"
    assert values["config"]["cluster"]["enabled"] is True and values["config"]["cluster"]["replicas"] == 3
    assert values["config"]["jetstream"]["enabled"] is True
    pod = values["podTemplate"]["merge"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["seccompProfile"] == {"type": "RuntimeDefault"}, "restricted namespace"
    for container in (values["container"], values["reloader"], values["promExporter"]):
        security = container["merge"]["securityContext"]
        assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
    env = values["container"]["env"]
    assert set(env) == set(passwords()), "every password variable the accounts use comes from the Secret"
