"""`roadwatch migrate`: apply each service's versioned SQL files, once, in order.

Every service that owns a schema keeps plain SQL in `services/<service>/migrations/NNN_name.sql`.
Plain files (no ORM, no generated diffs) so that a DBA can read exactly what will run. Each file
runs in its own transaction and is recorded in `public.schema_migrations` with its SHA-256, so
that a file edited after it was applied is caught before anything else runs: the database would
otherwise silently differ from what the repository says it is.

A file may squash earlier ones into one (a schema written once where it had grown by ALTERs):
it names each file it replaces with that file's SHA-256 (`-- squashes: 001_portal <sha256>`),
and those files leave the repository. A new database runs the squash; a database that applied
the replaced files keeps its history (their recorded checksums must be the ones named) and runs
nothing of it; one that applied only some of them is refused, as its schema is in between.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

SERVICES_DIR = Path(__file__).resolve().parent.parent
FILE_NAME = re.compile(r"^(?P<version>\d{3})_(?P<name>[a-z0-9_]+)\.sql$")
SQUASHES = re.compile(r"^-- squashes: (?P<version>\d{3})_(?P<name>[a-z0-9_]+) (?P<checksum>[0-9a-f]{64})\s*$", re.M)
# Any constant works; it only has to be the same for every `roadwatch migrate` that may run at
# once (several pods starting together), so that they apply the files one after the other.
ADVISORY_LOCK_KEY = 0x726F6164  # "road"

TABLE_DDL = """
CREATE TABLE IF NOT EXISTS public.schema_migrations (
    service    text        NOT NULL,
    version    integer     NOT NULL,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, version)
)
"""


class MigrationError(Exception):
    """The migrations cannot be applied as they are; the message says which file and why."""


@dataclass(frozen=True)
class Migration:
    service: str
    version: int
    name: str
    path: Path
    sql: str

    @property
    def squashes(self) -> dict[int, tuple[str, str]]:
        """version -> (name, SHA-256) of each earlier file this one replaces."""
        return {int(m["version"]): (m["name"], m["checksum"]) for m in SQUASHES.finditer(self.sql)}

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.service}/{self.version:03d}_{self.name}"


def discover(root: Path = SERVICES_DIR, services: list[str] | None = None) -> list[Migration]:
    """Every migration file under root/*/migrations, ordered by service then version.

    A badly named .sql file is an error rather than skipped: a file that never runs would be a
    schema change that silently never happens.
    """
    found: list[Migration] = []
    for folder in sorted(root.glob("*/migrations")):
        service = folder.parent.name
        if services and service not in services:
            continue
        versions: dict[int, Path] = {}
        for path in sorted(folder.glob("*.sql")):
            match = FILE_NAME.match(path.name)
            if not match:
                raise MigrationError(f"{path}: migration files are named NNN_name.sql (e.g. 001_registry.sql)")
            version = int(match["version"])
            if version in versions:
                raise MigrationError(f"{path}: version {version:03d} is also used by {versions[version].name}")
            versions[version] = path
            found.append(Migration(service, version, match["name"], path, path.read_text(encoding="utf-8")))
    return found


async def _applied(conn: asyncpg.Connection) -> dict[tuple[str, int], asyncpg.Record]:
    rows = await conn.fetch("SELECT service, version, name, checksum FROM public.schema_migrations")
    return {(row["service"], row["version"]): row for row in rows}


