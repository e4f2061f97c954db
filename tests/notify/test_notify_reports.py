"""The coordination report by e-mail to a real SMTP server (aiosmtpd): on schedule (weekly and
monthly, once per period however many replicas tick, a failed send retried) and by hand with
`roadwatch report --send`. The attached CSV carries the same figures as the report built from
the database directly."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import msgspec
import pypdf
import pytest
from aiosmtpd.smtp import SMTP

from services.notify import config as notify_config, report_schedule
from services.notify.mail import Smtp
from services.portal import agencies, report
from services.portal.report_data import Deadlines
from services.portal.settings import EXAMPLE_AGENCIES
from services.runtime import migrations
from notify_servers import SmtpSink

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "portal"))  # the portal tests' synthetic week
import report_seed  # noqa: E402
from report_seed import ICT, TZ, WEEK  # noqa: E402

EXAMPLE = Path(notify_config.__file__).resolve().parent / "notify.example.yaml"


@pytest.fixture
async def seeded(database_url: str) -> str:
    await migrations.migrate(database_url, services=["portal", "notify"])
    conn = await asyncpg.connect(database_url)
    try:
        await report_seed.seed_cases(conn)
        await report_seed.seed_telemetry(conn)
    finally:
        await conn.close()
    return database_url


def rules() -> notify_config.Config:
    return notify_config.load(EXAMPLE)


def csv_figures(body: bytes) -> dict:
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))[1:]
    return {(s, k, sub, m): v for s, k, sub, _label, m, v in rows if (s, k, m) != ("report", "generated", "generated_at")}


async def test_weekly_and_monthly_reports_reach_the_smtp_server(seeded: str) -> None:
    config = rules()
    directory = agencies.load(EXAMPLE_AGENCIES)
    smtp = await SmtpSink().start()
    pool = await asyncpg.create_pool(seeded, min_size=1, max_size=4)
    try:
        server = Smtp(host="127.0.0.1", port=smtp.port)
        # Monday 23 November 07:29: the weekly reports are not due yet; October's monthly ones (due
        # since 1 November, never sent: a fresh database) go out.
        assert await report_schedule.tick(pool, config, directory, server, datetime(2026, 11, 23, 7, 29, tzinfo=ICT)) == 2
        assert sorted(m.rcpt[0] for m in smtp.mails) == ["giaoban.ttdh@haiphong.gov.vn", "vanphong.sxd@haiphong.gov.vn"]
        # 07:31: the weeks of ttdh-ubnd and hp-csgt (Mon 16 – Sun 22); three replicas tick at once.
        now = datetime(2026, 11, 23, 7, 31, tzinfo=ICT)
        sent = await asyncio.gather(*(report_schedule.tick(pool, config, directory, server, now) for _ in range(3)))
        assert sum(sent) == 2 and len(smtp.mails) == 4
        assert await report_schedule.tick(pool, config, directory, server, now.replace(hour=9)) == 0

        (mail,) = [m for m in smtp.to("giaoban.ttdh@haiphong.gov.vn") if "tuần" in m.message["Subject"]]
        assert mail.message["Subject"] == ("Báo cáo sơ kết tuần từ 16/11/2026 đến 22/11/2026 – "
                                           "hệ thống camera giám sát giao thông")
        assert "Kính gửi Trung tâm điều hành – Văn phòng UBND thành phố," in mail.body
        names = [name for name, _ in mail.attachments]
        assert names == ["bao-cao-so-ket-ttdh-ubnd-20261116-20261122.pdf", "bao-cao-so-ket-ttdh-ubnd-20261116-20261122.csv"]
        attached = dict(mail.attachments)
        conn = await asyncpg.connect(seeded)
        try:
            agency = next(a for a in directory.agencies if a.id == "ttdh-ubnd")
            direct = await report.build(conn, agency, *WEEK, TZ, msgspec.convert(
                msgspec.to_builtins(config.deadlines), Deadlines), now)
            runs = await conn.fetch("SELECT agency, every, period_start, status, attempts, recipients "
                                    "FROM notify.report_runs ORDER BY agency")
        finally:
            await conn.close()
        assert csv_figures(attached[names[1]]) == csv_figures(report.render(direct, ("csv",))[names[1]])
        totals = direct.totals
        assert f"Tổng số vi phạm camera phát hiện: {totals['total']};" in mail.body
        text = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(attached[names[0]])).pages)
        assert "Kỳ báo cáo: 16/11/2026 – 22/11/2026" in text and f"phát hiện: {totals['total']};" in text
        assert sorted((r["agency"], r["every"], str(r["period_start"]), r["status"], r["attempts"]) for r in runs) == [
            ("hp-csgt", "week", "2026-11-16", "sent", 1), ("so-xay-dung", "month", "2026-10-01", "sent", 1),
            ("ttdh-ubnd", "month", "2026-10-01", "sent", 1), ("ttdh-ubnd", "week", "2026-11-16", "sent", 1)]

        # Tuesday 1 December: November's monthly reports (ttdh-ubnd, so-xay-dung) and the weekly ones of
        # 23–29 November; the mail server is down at the first try, and they are retried after the backoff.
        december = datetime(2026, 12, 1, 8, 0, tzinfo=ICT)
        await smtp.stop()
        await asyncio.sleep(0.1)
        assert await report_schedule.tick(pool, config, directory, server, december) == 0
        smtp.server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(smtp, hostname="smtp.test", enable_SMTPUTF8=True), "127.0.0.1", smtp.port)
        assert await report_schedule.tick(pool, config, directory, server, december) == 0  # not before the backoff
        later = december + timedelta(seconds=config.retry.base_s + 1)
        assert await report_schedule.tick(pool, config, directory, server, later) == 4
        conn = await asyncpg.connect(seeded)
        try:
            retried = await conn.fetch("SELECT status, attempts, last_error FROM notify.report_runs "
                                       "WHERE period_start >= '2026-11-01' AND period_end > '2026-11-22'")
        finally:
            await conn.close()
        assert len(retried) == 4 and all(r["status"] == "sent" and r["attempts"] == 2 for r in retried)
        november = [m for m in smtp.to("vanphong.sxd@haiphong.gov.vn")
                    if m.message["Subject"].startswith("Báo cáo sơ kết tháng từ 01/11/2026 đến 30/11/2026")]
        assert len(november) == 1 and len(smtp.mails) == 8
    finally:
        await pool.close()
        await smtp.stop()


async def test_report_command_sends_to_the_configured_recipients(seeded: str, repo_dir: Path, tmp_path: Path) -> None:
    smtp = await SmtpSink().start()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "report", "--from", "2026-11-16", "--to", "2026-11-22",
            "--agency", "so-xay-dung", "--format", "pdf", "--out", str(tmp_path), "--send", "--database-url", seeded,
            cwd=repo_dir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(repo_dir), "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port)})
        out, err = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0, err.decode()
        assert "sent to vanphong.sxd@haiphong.gov.vn" in out.decode()
        (mail,) = smtp.mails
        assert mail.rcpt == ["vanphong.sxd@haiphong.gov.vn"]
        assert mail.message["Subject"] == "Báo cáo sơ kết kỳ từ 16/11/2026 đến 22/11/2026 – hệ thống camera giám sát giao thông"
        ((name, body),) = mail.attachments
        assert name == "bao-cao-so-ket-so-xay-dung-20261116-20261122.pdf"
        assert body == (tmp_path / name).read_bytes()
    finally:
        await smtp.stop()
