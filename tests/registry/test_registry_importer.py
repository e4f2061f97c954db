"""Import on a real PostgreSQL: whole files or nothing, every bad row reported by line."""

from __future__ import annotations

import csv
from pathlib import Path

import asyncpg
import pytest

from services.registry import importer, main as registry_main, rows


def vehicles_header() -> str:
    return ",".join(rows.VEHICLE_COLUMNS)


GOOD = ("30A-123.45,white,car,Toyota,white,2020-05-01,valid,2027-05-01,person,Nguyễn Văn An,001090123456,"
        "\"Số 12 Kim Mã, Phường Ngọc Hà\",00008,Hà Nội,0912345678,an.nguyen@gmail.com")
GOOD_MOTORBIKE = ("29-B1 123.45,white,motorcycle,Honda,black,2019-03-02,not_required,,person,Nguyễn Văn An,"
                  "001090123456,\"Số 12 Kim Mã, Phường Ngọc Hà\",00008,Hà Nội,0912345678,an.nguyen@gmail.com")


async def counts(conn: asyncpg.Connection) -> tuple[int, int]:
    return (await conn.fetchval("SELECT count(*) FROM registry.vehicles"),
            await conn.fetchval("SELECT count(*) FROM registry.owners"))


async def test_synthetic_extract_imports_and_reimport_changes_nothing(conn, synth_csv) -> None:
    path = synth_csv(3000)
    report = await importer.import_csv(conn, path)
    assert report.ok, importer.describe(report)
    assert report.rows == 3000
    vehicles, owners = await counts(conn)
    assert vehicles == 3000 == report.inserted["vehicles"]
    assert 0 < owners == report.inserted["owners"] < vehicles  # some owners have several vehicles
    motorbikes = await conn.fetchval("SELECT count(*) FROM registry.vehicles WHERE vehicle_type = 'motorcycle'")
    assert 0.8 < motorbikes / vehicles < 0.95  # the mix of Vietnamese traffic
    # The normalised plate and the printed one agree for every row.
    mismatched = await conn.fetchval(
        "SELECT count(*) FROM registry.vehicles WHERE plate <> regexp_replace(plate_display, '[^0-9A-Z]', '', 'g')")
    assert mismatched == 0

    again = await importer.import_csv(conn, path)
    assert again.ok and again.inserted == {"owners": 0, "vehicles": 0} and again.updated == {"owners": 0, "vehicles": 0}


