"""The `lookup-owner` request/reply endpoint: a plate in, its registration and owner out.

Requests are answered in batches: whatever requests arrived while the previous query ran are
answered by one `plate = ANY(...)` query, so a burst of thousands of requests costs tens of
round trips to PostgreSQL, not thousands. With one request in flight a batch is that request
alone, so an idle service answers at the latency of a single query.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import msgspec

from proto.v1 import Owner, Vehicle
from services.registry import metrics, plates
from services.registry.lookup import Registration

log = logging.getLogger(__name__)


class OwnerRequest(msgspec.Struct, frozen=True, kw_only=True):
    plate: str  # as printed or as read: '30A-123.45', '30A12345', '29-B1 123.45'


class OwnerReply(msgspec.Struct, frozen=True, kw_only=True):
    plate: str  # normalised
    found: bool
    vehicle: Vehicle | None = None
    owner: Owner | None = None
    # Registered plates the request may have meant (OCR confusions); no owner data for these:
    # the officer asks again with the plate they choose.
    near: tuple[str, ...] = ()


_decoder = msgspec.json.Decoder(OwnerRequest)
_encoder = msgspec.json.Encoder()


class BadRequest(ValueError):
    pass


def parse(data: bytes) -> tuple[str, list[str]]:
    """The normalised plate and every plate to look up for it."""
    try:
        request = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"expected JSON like {{\"plate\": \"30A-123.45\"}}: {exc}") from None
    plate = plates.normalise(request.plate)
    if not plate:
        raise BadRequest("plate is empty")
    return plate, [c.plate for c in plates.candidates(plate)]


def reply(plate: str, wanted: Sequence[str], found: dict[str, Registration]) -> bytes:
    if plate in found:
        vehicle, owner = found[plate]
        return _encoder.encode(OwnerReply(plate=plate, found=True, vehicle=vehicle, owner=owner))
    return _encoder.encode(OwnerReply(plate=plate, found=False, near=tuple(p for p in wanted if p in found)))


class Batcher:
    """Groups concurrent lookups into one query; `workers` queries may run at once."""

    def __init__(self, find: Callable[[list[str]], Awaitable[dict[str, Registration]]],
                 max_batch: int = 256, workers: int = 4) -> None:
        self.find = find
        self.max_batch = max_batch
        self.workers = workers
        self._pending: list[tuple[list[str], asyncio.Future]] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for _, future in self._pending:
            if not future.done():
                future.set_exception(ConnectionError("registry is stopping"))

    def lookup(self, wanted: list[str]) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((wanted, future))
        self._wake.set()
        return future

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            if not self._pending:
                self._wake.clear()
            if not batch:
                continue
            metrics.OWNER_BATCH_SIZE.observe(len(batch))
            try:
                found = await self.find(sorted({plate for wanted, _ in batch for plate in wanted}))
            except Exception as exc:  # answered as an error to each request of the batch
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(found)


class Endpoint:
    """The micro handler; each request is answered in its own task so that requests overlap
    (a NATS subscription otherwise calls its handler one message at a time)."""

    def __init__(self, batcher: Batcher) -> None:
        self.batcher = batcher
        self._tasks: set[asyncio.Task] = set()

    async def handle(self, request) -> None:
        task = asyncio.create_task(self._answer(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, request) -> None:
        started = time.perf_counter()
        try:
            plate, wanted = parse(request.data)
        except BadRequest as exc:
            metrics.OWNER_REQUESTS.labels("bad_request").inc()
            await request.respond_error("400", str(exc))
            return
        try:
            found = await self.batcher.lookup(wanted)
        except Exception as exc:
            log.warning("owner lookup failed", extra={"fields": {"error": repr(exc)}})
            metrics.OWNER_REQUESTS.labels("error").inc()
            await request.respond_error("503", "registry database unavailable; retry")
            return
        metrics.OWNER_REQUESTS.labels("found" if plate in found else "not_found").inc()
        await request.respond(reply(plate, wanted, found))
        metrics.OWNER_SECONDS.observe(time.perf_counter() - started)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
