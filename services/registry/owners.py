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
from collections.abc import Awaitable, Callable

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


def parse(data: bytes) -> str:
    """The normalised plate asked for."""
    try:
        request = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"expected JSON like {{\"plate\": \"30A-123.45\"}}: {exc}") from None
    plate = plates.normalise(request.plate)
    if not plate:
        raise BadRequest("plate is empty")
    return plate


def near_plates(plate: str) -> list[str]:
    return [c.plate for c in plates.candidates(plate) if c.plate != plate]


def reply(plate: str, found: dict[str, Registration], near: dict[str, Registration]) -> bytes:
    if plate in found:
        vehicle, owner = found[plate]
        return _encoder.encode(OwnerReply(plate=plate, found=True, vehicle=vehicle, owner=owner))
    return _encoder.encode(OwnerReply(plate=plate, found=False, near=tuple(p for p in near_plates(plate) if p in near)))


class Endpoint:
    """The micro handler: requests queue up while a query runs and the next query answers them all.

    The handler itself never waits for PostgreSQL (a NATS subscription calls its handler one
    message at a time, so waiting there would serialise every request); `workers` batches may be
    in flight at once, each on its own pooled connection.
    """

    def __init__(self, find: Callable[[list[str]], Awaitable[dict[str, Registration]]],
                 max_batch: int = 256, workers: int = 4) -> None:
        self.find = find
        self.max_batch = max_batch
        self.workers = workers
        self._pending: list[tuple[object, str, float]] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]

    async def stop(self) -> None:
        """Answer what is queued (for a few seconds at most), then stop the workers."""
        deadline = time.monotonic() + 5.0
        while self._pending and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def handle(self, request) -> None:
        started = time.perf_counter()
        try:
            plate = parse(request.data)
        except BadRequest as exc:
            metrics.OWNER_REQUESTS.labels("bad_request").inc()
            await request.respond_error("400", str(exc))
            return
        self._pending.append((request, plate, started))
        self._wake.set()

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
                # Exact plates first; near matches only for the requests that missed (most hit).
                found = await self.find(sorted({plate for _, plate, _ in batch}))
                missed = {near for _, plate, _ in batch if plate not in found for near in near_plates(plate)}
                near = await self.find(sorted(missed)) if missed else {}
            except Exception as exc:  # every request of the batch gets the error; the caller may retry
                log.warning("owner lookup failed", extra={"fields": {"error": repr(exc), "requests": len(batch)}})
                metrics.OWNER_REQUESTS.labels("error").inc(len(batch))
                for request, *_ in batch:
                    await request.respond_error("503", "registry database unavailable; retry")
                continue
            hits = 0
            for request, plate, started in batch:
                hits += plate in found
                await request.respond(reply(plate, found, near))
                metrics.OWNER_SECONDS.observe(time.perf_counter() - started)
            metrics.OWNER_REQUESTS.labels("found").inc(hits)
            metrics.OWNER_REQUESTS.labels("not_found").inc(len(batch) - hits)
