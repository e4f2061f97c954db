"""`roadwatch registry`: the service; `roadwatch registry import|synth ...`: its tools.

The service: violations detected → identified / unidentified (durable consumer `registry`),
detections → hotlist hits (durable consumer `registry-hotlist`), and the `lookup-owner`
request/reply endpoint (nats.micro service `registry`). All subscriptions are here.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from contextlib import AsyncExitStack

import asyncpg
from nats import micro
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from proto import codec, streams, subjects
from proto.v1 import DetectionMade, ViolationDetected, ViolationIdentified
from services.registry import hotlist, lookup, metrics, owners, store
from services.registry.settings import Settings
from services.runtime import bus, db, http, lifecycle
from services.runtime import metrics as runtime_metrics
from services.runtime.retry import Backoff, retry

SERVICE = "registry"
LOOKUP_OWNER = subjects.request(SERVICE, "lookup-owner")
log = logging.getLogger(SERVICE)
# Errors that mean "PostgreSQL is not there right now" (restart, failover), not "this is wrong".
DATABASE_DOWN = (OSError, asyncio.TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
                 asyncpg.exceptions.OperatorInterventionError)
DATABASE_BACKOFF = Backoff(initial_s=0.25, max_s=2.0)  # waits for PostgreSQL within DB_RETRY_S


class Registry:
    """The service's state between messages: the pool, the bus and the in-memory hotlist."""

    def __init__(self, pool: asyncpg.Pool, js: JetStreamContext, config: Settings) -> None:
        self.pool = pool
        self.js = js
        self.config = config
        self.hotlist = hotlist.Hotlist()
        self.recent = hotlist.Recent()
        self.hotlist_changed = asyncio.Event()
        self.http_port = 0  # bound port, once serving (HTTP_PORT=0 picks a free one)

    # --- violations -------------------------------------------------------------------------------
    async def on_violation(self, violation: ViolationDetected, msg: Msg) -> None:
        """Decide once per violation id, publish the recorded decision on every delivery.

        While PostgreSQL is unreachable the handler waits (up to DB_RETRY_S, under the consumer's
        ack_wait) instead of failing at once: the consumer then pauses on the message in hand
        rather than spending every message's bounded deliveries on a restart.
        """
        subject, event_id, payload = await self._with_database(lambda: self._decide(violation))
        # The recorded bytes, not a re-encoding: every delivery publishes exactly the same event.
        ack = await self.js.publish(subject, payload, headers={bus.MSG_ID: event_id})
        runtime_metrics.PUBLISHED.labels(SERVICE, "duplicate" if ack.duplicate else "stored").inc()

    async def _with_database(self, call):
        def waiting(exc: BaseException, delay: float) -> None:
            log.warning("database unavailable; waiting", extra={"fields": {"error": repr(exc)}})

        return await retry(call, backoff=DATABASE_BACKOFF, retry_on=DATABASE_DOWN, deadline_s=self.config.db_retry_s,
                           on_retry=waiting)

    async def _decide(self, violation: ViolationDetected) -> tuple[str, str, bytes]:
        outcome = await store.recorded(self.pool, violation.id)
        if outcome is not None:
            metrics.LOOKUPS.labels("replayed").inc()
        else:
            candidates = lookup.plates_to_look_up(violation)
            found = await store.find(self.pool, [c.plate for c in candidates])
            result = lookup.identify(violation, candidates, found)
            if isinstance(result, ViolationIdentified):
                metrics.LOOKUPS.labels(result.match).inc()
                for field in result.mismatches:
                    metrics.MISMATCHES.labels(field).inc()
                kind = "identified"
            else:
                metrics.LOOKUPS.labels("ambiguous" if result.candidates else result.reason).inc()
                kind = "unidentified"
            outcome = await store.record(self.pool, violation.id, kind, lookup.subject_for(result), result.id,
                                         codec.encode(result))
        return outcome

    # --- hotlist ----------------------------------------------------------------------------------
    async def on_detection(self, detection: DetectionMade, msg: Msg) -> None:
        for hit in hotlist.hits(detection, self.hotlist, self.config.hotlist_hit_window_s):
            if self.recent.seen(hit.id):
                continue
            await bus.publish(self.js, subjects.hotlist_hit(hit.camera_id), hit, service=SERVICE)
            self.recent.add(hit.id)
            metrics.HOTLIST_HITS.inc()
            log.info("hotlist hit", extra={"fields": {"camera": hit.camera_id, "plate": hit.plate, "id": hit.id}})

    async def reload_hotlist(self) -> None:
        self.hotlist = hotlist.Hotlist(await store.hotlist(self.pool))
        metrics.HOTLIST_SIZE.set(len(self.hotlist))

    async def keep_hotlist(self, stop: asyncio.Event) -> None:
        """Reload on NOTIFY registry_hotlist, and every HOTLIST_RELOAD_S as a safety net (a
        notification sent while PostgreSQL restarted is lost)."""
        listener: asyncpg.Connection | None = None
        while not stop.is_set():
            try:
                if listener is None or listener.is_closed():
                    listener = await asyncpg.connect(self.config.database_url, timeout=5)
                    await listener.add_listener("registry_hotlist", lambda *_: self.hotlist_changed.set())
                await self.reload_hotlist()
                metrics.HOTLIST_RELOADS.labels("ok").inc()
            except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
                metrics.HOTLIST_RELOADS.labels("failed").inc()
                log.warning("hotlist reload failed; keeping the previous one", extra={"fields": {"error": repr(exc)}})
                listener = None
            waits = [asyncio.create_task(stop.wait()), asyncio.create_task(self.hotlist_changed.wait())]
            timeout = self.config.hotlist_reload_s if listener is not None else min(self.config.hotlist_reload_s, 2.0)
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for task in waits:
                task.cancel()
            self.hotlist_changed.clear()
        if listener is not None and not listener.is_closed():
            await listener.close()


