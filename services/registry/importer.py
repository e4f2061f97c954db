"""`roadwatch registry import FILE.csv`: load a registration extract or a hotlist, all or nothing.

Rows are validated in Python while they stream into a temporary table through COPY (the fast
path: a million rows take seconds, not the minutes row-by-row INSERTs would), then merged into
the real tables with two set-based statements, all in one transaction. If any row is bad the
transaction is rolled back before the merge, so a file is either imported whole or not at all,
and every bad row is reported with its line number in the same run.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import asyncpg

from services.registry import rows

STAGING_COLUMNS = (
    "plate", "plate_display", "plate_colour", "vehicle_type", "brand", "colour", "registration_date",
    "inspection_status", "inspection_expires", "owner_kind", "owner_name", "owner_national_id",
    "owner_address", "owner_commune_code", "owner_province", "owner_phone", "owner_email", "owner_first",
)
STAGING_DDL = """
CREATE TEMP TABLE staging_vehicles (
    plate text, plate_display text, plate_colour text, vehicle_type text, brand text, colour text,
    registration_date date, inspection_status text, inspection_expires date,
    owner_kind text, owner_name text, owner_national_id text, owner_address text,
    owner_commune_code text, owner_province text, owner_phone text, owner_email text,
    owner_first boolean
) ON COMMIT DROP
"""
# Owners first (vehicles point at them). Update the rows that exist and differ, then insert the
# rest with a plain INSERT: on a first load of a million rows that is a third faster than
# INSERT ... ON CONFLICT, and imports are serialised (IMPORT_LOCK) so nobody inserts in between.
# Unchanged rows are left alone, so re-importing the same extract writes nothing.
IMPORT_LOCK = "SELECT pg_advisory_xact_lock(hashtext('registry.import'))"
UPDATE_OWNERS = """
UPDATE registry.owners o SET
    kind = s.owner_kind, name = s.owner_name, address = s.owner_address, commune_code = s.owner_commune_code,
    province = s.owner_province, phone = s.owner_phone, email = s.owner_email, updated_at = now()
FROM staging_vehicles s
WHERE s.owner_first AND o.national_id = s.owner_national_id
  AND (o.kind, o.name, o.address, o.commune_code, o.province, o.phone, o.email)
      IS DISTINCT FROM (s.owner_kind, s.owner_name, s.owner_address, s.owner_commune_code, s.owner_province,
                        s.owner_phone, s.owner_email)
"""
INSERT_OWNERS = """
INSERT INTO registry.owners (kind, name, national_id, address, commune_code, province, phone, email)
SELECT s.owner_kind, s.owner_name, s.owner_national_id, s.owner_address, s.owner_commune_code, s.owner_province,
       s.owner_phone, s.owner_email
FROM staging_vehicles s
WHERE s.owner_first AND NOT EXISTS (SELECT 1 FROM registry.owners o WHERE o.national_id = s.owner_national_id)
"""
UPDATE_VEHICLES = """
UPDATE registry.vehicles v SET
    plate_display = s.plate_display, plate_colour = s.plate_colour, vehicle_type = s.vehicle_type,
    brand = s.brand, colour = s.colour, registration_date = s.registration_date,
    inspection_status = s.inspection_status, inspection_expires = s.inspection_expires, owner_id = o.id,
    updated_at = now()
FROM staging_vehicles s JOIN registry.owners o ON o.national_id = s.owner_national_id
WHERE v.plate_display = s.plate_display
  AND (v.plate_display, v.plate_colour, v.vehicle_type, v.brand, v.colour, v.registration_date,
       v.inspection_status, v.inspection_expires, v.owner_id)
      IS DISTINCT FROM (s.plate_display, s.plate_colour, s.vehicle_type, s.brand, s.colour, s.registration_date,
                        s.inspection_status, s.inspection_expires, o.id)
"""
INSERT_VEHICLES = """
INSERT INTO registry.vehicles (plate, plate_display, plate_colour, vehicle_type, brand, colour,
                               registration_date, inspection_status, inspection_expires, owner_id)
SELECT s.plate, s.plate_display, s.plate_colour, s.vehicle_type, s.brand, s.colour, s.registration_date,
       s.inspection_status, s.inspection_expires, o.id
