"""Anchors of the audit chain: its head (seq and hash of the last row), signed and published to
the AUDIT_ANCHORS stream, which refuses deletes and purges.

The hash chain alone shows an edited or removed row *inside* the table, but not rows cut off its
end, nor a chain rewritten from some row on with fresh hashes: both leave a valid, shorter or
different chain. An anchor fixes the head at a moment outside the database; `roadwatch audit
verify` then finds every anchored row still there with the anchored hash, or names what is not.

The signature is HMAC-SHA256 with a key from configuration (AUDIT_ANCHOR_KEY, at least 32 bytes
as hex; never in the repository), so that whoever can publish on the bus cannot add an anchor of
their own that `verify` would trust.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from datetime import datetime, timezone
from typing import NamedTuple

import asyncpg
import nats.js.errors
from nats.js import JetStreamContext

from proto import codec, streams, subjects
from proto.v1 import AuditAnchored
from services.portal import audit, metrics
from services.runtime.bus import MSG_ID

log = logging.getLogger("portal")

CHAIN = "portal"
MIN_KEY_BYTES = 32


class AnchorKeyError(ValueError):
    """The anchoring key is not usable (named variable and why)."""


class Key(NamedTuple):
    secret: bytes

    @property
    def key_id(self) -> str:
        """Names the key (not secret: a digest of it), so that a verifier knows which key to use."""
        return "k-" + hashlib.sha256(b"roadwatch audit anchor key id\x00" + self.secret).hexdigest()[:12]


def parse_key(text: str, variable: str = "AUDIT_ANCHOR_KEY") -> Key:
    text = text.strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise AnchorKeyError(f"{variable}: not hexadecimal (make one: python -c 'import secrets; "
                        "print(secrets.token_hex(32))')") from None
    if len(secret) < MIN_KEY_BYTES:
        raise AnchorKeyError(f"{variable}: {len(secret)} bytes; at least {MIN_KEY_BYTES} (64 hex digits)")
    return Key(secret)


def signed_text(chain: str, seq: int, hash_: str, at: datetime) -> bytes:
    return f"{chain}|{seq}|{hash_}|{at.astimezone(timezone.utc).isoformat(timespec='microseconds')}".encode()


def sign(key: Key, chain: str, seq: int, hash_: str, at: datetime) -> str:
    return hmac.new(key.secret, signed_text(chain, seq, hash_, at), hashlib.sha256).hexdigest()


def signature_ok(key: Key, anchor: AuditAnchored) -> bool:
    if anchor.key_id != key.key_id:
        return False
    expected = sign(key, anchor.chain, anchor.seq, anchor.hash, anchor.occurred_at)
    return hmac.compare_digest(expected, anchor.signature)


class Head(NamedTuple):
    seq: int
    hash: str
    rows: int


async def head(conn: asyncpg.Connection) -> Head:
    """The last committed row. Appends hold one advisory lock until they commit, so rows commit
    in seq order and the head read here always closes a complete prefix."""
    row = await conn.fetchrow("SELECT seq, hash, (SELECT count(*) FROM portal.audit) AS rows "
                              "FROM portal.audit ORDER BY seq DESC LIMIT 1")
    return Head(row["seq"], row["hash"], row["rows"]) if row else Head(0, audit.GENESIS, 0)


def make(key: Key, at_head: Head, reason: str, now: datetime, chain: str = CHAIN) -> AuditAnchored:
    return AuditAnchored(
        id=f"anchor-{chain}-{at_head.seq}-{at_head.hash[:16]}-{reason}", occurred_at=now, chain=chain,
        seq=at_head.seq, hash=at_head.hash, rows=at_head.rows, reason=reason, key_id=key.key_id,
        signature=sign(key, chain, at_head.seq, at_head.hash, now))


async def publish(js: JetStreamContext, conn: asyncpg.Connection, key: Key, reason: str,
                  now: datetime | None = None, chain: str = CHAIN) -> AuditAnchored:
    at_head = await head(conn)
    anchor = make(key, at_head, reason, now or datetime.now(timezone.utc), chain)
    await js.publish(subjects.audit_anchored(chain), codec.encode(anchor), headers={MSG_ID: anchor.id}, timeout=5)
    metrics.AUDIT_ANCHORS.labels(reason).inc()
    log.info("audit head anchored", extra={"fields": {"seq": anchor.seq, "rows": anchor.rows, "reason": reason}})
    return anchor


async def anchor_loop(js: JetStreamContext, pool: asyncpg.Pool, key: Key, interval_s: float,
                      stop: asyncio.Event, chain: str = CHAIN) -> None:
    """Anchor at start, then every `interval_s` when the head has moved; a failed publish is
    retried at the next tick (the rows stay in the table meanwhile)."""
    last: tuple[int, str] | None = None
    reason = "start"
    while not stop.is_set():
        try:
            async with pool.acquire() as conn:
                now_head = await head(conn)
                if (now_head.seq, now_head.hash) != last:
                    anchor = await publish(js, conn, key, reason, chain=chain)
                    last, reason = (anchor.seq, anchor.hash), "interval"
        except Exception as exc:  # NATS or PostgreSQL away: try again next tick
            metrics.AUDIT_ANCHOR_FAILURES.inc()
            log.warning("audit anchor not published", extra={"fields": {"error": repr(exc)}})
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        except asyncio.TimeoutError:
            pass


async def read_all(js: JetStreamContext, chain: str = CHAIN) -> list[tuple[int, AuditAnchored | None, str]]:
    """Every anchor of the chain in the stream, in order: (stream seq, anchor or None, error)."""
    found: list[tuple[int, AuditAnchored | None, str]] = []
    subject = subjects.audit_anchored(chain)
    try:
        info = await js.stream_info(streams.AUDIT_ANCHORS.name, subjects_filter=subject)
    except nats.js.errors.NotFoundError:  # no stream: nothing was ever anchored
        return found
    expected = (info.state.subjects or {}).get(subject, 0)
    if expected == 0:
        return found
    sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy="all")
    try:
        while len(found) < expected:
            msg = await sub.next_msg(timeout=5)
            meta = msg.metadata
            try:
                found.append((meta.sequence.stream, codec.decode(msg.data, AuditAnchored), ""))
            except Exception as exc:  # noqa: BLE001 (a malformed message in the stream is itself a finding)
                found.append((meta.sequence.stream, None, str(exc)))
    finally:
        await sub.unsubscribe()
    return found


def load_key(path: str, variable: str = "AUDIT_ANCHOR_KEY_FILE") -> Key:
    try:
        text = open(path, encoding="ascii").read()  # noqa: SIM115, PTH123
    except (OSError, UnicodeDecodeError) as exc:
        raise AnchorKeyError(f"{variable}: cannot read {path}: {exc}") from None
    return parse_key(text, f"{variable} ({path})")


class Finding(NamedTuple):
    seq: int | None  # the first bad row of the table (or the first it may be, see `last`)
    message: str
    last: int | None = None  # a rewrite: the first bad row is between `seq` and `last`


async def check(conn: asyncpg.Connection, found: list[tuple[int, AuditAnchored | None, str]], key: Key,
                chain: str = CHAIN) -> list[Finding]:
    """Each signed anchor against the table: its row must still be there with its hash.

    A row missing beyond the table's last row is a cut tail (the first row after the last one
    left is the first bad row); a row with another hash than anchored means the chain was
    rewritten after the last anchor that still matches (the first bad row is at most the
    anchored one, and after that anchor's row)."""
    findings: list[Finding] = []
    last = await head(conn)
    matched = 0  # the highest anchored seq that still matches
    for stream_seq, anchor, error in found:
        if anchor is None:
            findings.append(Finding(None, f"anchor #{stream_seq} in {streams.AUDIT_ANCHORS.name} is malformed: {error}"))
            continue
        if anchor.chain != chain:
            continue
        if not signature_ok(key, anchor):
            findings.append(Finding(None, f"anchor #{stream_seq} ({anchor.occurred_at.isoformat()}) has a bad signature "
                                          f"or another key ({anchor.key_id}): forged, ignored"))
            continue
        if anchor.seq == 0:
            continue
        stored = await conn.fetchval("SELECT hash FROM portal.audit WHERE seq = $1", anchor.seq)
        if stored == anchor.hash:
            matched = max(matched, anchor.seq)
            continue
        if stored is None and anchor.seq > last.seq:
            first_missing = await conn.fetchval("SELECT coalesce(max(seq), 0) + 1 FROM portal.audit") or 1
            findings.append(Finding(first_missing, f"tail cut: rows from seq={first_missing} on were removed; anchor "
                                                   f"#{stream_seq} of {anchor.occurred_at.isoformat()} saw the chain "
                                                   f"up to seq={anchor.seq} ({anchor.rows} rows), the table now ends "
                                                   f"at seq={last.seq} ({last.rows} rows)"))
        elif stored is None:
            findings.append(Finding(anchor.seq, f"row seq={anchor.seq}, anchored by #{stream_seq} of "
                                                f"{anchor.occurred_at.isoformat()}, is missing"))
        else:
            first = await conn.fetchval("SELECT min(seq) FROM portal.audit WHERE seq > $1", matched)
            findings.append(Finding(first, last=anchor.seq, message=f"rewritten: row seq={anchor.seq} has hash {stored[:16]}…, anchor "
                                           f"#{stream_seq} of {anchor.occurred_at.isoformat()} recorded "
                                           f"{anchor.hash[:16]}…; the chain was rewritten from a row between "
                                           f"seq={first} (the first after the last matching anchor) and "
                                           f"seq={anchor.seq}"))
    # Every later anchor repeats a cut or a rewrite: one finding per first bad row, earliest first.
    unique: dict[object, Finding] = {}
    for finding in findings:
        unique.setdefault(finding.seq if finding.seq is not None else finding.message, finding)
    return sorted(unique.values(), key=lambda f: (f.seq is None, f.seq or 0))
