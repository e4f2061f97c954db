"""The coordination report (sơ kết) per agency and period, PDF and CSV: served to the portal's
users, written by `roadwatch report` for any past period, and mailed on schedule by notify.

    roadwatch report --from 2026-11-16 --to 2026-11-22 --agency ttdh-ubnd [--format pdf|csv|both]
                     [--out DIR] [--send]

`roadwatch portal report` is the same command (older name; `--out FILE.pdf` still writes one file).
The figures are in report_data.py, the layouts in report_pdf.py and report_csv.py.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import zoneinfo
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
from aiohttp import web

from services.portal import actions, agencies, anchors, metrics, report_csv, report_data, report_pdf
from services.portal.context import KEY
from services.portal.report_data import Deadlines, ReportData
from services.portal.settings import EXAMPLE_AGENCIES, EXAMPLE_NOTIFY_CONFIG

log = logging.getLogger("portal")

FORMATS = ("pdf", "csv")
CONTENT_TYPES = {"pdf": "application/pdf", "csv": "text/csv; charset=utf-8"}


def file_name(data: ReportData, kind: str) -> str:
    tz = zoneinfo.ZoneInfo(data.timezone)
    last = (data.end - timedelta(seconds=1)).astimezone(tz)
    agency = f"-{data.scope.agency_id}" if data.scope.agency_id else ""
    return f"bao-cao-so-ket{agency}-{data.start.astimezone(tz):%Y%m%d}-{last:%Y%m%d}.{kind}"


def render(data: ReportData, kinds: tuple[str, ...] = FORMATS) -> dict[str, bytes]:
    """File name -> content, for each format asked."""
    writers = {"pdf": report_pdf.render, "csv": report_csv.render}
    return {file_name(data, kind): writers[kind](data) for kind in kinds}


async def build(conn: asyncpg.Connection, agency: agencies.Agency | None, start: datetime, end: datetime,
                tz_name: str, deadlines: Deadlines, now: datetime | None = None) -> ReportData:
    """The figures for `agency` (None: the full report) over [start, end)."""
    scope = report_data.scope_for(agency)
    return await report_data.gather(conn, scope, start, end, tz_name, deadlines, now or datetime.now(timezone.utc))


# --- HTTP -----------------------------------------------------------------------------------------
async def serve(request: web.Request) -> web.Response:
    portal = request.app[KEY]
    user = actions.require(portal.user(request), "stats")
    kind = request.match_info["kind"]
    tz = zoneinfo.ZoneInfo(portal.config.timezone)
    start, end = actions.parse_period(request.query.get("from"), request.query.get("to"), tz)
    deadlines = report_data.load_deadlines(portal.config.notify_config)
    async with portal.pool.acquire() as conn:
        data = await build(conn, user.agency, start, end, portal.config.timezone, deadlines)
        if portal.anchor_key is not None:
            await anchor_with_report(portal.js, conn, portal.anchor_key, portal.config.audit_chain)
    ((name, body),) = (await asyncio.get_running_loop().run_in_executor(None, render, data, (kind,))).items()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPES[kind], "Cache-Control": "no-store",
                                            "Content-Disposition": f'inline; filename="{name}"'})


async def anchor_with_report(js, conn: asyncpg.Connection, key, chain: str = anchors.CHAIN) -> None:
    """Each report fixes the audit chain's head as of its writing (a failure is logged, not fatal)."""
    try:
        await anchors.publish(js, conn, key, "report", chain=chain)
    except Exception as exc:  # noqa: BLE001 (NATS away: the interval anchors follow)
        metrics.AUDIT_ANCHOR_FAILURES.inc()
        log.warning("audit anchor with the report not published", extra={"fields": {"error": repr(exc)}})


def routes() -> list[web.RouteDef]:
    return [web.get(r"/api/reports/summary.{kind:pdf|csv}", serve)]