async def test_update_of_an_existing_vehicle(conn, tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    path.write_text(f"{vehicles_header()}\n{GOOD}\n", encoding="utf-8")
    assert (await importer.import_csv(conn, path)).ok
    path.write_text(f"{vehicles_header()}\n{GOOD.replace(',white,2020', ',black,2020')}\n", encoding="utf-8")
    report = await importer.import_csv(conn, path)
    assert report.updated["vehicles"] == 1 and report.inserted["vehicles"] == 0
    assert report.updated["owners"] == 0
    assert await conn.fetchval("SELECT colour FROM registry.vehicles WHERE plate = '30A12345'") == "black"
    # The owner moved and changed phone number; the second vehicle is new and theirs too.
    moved = GOOD.replace(',white,2020', ',black,2020').replace("0912345678", "0987654321")
    path.write_text(f"{vehicles_header()}\n{moved}\n{GOOD_MOTORBIKE.replace('0912345678', '0987654321')}\n",
                    encoding="utf-8")
    report = await importer.import_csv(conn, path)
    assert (report.updated, report.inserted) == ({"owners": 1, "vehicles": 0}, {"owners": 0, "vehicles": 1})
    assert await counts(conn) == (2, 1)
    assert await conn.fetchval("SELECT phone FROM registry.owners") == "0987654321"


async def test_plates_sharing_a_bare_form_are_both_imported(conn, tmp_path: Path) -> None:
    bus = GOOD.replace("30A-123.45", "29B-112.34").replace(",car,", ",bus,")
    bike = GOOD_MOTORBIKE.replace("29-B1 123.45", "29-B1 1234")
    path = tmp_path / "v.csv"
    path.write_text(f"{vehicles_header()}\n{bus}\n{bike}\n", encoding="utf-8")
    report = await importer.import_csv(conn, path)
    assert report.ok, importer.describe(report)
    rows_ = await conn.fetch("SELECT plate, plate_display FROM registry.vehicles ORDER BY plate_display")
    assert [(r["plate"], r["plate_display"]) for r in rows_] == [("29B11234", "29-B1 1234"), ("29B11234", "29B-112.34")]


async def test_bad_rows_are_reported_by_line_and_nothing_is_imported(conn, tmp_path: Path) -> None:
    lines = [
        GOOD,                                                            # line 2: fine
        GOOD.replace("30A-123.45", "3OA-123.45"),                        # line 3: bad plate
        GOOD_MOTORBIKE.replace("2019-03-02", "2019-13-02"),              # line 4: bad date
        GOOD.replace("001090123456", "12345"),                           # line 5: bad national id
        GOOD,                                                            # line 6: same plate as line 2
        GOOD_MOTORBIKE.replace("29-B1 123.45", "29-B1 555.55").replace("Nguyễn Văn An", "Trần Thị Bình"),  # line 7
        GOOD.replace(",car,", ",tank,").replace("30A-123.45", "30A-999.99"),  # line 8: unknown type
        "30A-111.11,white,car",                                          # line 9: too few fields
    ]
    path = tmp_path / "bad.csv"
    path.write_text(f"{vehicles_header()}\n" + "\n".join(lines) + "\n", encoding="utf-8")
    report = await importer.import_csv(conn, path)
    assert not report.ok
    rejected = dict(report.rejected)
    assert sorted(rejected) == [3, 4, 5, 6, 7, 8, 9]
    assert "not a Vietnamese plate" in rejected[3]
    assert "registration_date '2019-13-02' is not a date" in rejected[4]
    assert "not a 12-digit citizen identity number" in rejected[5]
    assert "already on line 2" in rejected[6]
    assert "different details on line 2" in rejected[7]
    assert "vehicle_type 'tank'" in rejected[8]
    assert "has 3 fields" in rejected[9]
    assert await counts(conn) == (0, 0)
    text = importer.describe(report)
    assert "7 of 8 rows rejected; nothing was imported" in text and "line 5:" in text


async def test_a_bad_row_late_in_a_large_file_rolls_everything_back(conn, synth_csv) -> None:
    path = synth_csv(2000)
    with path.open("a", encoding="utf-8") as out:
        out.write(GOOD.replace("0912345678", "12") + "\n")
    report = await importer.import_csv(conn, path)
    assert report.rejected == [(2002, "owner_phone '12' is not a Vietnamese phone number")]
    assert await counts(conn) == (0, 0)


async def test_hotlist_import(conn, tmp_path: Path) -> None:
    path = tmp_path / "hot.csv"
    path.write_text(
        "plate,reason,agency,valid_from,valid_to\n"
        "30A-123.45,xe bị mất cắp,police,2026-11-01,\n"
        "29-B1 123.45,truy nã,police,2026-11-01T08:00:00+07:00,2026-12-01\n", encoding="utf-8")
    report = await importer.import_csv(conn, path)
    assert report.ok and report.kind == "hotlist" and report.inserted["hotlist"] == 2
    rows_ = await conn.fetch("SELECT plate, reason, valid_to FROM registry.hotlist ORDER BY plate")
    assert [r["plate"] for r in rows_] == ["29B112345", "30A12345"]
    assert rows_[1]["valid_to"] is None

    path.write_text("plate,reason,agency,valid_from,valid_to\n30A-123.45,,Police,2026-11-01,2026-10-01\n",
                    encoding="utf-8")
    bad = await importer.import_csv(conn, path)
    (line, reason), = bad.rejected
    assert line == 2 and "reason is empty" in reason and "agency 'Police'" in reason and "valid_to is not after" in reason


async def test_unknown_header_is_refused(conn, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(vehicles_header() + ",shoe_size\n", encoding="utf-8")
    with pytest.raises(rows.HeaderError, match="unknown column.*shoe_size"):
        await importer.import_csv(conn, path)


def test_cli_import_reports_and_exits_1(registry_url: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "cli.csv"
    path.write_text(f"{vehicles_header()}\n{GOOD}\n{GOOD.replace('00008', '8')}\n", encoding="utf-8")
    assert registry_main.main(["import", str(path), "--database-url", registry_url]) == 1
    err = capsys.readouterr().err
    assert "line 3: owner_commune_code '8' is not a 5-digit" in err
    path.write_text(f"{vehicles_header()}\n{GOOD}\n{GOOD_MOTORBIKE}\n", encoding="utf-8")
    assert registry_main.main(["import", str(path), "--database-url", registry_url]) == 0
    assert "vehicles: 2 new" in capsys.readouterr().out


def test_cli_synth_writes_a_valid_file(tmp_path: Path, province) -> None:
    out = tmp_path / "s.csv"
    assert registry_main.main(["synth", "--vehicles", "500", "--out", str(out), "--seed", "3", "--today", "2026-11-29"]) == 0
    with out.open(encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        index = rows.column_index(header, rows.VEHICLE_COLUMNS, rows.OPTIONAL_VEHICLE_COLUMNS)
        from datetime import date
        problems = [rows.vehicle(fields, index, date(2026, 11, 29))[1] for fields in reader]
    assert len(problems) == 500 and not any(problems)
    communes = {code for code, _ in province.communes}
    with out.open(encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    assert {row["owner_commune_code"] for row in written} <= communes
    local = sum(int(row["plate"][:2]) in province.plate_codes for row in written)
    assert 0.75 < local / len(written) < 0.98  # mostly the province's own plates, some from elsewhere
    fleets = [row for row in written if row["owner_kind"] == "organisation" and row["vehicle_type"] in ("truck", "bus")]
    assert all(row["plate_colour"] == "yellow" for row in fleets)  # commercial transport plates
    motorbikes = [row for row in written if row["vehicle_type"] == "motorcycle"]
    assert all(" " in row["plate"] for row in motorbikes)  # two-line plates
    assert all(row["owner_address"].endswith(dict(province.communes)[row["owner_commune_code"]]) for row in written)


def test_cli_synth_refuses_a_bad_province_file(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("province: X\nplate_codes: [5]\n", encoding="utf-8")
    assert registry_main.main(["synth", "--vehicles", "5", "--communes", str(bad)]) == 2
    assert "expected the keys" in capsys.readouterr().err


async def test_old_lookup_outcomes_are_pruned(conn) -> None:
    """They hold owner data: kept LOOKUP_RETENTION_DAYS, then deleted by the service."""
    from services.registry import store

    await conn.execute(
        "INSERT INTO registry.lookups (violation_id, outcome, subject, event_id, payload, decided_at) VALUES "
        "('old', 'unidentified', 's', 'e1', '\\x7b7d', now() - interval '40 days'), "
        "('new', 'unidentified', 's', 'e2', '\\x7b7d', now() - interval '2 days')")
    assert await store.prune_lookups(conn, 30) == 1
    assert [r["violation_id"] for r in await conn.fetch("SELECT violation_id FROM registry.lookups")] == ["new"]


async def test_first_bulk_load_rebuilds_exactly_the_migrated_indexes(conn, synth_csv, monkeypatch) -> None:
    """The fast path for a first load drops and rebuilds indexes and constraints: they must come
    back exactly as the migrations made them, and still be enforced."""
    schema = """
        SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = 'registry'
        UNION ALL
        SELECT 'constraint', conname, pg_get_constraintdef(oid) FROM pg_constraint
        WHERE connamespace = 'registry'::regnamespace ORDER BY 1, 2"""
    before = [tuple(row) for row in await conn.fetch(schema)]
    monkeypatch.setattr(importer, "BULK_MIN_ROWS", 500)
    report = await importer.import_csv(conn, synth_csv(1500))
    assert report.ok and "build_indexes" in report.phases
    assert [tuple(row) for row in await conn.fetch(schema)] == before
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute(
            "INSERT INTO registry.vehicles (plate, plate_display, plate_colour, vehicle_type, brand, colour, "
            "registration_date, inspection_status, owner_id) "
            "VALUES ('30A99999', '30A-999.99', 'white', 'car', 'Kia', 'red', '2020-01-01', 'expired', -1)")
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(
            "INSERT INTO registry.vehicles (plate, plate_display, plate_colour, vehicle_type, brand, colour, "
            "registration_date, inspection_status, owner_id) SELECT plate, plate_display, plate_colour, vehicle_type, "
            "brand, colour, registration_date, inspection_status, owner_id FROM registry.vehicles LIMIT 1")
    # Into tables that are no longer empty, the ordinary merge.
    again = await importer.import_csv(conn, synth_csv(1500, seed=8, name="more.csv"))
    assert again.ok and "build_indexes" not in again.phases and again.inserted["vehicles"] > 0
