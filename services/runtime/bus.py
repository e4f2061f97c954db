"""NATS JetStream: connect, provision streams, publish with ids, and the pull-consumer loop.

The loop's contract (DESIGN.md §2): ack only after the handler's side effect is done; a message
that cannot be decoded or is invalid is terminated and a copy goes to `traffic.dlq.<service>`
with the reason; a transient failure is nak'ed with a growing delay; after `max_deliver`
attempts the message goes to the dead letters too, so nothing is ever silently dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from datetime import datetime, timezone
from typing import Any, TypeVar

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import api

from proto import codec, ids, streams, subjects
from proto.v1 import DeadLetter
from services.runtime import metrics
from services.runtime.retry import Backoff, retry

log = logging.getLogger(__name__)

T = TypeVar("T")

MSG_ID = "Nats-Msg-Id"
# Connecting at start: NATS may still be starting (make run, a rolling restart).
CONNECT_BACKOFF = Backoff(initial_s=0.2, max_s=2.0)
CONNECT_ERRORS = (OSError, nats.errors.Error, asyncio.TimeoutError)
NAK_BACKOFF = Backoff(initial_s=2.0, max_s=60.0)  # redelivery of a transient failure: 2, 4, 8 ... 60 s
# A dead letter must fit in one NATS message; a bigger payload is referenced by stream sequence.
DEAD_LETTER_PAYLOAD_LIMIT = 512 * 1024
# How often a publish waiting for its ack looks whether its connection is still there.
CONNECTION_CHECK_S = 0.1


class Invalid(Exception):
    """Raised by a decode function or handler for a message that will never succeed."""


# --- connection ------------------------------------------------------------------------------------
def redact_url(url: str) -> str:
    """NATS_URL without its passwords (it carries the service's user, as on Kubernetes), for logs."""
    return re.sub(r"(://[^:/@,]+):[^@/,]+@", r"\1:***@", url)


async def connect(url: str, name: str, *, connect_timeout_s: float = 30.0, **options: Any) -> NATS:
    """Connect, retrying while NATS starts (make run, a rolling restart); reconnect forever after."""

    async def on_error(exc: Exception) -> None:
        log.warning("nats error", extra={"fields": {"error": repr(exc)}})

    async def on_disconnected() -> None:
        log.warning("nats disconnected")

    async def on_reconnected() -> None:
        log.info("nats reconnected")

    def attempt() -> Awaitable[NATS]:
        return nats.connect(
            servers=[server.strip() for server in url.split(",")],
            name=name,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            connect_timeout=2,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
            **options,
        )

    def waiting(exc: BaseException, delay: float) -> None:
        log.info("waiting for nats", extra={"fields": {"url": redact_url(url), "error": repr(exc)}})

    try:
        return await retry(attempt, backoff=CONNECT_BACKOFF, retry_on=CONNECT_ERRORS, deadline_s=connect_timeout_s,
                           on_retry=waiting)
    except CONNECT_ERRORS as exc:
        raise ConnectionError(f"cannot connect to NATS at {redact_url(url)}: {exc!r}") from exc


async def drain(nc: NATS, timeout_s: float = 10.0) -> None:
    """Drain on shutdown: flush what was published, ack what was handled; if NATS is already
    gone (it stopped first), close instead: what was not acked is redelivered to another replica."""
    try:
        await asyncio.wait_for(nc.drain(), timeout_s)
    except (nats.errors.Error, asyncio.TimeoutError, OSError) as exc:
        log.info("drain incomplete; closing", extra={"fields": {"error": repr(exc)}})
        await nc.close()



async def open_bus(stack: AsyncExitStack, url: str, name: str,
                   wanted: Iterable[streams.Stream] = streams.ALL) -> tuple[NATS, JetStreamContext]:
    """A service's start on the bus: connect, drain when `stack` closes, and the streams it uses
    created or brought up to date."""
    nc = await connect(url, name)
    stack.push_async_callback(drain, nc)
    js = nc.jetstream()
    await ensure_streams(js, wanted)
    return nc, js

# --- provisioning ------------------------------------------------------------------------------------
def stream_config(stream: streams.Stream, *, replicas: int = 1) -> api.StreamConfig:
    return api.StreamConfig(
        name=stream.name,
        subjects=list(stream.subjects),
        description=stream.description,
        storage=api.StorageType.FILE if stream.storage == "file" else api.StorageType.MEMORY,
        retention=api.RetentionPolicy.LIMITS,
        discard=api.DiscardPolicy.OLD,
        max_age=float(stream.max_age_s),
        max_bytes=stream.max_bytes,
        max_msg_size=stream.max_msg_size,
        duplicate_window=float(stream.duplicate_window_s),
        num_replicas=replicas,
        deny_delete=stream.deny_delete or None,
        deny_purge=stream.deny_purge or None,
        allow_direct=stream.allow_direct or None,
    )


async def ensure_streams(
    js: JetStreamContext, wanted: Iterable[streams.Stream] = streams.ALL, *, replicas: int = 1
) -> None:
    """Create each stream, or bring its configuration up to date; safe to run from every replica."""
    for stream in wanted:
        config = stream_config(stream, replicas=replicas)
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != 10058:  # "stream name already in use with a different configuration"
                raise
            await js.update_stream(config)


def consumer_config(consumer: streams.Consumer) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        durable_name=consumer.name,
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.NEW if consumer.deliver == "new" else api.DeliverPolicy.ALL,
        filter_subjects=list(consumer.filter_subjects),
        ack_wait=consumer.ack_wait_s,
        max_deliver=consumer.max_deliver,
        max_ack_pending=consumer.max_ack_pending,
    )