# --- command line -----------------------------------------------------------------------------------
def parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Write the coordination report (sơ kết) of an agency for a period, from the database "
                               "(any past period); --send mails it to the agency's recipients in NOTIFY_CONFIG.")
    p.add_argument("--from", dest="start", help="first local day, YYYY-MM-DD (default: the 7 days ending --to)")
    p.add_argument("--to", dest="end", help="last local day, YYYY-MM-DD (default: yesterday)")
    p.add_argument("--agency", help="agency id in AGENCIES_FILE (its scope and sections); omitted: the full report")
    p.add_argument("--format", choices=("pdf", "csv", "both"), default="both")
    p.add_argument("--out", type=Path, default=Path("."),
                   help="folder to write to (default: .); a path ending in .pdf or .csv writes that one file")
    p.add_argument("--send", action="store_true", help="also e-mail it (SMTP_* settings, recipients and wording "
                                                       "from NOTIFY_CONFIG reports:)")
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    p.add_argument("--timezone", default=os.environ.get("TIMEZONE", "Asia/Ho_Chi_Minh"))
    p.add_argument("--agencies-file", default=os.environ.get("AGENCIES_FILE", EXAMPLE_AGENCIES))
    p.add_argument("--notify-config", default=os.environ.get("NOTIFY_CONFIG", EXAMPLE_NOTIFY_CONFIG),
                   help="where the deadlines (and, for --send, recipients and wording) are")
    return p


def main(argv: list[str], prog: str = "roadwatch report") -> int:
    args = parser(prog).parse_args(argv)

    def fail(message: str) -> int:
        print(f"{prog}: {message}", file=sys.stderr)
        return 2

    if not args.database_url:
        return fail("DATABASE_URL is not set")
    tz = zoneinfo.ZoneInfo(args.timezone)
    end = args.end or (datetime.now(tz).date() - timedelta(days=1)).isoformat()
    try:
        start = args.start or (datetime.fromisoformat(end).date() - timedelta(days=6)).isoformat()
        period = actions.parse_period(start, end, tz)
    except (ValueError, actions.ActionError) as exc:
        return fail(getattr(exc, "message", str(exc)))
    try:
        directory = agencies.load(args.agencies_file)
    except agencies.AgencyFileError as exc:
        return fail(f"invalid agencies file {exc}")
    agency = None
    if args.agency:
        agency = next((a for a in directory.agencies if a.id == args.agency), None)
        if agency is None:
            return fail(f"no agency {args.agency!r} in {args.agencies_file}")
    elif args.send:
        return fail("--send needs --agency (the recipients are per agency)")
    try:
        report_data.scope_for(agency)
        deadlines = report_data.load_deadlines(args.notify_config)
    except (report_data.ReportRefused, OSError, ValueError) as exc:
        return fail(str(exc))
    kinds = FORMATS if args.format == "both" else (args.format,)
    single = args.out.suffix in (".pdf", ".csv")
    if single:
        kinds = (args.out.suffix[1:],)
    key_file, nats_url = os.environ.get("AUDIT_ANCHOR_KEY_FILE"), os.environ.get("NATS_URL")
    try:
        key = anchors.load_key(key_file) if key_file else None
    except anchors.AnchorKeyError as exc:
        return fail(str(exc))

    async def run() -> ReportData:
        conn = await asyncpg.connect(args.database_url)
        try:
            data = await build(conn, agency, *period, args.timezone, deadlines)
            if key is not None and nats_url:
                import nats  # noqa: PLC0415

                nc = await nats.connect(nats_url, name="roadwatch-report", connect_timeout=10)
                try:
                    await anchor_with_report(nc.jetstream(), conn, key, os.environ.get("AUDIT_CHAIN", anchors.CHAIN))
                finally:
                    await nc.close()
            return data
        finally:
            await conn.close()

    data = asyncio.run(run())
    files = render(data, kinds)
    if single:
        ((_, body),) = files.items()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(body)
        print(f"wrote {args.out}")
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, body in files.items():
            (args.out / name).write_bytes(body)
            print(f"wrote {args.out / name}")
    if args.send:
        from services.notify import report_mail  # noqa: PLC0415 (the mailer and its settings are notify's)

        return report_mail.send_from_command_line(data, files, args.notify_config, args.agencies_file, prog)
    return 0
