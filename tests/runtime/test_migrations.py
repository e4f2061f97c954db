"""The migration runner against a real PostgreSQL: order, idempotence, refusals, rollback."""

from __future__ import annotations

import hashlib
from pathlib import Path

import asyncpg
import pytest

from services.runtime import migrations


def write(root: Path, service: str, name: str, sql: str) -> Path:
    folder = root / service / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(sql, encoding="utf-8")
    return path


async def tables(database_url: str, schema: str) -> set[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema)
        return {row["table_name"] for row in rows}
    finally:
        await conn.close()


async def test_applies_pending_in_order_once(tmp_path: Path, database_url: str) -> None:
    write(tmp_path, "alpha", "002_more.sql", "ALTER TABLE alpha.things ADD COLUMN size int;")
    write(tmp_path, "alpha", "001_init.sql", "CREATE SCHEMA alpha; CREATE TABLE alpha.things (id int);")
    write(tmp_path, "beta", "001_init.sql", "CREATE SCHEMA beta; CREATE TABLE beta.items (id int);")

    found = migrations.discover(tmp_path)
    done = await migrations.migrate(database_url, found)
    assert [m.label for m in done] == ["alpha/001_init", "alpha/002_more", "beta/001_init"]
    assert await tables(database_url, "alpha") == {"things"}

    again = await migrations.migrate(database_url, migrations.discover(tmp_path))
    assert again == []

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT service, version, checksum FROM public.schema_migrations ORDER BY 1, 2")
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema='alpha' AND table_name='things'")
    finally:
        await conn.close()
    assert [(r["service"], r["version"]) for r in rows] == [("alpha", 1), ("alpha", 2), ("beta", 1)]
    assert rows[0]["checksum"] == found[0].checksum
    assert {c["column_name"] for c in columns} == {"id", "size"}


async def test_refuses_when_an_applied_file_was_edited(tmp_path: Path, database_url: str) -> None:
    path = write(tmp_path, "alpha", "001_init.sql", "CREATE SCHEMA alpha;")
    await migrations.migrate(database_url, migrations.discover(tmp_path))
    path.write_text("CREATE SCHEMA alpha; CREATE TABLE alpha.sneaky (id int);", encoding="utf-8")
    write(tmp_path, "alpha", "002_next.sql", "CREATE TABLE alpha.next (id int);")

    with pytest.raises(migrations.MigrationError, match="001_init.sql was edited after it was applied"):
        await migrations.migrate(database_url, migrations.discover(tmp_path))
    # The refusal happened before anything ran: 002 was not applied either.
    assert await tables(database_url, "alpha") == set()


async def test_failed_file_is_rolled_back_and_not_recorded(tmp_path: Path, database_url: str) -> None:
    write(tmp_path, "alpha", "001_init.sql", "CREATE SCHEMA alpha;")
    write(tmp_path, "alpha", "002_broken.sql", "CREATE TABLE alpha.half (id int); SELECT * FROM no_such_table;")
    with pytest.raises(migrations.MigrationError, match="002_broken.sql failed and was rolled back"):
        await migrations.migrate(database_url, migrations.discover(tmp_path))
    assert await tables(database_url, "alpha") == set()  # 001 committed, 002 entirely undone
    conn = await asyncpg.connect(database_url)
    try:
        versions = await conn.fetchval("SELECT array_agg(version) FROM public.schema_migrations")
    finally:
        await conn.close()
    assert versions == [1]


async def test_refuses_a_new_file_numbered_below_an_applied_one(tmp_path: Path, database_url: str) -> None:
    write(tmp_path, "alpha", "002_second.sql", "CREATE SCHEMA alpha;")
    await migrations.migrate(database_url, migrations.discover(tmp_path))
    write(tmp_path, "alpha", "001_late.sql", "CREATE TABLE alpha.late (id int);")
    with pytest.raises(migrations.MigrationError, match="give the new file a higher number"):
        await migrations.migrate(database_url, migrations.discover(tmp_path))


def test_badly_named_file_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "alpha", "init.sql", "SELECT 1;")
    with pytest.raises(migrations.MigrationError, match="named NNN_name.sql"):
        migrations.discover(tmp_path)


def test_main_without_database_url_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert migrations.main([]) == 2
    assert "DATABASE_URL is not set" in capsys.readouterr().err