async def ensure_consumer(js: JetStreamContext, consumer: streams.Consumer) -> None:
    config = consumer_config(consumer)
    try:
        await js.add_consumer(consumer.stream, config)
    except nats.js.errors.BadRequestError as exc:
        if exc.err_code not in (10148, 10013):  # consumer exists with another config
            raise
        await js.update_consumer(consumer.stream, config)


# --- publishing --------------------------------------------------------------------------------------
async def publish(
    js: JetStreamContext,
    subject: str,
    event: msgspec.Struct,
    *,
    service: str = "",
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> api.PubAck:
    """Publish a JSON event with its id as Nats-Msg-Id: a retry within the window is stored once."""
    event_id = getattr(event, "id")
    ack = await publish_bytes(js, subject, codec.encode(event), headers={**(headers or {}), MSG_ID: event_id},
                              timeout=timeout)
    metrics.PUBLISHED.labels(service, "duplicate" if ack.duplicate else "stored").inc()
    return ack


async def publish_bytes(js: JetStreamContext, subject: str, payload: bytes, *, headers: dict[str, str],
                        timeout: float = 5.0) -> api.PubAck:
    """`js.publish` of a message with a Nats-Msg-Id, sent again when the connection it went out on
    is lost before its ack came (a nats-server killed or restarted): that ack will never come, and
    nats-py would wait the whole `timeout` for it, holding up whatever is queued behind (a camera's
    frames). The same id makes a second copy a duplicate the stream drops. `timeout` bounds every
    attempt together, as before."""
    if MSG_ID not in headers:
        return await js.publish(subject, payload, timeout=timeout, headers=headers)
    return await resent_on_reconnect(
        js, lambda left: js.publish(subject, payload, timeout=left, headers=headers), timeout,
        what=f"publish {headers[MSG_ID]}")


async def resent_on_reconnect(js: JetStreamContext, attempt: Callable[[float], Awaitable[T]], timeout: float, *,
                              what: str) -> T:
    """Await `attempt(seconds left)`, a request that may safely be made twice (a publish with its
    Nats-Msg-Id, a read), and make it again when the connection it went out on is lost before the
    answer came: the answer died with that connection. A request made while the client reconnects
    is buffered by nats-py and sent on the next connection, so it is not made again when that
    connection comes. Raises nats.errors.TimeoutError once `timeout` has passed."""
    nc = getattr(js, "_nc", None)
    if not isinstance(nc, NATS):
        return await asyncio.wait_for(attempt(timeout), timeout)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise nats.errors.TimeoutError
        # The connection the request goes out on: this one, or the next while reconnecting.
        connection = nc.stats["reconnects"] + (0 if nc.is_connected else 1)
        pending = asyncio.ensure_future(attempt(left))
        try:
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise nats.errors.TimeoutError
                done, _ = await asyncio.wait({pending}, timeout=min(CONNECTION_CHECK_S, left))
                if done:
                    return pending.result()
                now = nc.stats["reconnects"]
                if now > connection or (now == connection and not nc.is_connected):
                    break  # that connection is gone, and the answer with it: ask again
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, nats.errors.Error):
                    await pending
        log.info("request made again: the connection was lost before its answer", extra={"fields": {
            "request": what}})


# --- consuming ---------------------------------------------------------------------------------------
def json_decoder(type_: type[T]) -> Callable[[Msg], T]:
    """The decode function for a JSON event consumer."""

    def decode(msg: Msg) -> T:
        return codec.decode(msg.data, type_)

    return decode