FROM staging_vehicles s JOIN registry.owners o ON o.national_id = s.owner_national_id
WHERE NOT EXISTS (SELECT 1 FROM registry.vehicles v WHERE v.plate_display = s.plate_display)
"""
HOTLIST_STAGING_DDL = """
CREATE TEMP TABLE staging_hotlist (
    plate text, plate_display text, reason text, agency text, valid_from timestamptz, valid_to timestamptz
) ON COMMIT DROP
"""
MERGE_HOTLIST = """
WITH merged AS (
    INSERT INTO registry.hotlist AS h (plate, plate_display, reason, agency, valid_from, valid_to)
    SELECT plate, plate_display, reason, agency, valid_from, valid_to FROM staging_hotlist
    ON CONFLICT (plate, agency, valid_from) DO UPDATE SET
        reason = EXCLUDED.reason, valid_to = EXCLUDED.valid_to, plate_display = EXCLUDED.plate_display
    WHERE (h.reason, h.valid_to) IS DISTINCT FROM (EXCLUDED.reason, EXCLUDED.valid_to)
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS inserted, count(*) FILTER (WHERE NOT inserted) AS updated FROM merged
"""


@dataclass
class Report:
    path: Path
    kind: str = ""
    rows: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reasons)
    inserted: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step, for benchmarks

    @property
    def ok(self) -> bool:
        return not self.rejected


class _Rejected(Exception):
    """Raised inside the transaction to roll it back when the file has bad rows."""


# A first load of a big extract into empty tables builds the secondary indexes, unique constraints
# and the foreign key once, after the rows are in (a sort each), instead of updating them row by
# row: about twice as fast for a million vehicles. The definitions are read from the catalogue,
# so they stay exactly what the migrations made. The tables are locked for the transaction,
# which on an empty registry keeps nobody from anything.
BULK_MIN_ROWS = 50_000
SECONDARY = """
SELECT 'ALTER TABLE ' || c.conrelid::regclass || ' DROP CONSTRAINT ' || quote_ident(c.conname) AS drop_sql,
       'ALTER TABLE ' || c.conrelid::regclass || ' ADD CONSTRAINT ' || quote_ident(c.conname) || ' '
           || pg_get_constraintdef(c.oid) AS create_sql,
       CASE c.contype WHEN 'f' THEN 2 ELSE 1 END AS rank
FROM pg_constraint c
WHERE c.conrelid = ANY($1::regclass[]) AND c.contype IN ('u', 'f')
UNION ALL
SELECT 'DROP INDEX ' || i.indexrelid::regclass, pg_get_indexdef(i.indexrelid), 1
FROM pg_index i
WHERE i.indrelid = ANY($1::regclass[]) AND NOT i.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
"""


async def _drop_secondary(conn: asyncpg.Connection, tables: tuple[str, ...]) -> list[str]:
    """Drop unique constraints, foreign keys and plain indexes of empty tables; returns the
    statements that recreate them (foreign keys last)."""
    await conn.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
    found = await conn.fetch(SECONDARY, list(tables))
    for row in sorted(found, key=lambda r: -r["rank"]):  # foreign keys go first
        await conn.execute(row["drop_sql"])
    return [row["create_sql"] for row in sorted(found, key=lambda r: r["rank"])]


def _data_lines(reader: csv.reader, report: Report) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each row that is not blank, counted in the report. A file that
    cannot be read on (broken CSV quoting, not UTF-8) ends there, rejected on the next line."""
    line = reader.line_num
    try:
        for fields in reader:
            line = reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            report.rows += 1
            yield line, fields
    except (csv.Error, UnicodeDecodeError) as exc:
        report.rejected.append((line + 1, f"unreadable: {exc}"))


def _vehicle_records(reader: csv.reader, index: dict[str, int], report: Report) -> Iterator[tuple]:
    """Validated staging tuples; bad rows are recorded in the report and skipped."""
    today = date.today()
    where = rows.positions(index)
    first_plate: dict[str, int] = {}
    owners: dict[str, tuple[int, int]] = {}  # national id -> (hash of the owner fields, first line)
    for line, fields in _data_lines(reader, report):
        record, errors = rows.vehicle(fields, where, today)
        display, national_id = record[1], record[11]
        if display:
            seen = first_plate.setdefault(display, line)
            if seen != line:
                errors.append(f"plate {display} is already on line {seen}")
        first = False
        if national_id and not errors:
            owner_hash = hash(record[9:11] + record[12:])
            seen_owner = owners.setdefault(national_id, (owner_hash, line))
            first = seen_owner[1] == line
            if seen_owner[0] != owner_hash:
                errors.append(f"owner {national_id} has different details on line {seen_owner[1]}")
        if errors:
            report.rejected.append((line, "; ".join(errors)))
            continue
        yield (*record, first)


def _hotlist_records(reader: csv.reader, index: dict[str, int], report: Report) -> Iterator[tuple]:
    seen: dict[tuple, int] = {}
    for line, fields in _data_lines(reader, report):
        record, errors = rows.hotlist_entry(fields, index)
        key = (record[0], record[3], record[4])
        if not errors and seen.setdefault(key, line) != line:
            errors.append(f"same plate, agency and valid_from as line {seen[key]}")
        if errors:
            report.rejected.append((line, "; ".join(errors)))
            continue
        yield record


async def import_csv(conn: asyncpg.Connection, path: Path) -> Report:
    """Import one CSV file in one transaction; report.ok says whether anything was imported.

    Raises rows.HeaderError when the header is not one of the registry's files.
    """
    report = Report(path=path)
    started = time.perf_counter()
    # utf-8-sig: a spreadsheet export starts with a byte-order mark.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise rows.HeaderError("the file is empty")
        report.kind = rows.kind_of(header)
        try:
            async with conn.transaction():
                # Room for the hash joins of a million-row merge; this transaction only.
                await conn.execute("SET LOCAL work_mem = '128MB'")
                if report.kind == "vehicles":
                    index = rows.column_index(header, rows.VEHICLE_COLUMNS, rows.OPTIONAL_VEHICLE_COLUMNS)
                    await conn.execute(STAGING_DDL)
                    await conn.copy_records_to_table(
                        "staging_vehicles", records=_vehicle_records(reader, index, report), columns=STAGING_COLUMNS)
                    report.phases["validate_and_copy"] = time.perf_counter() - started
                    if report.rejected:
                        raise _Rejected
                    await conn.execute(IMPORT_LOCK)
                    recreate: list[str] = []
                    if report.rows >= BULK_MIN_ROWS and not await conn.fetchval(
                            "SELECT EXISTS (SELECT 1 FROM registry.vehicles) OR EXISTS (SELECT 1 FROM registry.owners)"):
                        recreate = await _drop_secondary(conn, ("registry.vehicles", "registry.owners"))
                    for table, update, insert in (("owners", UPDATE_OWNERS, INSERT_OWNERS),
                                                  ("vehicles", UPDATE_VEHICLES, INSERT_VEHICLES)):
                        step = time.perf_counter()
                        report.updated[table] = _count(await conn.execute(update))
                        report.inserted[table] = _count(await conn.execute(insert))
                        report.phases[f"merge_{table}"] = time.perf_counter() - step
                    if recreate:
                        step = time.perf_counter()
                        await conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
                        for statement in recreate:
                            await conn.execute(statement)
                        report.phases["build_indexes"] = time.perf_counter() - step
                    step = time.perf_counter()
                    await conn.execute("ANALYZE registry.owners; ANALYZE registry.vehicles")
                    report.phases["analyze"] = time.perf_counter() - step
                else:
                    index = rows.column_index(header, rows.HOTLIST_COLUMNS, rows.OPTIONAL_HOTLIST_COLUMNS)
                    await conn.execute(HOTLIST_STAGING_DDL)
                    await conn.copy_records_to_table(
                        "staging_hotlist", records=_hotlist_records(reader, index, report),
                        columns=("plate", "plate_display", "reason", "agency", "valid_from", "valid_to"))
                    if report.rejected:
                        raise _Rejected
                    counts = await conn.fetchrow(MERGE_HOTLIST)
                    report.inserted["hotlist"], report.updated["hotlist"] = counts["inserted"], counts["updated"]
            step = time.perf_counter()
        except _Rejected:
            step = time.perf_counter()
        report.phases["commit"] = time.perf_counter() - step
    report.seconds = time.perf_counter() - started
    return report


def _count(status: str) -> int:
    """Rows changed, from a command tag such as 'INSERT 0 12' or 'UPDATE 3'."""
    return int(status.rsplit(" ", 1)[1])


def describe(report: Report, max_errors: int = 50) -> str:
    """The text a person reads after an import: what changed, or every reason it did not."""
    if report.ok:
        changes = ", ".join(f"{table}: {report.inserted[table]} new, {report.updated[table]} updated"
                            for table in report.inserted)
        return f"imported {report.path} ({report.kind}): {report.rows} rows in {report.seconds:.1f} s ({changes})"
    lines = [f"{report.path}: {len(report.rejected)} of {report.rows} rows rejected; nothing was imported"]
    lines += [f"  line {line}: {reason}" for line, reason in report.rejected[:max_errors]]
    if len(report.rejected) > max_errors:
        lines.append(f"  ... and {len(report.rejected) - max_errors} more (--max-errors to see them)")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    import argparse
    import asyncio
    import os
    import sys

    parser = argparse.ArgumentParser(
        prog="roadwatch registry import",
        description="Import a vehicles extract or a hotlist (CSV, UTF-8, header row) into the registry; "
                    "all rows or none.")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE.csv")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="PostgreSQL URL (default: $DATABASE_URL)")
    parser.add_argument("--max-errors", type=int, default=50, help="rejected rows to print per file (default 50)")
    args = parser.parse_args(argv)
    if not args.database_url:
        print("roadwatch registry import: DATABASE_URL is not set (or pass --database-url)", file=sys.stderr)
        return 2
    missing = [str(path) for path in args.files if not path.is_file()]
    if missing:
        print(f"roadwatch registry import: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2

    async def run() -> int:
        conn = await asyncpg.connect(args.database_url)
        failed = 0
        try:
            for path in args.files:
                try:
                    report = await import_csv(conn, path)
                except rows.HeaderError as exc:
                    print(f"{path}: {exc}; nothing was imported", file=sys.stderr)
                    failed += 1
                    continue
                print(describe(report, args.max_errors), file=sys.stdout if report.ok else sys.stderr)
                failed += not report.ok
        finally:
            await conn.close()
        return 1 if failed else 0

    try:
        return asyncio.run(run())
    except asyncpg.UndefinedTableError as exc:
        print(f"roadwatch registry import: {exc} (run `roadwatch migrate` first)", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"roadwatch registry import: cannot import: {exc}", file=sys.stderr)
        return 1