def test_main_applies_the_repository_migrations(database_url: str, capsys: pytest.CaptureFixture) -> None:
    assert migrations.main(["--database-url", database_url, "--service", "registry"]) == 0
    assert "applied registry/001_registry" in capsys.readouterr().out
    assert migrations.main(["--database-url", database_url, "--service", "registry"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_main_gives_up_on_an_unreachable_server_with_exit_1(capsys: pytest.CaptureFixture) -> None:
    from services import localstack

    url = f"postgresql://postgres@127.0.0.1:{localstack.free_port()}/nothing"
    assert migrations.main(["--database-url", url, "--wait", "0.5"]) == 1
    assert "cannot reach PostgreSQL" in capsys.readouterr().err


# --- a file that squashes earlier ones ------------------------------------------------------------
INIT = "CREATE SCHEMA alpha; CREATE TABLE alpha.things (id int);"
MORE = "ALTER TABLE alpha.things ADD COLUMN size int;"
SQUASH = "CREATE SCHEMA alpha; CREATE TABLE alpha.things (id int, size int);"


def squash_of(*files: tuple[str, str]) -> str:
    """A squash naming (file name, its SQL) with their checksums, then its own SQL."""
    named = [f"-- squashes: {name.removesuffix('.sql')} {hashlib.sha256(sql.encode()).hexdigest()}"
             for name, sql in files]
    return "\n".join(["-- alpha as 001 and 002 left it", *named, SQUASH])


async def applied_rows(database_url: str) -> list[tuple[str, int, str]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT service, version, name FROM public.schema_migrations ORDER BY 1, 2")
    finally:
        await conn.close()
    return [(r["service"], r["version"], r["name"]) for r in rows]


async def test_a_squash_runs_on_a_new_database(tmp_path: Path, database_url: str) -> None:
    write(tmp_path, "alpha", "002_alpha.sql", squash_of(("001_init.sql", INIT), ("002_more.sql", MORE)))
    write(tmp_path, "alpha", "003_next.sql", "CREATE TABLE alpha.next (id int);")

    done = await migrations.migrate(database_url, migrations.discover(tmp_path))
    assert [m.label for m in done] == ["alpha/002_alpha", "alpha/003_next"]
    assert await tables(database_url, "alpha") == {"things", "next"}
    assert await applied_rows(database_url) == [("alpha", 2, "alpha"), ("alpha", 3, "next")]
    assert await migrations.migrate(database_url, migrations.discover(tmp_path)) == []


async def test_a_database_that_applied_the_squashed_files_keeps_its_history(tmp_path: Path,
                                                                         database_url: str) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    write(old, "alpha", "001_init.sql", INIT)
    write(old, "alpha", "002_more.sql", MORE)
    await migrations.migrate(database_url, migrations.discover(old))
    write(new, "alpha", "002_alpha.sql", squash_of(("001_init.sql", INIT), ("002_more.sql", MORE)))
    write(new, "alpha", "003_next.sql", "CREATE TABLE alpha.next (id int);")

    done = await migrations.migrate(database_url, migrations.discover(new))
    assert [m.label for m in done] == ["alpha/003_next"]
    assert await applied_rows(database_url) == [("alpha", 1, "init"), ("alpha", 2, "more"), ("alpha", 3, "next")]
    assert await migrations.migrate(database_url, migrations.discover(new)) == []


async def test_a_squash_refuses_a_database_with_only_some_of_its_files(tmp_path: Path, database_url: str) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    write(old, "alpha", "001_init.sql", INIT)
    await migrations.migrate(database_url, migrations.discover(old))
    write(new, "alpha", "002_alpha.sql", squash_of(("001_init.sql", INIT), ("002_more.sql", MORE)))

    with pytest.raises(migrations.MigrationError, match=r"only 001 are applied: apply 002 with a release"):
        await migrations.migrate(database_url, migrations.discover(new))
    assert await applied_rows(database_url) == [("alpha", 1, "init")]


async def test_a_squash_refuses_a_replaced_file_applied_with_other_contents(tmp_path: Path,
                                                                          database_url: str) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    write(old, "alpha", "001_init.sql", INIT + " CREATE TABLE alpha.local_edit (id int);")
    write(old, "alpha", "002_more.sql", MORE)
    await migrations.migrate(database_url, migrations.discover(old))
    write(new, "alpha", "002_alpha.sql", squash_of(("001_init.sql", INIT), ("002_more.sql", MORE)))

    with pytest.raises(migrations.MigrationError, match=r"alpha/001_init is recorded as applied with checksum"):
        await migrations.migrate(database_url, migrations.discover(new))


def test_the_portal_squash_names_the_files_it_replaced() -> None:
    portal = {m.version: m for m in migrations.discover(services=["portal"])}
    assert {v: name for v, (name, _) in portal[3].squashes.items()} == {
        1: "portal", 2: "review_once", 3: "duplicates_and_holds"}
    assert min(portal) == 3