def plan(migrations: list[Migration], applied: dict[tuple[str, int], asyncpg.Record],
         services: list[str] | None = None) -> list[Migration]:
    """The migrations still to run; refuses when history and files disagree.

    Checked before anything runs, so that a refused run changes nothing.
    """
    on_disk = {(m.service, m.version): m for m in migrations}
    squashed = {(m.service, version): (name, checksum)
                for m in migrations for version, (name, checksum) in m.squashes.items()}
    for key, row in sorted(applied.items()):
        if services and key[0] not in services:
            continue
        migration = on_disk.get(key)
        if key in squashed and (migration is None or migration.name != row["name"]):
            name, checksum = squashed[key]
            if (name, checksum) != (row["name"], row["checksum"]):
                raise MigrationError(
                    f"{key[0]}/{key[1]:03d}_{row['name']} is recorded as applied with checksum "
                    f"{row['checksum'][:12]}, not as the file that squashes it says ({name}, {checksum[:12]})")
            continue
        if migration is None:
            raise MigrationError(
                f"{key[0]}/{key[1]:03d}_{row['name']} is recorded as applied but its file is gone; "
                "restore it (applied migrations are never deleted)")
        if migration.checksum != row["checksum"]:
            raise MigrationError(
                f"{migration.path} was edited after it was applied (checksum {migration.checksum[:12]} "
                f"!= recorded {row['checksum'][:12]}); put the change in a new migration file instead")
    pending = []
    for migration in migrations:
        own = applied.get((migration.service, migration.version))
        if own is not None and own["name"] == migration.name:
            continue  # applied as it is (a squash recorded under its own name: a new database)
        done = [v for v, (name, _) in migration.squashes.items()
                if (row := applied.get((migration.service, v))) is not None and row["name"] == name]
        if done and len(done) < len(migration.squashes):
            missing = sorted(set(migration.squashes) - set(done))
            raise MigrationError(
                f"{migration.path} squashes versions {', '.join(f'{v:03d}' for v in sorted(migration.squashes))} "
                f"but only {', '.join(f'{v:03d}' for v in sorted(done))} are applied: apply "
                f"{', '.join(f'{v:03d}' for v in missing)} with a release that still has them, then migrate again")
        if own is None and not done:
            pending.append(migration)
    for migration in pending:
        later = [v for (s, v) in applied if s == migration.service and v > migration.version]
        if later:
            raise MigrationError(
                f"{migration.path} is pending but {migration.service} version {max(later):03d} is already "
                "applied; give the new file a higher number")
    return pending


async def _connect(database_url: str, wait_s: float) -> asyncpg.Connection:
    """Connect, waiting up to wait_s while PostgreSQL starts and its database is created (make run
    starts the server, the database and the services at once)."""
    deadline = time.monotonic() + wait_s
    delay = 0.2
    while True:
        try:
            return await asyncpg.connect(database_url, timeout=5)
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.InvalidCatalogNameError, asyncio.TimeoutError):
            if time.monotonic() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def migrate(database_url: str, migrations: list[Migration] | None = None,
                  services: list[str] | None = None, dry_run: bool = False, wait_s: float = 0.0) -> list[Migration]:
    """Apply the pending migrations; returns those applied (or that would be, with dry_run)."""
    migrations = discover(services=services) if migrations is None else migrations
    conn = await _connect(database_url, wait_s)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
        try:
            await conn.execute(TABLE_DDL)
            pending = plan(migrations, await _applied(conn), services)
            if dry_run:
                return pending
            for migration in pending:
                try:
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO public.schema_migrations (service, version, name, checksum) "
                            "VALUES ($1, $2, $3, $4)",
                            migration.service, migration.version, migration.name, migration.checksum)
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"{migration.path} failed and was rolled back: {exc}") from exc
            return pending
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="roadwatch migrate",
        description="Apply the pending SQL migrations of every service (services/*/migrations/NNN_name.sql).")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="PostgreSQL URL (default: $DATABASE_URL)")
    parser.add_argument("--service", action="append", dest="services", metavar="NAME",
                        help="only this service's migrations (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="list what would run, change nothing")
    parser.add_argument("--wait", type=float, default=30.0, metavar="SECONDS",
                        help="wait this long for PostgreSQL to accept connections (default 30)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not args.database_url:
        print("roadwatch migrate: DATABASE_URL is not set (or pass --database-url)", file=sys.stderr)
        return 2
    try:
        done = asyncio.run(migrate(args.database_url, services=args.services, dry_run=args.dry_run,
                                   wait_s=args.wait))
    except MigrationError as exc:
        print(f"roadwatch migrate: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"roadwatch migrate: cannot reach PostgreSQL at the given DATABASE_URL: {exc}", file=sys.stderr)
        return 1
    verb = "would apply" if args.dry_run else "applied"
    for migration in done:
        print(f"{verb} {migration.label}")
    if not done:
        print("nothing to apply: the database is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
