"""The registry's SQL: registrations by plate, recorded lookup outcomes, the hotlist."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from proto.v1 import Owner, Vehicle
from services.registry.hotlist import Entry
from services.registry.lookup import Registration

FIND = """
SELECT v.plate, v.plate_display, v.plate_colour, v.vehicle_type, v.brand, v.colour, v.registration_date,
       v.inspection_status, o.kind, o.name, o.national_id, o.address, o.commune_code, o.province, o.phone, o.email
FROM registry.vehicles v JOIN registry.owners o ON o.id = v.owner_id
WHERE v.plate = ANY($1::text[])
"""
RECORDED = "SELECT subject, event_id, payload FROM registry.lookups WHERE violation_id = $1"
# The first outcome recorded for a violation is the one every delivery publishes; a concurrent
# replica that decided the same violation gets the first one back.
RECORD = """
WITH inserted AS (
    INSERT INTO registry.lookups (violation_id, outcome, subject, event_id, payload)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (violation_id) DO NOTHING
    RETURNING subject, event_id, payload
)
SELECT subject, event_id, payload FROM inserted
UNION ALL
SELECT subject, event_id, payload FROM registry.lookups WHERE violation_id = $1
LIMIT 1
"""
HOTLIST = """
SELECT id, plate, plate_display, reason, agency, valid_from, valid_to FROM registry.hotlist
WHERE valid_to IS NULL OR valid_to > now()
"""


def registration(row: asyncpg.Record) -> Registration:
    vehicle = Vehicle(
        plate=row["plate"], plate_printed=row["plate_display"], plate_colour=row["plate_colour"],
        vehicle_type=row["vehicle_type"], brand=row["brand"], colour=row["colour"],
        registration_date=row["registration_date"], inspection_status=row["inspection_status"])
    owner = Owner(
        kind=row["kind"], name=row["name"], national_id=row["national_id"], address=row["address"],
        commune_code=row["commune_code"], province=row["province"], phone=row["phone"] or "",
        email=row["email"] or "")
    return vehicle, owner


async def find(pool: asyncpg.Pool, plates: Sequence[str]) -> dict[str, list[Registration]]:
    """Registrations by bare plate; a bare plate may have several (see migration 003)."""
    if not plates:
        return {}
    found: dict[str, list[Registration]] = {}
    for row in await pool.fetch(FIND, list(plates)):
        found.setdefault(row["plate"], []).append(registration(row))
    return found


async def recorded(pool: asyncpg.Pool, violation_id: str) -> tuple[str, str, bytes] | None:
    row = await pool.fetchrow(RECORDED, violation_id)
    return (row["subject"], row["event_id"], row["payload"]) if row else None


async def record(pool: asyncpg.Pool, violation_id: str, outcome: str, subject: str, event_id: str,
                 payload: bytes) -> tuple[str, str, bytes]:
    row = await pool.fetchrow(RECORD, violation_id, outcome, subject, event_id, payload)
    return row["subject"], row["event_id"], row["payload"]


async def hotlist(pool: asyncpg.Pool) -> list[Entry]:
    rows = await pool.fetch(HOTLIST)
    return [Entry(id=r["id"], plate=r["plate"], plate_display=r["plate_display"], reason=r["reason"],
                  agency=r["agency"], valid_from=r["valid_from"], valid_to=r["valid_to"]) for r in rows]


async def prune_lookups(pool: asyncpg.Pool, older_than_days: int) -> int:
    """Forget recorded outcomes older than the retention; returns how many were deleted."""
    status = await pool.execute(
        "DELETE FROM registry.lookups WHERE decided_at < now() - make_interval(days => $1)", older_than_days)
    return int(status.rsplit(" ", 1)[1])


AUDIT = """
INSERT INTO registry.owner_lookup_audit
    (caller_account, caller_user, caller_name, requested_by, case_id, purpose, plate, plate_normalised, outcome)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::text[], $9::text[])
"""


async def audit_owner_lookups(pool: asyncpg.Pool, lines) -> None:
    """One row per lookup-owner request (services.registry.owners.AuditLine), in one statement."""
    columns = list(zip(*[(line.caller.account, line.caller.user, line.caller.name, line.request.requested_by,
                          line.request.case_id, line.request.purpose, line.request.plate, line.plate, line.outcome)
                         for line in lines]))
    if columns:
        await pool.execute(AUDIT, *[list(column) for column in columns])
