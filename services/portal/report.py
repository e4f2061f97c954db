"""The periodic PDF report for the agencies' coordination meetings (Vietnamese, DejaVu fonts).

Served at /api/reports/summary.pdf for a period and written by `roadwatch portal report`, so
that a cron job (or a person) files the same document the meeting looks at on screen. Only
aggregates: no plate, no owner, so it may be handed to every agency at the table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime, timedelta
import logging
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web
from fpdf import FPDF

from services.portal import actions, anchors, cases, metrics, store
from services.portal.context import KEY

log = logging.getLogger("portal")

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
CAMERA_LABELS = {"online": "Hoạt động", "degraded": "Suy giảm", "offline": "Mất tín hiệu"}


def font_paths() -> tuple[Path, Path]:
    """DejaVu Sans (regular, bold) from the system (Debian: fonts-dejavu-core): it has every
    Vietnamese glyph; fonts are read at run time, never shipped in the repository."""
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    raise FileNotFoundError("DejaVuSans.ttf not found: install the Debian package fonts-dejavu-core")


@dataclass
class ReportData:
    start: datetime
    end: datetime  # exclusive
    generated_at: datetime
    by_type: list[dict[str, Any]] = field(default_factory=list)
    by_camera: list[dict[str, Any]] = field(default_factory=list)
    by_day: list[dict[str, Any]] = field(default_factory=list)
    counts: list[dict[str, Any]] = field(default_factory=list)
    cameras: list[dict[str, Any]] = field(default_factory=list)
    open_cases: int = 0
    holds: int = 0


async def gather(conn: asyncpg.Connection, start: datetime, end: datetime, tz_name: str) -> ReportData:
    tz = zoneinfo.ZoneInfo(tz_name)
    data = ReportData(start=start, end=end, generated_at=datetime.now(tz))
    data.by_type = await store.violations_by(conn, "type", start, end, tz_name)
    data.by_camera = await store.violations_by(conn, "camera", start, end, tz_name)
    data.by_day = await store.violations_by(conn, "day", start, end, tz_name)
    data.counts = await store.counts_by(conn, start, end, tz_name)
    data.cameras = await store.cameras(conn)
    data.open_cases = await conn.fetchval("SELECT count(*) FROM portal.cases WHERE state = ANY($1)", sorted(cases.OPEN))
    data.holds = len(await store.inspection_holds(conn))
    return data


class _Report(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("dejavu", size=8)
        self.cell(0, 6, f"roadwatch – báo cáo phục vụ giao ban liên ngành – trang {self.page_no()}/{{nb}}", align="C")


def _table(pdf: FPDF, title: str, header: list[str], rows: list[list[Any]], widths: list[int]) -> None:
    pdf.set_font("dejavu", "B", 11)
    pdf.cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("dejavu", "B", 8)
    for text, width in zip(header, widths):
        pdf.cell(width, 6, text, border=1)
    pdf.ln()
    pdf.set_font("dejavu", size=8)
    if not rows:
        pdf.cell(sum(widths), 6, "Không có dữ liệu trong kỳ.", border=1, new_x="LMARGIN", new_y="NEXT")
    for row in rows:
        for value, width in zip(row, widths):
            pdf.cell(width, 6, str(value)[:70], border=1)
        pdf.ln()
    pdf.ln(3)


def render(data: ReportData, tz_name: str) -> bytes:
    tz = zoneinfo.ZoneInfo(tz_name)
    regular, bold = font_paths()
    pdf = _Report(orientation="P", unit="mm", format="A4")
    pdf.set_title("Báo cáo vi phạm giao thông qua hình ảnh")
    pdf.set_creator("roadwatch portal")
    pdf.add_font("dejavu", "", str(regular))
    pdf.add_font("dejavu", "B", str(bold))
    pdf.alias_nb_pages()
    pdf.add_page()
    last_day = (data.end - timedelta(seconds=1)).astimezone(tz)
    pdf.set_font("dejavu", "B", 15)
    pdf.multi_cell(0, 8, "BÁO CÁO TÌNH HÌNH VI PHẠM TRẬT TỰ AN TOÀN GIAO THÔNG QUA HỆ THỐNG CAMERA", align="C",
                   new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("dejavu", size=10)
    pdf.cell(0, 7, f"Kỳ báo cáo: {data.start.astimezone(tz):%d/%m/%Y} – {last_day:%d/%m/%Y}", align="C",
             new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 6, f"Lập lúc {data.generated_at:%H:%M %d/%m/%Y}", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    total = sum(r["total"] for r in data.by_type)
    confirmed = sum(r["confirmed"] for r in data.by_type)
    rejected = sum(r["rejected"] for r in data.by_type)
    waiting = sum(r["awaiting_review"] for r in data.by_type)
    offline = sum(1 for c in data.cameras if c["state"] != "online")
    pdf.set_font("dejavu", "B", 11)
    pdf.cell(0, 8, "1. Tóm tắt", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("dejavu", size=10)
    for line in (
        f"Tổng số vi phạm camera phát hiện: {total}; đã xác nhận: {confirmed}; đã loại bỏ: {rejected}; "
        f"đang chờ cán bộ xác minh: {waiting}.",
        f"Vụ việc đang chờ chủ phương tiện giải quyết: {data.open_cases}; phương tiện bị cảnh báo đăng kiểm: {data.holds}.",
        f"Camera: {len(data.cameras)} đang theo dõi, {offline} không hoạt động bình thường.",
    ):
        pdf.multi_cell(0, 6, "• " + line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    stat_header = ["Tổng", "Đã xác nhận", "Đã loại bỏ", "Chờ xác minh"]

    def stat_rows(rows, label=lambda k: k):
        return [[label(r["key"]), r["total"], r["confirmed"], r["rejected"], r["awaiting_review"]] for r in rows]

    _table(pdf, "2. Vi phạm theo loại", ["Loại vi phạm", *stat_header],
           stat_rows(data.by_type, lambda k: cases.VIOLATION_LABELS.get(k, k)), [90, 20, 25, 25, 25])
    _table(pdf, "3. Vi phạm theo camera", ["Camera", *stat_header], stat_rows(data.by_camera), [90, 20, 25, 25, 25])
    _table(pdf, "4. Vi phạm theo ngày", ["Ngày", *stat_header], stat_rows(data.by_day), [90, 20, 25, 25, 25])
    per_camera: dict[str, int] = {}
    for row in data.counts:
        per_camera[row["camera_id"]] = per_camera.get(row["camera_id"], 0) + row["vehicles"]
    _table(pdf, "5. Lưu lượng phương tiện", ["Camera", "Số lượt phương tiện"],
           [[cam, n] for cam, n in sorted(per_camera.items())], [90, 50])
    _table(pdf, "6. Tình trạng camera", ["Camera", "Trạng thái", "Từ lúc", "Số lần đổi", "Ghi chú"],
           [[c["camera_id"], CAMERA_LABELS.get(c["state"], c["state"]), f"{c['state_since'].astimezone(tz):%H:%M %d/%m}",
             c["changes"], c["reason"]] for c in data.cameras], [50, 28, 28, 22, 57])
    return bytes(pdf.output())


async def serve(request: web.Request) -> web.Response:
    portal = request.app[KEY]
    actions.require(portal.user(request), "stats")
    tz = zoneinfo.ZoneInfo(portal.config.timezone)
    start, end = actions.parse_period(request.query.get("from"), request.query.get("to"), tz)
    async with portal.pool.acquire() as conn:
        data = await gather(conn, start, end, portal.config.timezone)
        if portal.anchor_key is not None:
            await anchor_with_report(portal.js, conn, portal.anchor_key, portal.config.audit_chain)
    body = await asyncio.get_running_loop().run_in_executor(None, render, data, portal.config.timezone)
    name = f"bao-cao-{start:%Y%m%d}-{(end - timedelta(days=1)):%Y%m%d}.pdf"
    return web.Response(body=body, content_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "no-store"})


async def anchor_with_report(js, conn: asyncpg.Connection, key, chain: str = anchors.CHAIN) -> None:
    """Each report fixes the audit chain's head as of its writing (a failure is logged, not fatal)."""
    try:
        await anchors.publish(js, conn, key, "report", chain=chain)
    except Exception as exc:  # noqa: BLE001 (NATS away: the interval anchors follow)
        metrics.AUDIT_ANCHOR_FAILURES.inc()
        log.warning("audit anchor with the report not published", extra={"fields": {"error": repr(exc)}})


