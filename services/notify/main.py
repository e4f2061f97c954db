"""`roadwatch notify`: case events → notices, deadlines and webhooks; incidents → alerts.

Tasks: the CASES consumer (records what is owed), the INCIDENTS consumer (records the alerts
owed), the sender (delivers notices and alerts), the deadline scheduler, the outbox publisher
(notice.sent / notice.failed) and the subscriber webhooks. They share nothing but PostgreSQL, so
any number of replicas may run. All subscriptions are here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import shutil
import sys
import tempfile
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path

import aiohttp
import msgspec

from proto import streams
from services.notify import config as notify_config
from services.notify import (cases, incidents, letter, mail, metrics, outbox, report_schedule, scheduler, store,
                             subscribers)
from services.notify.sender import Sender, utc_now
from services.notify.settings import Settings
from services.runtime import bus, db, http, lifecycle, migrations

SERVICE = "notify"
log = logging.getLogger(SERVICE)


def consumer_spec(config: Settings) -> streams.Consumer:
    return streams.Consumer(
        name=config.consumer_name, stream=streams.NOTIFY.stream, filter_subjects=tuple(config.consumer_filter),
        # A case event waits for an owner lookup, evidence and PDF rendering, never for a send.
        ack_wait_s=config.ack_wait_s, max_deliver=streams.NOTIFY.max_deliver, max_ack_pending=streams.NOTIFY.max_ack_pending)


def incident_consumer_spec(config: Settings) -> streams.Consumer:
    return msgspec.structs.replace(streams.NOTIFY_INCIDENTS, name=config.incident_consumer_name,
                                   filter_subjects=tuple(config.incident_consumer_filter))


async def _gauge(pool, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            counts = await store.counts(pool)
            metrics.PENDING.set(counts.get("pending", 0) + counts.get("sending", 0))
        except Exception as exc:  # metrics must never stop the service
            log.debug("gauge update failed", extra={"fields": {"error": repr(exc)}})
        try:
            await asyncio.wait_for(stop.wait(), 5.0)
        except asyncio.TimeoutError:
            pass


async def run(config: Settings, rules: notify_config.Config, *, stop: asyncio.Event | None = None,
              ready: asyncio.Future | None = None, clock: Callable[[], datetime] = utc_now) -> int:
    """Run until stopped. `clock` is injectable so that tests can move time across legal deadlines."""
    stop = stop or lifecycle.stop_event()
    async with AsyncExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="roadwatch-notify-"))
        stack.callback(shutil.rmtree, work, True)
        fonts = await asyncio.to_thread(
            letter.Fonts(regular=Path(config.font_path), bold=Path(config.font_bold_path)).prepare, work)
        if config.migrate_on_start:
            try:
                await migrations.migrate(config.database_url, services=[SERVICE])
            except migrations.MigrationError as exc:
                print(f"roadwatch notify: {exc}", file=sys.stderr)
                return 2
        pool = await db.create_pool(config.database_url, max_size=config.db_pool_size)
        stack.push_async_callback(pool.close)
        if not await store.schema_present(pool):
            print("roadwatch notify: the notify schema is missing in DATABASE_URL; run `roadwatch migrate`",
                  file=sys.stderr)
            return 2
        nc, js = await bus.open_bus(stack, config.nats_url, SERVICE)
        session = aiohttp.ClientSession()
        stack.push_async_callback(session.close)

        sender = Sender(
            pool, rules, session, smtp=mail.Smtp(host=config.smtp_host, port=config.smtp_port,
                                                 username=config.smtp_username, password=config.smtp_password,
                                                 tls=config.smtp_tls, timeout_s=config.smtp_timeout_s),
            sms_url=config.sms_gateway_url, sms_token=config.sms_gateway_token, spool_dir=config.post_spool_dir,
            clock=clock, concurrency=config.send_concurrency, lease_s=config.lease_s)
        renderer = None
        if config.render_processes:
            # spawn, not fork: a forked child would inherit the event loop and NATS sockets.
            renderer = concurrent.futures.ProcessPoolExecutor(
                config.render_processes, mp_context=multiprocessing.get_context("spawn"),
                initializer=letter.worker_init)
            stack.callback(renderer.shutdown, wait=True, cancel_futures=True)
        handler = cases.Cases(pool, nc, rules, fonts=fonts, lookup_subject=config.registry_lookup_subject,
                              lookup_timeout_s=config.registry_timeout_s, evidence_max=config.evidence_images_max,
                              clock=clock, on_notices=sender.wake.set, renderer=renderer)
        webhooks_wake, publish_wake = asyncio.Event(), asyncio.Event()
        await handler.release_held()

        def on_events() -> None:
            publish_wake.set()
            webhooks_wake.set()

        sender.on_events = on_events

        runner, _ = await http.serve(
            config.http_port, {"nats": lambda: nc.is_connected, "database": lambda: db.pool_ready(pool)},
            draining=stop, host=config.http_host)
        stack.push_async_callback(runner.cleanup)

        # Several pull loops on the one durable consumer: each message is still handled, acked or
        # dead-lettered on its own, but one case's registry round trip or letter no longer
        # holds up the next.
        # The durable exists before we say ready (its loops would create it a moment later), so
        # that what watches it right after the start finds it.
        case_spec = consumer_spec(config)
        await bus.ensure_consumer(js, case_spec)
        consumers = [bus.Consumer(js, service=SERVICE, consumer=case_spec, decode=cases.decode,
                                  handle=handler.handle, batch=4) for _ in range(config.case_workers)]
        # Incidents: recording one is an insert, so one loop keeps up; the durable starts at "new"
        # and is created here, before we say ready, so that no incident published after start is missed.
        alert_handler = incidents.Incidents(pool, rules, clock=clock, on_notices=sender.wake.set)
        incident_spec = incident_consumer_spec(config)
        await bus.ensure_consumer(js, incident_spec)
        consumers.append(bus.Consumer(js, service=SERVICE, consumer=incident_spec, decode=incidents.decode,
                                      handle=alert_handler.handle, batch=16))
        publish_stop = asyncio.Event()

        async def publisher() -> None:
            await outbox.run(pool, js, clock, publish_stop, publish_wake, config.poll_interval_s)

        tasks = [
            *(asyncio.create_task(consumer.run(stop), name=f"consumer-{n}") for n, consumer in enumerate(consumers)),
            asyncio.create_task(sender.run(stop, config.poll_interval_s), name="sender"),
            asyncio.create_task(scheduler.run(pool, rules, clock, stop, config.poll_interval_s, sender.wake.set),
                                name="scheduler"),
            asyncio.create_task(subscribers.run(pool, rules, session, clock, stop, webhooks_wake,
                                                config.poll_interval_s), name="webhooks"),
            asyncio.create_task(_gauge(pool, stop), name="gauge"),
        ]
        if config.reports_enabled and rules.reports.schedules:
            from services.portal import agencies  # noqa: PLC0415 (the portal owns the agencies file)

            tasks.append(asyncio.create_task(report_schedule.run(
                pool, rules, agencies.load(config.agencies_file), sender.smtp, clock, stop,
                config.report_interval_s), name="reports"))
        publisher_task = asyncio.create_task(publisher(), name="publisher")
        log.info("ready", extra={"fields": {
            "consumer": config.consumer_name, "incident_consumer": config.incident_consumer_name,
            "units": list(rules.units), "subscribers": [s.name for s in rules.webhooks],
            "alert_recipients": [r.name for r in rules.incident_alerts.recipients] if rules.incident_alerts else []}})
        if ready is not None:
            ready.set_result(handler)
        code = await lifecycle.until_stopped(stop, tasks)
        publish_stop.set()  # last round: what was sent before the stop is announced before exit
        await asyncio.gather(publisher_task, return_exceptions=True)
    log.info("stopped")
    return code


def main(argv: list[str] | None = None) -> int:
    return lifecycle.main(SERVICE, Settings, argv, start=lambda config: run(
        config, notify_config.load_or_exit(config.notify_config, SERVICE, agencies_file=config.agencies_file)))
