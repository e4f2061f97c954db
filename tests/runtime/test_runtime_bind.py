"""Private by default: every service's HTTP port binds loopback unless HTTP_HOST says otherwise."""

from __future__ import annotations

import importlib
import socket

import aiohttp
import msgspec
import pytest

from services.runtime import http
from services.runtime.settings import SettingError, parse

SERVICES = ("ingest", "detect", "track", "registry", "portal", "notify")
REQUIRED = {"CAMERAS_FILE": "cameras.yaml", "DATABASE_URL": "postgresql://u@127.0.0.1:5432/db"}


def settings_class(service: str) -> type[msgspec.Struct]:
    return importlib.import_module(f"services.{service}.settings").Settings


def own_address() -> str | None:
    """This machine's address on its network (not loopback), when it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent by a UDP connect
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_binds_loopback_unless_told(service: str) -> None:
    cls = settings_class(service)
    fields = {f.name for f in msgspec.structs.fields(cls)}
    environ = {k: v for k, v in REQUIRED.items() if k.lower() in fields}
    assert parse(cls, environ).http_host == "127.0.0.1"
    assert parse(cls, {**environ, "HTTP_HOST": "0.0.0.0"}).http_host == "0.0.0.0"
    with pytest.raises(SettingError) as bad:
        parse(cls, {**environ, "HTTP_HOST": "http://0.0.0.0:80"})
    assert bad.value.variable == "HTTP_HOST"


async def test_the_default_bind_is_not_reachable_from_the_network() -> None:
    runner, port = await http.serve(0, {})
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
        address = own_address()
        if address is None:
            pytest.skip("this machine has no network address besides loopback")
        with pytest.raises(OSError):
            socket.create_connection((address, port), timeout=2).close()
    finally:
        await runner.cleanup()


async def test_http_host_opens_it() -> None:
    address = own_address()
    if address is None:
        pytest.skip("this machine has no network address besides loopback")
    runner, port = await http.serve(0, {}, host="0.0.0.0")
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{address}:{port}/healthz") as response:
                assert response.status == 200
    finally:
        await runner.cleanup()


def test_nats_passwords_never_reach_the_logs() -> None:
    from services.runtime.bus import redact_url

    assert redact_url("nats://detect:s3cr%2Ft@127.0.0.1:4222") == "nats://detect:***@127.0.0.1:4222"
    assert redact_url("nats://a:x@h1:4222,nats://b:y@h2:4222") == "nats://a:***@h1:4222,nats://b:***@h2:4222"
    assert redact_url("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"
