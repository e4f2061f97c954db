"""The audit log of every read of evidence or owner data, hash-chained; `roadwatch audit verify`.

Each row's hash covers its own content and the previous row's hash. Rows are appended under a
transaction-scoped advisory lock, so that replicas writing at once still form one chain. An
edited row no longer matches its hash; a deleted one breaks the link of the row after it; the
table also refuses UPDATE and DELETE, so tampering needs a superuser who disables the trigger,
and even then `verify` names the first row that no longer fits.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone

import asyncpg

GENESIS = "0" * 64
LOCK_KEY = 0x72776175  # "rwau": one chain, one writer at a time
FIELDS = ("at", "user_id", "agency", "role", "action", "object", "purpose", "client")


def row_hash(prev_hash: str, row: dict) -> str:
    content = {name: row[name] for name in FIELDS}
    content["at"] = row["at"].astimezone(timezone.utc).isoformat(timespec="microseconds")
    canonical = json.dumps([prev_hash, content], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


async def append(conn: asyncpg.Connection, *, user_id: str, agency: str, role: str, action: str, object: str,
                 purpose: str, client: str = "") -> str:
    """Append one row; call inside the transaction that reads the data, so no read goes unrecorded."""
    if not conn.is_in_transaction():
        raise RuntimeError("audit.append must run inside the transaction of the read it records")
    await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
    prev = await conn.fetchval("SELECT hash FROM portal.audit ORDER BY seq DESC LIMIT 1") or GENESIS
    # PostgreSQL keeps microseconds: round here so that the stored time hashes the same.
    row = {"at": datetime.now(timezone.utc), "user_id": user_id, "agency": agency, "role": role, "action": action,
           "object": object, "purpose": purpose[:500], "client": client[:200]}
    digest = row_hash(prev, row)
    await conn.execute(
        "INSERT INTO portal.audit (at, user_id, agency, role, action, object, purpose, client, prev_hash, hash) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        row["at"], user_id, agency, role, action, object, row["purpose"], row["client"], prev, digest)
    return digest


@dataclass(frozen=True)
class Verdict:
    rows: int
    broken_seq: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


async def verify(conn: asyncpg.Connection, batch: int = 5000) -> Verdict:
    """Walk the chain in order; the first row whose link or hash does not hold is named."""
    prev, last_seq, count = GENESIS, 0, 0
    while True:
        rows = await conn.fetch(
            f"SELECT seq, prev_hash, hash, {', '.join(FIELDS)} FROM portal.audit WHERE seq > $1 ORDER BY seq LIMIT $2",
            last_seq, batch)
        if not rows:
            return Verdict(rows=count)
        for row in rows:
            if row["prev_hash"] != prev:
                return Verdict(count, row["seq"], "its prev_hash does not match the hash of the row before it "
                                                  "(a row was removed, inserted or its hash rewritten)")
            if row_hash(prev, dict(row)) != row["hash"]:
                return Verdict(count, row["seq"], "its content does not match its hash (the row was edited)")
            prev, last_seq, count = row["hash"], row["seq"], count + 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="roadwatch audit", description="Check the portal's hash-chained audit log.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("verify", help="verify the whole chain and its anchors; exit 1 naming the first bad row")
    check.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), help="default: $DATABASE_URL")
    check.add_argument("--nats-url", default=os.environ.get("NATS_URL"),
                       help="where the AUDIT_ANCHORS stream is (default: $NATS_URL); unset: anchors not checked")
    check.add_argument("--chain", default=os.environ.get("AUDIT_CHAIN", "portal"),
                       help="the chain's name in the anchors (default: $AUDIT_CHAIN or portal)")
    check.add_argument("--key-file", default=os.environ.get("AUDIT_ANCHOR_KEY_FILE"),
                       help="the anchoring key, hex (default: $AUDIT_ANCHOR_KEY_FILE)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not args.database_url:
        print("roadwatch audit: DATABASE_URL is not set (or pass --database-url)", file=sys.stderr)
        return 2
    from services.portal import anchors  # noqa: PLC0415 (NATS only for the anchors)

    key = None
    if args.nats_url:
        if not args.key_file:
            print("roadwatch audit: AUDIT_ANCHOR_KEY_FILE is not set (or pass --key-file): the anchors cannot be "
                  "checked without the key", file=sys.stderr)
            return 2
        try:
            key = anchors.load_key(args.key_file, "--key-file")
        except anchors.AnchorKeyError as exc:
            print(f"roadwatch audit: {exc}", file=sys.stderr)
            return 2

    async def run() -> tuple[Verdict, int | None, list]:
        conn = await asyncpg.connect(args.database_url)
        try:
            verdict = await verify(conn)
            if key is None:
                return verdict, None, []
            import nats  # noqa: PLC0415

            nc = await nats.connect(args.nats_url, name="roadwatch-audit", connect_timeout=10, max_reconnect_attempts=1)
            try:
                found = await anchors.read_all(nc.jetstream(), args.chain)
            finally:
                await nc.close()
            return verdict, len(found), await anchors.check(conn, found, key, args.chain)
        finally:
            await conn.close()

    try:
        verdict, anchored, findings = asyncio.run(run())
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"roadwatch audit: cannot read portal.audit: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 (NATS: no server, no permission)
        print(f"roadwatch audit: cannot read the anchors at {args.nats_url}: {exc!r}", file=sys.stderr)
        return 2
    bad = False
    if not verdict.ok:
        bad = True
        print(f"audit chain BROKEN at row seq={verdict.broken_seq}: {verdict.reason} "
              f"({verdict.rows} rows before it verified)", file=sys.stderr)
    for finding in findings:
        bad = True
        where = "" if finding.seq is None else f"first bad row seq={finding.seq}: " if finding.last is None \
            else f"first bad row between seq={finding.seq} and seq={finding.last}: "
        print(f"audit anchors: {where}{finding.message}", file=sys.stderr)
    if anchored is None:
        print("audit anchors NOT checked (no NATS_URL / --nats-url): a cut tail would not show", file=sys.stderr)
    if bad:
        return 1
    print(f"audit chain intact: {verdict.rows} rows verified"
          + (f"; {anchored} anchors match" if anchored is not None else ""))
    return 0
