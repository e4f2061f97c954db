"""Helpers shared by tests/deploy: the overlays rendered once, and a nats-server on the accounts file."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from services import localstack

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
ACCOUNTS = DEPLOY / "nats" / "accounts.conf"
NATS_USERS = ("sys", "ingest", "detect", "track", "registry", "portal", "notify",
              "police", "commune_police", "transport", "operations_centre")

_rendered: dict[str, str] = {}
_parsed: dict[str, list[dict]] = {}


def kubectl() -> str:
    found = shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl is needed to render the overlays (any kubectl >= 1.27, with its built-in kustomize)")
    return found


def render(overlay: str) -> str:
    """`kubectl kustomize deploy/overlays/<overlay>`, once per test session."""
    if overlay not in _rendered:
        done = subprocess.run([kubectl(), "kustomize", str(DEPLOY / "overlays" / overlay)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        _rendered[overlay] = done.stdout
    return _rendered[overlay]


def resources(overlay: str) -> list[dict]:
    """The rendered resources (parsed once per overlay; tests only read them)."""
    if overlay not in _parsed:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        _parsed[overlay] = [doc for doc in yaml.load_all(render(overlay), Loader=loader) if doc]
    return _parsed[overlay]


def password(user: str) -> str:
    return f"pw-{user}-test"


def passwords() -> dict[str, str]:
    """The environment the accounts file reads its passwords from."""
    return {f"NATS_{user.upper()}_PASSWORD": password(user) for user in NATS_USERS}


def url(port: int, user: str) -> str:
    return f"nats://{user}:{password(user)}@127.0.0.1:{port}"


def start_server(directory: Path, accounts_text: str) -> tuple[subprocess.Popen, int]:
    """nats-server with the accounts file included by a minimal main config (as the chart does)."""
    port = localstack.free_port()
    (directory / "accounts.conf").write_text(accounts_text)
    (directory / "server.conf").write_text(
        f'listen: "127.0.0.1:{port}"\nmax_payload: 8MB\n'
        f'jetstream {{ store_dir: "{directory / "js"}" }}\ninclude ./accounts.conf\n'
    )
    log = open(directory / "nats.log", "ab")
    process = subprocess.Popen([localstack.nats_server_binary(), "-c", str(directory / "server.conf")],
                               stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **passwords()})
    localstack.wait_port("127.0.0.1", port, 15, process)
    return process, port


def check_config(directory: Path, accounts_text: str) -> subprocess.CompletedProcess:
    """`nats-server -t` on the accounts file."""
    (directory / "accounts.conf").write_text(accounts_text)
    (directory / "server.conf").write_text("include ./accounts.conf\n")
    return subprocess.run([localstack.nats_server_binary(), "-t", "-c", str(directory / "server.conf")],
                          env={**os.environ, **passwords()}, capture_output=True, text=True, timeout=30)