def routes() -> list[web.RouteDef]:
    return [web.get("/api/reports/summary.pdf", serve)]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="roadwatch portal report",
                                     description="Write the periodic PDF report (last 7 days by default).")
    parser.add_argument("--from", dest="start", help="first local day, YYYY-MM-DD")
    parser.add_argument("--to", dest="end", help="last local day, YYYY-MM-DD (default: yesterday)")
    parser.add_argument("--out", required=True, type=Path, help="PDF file to write")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--timezone", default=os.environ.get("TIMEZONE", "Asia/Ho_Chi_Minh"))
    args = parser.parse_args(argv)
    if not args.database_url:
        print("roadwatch portal report: DATABASE_URL is not set", file=sys.stderr)
        return 2
    tz = zoneinfo.ZoneInfo(args.timezone)
    end = args.end or (datetime.now(tz).date() - timedelta(days=1)).isoformat()
    start = args.start or (datetime.fromisoformat(end).date() - timedelta(days=6)).isoformat()
    try:
        period = actions.parse_period(start, end, tz)
    except actions.ActionError as exc:
        print(f"roadwatch portal report: {exc.message}", file=sys.stderr)
        return 2

    key_file, nats_url = os.environ.get("AUDIT_ANCHOR_KEY_FILE"), os.environ.get("NATS_URL")
    try:
        key = anchors.load_key(key_file) if key_file else None
    except anchors.AnchorKeyError as exc:
        print(f"roadwatch portal report: {exc}", file=sys.stderr)
        return 2

    async def run() -> ReportData:
        conn = await asyncpg.connect(args.database_url)
        try:
            data = await gather(conn, *period, args.timezone)
            if key is not None and nats_url:
                import nats  # noqa: PLC0415

                nc = await nats.connect(nats_url, name="roadwatch-portal-report", connect_timeout=10)
                try:
                    await anchor_with_report(nc.jetstream(), conn, key, os.environ.get("AUDIT_CHAIN", anchors.CHAIN))
                finally:
                    await nc.close()
            return data
        finally:
            await conn.close()

    args.out.write_bytes(render(asyncio.run(run()), args.timezone))
    print(f"wrote {args.out}")
    return 0