async def prune_lookups(pool: asyncpg.Pool, config: Settings, stop: asyncio.Event, every_s: float = 3600.0) -> None:
    """Hourly, forget outcomes older than LOOKUP_RETENTION_DAYS (they carry owner data)."""
    while not stop.is_set():
        try:
            metrics.LOOKUPS_PRUNED.inc(await store.prune_lookups(pool, config.lookup_retention_days))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("pruning lookups failed; next hour", extra={"fields": {"error": repr(exc)}})
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except asyncio.TimeoutError:
            pass


async def _schema_present(pool: asyncpg.Pool) -> bool:
    return await pool.fetchval("SELECT to_regclass('registry.lookups_decided_at') IS NOT NULL")


async def run(config: Settings, *, stop: asyncio.Event | None = None, ready: asyncio.Future | None = None,
              violations_consumer: streams.Consumer = streams.REGISTRY,
              detections_consumer: streams.Consumer = streams.REGISTRY_HOTLIST,
              lookup_subject: str = LOOKUP_OWNER) -> int:
    """Run until stopped. The keyword arguments after `stop` exist for tests, which share one
    nats-server and so need their own durable consumers and request subject."""
    stop = stop or lifecycle.stop_event()
    async with AsyncExitStack() as stack:
        pool = await db.create_pool(config.database_url, max_size=config.db_pool_size)
        stack.push_async_callback(pool.close)
        if not await _schema_present(pool):
            print("roadwatch registry: the registry schema is missing or not up to date in DATABASE_URL; "
                  "run `roadwatch migrate`",
                  file=sys.stderr)
            return 2
        nc, js = await bus.open_bus(stack, config.nats_url, SERVICE)
        registry = Registry(pool, js, config)
        await registry.reload_hotlist()

        endpoint = owners.Endpoint(lambda plates: store.find(pool, plates),
                                   lambda lines: store.audit_owner_lookups(pool, lines),
                                   max_batch=config.lookup_batch_max, workers=max(1, config.db_pool_size // 2))
        endpoint.start()
        stack.push_async_callback(endpoint.stop)
        service = await micro.add_service(
            nc, name=SERVICE, version="1.0.0",
            description="Vehicle and owner lookups (police only: owner personal data)")
        await service.add_endpoint(name="lookup-owner", subject=lookup_subject, handler=endpoint.handle)
        stack.push_async_callback(service.stop)

        runner, registry.http_port = await http.serve(
            config.http_port, {"nats": lambda: nc.is_connected, "database": lambda: db.pool_ready(pool)},
            draining=stop, host=config.http_host)
        stack.push_async_callback(runner.cleanup)

        # One violation in hand at a time: while PostgreSQL is away the handler waits on it, and
        # the others stay in the stream instead of ageing towards their ack_wait in our buffer.
        violations = bus.Consumer(js, service=SERVICE, consumer=violations_consumer,
                                  decode=bus.json_decoder(ViolationDetected), handle=registry.on_violation,
                                  batch=1)
        detections = bus.Consumer(js, service=SERVICE, consumer=detections_consumer,
                                  decode=bus.json_decoder(DetectionMade), handle=registry.on_detection,
                                  batch=64, fetch_timeout_s=0.5)
        tasks = [asyncio.create_task(violations.run(stop)), asyncio.create_task(detections.run(stop)),
                 asyncio.create_task(registry.keep_hotlist(stop)), asyncio.create_task(prune_lookups(pool, config, stop))]
        log.info("ready", extra={"fields": {"hotlist": len(registry.hotlist), "lookup_subject": lookup_subject}})
        if ready is not None:
            ready.set_result(registry)
        code = await lifecycle.until_stopped(stop, tasks)
    log.info("stopped")
    return code


def _tool(module: str):
    """A sub-tool imported only when it runs (the importer pulls in CSV and plate parsing)."""
    return lambda argv: importlib.import_module(module).main(argv)


TOOLS = {"import": _tool("services.registry.importer"), "synth": _tool("services.registry.synth")}


def main(argv: list[str] | None = None) -> int:
    return lifecycle.main(SERVICE, Settings, argv, tools=TOOLS, start=run)