def nak_delay(num_delivered: int) -> float:
    """Back off 2, 4, 8 ... seconds, at most a minute (the handling rules in docs/ARCHITECTURE.md)."""
    return NAK_BACKOFF.delay(max(num_delivered, 1) - 1)


def _camera_from(msg: Msg) -> str | None:
    headers = msg.headers or {}
    if headers.get("Camera-Id"):
        return headers["Camera-Id"]
    parts = msg.subject.split(".")
    # traffic.<noun>.<verb>.v1.<camera>[.<kind>]
    if len(parts) >= 5 and parts[0] == "traffic" and parts[3] == subjects.VERSION:
        return parts[4]
    return None


def dead_letter_for(msg: Msg, *, service: str, consumer: str, error: str, reason: str) -> DeadLetter:
    meta = _metadata(msg)
    stream = meta.stream if meta else ""
    stream_seq = meta.sequence.stream if meta else None
    truncated = len(msg.data) > DEAD_LETTER_PAYLOAD_LIMIT
    return DeadLetter(
        id=ids.event_id("dlq", service, stream, stream_seq if stream_seq is not None else msg.subject,
                        (msg.headers or {}).get(MSG_ID, "")),
        camera_id=_camera_from(msg),
        occurred_at=datetime.now(timezone.utc),
        service=service,
        reason=reason[:2000],
        error=error,  # type: ignore[arg-type]
        subject=msg.subject,
        stream=stream,
        stream_seq=stream_seq,
        consumer=consumer,
        num_delivered=meta.num_delivered if meta else 1,
        headers={k: str(v) for k, v in (msg.headers or {}).items()},
        payload=b"" if truncated else msg.data,
        payload_size=len(msg.data),
        payload_truncated=truncated,
    )


def _metadata(msg: Msg) -> Any:
    try:
        return msg.metadata
    except Exception:  # not a JetStream message (plain subscription in a test)
        return None


