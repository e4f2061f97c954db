"""The coordination report on schedule: after each week (Monday–Sunday) or calendar month, at the
configured local time of the day after, each agency in NOTIFY_CONFIG `reports.schedules` gets its
report by e-mail.

Here rather than in the portal because notify already has both halves: a PostgreSQL-polled
scheduler that any number of replicas run safely (a period is claimed with one INSERT … ON
CONFLICT, as deadlines are with SKIP LOCKED) and a mailer with its SMTP settings, sender and
retries. The report's figures are the portal's (services/portal/report.py reads the portal's
tables in the same database); notify adds neither a table of them nor a copy of the queries.

Only the last complete period is due: after a long outage of notify an older period is sent with
`roadwatch report --send`. A failed send is retried with the notices' backoff (`retry:`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import date, datetime, time, timedelta

import asyncpg

from services.notify import mail, report_mail, store
from services.notify.config import Config, ReportSchedule
from services.notify.outcome import DeliveryError
from services.portal import agencies, report
from services.portal.report_data import Deadlines

log = logging.getLogger("notify.reports")

CLAIM = """
INSERT INTO notify.report_runs AS r (agency, every, period_start, period_end, status, attempts, claimed_at)
VALUES ($1, $2, $3, $4, 'sending', 1, $5)
ON CONFLICT (agency, every, period_start) DO UPDATE SET status = 'sending', attempts = r.attempts + 1, claimed_at = $5
WHERE (r.status = 'failed' AND r.next_attempt_at <= $5)
   OR (r.status = 'sending' AND r.claimed_at < $5 - make_interval(secs => $6))
RETURNING attempts
"""


def last_period(every: str, today: date) -> tuple[date, date]:
    """The last complete week (Monday–Sunday) or month before `today`, as (first day, last day)."""
    if every == "week":
        monday = today - timedelta(days=today.weekday())
        return monday - timedelta(days=7), monday - timedelta(days=1)
    first_of_month = today.replace(day=1)
    last = first_of_month - timedelta(days=1)
    return last.replace(day=1), last


def due(schedule: ReportSchedule, now: datetime, config: Config) -> tuple[date, date] | None:
    """The period to send now, if its sending time has come."""
    local = now.astimezone(config.tz)
    first, last = last_period(schedule.every, local.date())
    hour, minute = (int(part) for part in schedule.at.split(":"))
    return (first, last) if local >= datetime.combine(last + timedelta(days=1), time(hour, minute), config.tz) else None


async def tick(pool: asyncpg.Pool, config: Config, directory: agencies.Directory, smtp: mail.Smtp, now: datetime,
               lease_s: float = 600.0) -> int:
    """Send every report that is due and not yet sent (or whose last try failed and may be
    retried); returns how many were sent."""
    sent = 0
    for schedule in config.reports.schedules:
        period = due(schedule, now, config)
        if period is None:
            continue
        async with pool.acquire() as conn:
            attempts = await conn.fetchval(CLAIM, schedule.agency, schedule.every, *period, now, lease_s)
        if attempts is None:
            continue  # sent already, or another replica has it
        try:
            await _send(pool, config, directory, smtp, schedule, period, now)
        except (DeliveryError, *store.TRANSIENT) as exc:
            delay = min(config.retry.base_s * 2 ** (attempts - 1), config.retry.max_s)
            final = getattr(exc, "permanent", False) or attempts >= config.retry.attempts
            async with pool.acquire() as conn:
                await conn.execute(
                    "UPDATE notify.report_runs SET status = 'failed', next_attempt_at = $4, last_error = $5 "
                    "WHERE agency = $1 AND every = $2 AND period_start = $3",
                    schedule.agency, schedule.every, period[0], None if final else now + timedelta(seconds=delay),
                    str(exc)[:500])
            log.warning("report not sent" + ("" if final else "; will retry"), extra={"fields": {
                "agency": schedule.agency, "every": schedule.every, "period": str(period[0]), "error": repr(exc)}})
            continue
        sent += 1
    return sent


async def _send(pool: asyncpg.Pool, config: Config, directory: agencies.Directory, smtp: mail.Smtp,
                schedule: ReportSchedule, period: tuple[date, date], now: datetime) -> None:
    agency = next((a for a in directory.agencies if a.id == schedule.agency), None)
    if agency is None:
        raise DeliveryError(f"agency {schedule.agency} is not in the agencies file", permanent=True)
    start = datetime.combine(period[0], time(), config.tz)
    end = datetime.combine(period[1] + timedelta(days=1), time(), config.tz)
    deadlines = Deadlines(notice_within_days=config.deadlines.notice_within_days,
                          respond_within_days=config.deadlines.respond_within_days,
                          warning_after_days=config.deadlines.warning_after_days)
    async with pool.acquire() as conn:
        data = await report.build(conn, agency, start, end, config.timezone, deadlines, now)
    files = await asyncio.get_running_loop().run_in_executor(None, report.render, data, config.reports.formats)
    recipients = config.reports.recipients[schedule.agency]
    await mail.send(smtp, report_mail.compose(config, data, files, recipients, schedule.every, now))
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE notify.report_runs SET status = 'sent', sent_at = $4, recipients = $5, last_error = '' "
            "WHERE agency = $1 AND every = $2 AND period_start = $3",
            schedule.agency, schedule.every, period[0], now, list(recipients))
    log.info("report sent", extra={"fields": {"agency": schedule.agency, "every": schedule.every,
                                              "period": f"{period[0]}..{period[1]}", "to": list(recipients)}})


async def run(pool: asyncpg.Pool, config: Config, directory: agencies.Directory, smtp: mail.Smtp,
              clock: Callable[[], datetime], stop: asyncio.Event, interval_s: float = 60.0) -> None:
    while not stop.is_set():
        try:
            await tick(pool, config, directory, smtp, clock())
        except Exception as exc:  # noqa: BLE001 - a report must never stop notices; the next tick retries
            log.warning("report tick failed", extra={"fields": {"error": repr(exc)}})
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except asyncio.TimeoutError:
            pass
