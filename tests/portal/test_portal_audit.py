"""The audit chain: appended under concurrency, verified by `roadwatch audit verify`, and a
tampered row is named."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg

from services.portal import audit


def verify_cli(repo_dir, database_url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", "audit", "verify", "--database-url", database_url],
                          cwd=repo_dir, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(repo_dir)})


async def append_many(url: str, who: str, n: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        for i in range(n):
            async with conn.transaction():
                await audit.append(conn, user_id=who, agency="hp-csgt", role="police", action="owner_read",
                                   object=f"CASE-2026-{i:06d}", purpose="xác minh vi phạm", client="10.0.0.7")
    finally:
        await conn.close()


async def test_chain_verifies_and_names_the_tampered_row(portal_url, repo_dir):
    # Four writers at once still form one chain.
    await asyncio.gather(*(append_many(portal_url, f"officer-{k}", 10) for k in range(4)))
    conn = await asyncpg.connect(portal_url)
    try:
        assert (await audit.verify(conn)) == audit.Verdict(rows=40)
        result = verify_cli(repo_dir, portal_url)
        assert result.returncode == 0 and "40 rows verified" in result.stdout, result.stderr

        # The table refuses edits outright...
        seqs = [r["seq"] for r in await conn.fetch("SELECT seq FROM portal.audit ORDER BY seq")]
        target = seqs[17]
        try:
            await conn.execute("UPDATE portal.audit SET user_id = 'someone-else' WHERE seq = $1", target)
            raise AssertionError("UPDATE on the audit table was allowed")
        except asyncpg.PostgresError as exc:
            assert "append-only" in str(exc)
        # ...so a tamperer must be a superuser who disables the trigger: the chain still tells.
        await conn.execute("ALTER TABLE portal.audit DISABLE TRIGGER audit_append_only")
        await conn.execute("UPDATE portal.audit SET purpose = 'không có gì' WHERE seq = $1", target)
        await conn.execute("ALTER TABLE portal.audit ENABLE TRIGGER audit_append_only")
        verdict = await audit.verify(conn)
        assert verdict.broken_seq == target and verdict.rows == 17 and "edited" in verdict.reason
        result = verify_cli(repo_dir, portal_url)
        assert result.returncode == 1
        assert f"seq={target}" in result.stderr and "edited" in result.stderr

        # Rewriting the row's own hash to match moves the break to the next row's link.
        prev = await conn.fetchval("SELECT prev_hash FROM portal.audit WHERE seq = $1", target)
        row = dict(await conn.fetchrow("SELECT * FROM portal.audit WHERE seq = $1", target))
        await conn.execute("ALTER TABLE portal.audit DISABLE TRIGGER audit_append_only")
        await conn.execute("UPDATE portal.audit SET hash = $2 WHERE seq = $1", target, audit.row_hash(prev, row))
        verdict = await audit.verify(conn)
        assert verdict.broken_seq == seqs[18] and "prev_hash" in verdict.reason

        # Deleting a row breaks the link of the one after it.
        await conn.execute("DELETE FROM portal.audit WHERE seq >= $1", target)  # trigger still disabled
        await conn.execute("ALTER TABLE portal.audit ENABLE TRIGGER audit_append_only")
        assert (await audit.verify(conn)).ok  # a clean cut at the end is a shorter chain...
        await append_many(portal_url, "after", 2)
        await conn.execute("ALTER TABLE portal.audit DISABLE TRIGGER audit_append_only")
        middle = await conn.fetchval("SELECT seq FROM portal.audit ORDER BY seq DESC OFFSET 1 LIMIT 1")
        await conn.execute("DELETE FROM portal.audit WHERE seq = $1", middle)
        await conn.execute("ALTER TABLE portal.audit ENABLE TRIGGER audit_append_only")
        last = await conn.fetchval("SELECT max(seq) FROM portal.audit")
        verdict = await audit.verify(conn)
        assert verdict.broken_seq == last and "removed" in verdict.reason
    finally:
        await conn.close()


async def test_append_outside_a_transaction_is_refused(portal_url):
    conn = await asyncpg.connect(portal_url)
    try:
        try:
            await audit.append(conn, user_id="u", agency="a", role="police", action="owner_read", object="x",
                               purpose="p")
            raise AssertionError("append outside a transaction was accepted")
        except RuntimeError as exc:
            assert "inside the transaction" in str(exc)
        assert await conn.fetchval("SELECT count(*) FROM portal.audit") == 0
    finally:
        await conn.close()
