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
    # Registered plates (as printed) the request may have meant: OCR confusions, or several
    # registrations sharing the bare plate. No owner data for these: the officer asks again
    # with the printed plate they choose.
    near: tuple[str, ...] = ()


_decoder = msgspec.json.Decoder(OwnerRequest)
_encoder = msgspec.json.Encoder()


class BadRequest(ValueError):
    pass


def parse(data: bytes) -> tuple[str, bool | None]:
    """The normalised plate asked for, and whether it was written as a two-line plate (None when
    the text does not say: '30A12345')."""
    try:
        request = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"expected JSON like {{\"plate\": \"30A-123.45\"}}: {exc}") from None
    plate = plates.normalise(request.plate)
    if not plate:
        raise BadRequest("plate is empty")
    text = request.plate.strip()
    two_line = True if any(c.isspace() for c in text) else False if "-" in text else None
    return plate, two_line


def near_plates(plate: str) -> list[str]:
    return [c.plate for c in plates.candidates(plate) if c.plate != plate]


def reply(plate: str, two_line: bool | None, found: dict[str, list[Registration]],
          near: dict[str, list[Registration]]) -> tuple[bytes, bool]:
    """The reply's bytes, and whether it names an owner."""
    registrations = found.get(plate, [])
    if len(registrations) > 1 and two_line is not None:
        registrations = [r for r in registrations if (" " in r[0].plate_printed) == two_line] or registrations
    if len(registrations) == 1:
        vehicle, owner = registrations[0]
        return _encoder.encode(OwnerReply(plate=plate, found=True, vehicle=vehicle, owner=owner)), True
    # Several registrations share the bare plate: the printed forms tell the officer which to ask for.
    others = [v.plate_printed for v, _ in registrations]
    others += [v.plate_printed for p in near_plates(plate) for v, _ in near.get(p, ())]
    return _encoder.encode(OwnerReply(plate=plate, found=False, near=tuple(others))), False


class Endpoint:
    """The micro handler: requests queue up while a query runs and the next query answers them all.

    The handler itself never waits for PostgreSQL (a NATS subscription calls its handler one
    message at a time, so waiting there would serialise every request); `workers` batches may be
    in flight at once, each on its own pooled connection.
    """

    def __init__(self, find: Callable[[list[str]], Awaitable[dict[str, list[Registration]]]],
                 max_batch: int = 256, workers: int = 4) -> None:
        self.find = find
        self.max_batch = max_batch
        self.workers = workers
        self._pending: list[tuple[object, str, bool | None, float]] = []
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
            plate, two_line = parse(request.data)
        except BadRequest as exc:
            metrics.OWNER_REQUESTS.labels("bad_request").inc()
            await request.respond_error("400", str(exc))
            return
        self._pending.append((request, plate, two_line, started))
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
                found = await self.find(sorted({plate for _, plate, _, _ in batch}))
                missed = {near for _, plate, _, _ in batch if plate not in found for near in near_plates(plate)}
                near = await self.find(sorted(missed)) if missed else {}
            except Exception as exc:  # every request of the batch gets the error; the caller may retry
                log.warning("owner lookup failed", extra={"fields": {"error": repr(exc), "requests": len(batch)}})
                metrics.OWNER_REQUESTS.labels("error").inc(len(batch))
                for request, *_ in batch:
                    await request.respond_error("503", "registry database unavailable; retry")
                continue
            hits = 0
            for request, plate, two_line, started in batch:
                body, named = reply(plate, two_line, found, near)
                hits += named
                await request.respond(body)
                metrics.OWNER_SECONDS.observe(time.perf_counter() - started)
            metrics.OWNER_REQUESTS.labels("found").inc(hits)
            metrics.OWNER_REQUESTS.labels("not_found").inc(len(batch) - hits)
