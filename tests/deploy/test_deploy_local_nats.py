"""make run's nats-server is the production accounts file with local passwords, nothing else."""

from __future__ import annotations

import os
import subprocess

from services import localstack


def test_the_local_config_includes_the_production_accounts_unchanged() -> None:
    text = "\n".join(line for line in localstack.LOCAL_NATS_CONFIG.read_text().splitlines()
                     if not line.lstrip().startswith("#"))
    include = [line.split(None, 1)[1] for line in text.splitlines() if line.startswith("include ")]
    assert include == ["../nats/accounts.conf"]
    assert (localstack.LOCAL_NATS_CONFIG.parent / include[0]).resolve() == localstack.ACCOUNTS_FILE
    assert "accounts" not in text.replace("accounts.conf", ""), "no second set of accounts in the local file"
    assert "no_auth_user" not in text and "authorization" not in text, "no anonymous way in"


def test_every_user_of_the_accounts_file_gets_a_local_password(tmp_path) -> None:
    users = localstack.nats_users()
    assert {"ingest", "detect", "track", "registry", "portal", "notify", "police", "transport"} <= set(users)
    passwords = localstack.nats_passwords(tmp_path / "nats-users")
    assert set(passwords) == set(users)
    assert len(set(passwords.values())) == len(passwords), "one password per user"
    assert localstack.nats_passwords(tmp_path / "nats-users") == passwords, "kept across starts"
    checked = subprocess.run([localstack.nats_server_binary(), "-t", "-c", str(localstack.LOCAL_NATS_CONFIG)],
                             env={**os.environ, **localstack.nats_password_env(passwords)}, capture_output=True,
                             text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_cluster_node_config_is_the_local_one_plus_routes(tmp_path) -> None:
    path = localstack.nats_cluster_config(tmp_path, "n2", 6223, [6222, 6224])
    text = path.read_text()
    assert "server_name: n2" in text and 'listen: "127.0.0.1:6223"' in text
    assert "nats-route://127.0.0.1:6222, nats-route://127.0.0.1:6224" in text
    assert (tmp_path / "accounts.conf").read_text() == localstack.ACCOUNTS_FILE.read_text()
    checked = subprocess.run([localstack.nats_server_binary(), "-t", "-c", str(path)],
                             env={**os.environ, **localstack.nats_password_env(localstack.nats_passwords())},
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
