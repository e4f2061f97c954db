"""The `lookup-owner` request/reply endpoint: a plate in, its registration and owner out.

Requests and replies are proto/v1/registry.py's Structs. Every request is audited in
registry.owner_lookup_audit before its reply leaves (who asked, which plate, which case): if the
audit line cannot be written, the request gets an error, never owner data.

Requests are answered in batches: whatever requests arrived while the previous query ran are
answered by one `plate = ANY(...)` query (and one audit INSERT), so a burst of thousands of
requests costs tens of round trips to PostgreSQL, not thousands. With one request in flight a
batch is that request alone, so an idle service answers at the latency of a single query.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import msgspec

from proto.v1 import OwnerLookupReply, OwnerLookupRequest
from services.registry import metrics, plates
from services.registry.lookup import Registration

log = logging.getLogger(__name__)

# Set by nats-server on a request that crossed accounts through an import with `share: true`.
REQUEST_INFO = "Nats-Request-Info"

_decoder = msgspec.json.Decoder(OwnerLookupRequest)
_encoder = msgspec.json.Encoder()


class BadRequest(ValueError):
    pass


@dataclass(frozen=True)
class Caller:
    """Who asked, as nats-server attests it; account None: the registry's own account."""

    account: str | None = None
    user: str = ""
    name: str = ""


@dataclass(frozen=True)
class AuditLine:
    caller: Caller
    request: OwnerLookupRequest
    plate: str  # normalised
    outcome: str  # found, not_found, error


def caller_of(headers: Mapping[str, str] | None) -> Caller:
    info = (headers or {}).get(REQUEST_INFO)
    if not info:
        return Caller()
    try:
        data = json.loads(info)
    except ValueError:
        return Caller(account="?", name="unreadable Nats-Request-Info")
    return Caller(account=str(data.get("acc", "?")), user=str(data.get("user", "")), name=str(data.get("name", "")))


def parse(data: bytes) -> tuple[OwnerLookupRequest, str, bool | None]:
    """The request, the normalised plate asked for, and whether it was written as a two-line
    plate (None when the text does not say: '30A12345')."""
    try:
        request = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadRequest(f"expected JSON like {{\"plate\": \"30A-123.45\", \"case_id\": \"...\"}}: {exc}") from None
    plate = plates.normalise(request.plate)
    if not plate:
        raise BadRequest("plate is empty")
    text = request.plate.strip()
    two_line = True if any(c.isspace() for c in text) else False if "-" in text else None
    return request, plate, two_line


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
        return _encoder.encode(OwnerLookupReply(plate=plate, found=True, vehicle=vehicle, owner=owner)), True
    # Several registrations share the bare plate: the printed forms tell the officer which to ask for.
    others = [v.plate_printed for v, _ in registrations]
    others += [v.plate_printed for p in near_plates(plate) for v, _ in near.get(p, ())]
    return _encoder.encode(OwnerLookupReply(plate=plate, found=False, near=tuple(others))), False


class Endpoint:
    """The micro handler: requests queue up while a query runs and the next query answers them all.

    The handler itself never waits for PostgreSQL (a NATS subscription calls its handler one
    message at a time, so waiting there would serialise every request); `workers` batches may be
    in flight at once, each on its own pooled connection.
    """

    def __init__(self, find: Callable[[list[str]], Awaitable[dict[str, list[Registration]]]],
                 audit: Callable[[Sequence[AuditLine]], Awaitable[None]], max_batch: int = 256,
                 workers: int = 4) -> None:
        self.find = find
        self.audit = audit
        self.max_batch = max_batch
        self.workers = workers
        self._pending: list[tuple[object, OwnerLookupRequest, str, bool | None, Caller, float]] = []
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
            asked, plate, two_line = parse(request.data)
        except BadRequest as exc:
            metrics.OWNER_REQUESTS.labels("bad_request").inc()
            await request.respond_error("400", str(exc))
            return
        self._pending.append((request, asked, plate, two_line, caller_of(request.headers), started))
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
                found = await self.find(sorted({item[2] for item in batch}))
                missed = {near for item in batch if item[2] not in found for near in near_plates(item[2])}
                near = await self.find(sorted(missed)) if missed else {}
                answers = [reply(plate, two_line, found, near) for _, _, plate, two_line, _, _ in batch]
                await self.audit([AuditLine(caller=caller, request=asked, plate=plate,
                                            outcome="found" if named else "not_found")
                                  for (_, asked, plate, _, caller, _), (_, named) in zip(batch, answers)])
            except Exception as exc:  # every request of the batch gets the error; the caller may retry
                log.warning("owner lookup failed", extra={"fields": {"error": repr(exc), "requests": len(batch)}})
                metrics.OWNER_REQUESTS.labels("error").inc(len(batch))
                for request, *_ in batch:
                    await request.respond_error("503", "registry database unavailable; retry")
                continue
            hits = 0
            for (request, *_, started), (body, named) in zip(batch, answers):
                hits += named
                await request.respond(body)
                metrics.OWNER_SECONDS.observe(time.perf_counter() - started)
            metrics.OWNER_REQUESTS.labels("found").inc(hits)
            metrics.OWNER_REQUESTS.labels("not_found").inc(len(batch) - hits)