class Consumer:
    """The pull loop for one durable consumer of one service.

    A class only to hold the loop's wiring; the work is in `handle`, a plain function the service
    passes in. `decode(msg)` turns a message into an event (raising for a bad one); `handle(event,
    msg)` does the side effect; `handle_batch(items)` is the micro-batching variant (detect).
    """

    def __init__(
        self,
        js: JetStreamContext,
        *,
        service: str,
        consumer: streams.Consumer,
        decode: Callable[[Msg], Any],
        handle: Callable[[Any, Msg], Awaitable[None]] | None = None,
        handle_batch: Callable[[list[tuple[Any, Msg]]], Awaitable[None]] | None = None,
        batch: int = 16,
        fetch_timeout_s: float = 1.0,
        max_payload: int | None = None,
        backoff: Callable[[int], float] = nak_delay,
        fill_window_s: float = 0.0,
        overlap: bool = False,
        look_ahead: int = 0,
        keep_alive: bool = False,
        leftovers_first: bool = False,
    ) -> None:
        if (handle is None) == (handle_batch is None):
            raise ValueError("give exactly one of handle or handle_batch")
        self.js = js
        self.service = service
        self.spec = consumer
        self.decode = decode
        self.handle = handle
        self.handle_batch = handle_batch
        self.batch = batch
        self.fetch_timeout_s = fetch_timeout_s
        self.max_payload = max_payload
        self.backoff = backoff
        # Micro-batching: once a first message is in, keep fetching until the batch is full or
        # this window has passed (detect: "up to B frames or T ms, whichever first").
        self.fill_window_s = fill_window_s
        # Fetch the next batch while the current one is handled (at most one in flight), so that
        # the bus round trips hide behind slow handlers such as model inference.
        self.overlap = overlap
        # Just before a batch is handled, top it up to this many messages with those already
        # waiting, without waiting for more: a batch handler that chooses among them (detect's
        # fair admission under overload) sees the backlog, not only its oldest messages.
        self.look_ahead = look_ahead
        # Messages in hand for half the consumer's ack_wait get an in-progress ack, again every
        # half ack_wait until they are settled: a short ack_wait then bounds how long the messages
        # of a killed replica stay out, however long a live replica holds its own (detect).
        self.keep_alive = keep_alive
        # At start, while the consumer has messages out, wait one ack_wait before the first fetch:
        # those of a replica killed before this one started are then redelivered, and the server
        # offers redeliveries before newer messages, so this replica takes up where the dead one
        # stopped instead of skipping ahead of it (detect: track needs a camera's frames in order).
        self.leftovers_first = leftovers_first
        self._held: dict[int, list] = {}  # id(msg) -> [msg, monotonic time of its delivery or last in-progress]
        self._labels = (service, consumer.name)

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and handle until `stop` is set; the batch in hand is always finished."""
        await ensure_consumer(self.js, self.spec)
        sub = await self.js.pull_subscribe_bind(self.spec.name, stream=self.spec.stream)
        log.info("consuming", extra={"fields": {"consumer": self.spec.name, "stream": self.spec.stream}})
        in_flight: asyncio.Task | None = None
        keeper = asyncio.create_task(self._keep_alive(), name=f"keep-alive-{self.spec.name}") \
            if self.keep_alive else None
        try:
            if self.leftovers_first:
                await self._wait_for_leftovers(sub, stop)
            while not stop.is_set():
                try:
                    # One message first: nats-py's fetch(n) on an idle stream holds the first
                    # message until n arrive or the timeout ends, a second of latency per event.
                    msgs = self._hold(await sub.fetch(1, timeout=self.fetch_timeout_s))
                except (nats.errors.TimeoutError, asyncio.TimeoutError):
                    continue
                except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError,
                        nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError) as exc:
                    log.warning("fetch failed; retrying", extra={"fields": {"error": repr(exc)}})
                    await asyncio.sleep(1.0)
                    continue
                if self.batch > 1:
                    msgs += self._hold(await self._fill(sub, len(msgs)))
                if in_flight is not None:
                    await in_flight
                # What waits is looked at last, just before handling: with overlap, the batch
                # above was fetched while the previous one ran.
                if self.look_ahead > len(msgs):
                    msgs += self._hold(await self._waiting(sub, len(msgs)))
                if not self.overlap:
                    await self.process(msgs)
                    continue
                in_flight = asyncio.create_task(self.process(msgs))
        finally:
            if in_flight is not None:
                await in_flight
            if keeper is not None:
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)
            try:
                await sub.unsubscribe()
            except Exception as exc:  # connection already closed at shutdown
                log.debug("unsubscribe failed", extra={"fields": {"error": repr(exc)}})

    async def _wait_for_leftovers(self, sub: Any, stop: asyncio.Event) -> None:
        """One ack_wait (and a second for the server's timer) before the first fetch, if the
        consumer has messages out: another replica's, or a killed one's, which come back first."""
        try:
            out = (await sub.consumer_info()).num_ack_pending
        except (nats.errors.Error, asyncio.TimeoutError):
            out = 1  # cannot tell: wait, as if there were
        if not out:
            return
        wait_s = self.spec.ack_wait_s + 1.0
        log.info("messages out with another replica: first fetch after one ack wait, when those of a "
                 "killed replica are offered again", extra={"fields": {
                     "consumer": self.spec.name, "ack_pending": out, "wait_s": wait_s}})
        try:
            await asyncio.wait_for(stop.wait(), wait_s)
        except asyncio.TimeoutError:
            pass

    def _hold(self, msgs: list[Msg]) -> list[Msg]:
        if self.keep_alive:
            now = time.monotonic()
            for msg in msgs:
                self._held[id(msg)] = [msg, now]
        return msgs

    async def _keep_alive(self) -> None:
        """Every quarter ack_wait: an in-progress ack for each message held half an ack_wait
        since its delivery or its last one, so that only a dead replica's messages time out."""
        due_s = self.spec.ack_wait_s / 2
        while True:
            await asyncio.sleep(self.spec.ack_wait_s / 4)
            now = time.monotonic()
            for key, held in list(self._held.items()):
                msg, since = held
                if msg.is_acked:
                    self._held.pop(key, None)
                elif now - since >= due_s:
                    held[1] = now
                    try:
                        await msg.in_progress()
                    except Exception as exc:  # acked meanwhile, or the link is down: ack_wait decides
                        log.debug("in-progress ack failed", extra={"fields": {"error": repr(exc)}})
                    else:
                        metrics.IN_PROGRESS.labels(*self._labels).inc()

    async def _fill(self, sub: Any, have: int) -> list[Msg]:
        """The rest of the batch: what is already waiting, and with a fill window what arrives in it."""
        more: list[Msg] = []
        deadline = time.monotonic() + max(self.fill_window_s, 0.005)
        while have + len(more) < self.batch and (left := deadline - time.monotonic()) > 0.002:
            try:
                more += await sub.fetch(self.batch - have - len(more), timeout=left)
            except (nats.errors.Error, asyncio.TimeoutError):  # nothing more now, or the link dropped:
                break  # handle what is in hand; the next fetch reports a lasting failure
        return more

    async def _waiting(self, sub: Any, have: int) -> list[Msg]:
        """Up to look_ahead messages in all, of those the server holds for this consumer now
        (its num_pending), so that nothing is waited for when there are none."""
        try:
            waiting = (await sub.consumer_info()).num_pending
        except (nats.errors.Error, asyncio.TimeoutError):
            return []
        more: list[Msg] = []
        while (room := self.look_ahead - have - len(more)) > 0 and waiting > 0:
            try:
                got = await sub.fetch(min(room, waiting), timeout=self.fetch_timeout_s)
            except (nats.errors.Error, asyncio.TimeoutError):
                break
            if not got:
                break
            more += got
            meta = _metadata(got[-1])
            waiting = meta.num_pending if meta is not None else 0
        return more

    async def process(self, msgs: Sequence[Msg]) -> None:
        try:
            await self._process(msgs)
        finally:
            for msg in msgs:  # settled, or left to ack_wait if settling failed: no more keep-alive
                self._held.pop(id(msg), None)

    async def _process(self, msgs: Sequence[Msg]) -> None:
        started = time.perf_counter()
        good: list[tuple[Any, Msg]] = []
        for msg in msgs:
            meta = _metadata(msg)
            if meta is not None:
                metrics.PENDING.labels(*self._labels).set(meta.num_pending)
            event = await self._decode(msg)
            if event is not None:
                good.append((event, msg))
        if self.handle_batch is not None:
            if good:
                await self._run_handler(lambda: self.handle_batch(good), [msg for _, msg in good])  # type: ignore[misc]
        else:
            for event, msg in good:
                await self._run_handler(lambda: self.handle(event, msg), [msg])  # type: ignore[misc]
        metrics.HANDLER_SECONDS.labels(*self._labels).observe(time.perf_counter() - started)

    async def _decode(self, msg: Msg) -> Any:
        if self.max_payload is not None and len(msg.data) > self.max_payload:
            await self.dead_letter(msg, "oversize", f"payload of {len(msg.data)} bytes exceeds the limit of {self.max_payload}")
            return None
        try:
            return self.decode(msg)
        except msgspec.ValidationError as exc:  # before DecodeError, its base class
            await self.dead_letter(msg, "invalid", f"invalid message: {exc}")
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # before ValueError, their base class
            await self.dead_letter(msg, "decode", f"cannot decode: {exc}")
        except (Invalid, ValueError) as exc:
            await self.dead_letter(msg, "invalid", f"invalid message: {exc}")
        return None

    async def _run_handler(self, call: Callable[[], Awaitable[None]], msgs: list[Msg]) -> None:
        try:
            await call()
        except Invalid as exc:
            for msg in msgs:
                await self.dead_letter(msg, "invalid", f"rejected by handler: {exc}")
            return
        except Exception as exc:
            log.warning("handler failed", extra={"fields": {"consumer": self.spec.name, "error": repr(exc)}}, exc_info=True)
            for msg in msgs:
                meta = _metadata(msg)
                delivered = meta.num_delivered if meta else 1
                if delivered >= self.spec.max_deliver:
                    await self.dead_letter(msg, "gave_up", f"failed {delivered} times, last: {exc!r}")
                else:
                    await self._settle(msg.nak(delay=self.backoff(delivered)), "nak")
            return
        for msg in msgs:
            if not msg.is_acked:  # a batch handler may have dead-lettered some of its messages
                await self._settle(msg.ack(), "ack")

    async def _settle(self, action: Awaitable[None], result: str) -> None:
        try:
            await action
            metrics.MESSAGES.labels(*self._labels, result).inc()
        except Exception as exc:  # connection lost: the server redelivers after ack_wait
            log.warning("could not %s", result, extra={"fields": {"error": repr(exc)}})

    async def dead_letter(self, msg: Msg, error: str, reason: str) -> None:
        """Keep `msg` on traffic.dlq.<service> with the reason, then terminate it; a batch handler
        calls it for the one message that fails, so that the rest of its batch is acked."""
        letter = dead_letter_for(msg, service=self.service, consumer=self.spec.name, error=error, reason=reason)
        log.warning("dead letter", extra={"fields": {"subject": msg.subject, "error": error, "reason": reason}})
        try:
            await publish(self.js, subjects.dlq(self.service), letter, service=self.service)
        except Exception as exc:
            # Keep the original: without its copy on the DLQ it must be redelivered, not dropped.
            log.error("dead letter publish failed; will retry", extra={"fields": {"error": repr(exc)}})
            meta = _metadata(msg)
            await self._settle(msg.nak(delay=self.backoff(meta.num_delivered if meta else 1)), "nak")
            return
        metrics.DEAD_LETTERS.labels(*self._labels, error).inc()
        await self._settle(msg.term(), "dead_letter")
