"""The coordination report (sơ kết) for a week of synthetic cases written through the portal's store
functions into a real PostgreSQL: every figure read back from the CSV and from the PDF's text
equals what independent queries of the database give (SQL here, or Python over the raw rows)."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import statistics
import sys
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import pypdf
import pytest

from services.portal import agencies, cases, report, report_data, report_format
from services.portal.settings import EXAMPLE_AGENCIES, EXAMPLE_NOTIFY_CONFIG
from services.runtime import migrations
import report_seed
from portal_samples import OWNER_SECRETS
from report_seed import CAMERA_HISTORY, CAMERAS, NOW, TZ, WEEK

START, END = WEEK
CONFIRMED = ("confirmed", "notified", "warned", "resolved")
DEADLINES = report_data.load_deadlines(EXAMPLE_NOTIFY_CONFIG)


def agency(agency_id: str) -> agencies.Agency:
    return next(a for a in agencies.load(EXAMPLE_AGENCIES).agencies if a.id == agency_id)


@pytest.fixture
async def seeded(database_url: str) -> str:
    await migrations.migrate(database_url, services=["portal"])
    conn = await asyncpg.connect(database_url)
    try:
        await report_seed.seed_cases(conn)
        await report_seed.seed_telemetry(conn)
    finally:
        await conn.close()
    return database_url


async def build(database_url: str, agency_id: str) -> tuple[dict, str, bytes, bytes]:
    conn = await asyncpg.connect(database_url)
    try:
        data = await report.build(conn, agency(agency_id), START, END, TZ, DEADLINES, NOW)
    finally:
        await conn.close()
    files = report.render(data)
    pdf = next(body for name, body in files.items() if name.endswith(".pdf"))
    raw_csv = next(body for name, body in files.items() if name.endswith(".csv"))
    return figures(raw_csv), pdf_text(pdf), pdf, raw_csv


def figures(raw: bytes) -> dict[tuple[str, str, str, str], str]:
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][0] == "Mục (section)"
    found = {}
    for section, key, subkey, _label, measure, value in rows[1:]:
        assert (section, key, subkey, measure) not in found, (section, key, subkey, measure)
        found[(section, key, subkey, measure)] = value
    return found


def pdf_text(body: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(body)).pages)


def pdf_numbers(text: str, label: str, count: int, then: str = "$") -> list[int]:
    """The `count` figures on the table line that starts with `label` (12.345 → 12345); a label
    wrapped in its cell is found across the line breaks."""
    number = r"(\d{1,3}(?:\.\d{3})*)"
    words = r"\s+".join(re.escape(word) for word in label.split())
    match = re.search(rf"^{words} {' '.join([number] * count)}{then}", text, re.M)
    assert match, f"no line '{label} …' with {count} figures in the PDF"
    return [int(g.replace(".", "")) for g in match.groups()]


# --- independent figures from the database ------------------------------------------------------------
async def sql_violations(conn, group_sql: str, communes: list[str] | None = None) -> dict:
    rows = await conn.fetch(
        f"""SELECT {group_sql} AS key, count(*) AS total,
                   sum(CASE WHEN state IN ('confirmed', 'notified', 'warned', 'resolved') THEN 1 ELSE 0 END) AS confirmed,
                   sum(CASE WHEN state = 'rejected' THEN 1 ELSE 0 END) AS rejected,
                   sum(CASE WHEN state IN ('detected', 'identified', 'unidentified') THEN 1 ELSE 0 END) AS awaiting
            FROM portal.cases
            WHERE violation_at BETWEEN '2026-11-15 17:00:00+00' AND '2026-11-22 16:59:59.999999+00'
              AND merged_into IS NULL AND ($1::text[] IS NULL OR owner_commune = ANY($1))
            GROUP BY {group_sql}""", communes)
    return {str(r["key"]): [r["total"], r["confirmed"], r["rejected"], r["awaiting"]] for r in rows}


def python_deadlines(rows) -> tuple[list[int], list[int]]:
    """Notice deadline: [due, met, late, unsent at the end]; resolution: [due, met, late, warned]."""
    notice, resolution = [0, 0, 0, 0], [0, 0, 0, 0]
    for r in rows:
        owes = r["state"] not in ("rejected", "merged") and not (r["state"] == "resolved" and r["notified_at"] is None)
        due = r["violation_at"] + timedelta(days=DEADLINES.notice_within_days)
        if owes and START <= due < END:
            sent = r["notified_at"]
            notice[0] += 1
            notice[1 if sent is not None and sent <= due else 2] += 1
            notice[3] += sent is None or sent >= END
        if r["notified_at"] is not None:
            due = r["notified_at"] + timedelta(days=DEADLINES.warning_after_days)
            if START <= due < END:
                resolution[0] += 1
                resolution[1 if r["resolved_at"] is not None and r["resolved_at"] <= due else 2] += 1
                resolution[3] += r["warned_at"] is not None and r["warned_at"] < END
    return notice, resolution


def offline_seconds_in_week(camera: str) -> tuple[float, float]:
    """(seconds not online, seconds observed) in the week, from the scripted history alone."""
    events = sorted((e for e in CAMERA_HISTORY if e.camera_id == camera), key=lambda e: e.occurred_at)
    down = 0.0
    for event, following in zip(events, events[1:] + [None]):
        until = following.occurred_at if following else END
        lo, hi = max(event.occurred_at, START), min(until, END)
        if event.state != "online" and lo < hi:
            down += (hi - lo).total_seconds()
    observed = (END - max(START, events[0].occurred_at)).total_seconds()
    return down, observed


# --- the tests ------------------------------------------------------------------------------------------
async def test_weekly_report_matches_the_database(seeded: str) -> None:
    found, text, pdf, _ = await build(seeded, "ttdh-ubnd")
    folder = Path(__file__).resolve().parents[2] / "var" / "artifacts" / "portal"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bao-cao-so-ket.pdf").write_bytes(pdf)
    conn = await asyncpg.connect(seeded)
    try:
        by_type = await sql_violations(conn, "violation_type")
        by_camera = await sql_violations(conn, "camera_id")
        by_hour = await sql_violations(conn, "date_part('hour', violation_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::int")
        by_class = await sql_violations(conn, "vehicle_class")
        raw = await conn.fetch("SELECT state, violation_at, notified_at, resolved_at, warned_at FROM portal.cases")
        notices = await conn.fetch(
            "SELECT n.channel, n.outcome, n.occurred_at, c.violation_at FROM portal.notices n "
            "JOIN portal.cases c USING (case_id) WHERE n.kind = 'owner_notice'")
        traffic = await conn.fetch(
            "SELECT camera_id, lane, vehicle_class, sum(count) AS n FROM portal.vehicle_counts "
            "WHERE window_start >= '2026-11-16T00:00:00+07:00' AND window_start < '2026-11-23T00:00:00+07:00' "
            "GROUP BY 1, 2, 3")
        total = await conn.fetchval("SELECT count(*) FROM portal.cases WHERE violation_at >= $1 AND violation_at < $2",
                                    START, END)
        incidents_table = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'portal' AND table_name = 'incidents'")
    finally:
        await conn.close()
    assert total > 50 and len(by_type) == 5 and len(by_camera) == 3  # a week with something in every table

    # Violations by type, place, hour and vehicle class: CSV and PDF.
    for section, expected, label in (
        ("violations_by_type", by_type, lambda k: cases.VIOLATION_LABELS[k]),
        ("violations_by_camera", by_camera, lambda k: f"{k} {CAMERAS[k]}"),
        ("violations_by_hour", by_hour, lambda k: report_format.hour(int(k))),
        ("violations_by_vehicle_class", by_class, lambda k: cases.VEHICLE_LABELS[k]),
    ):
        in_csv = {key: [int(found[(section, key, "", m)]) for m in report_csv_measures()]
                  for (s, key, _, m) in found if s == section and m == "total"}
        assert in_csv == expected, section
        for key, figures_ in expected.items():
            assert pdf_numbers(text, label(key), 4) == figures_, (section, key)
    totals = [sum(v[i] for v in by_type.values()) for i in range(4)]
    assert totals[0] == total
    assert (f"Tổng số vi phạm camera phát hiện: {totals[0]}; đã xác nhận: {totals[1]}; đã loại bỏ: {totals[2]}; "
            f"đang chờ cán bộ xác minh: {totals[3]}.") in text

    # Deadlines: the notice within 10 days, the resolution within 20 days of it.
    notice, resolution = python_deadlines(raw)
    assert notice[1] and notice[2] and resolution[1] and resolution[2]  # met and missed, both deadlines
    assert [int(found[("notice_deadline", "", "", m)]) for m in ("due", "met", "late", "unsent_at_end")] == notice
    assert [int(found[("resolution_deadline", "", "", m)]) for m in ("due", "met", "late", "warned")] == resolution
    share = r" (?:\d+,\d %|–) "  # then the share met, then the note
    assert pdf_numbers(text, "Gửi thông báo (10 ngày từ khi vi phạm)", 3, share) == notice[:3]
    assert pdf_numbers(text, "Giải quyết (20 ngày từ khi thông báo)", 3, share) == resolution[:3]
    assert f"{report_format.share(notice[1], notice[0])} {notice[3]} vụ đến cuối kỳ chưa gửi" in text
    assert (f"Thông báo vi phạm (10 ngày): {notice[0]} vụ đến hạn, {notice[1]} đúng hạn, {notice[2]} quá hạn."
            in text)
    assert f"{resolution[3]} vụ đã cảnh báo đăng kiểm" in text.replace("\n", " ")

    channels: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for n in notices:
        if START <= n["occurred_at"] < END:
            row = channels[n["channel"]]
            if n["outcome"] == "sent":
                row[0] += 1
                row[1 if n["occurred_at"] <= n["violation_at"] + timedelta(days=10) else 2] += 1
            else:
                row[3] += 1
    assert {k: [int(found[("notices_by_channel", k, "", m)]) for m in ("sent", "on_time", "late", "failed")]
            for (s, k, _, m) in found if s == "notices_by_channel" and m == "sent"} == dict(channels)
    for channel, label in (("email", "Thư điện tử"), ("post", "Thư bưu chính"), ("sms", "Tin nhắn SMS")):
        assert pdf_numbers(text, label, 4) == channels[channel]

    # Incidents: without the board's table the report says there is no incident data; with it
    # (and no incident seeded here) the section is there and empty.
    assert found[("incidents", "", "", "available")] == str(incidents_table)
    assert ("Chưa có dữ liệu sự cố" in text) is (incidents_table == 0)

    # Camera uptime.
    for camera in CAMERAS:
        down, observed = offline_seconds_in_week(camera)
        online = float(found[("uptime_by_camera", camera, "", "online_s")])
        assert float(found[("uptime_by_camera", camera, "", "observed_s")]) == observed
        assert online == observed - down
        assert float(found[("uptime_by_camera", camera, "", "availability")]) == pytest.approx(online / observed, abs=1e-6)
        assert re.search(rf"^{camera} 7 ngày .* {re.escape(report_format.percent(online / observed))} 1$", text, re.M)
    days = {(k, sub) for (s, k, sub, m) in found if s == "uptime_by_day" and m == "observed_s"}
    assert len(days) == 3 * 7
    assert found[("uptime_by_day", "hp-cam-02", "2026-11-16", "offline_s")] == str(2.5 * 3600)
    outage = ("outages", "hp-cam-03", "2026-11-21T14:00:00+07:00")
    assert found[(*outage, "end")] == "" and found[(*outage, "state")] == "offline"
    flat = " ".join(text.split())
    assert "Mất tín hiệu Không kết nối được camera (connect failed: connection refused)" in flat
    assert "Tốc độ khung hình thấp hơn yêu cầu (source delivers 1.8 fps, below the target 5 fps)" in flat
    assert "còn tiếp sau cuối kỳ" in flat

    # Traffic by count line.
    expected_traffic = {(r["camera_id"], r["lane"], r["vehicle_class"]): r["n"] for r in traffic}
    assert {(k, sub, m): int(v) for (s, k, sub, m), v in found.items() if s == "traffic"} == expected_traffic
    lines = defaultdict(dict)
    for (camera, line, cls), n in expected_traffic.items():
        lines[(camera, line)][cls] = n
    for (camera, line), counts in lines.items():
        assert pdf_numbers(text, f"{camera} {line}", 4) == [counts["car"], counts["motorcycle"], counts["truck"],
                                                            sum(counts.values())]
    assert not [secret for secret in OWNER_SECRETS if secret in text] and "15A-" not in text  # aggregates only


def report_csv_measures() -> tuple[str, ...]:
    return ("total", "confirmed", "rejected", "awaiting_review")


async def test_incident_section_reads_the_table_once_it_exists(seeded: str) -> None:
    conn = await asyncpg.connect(seeded)
    try:
        await report_seed.seed_incidents(conn)
        rows = await conn.fetch("SELECT type, detected_at, acknowledged_at, closed_at FROM portal.incidents "
                                "WHERE detected_at >= $1 AND detected_at < $2", START, END)
    finally:
        await conn.close()
    found, text, _, _ = await build(seeded, "so-xay-dung")
    assert found[("incidents", "", "", "available")] == "1"
    by_type: dict[str, list] = defaultdict(list)
    for r in rows:
        by_type[r["type"]].append(r)
    assert {k for (s, k, _, m) in found if s == "incidents" and m == "incidents"} == set(by_type)
    for kind, items in by_type.items():
        acks = [(r["acknowledged_at"] - r["detected_at"]).total_seconds() for r in items if r["acknowledged_at"]]
        assert int(found[("incidents", kind, "", "incidents")]) == len(items)
        assert int(found[("incidents", kind, "", "acknowledged")]) == len(acks)
        assert int(found[("incidents", kind, "", "closed")]) == sum(1 for r in items if r["closed_at"])
        assert float(found[("incidents", kind, "", "ack_median_s")]) == pytest.approx(statistics.median(acks), abs=0.05)
    assert f"Sự cố giao thông phát hiện: {len(rows)}." in text


async def test_commune_police_report_covers_their_communes_only(seeded: str) -> None:
    commune = agency("ca-phuong-lach-tray")
    found, text, _, _ = await build(seeded, commune.id)
    conn = await asyncpg.connect(seeded)
    try:
        by_type = await sql_violations(conn, "violation_type", list(commune.communes))
        everything = await sql_violations(conn, "violation_type")
    finally:
        await conn.close()
    assert {k: int(found[("violations_by_type", k, "", "total")]) for (s, k, _, m) in found
            if s == "violations_by_type" and m == "total"} == {k: v[0] for k, v in by_type.items()}
    assert sum(v[0] for v in by_type.values()) < sum(v[0] for v in everything.values())
    assert not any(s in ("uptime_by_camera", "traffic", "incidents") for (s, *_rest) in found)
    assert "Hoạt động của camera" not in text and "Lưu lượng" not in text
    with pytest.raises(report_data.ReportRefused):
        report_data.scope_for(agency("cong-dan"))


async def test_command_line_rebuilds_the_same_report(seeded: str, repo_dir: Path, tmp_path: Path) -> None:
    """`roadwatch report` for the past week, run later, gives the same figures (only the time it
    was made differs); `roadwatch portal report` still writes one PDF."""
    expected, _, _, _ = await build(seeded, "hp-csgt")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "report", "--from", "2026-11-16", "--to", "2026-11-22",
        "--agency", "hp-csgt", "--out", str(tmp_path), "--database-url", seeded, cwd=repo_dir,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["bao-cao-so-ket-hp-csgt-20261116-20261122.csv", "bao-cao-so-ket-hp-csgt-20261116-20261122.pdf"]
    again = figures((tmp_path / written[0]).read_bytes())
    generated = ("report", "generated", "", "generated_at")
    assert datetime.fromisoformat(again.pop(generated)) > NOW
    expected.pop(generated)
    assert again == expected
    assert "Kỳ báo cáo: 16/11/2026 – 22/11/2026" in pdf_text((tmp_path / written[1]).read_bytes())

    single = tmp_path / "old" / "bao-cao.pdf"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "portal", "report", "--from", "2026-11-16", "--to", "2026-11-22",
        "--out", str(single), "--database-url", seeded, cwd=repo_dir, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    assert "BÁO CÁO TÌNH HÌNH VI PHẠM" in pdf_text(single.read_bytes())

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "report", "--agency", "nobody", "--database-url", seeded,
        cwd=repo_dir, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2 and "no agency 'nobody'" in err.decode()
    counted = Counter(k[0] for k in again)
    assert counted["violations_by_type"] and counted["traffic"] and counted["uptime_by_day"]
