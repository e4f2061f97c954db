"""Anchored audit on a real nats-server and PostgreSQL: the chain's signed head in AUDIT_ANCHORS
(no delete, no purge); `roadwatch audit verify` passes a clean chain and names a cut tail, a
rewritten chain and a forged anchor."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import msgspec
import nats.js.errors
import pytest

from proto import codec, streams, subjects
from services.portal import anchors, audit
from services.runtime import bus
from test_portal_audit import append_many


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "anchor.key"
    path.write_text(secrets.token_hex(32) + "\n")
    return path


@pytest.fixture
async def anchored(js, portal_url, unique, key_file):
    """15 rows, anchored after rows 5, 10 and 15 (as the interval loop would)."""
    await bus.ensure_streams(js, [streams.AUDIT_ANCHORS])
    chain = f"portal-{unique}"
    key = anchors.load_key(str(key_file))
    conn = await asyncpg.connect(portal_url)
    for _ in range(3):
        await append_many(portal_url, "ca-ngo-quyen-an", 5)
        await anchors.publish(js, conn, key, "interval", chain=chain)
    yield conn, chain, key
    await conn.close()


def verify_cli(repo_dir, database_url: str, nats_url: str, chain: str, key_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "audit", "verify", "--database-url", database_url, "--nats-url", nats_url,
         "--chain", chain, "--key-file", str(key_file)],
        cwd=repo_dir, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(repo_dir)})


async def tamper(conn: asyncpg.Connection, *statements: tuple) -> None:
    """As a superuser who switches the append-only trigger off."""
    await conn.execute("ALTER TABLE portal.audit DISABLE TRIGGER audit_append_only")
    for sql, *args in statements:
        await conn.execute(sql, *args)
    await conn.execute("ALTER TABLE portal.audit ENABLE TRIGGER audit_append_only")


async def test_clean_chain_passes_and_anchors_cannot_be_removed(anchored, js, repo_dir, portal_url, nats_url, key_file):
    conn, chain, key = anchored
    result = verify_cli(repo_dir, portal_url, nats_url, chain, key_file)
    assert result.returncode == 0, result.stderr
    assert "15 rows verified; 3 anchors match" in result.stdout
    found = await anchors.read_all(js, chain)
    assert [(a.seq, a.rows, a.reason) for _, a, _ in found] == [(5, 5, "interval"), (10, 10, "interval"),
                                                                  (15, 15, "interval")]
    assert all(anchors.signature_ok(key, a) for _, a, _ in found)
    info = await js.stream_info(streams.AUDIT_ANCHORS.name)
    assert info.config.deny_delete and info.config.deny_purge and not info.config.max_age
    with pytest.raises(nats.js.errors.APIError):
        await js.delete_msg(streams.AUDIT_ANCHORS.name, found[-1][0])
    with pytest.raises(nats.js.errors.APIError):
        await js.purge_stream(streams.AUDIT_ANCHORS.name)
    assert len(await anchors.read_all(js, chain)) == 3

    # Without the key the anchors are not checked, and verify says so instead of passing.
    result = subprocess.run([sys.executable, "-m", "services.cli", "audit", "verify", "--database-url", portal_url,
                             "--nats-url", nats_url, "--chain", chain], cwd=repo_dir, capture_output=True, text=True,
                            timeout=60, env={**{k: v for k, v in os.environ.items() if k != "AUDIT_ANCHOR_KEY_FILE"},
                                             "PYTHONPATH": str(repo_dir)})
    assert result.returncode == 2 and "AUDIT_ANCHOR_KEY_FILE" in result.stderr


async def test_cut_tail_is_detected(anchored, repo_dir, portal_url, nats_url, key_file):
    conn, chain, _ = anchored
    await tamper(conn, ("DELETE FROM portal.audit WHERE seq > 12",))
    assert (await audit.verify(conn)).ok  # the hash chain alone: a valid, shorter chain
    result = verify_cli(repo_dir, portal_url, nats_url, chain, key_file)
    assert result.returncode == 1, result.stdout
    assert "first bad row seq=13: tail cut" in result.stderr and "up to seq=15 (15 rows)" in result.stderr
    assert "ends at seq=12 (12 rows)" in result.stderr
    assert result.stderr.count("tail cut") == 1  # one finding, not one per anchor


async def test_rewritten_chain_is_detected(anchored, repo_dir, portal_url, nats_url, key_file):
    conn, chain, _ = anchored
    # A careful tamperer edits row 7 and recomputes every hash from there: the chain is valid again.
    rows = [dict(r) for r in await conn.fetch("SELECT * FROM portal.audit ORDER BY seq")]
    prev = rows[5]["hash"]
    updates = []
    for row in rows[6:]:
        if row["seq"] == 7:
            row["purpose"] = "không có gì"
        digest = audit.row_hash(prev, row)
        updates.append(("UPDATE portal.audit SET purpose = $2, prev_hash = $3, hash = $4 WHERE seq = $1",
                        row["seq"], row["purpose"], prev, digest))
        prev = digest
    await tamper(conn, *updates)
    assert (await audit.verify(conn)).ok
    result = verify_cli(repo_dir, portal_url, nats_url, chain, key_file)
    assert result.returncode == 1
    # The anchor after row 5 still matches, the one after row 10 does not: row 7 is in 6..10.
    assert "first bad row between seq=6 and seq=10: rewritten" in result.stderr, result.stderr

    # A clumsy one (no new hashes) is named exactly by the chain itself.
    await tamper(conn, ("UPDATE portal.audit SET user_id = 'someone' WHERE seq = 3",))
    result = verify_cli(repo_dir, portal_url, nats_url, chain, key_file)
    assert result.returncode == 1 and "audit chain BROKEN at row seq=3" in result.stderr


async def test_forged_anchor_is_reported(anchored, js, repo_dir, portal_url, nats_url, key_file):
    conn, chain, _ = anchored
    other = anchors.parse_key(secrets.token_hex(32))
    # Someone who can publish on the bus anchors a shorter head, to cover a cut: not signed with our key.
    forged = anchors.make(other, anchors.Head(3, (await conn.fetchval("SELECT hash FROM portal.audit WHERE seq = 3")), 3),
                          "interval", datetime.now(timezone.utc), chain)
    await js.publish(subjects.audit_anchored(chain), codec.encode(forged))
    result = verify_cli(repo_dir, portal_url, nats_url, chain, key_file)
    assert result.returncode == 1 and "bad signature or another key" in result.stderr
    # A message that is no anchor at all is a finding too.
    await js.publish(subjects.audit_anchored(chain), msgspec.json.encode({"seq": "x"}))
    result = verify_cli(repo_dir, portal_url, nats_url, chain, key_file)
    assert result.returncode == 1 and "is malformed" in result.stderr


async def test_running_portal_anchors_at_start_interval_and_report(portal_url, start_portal, js, unique, key_file,
                                                                   wait_for):
    chain = f"portal-{unique}"
    running = await start_portal(portal_url, audit_anchor_key_file=str(key_file), audit_anchor_interval_s=1,
                                 audit_chain=chain)

    async def reasons():
        found = await anchors.read_all(js, chain)
        return [(a.reason, a.seq) for _, a, _ in found]

    assert await wait_for(lambda: _when(reasons, lambda r: r == [("start", 0)]))
    await append_many(portal_url, "ca-ngo-quyen-an", 2)  # two reads of personal data
    assert await wait_for(lambda: _when(reasons, lambda r: ("interval", 2) in r))
    async with running.http.get(f"{running.base}/api/reports/summary.pdf", headers=running.headers("police")) as r:
        assert r.status == 200
    assert ("report", 2) in await reasons()


async def _when(get, condition):
    value = await get()
    return value if condition(value) else None


def test_key_from_configuration_is_checked(tmp_path):
    with pytest.raises(anchors.AnchorKeyError, match="at least 32"):
        anchors.parse_key("ab" * 16)
    with pytest.raises(anchors.AnchorKeyError, match="not hexadecimal"):
        anchors.parse_key("not a key")
    with pytest.raises(anchors.AnchorKeyError, match="cannot read"):
        anchors.load_key(str(tmp_path / "missing"))
