"""The operations board (issue 19): open incidents with their evidence, acknowledged and closed by
an operator (audited), the camera wall (each camera's newest frame, health and lights), kept live
in the browser by server-sent events.

Live across replicas: every change to an incident, a camera's health or a signal phase is
announced by PostgreSQL (`NOTIFY portal_board`, sent at commit, by whichever replica's consumer
or operator made it); each replica listens on one connection, reads the changed row once and
hands it to each of its open boards, which shape it for their user's role.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any, NamedTuple

import asyncpg
import msgspec
from aiohttp import web

from services.portal import access, actions, metrics, store
from services.portal.agencies import User
from services.portal.context import KEY, Portal

log = logging.getLogger("portal")
_encoder = msgspec.json.Encoder()
HEARTBEAT_S = 15.0
NOTE_MAX = 500


class Change(NamedTuple):
    kind: str  # incident, camera, resync (a board missed changes: send everything again)
    key: str = ""
    row: dict[str, Any] | None = None
    signals: list[dict[str, Any]] | None = None


class BoardHub:
    """Changes heard from PostgreSQL, fanned out to this replica's open boards."""

    def __init__(self, database_url: str, pool: asyncpg.Pool, queue_size: int = 500) -> None:
        self.database_url = database_url
        self.pool = pool
        self.queue_size = queue_size
        self.subscribers: set[asyncio.Queue] = set()
        self._heard: asyncio.Queue[str] = asyncio.Queue()
        self.listening = asyncio.Event()

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(self.queue_size)
        self.subscribers.add(queue)
        metrics.BOARD_STREAMS.set(len(self.subscribers))
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.subscribers.discard(queue)
        metrics.BOARD_STREAMS.set(len(self.subscribers))

    def broadcast(self, change: Change | None) -> None:
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(change)
            except asyncio.QueueFull:  # a board too slow to keep up: start it over
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(Change("resync") if change is not None else None)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._heard.put_nowait(payload)

    async def run(self, stop: asyncio.Event) -> None:
        """Listen (reconnecting after a PostgreSQL outage, then telling the boards to start over)
        and read each changed row, until stopped; then end every open board's stream."""
        reader = asyncio.create_task(self._read_changes())
        try:
            first = True
            while not stop.is_set():
                lost = asyncio.Event()
                try:
                    conn = await asyncpg.connect(self.database_url)
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("board: cannot listen to PostgreSQL", extra={"fields": {"error": repr(exc)}})
                    await _wait(stop, 2.0)
                    continue
                try:
                    conn.add_termination_listener(lambda _c: lost.set())
                    await conn.add_listener(store.BOARD_CHANNEL, self._on_notify)
                    self.listening.set()
                    if not first:
                        self.broadcast(Change("resync"))
                    first = False
                    await asyncio.wait([asyncio.create_task(stop.wait()), asyncio.create_task(lost.wait())],
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    self.listening.clear()
                    if not conn.is_closed():
                        await conn.close(timeout=5)
                if lost.is_set() and not stop.is_set():
                    log.warning("board: lost the PostgreSQL listener; reconnecting")
                    await _wait(stop, 1.0)
        finally:
            reader.cancel()
            self.broadcast(None)

    async def _read_changes(self) -> None:
        while True:
            payload = await self._heard.get()
            kind, _, key = payload.partition(":")
            metrics.BOARD_NOTIFICATIONS.labels(kind).inc()
            if not self.subscribers:
                continue
            try:
                async with self.pool.acquire() as conn:
                    if kind == "incident":
                        change = Change(kind, key, await store.get_incident(conn, key))
                    elif kind == "camera":
                        health = await conn.fetchrow(
                            "SELECT camera_id, state, reason, occurred_at, state_since, fps_out, last_frame_age_s "
                            "FROM portal.camera_health WHERE camera_id = $1", key)
                        if health is None:
                            continue
                        change = Change(kind, key, dict(health), await store.signal_phases(conn, camera_id=key))
                    else:
                        continue
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("board: cannot read a change", extra={"fields": {"change": payload, "error": repr(exc)}})
                self.broadcast(Change("resync"))
                continue
            self.broadcast(change)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass


class ViewAudit:
    """Who watched which camera's live picture: one audit row per user, camera and period (per
    replica), not one per frame: a frame every quarter second is not a read to log each time."""

    def __init__(self, period_s: float, max_entries: int = 50_000) -> None:
        self.period_s = period_s
        self.max_entries = max_entries
        self._last: dict[tuple[str, str], float] = {}

    def due(self, user_id: str, camera_id: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        last = self._last.get((user_id, camera_id))
        return last is None or now - last >= self.period_s

    def done(self, user_id: str, camera_id: str, now: float | None = None) -> None:
        if len(self._last) >= self.max_entries:
            self._last.clear()
        self._last[(user_id, camera_id)] = time.monotonic() if now is None else now


# --- actions (shared by the JSON API and the page) ----------------------------------------------------
async def snapshot(portal: Portal, user: User | None, url_prefix: str = "/api") -> access.BoardSnapshot:
    user = actions.require(user, "board")
    async with portal.pool.acquire() as conn:
        rows = await store.list_incidents(conn, open_only=True)
        health = await store.cameras(conn)
        signals = await store.signal_phases(conn)
    return access.BoardSnapshot(
        cameras=[access.camera_tile(user, h, signals, url_prefix) for h in health],
        incidents=[access.incident_view(user, r, url_prefix, portal.directory.user_name) for r in rows],
        can_act=access.can(user, "incidents"), can_see_images=access.can(user, "camera_images"))


async def list_incidents(portal: Portal, user: User | None, *, open_only: bool, camera_id: str | None,
                         limit: int) -> list[access.IncidentView]:
    user = actions.require(user, "board")
    async with portal.pool.acquire() as conn:
        rows = await store.list_incidents(conn, open_only=open_only, camera_id=camera_id, limit=limit)
    return [access.incident_view(user, r, names=portal.directory.user_name) for r in rows]


async def read_incident(portal: Portal, user: User | None, incident_id: str) -> access.IncidentView:
    user = actions.require(user, "board")
    async with portal.pool.acquire() as conn:
        row = await store.get_incident(conn, incident_id)
    if row is None:
        raise actions.ActionError(404, f"không có sự cố {incident_id}")
    return access.incident_view(user, row, names=portal.directory.user_name)


def _note(note: str, *, required: bool) -> str:
    note = (note or "").strip()
    if len(note) > NOTE_MAX or "\x00" in note:
        raise actions.ActionError(400, f"ghi chú dài quá {NOTE_MAX} ký tự hoặc không hợp lệ")
    if required and not note:
        raise actions.ActionError(400, "nhập ghi chú khi đóng sự cố (đã xử lý thế nào)")
    return note


async def _open_incident(conn, incident_id: str) -> dict:
    """The incident's row, locked until the transaction ends; 404 when there is none, 409 once closed."""
    row = await store.get_incident(conn, incident_id, lock=True)
    if row is None:
        raise actions.ActionError(404, f"không có sự cố {incident_id}")
    if row["closed_at"] is not None:
        raise actions.ActionError(409, f"sự cố đã được {row['closed_by']} đóng")
    return row


async def acknowledge(portal: Portal, user: User | None, incident_id: str, *, note: str,
                      client: str) -> access.IncidentView:
    """An operator has seen the incident and takes it on: the first acknowledgement stands (409
    after it), audited with its note."""
    user = actions.require(user, "incidents")
    note = _note(note, required=False)
    async with portal.pool.acquire() as conn, conn.transaction():
        row = await _open_incident(conn, incident_id)
        if row["acknowledged_at"] is not None:
            raise actions.ActionError(409, f"sự cố đã được {row['acknowledged_by']} tiếp nhận")
        await store.acknowledge_incident(conn, incident_id, user_id=user.id, note=note, at=datetime.now(timezone.utc))
        await actions._audit(conn, user, "incident_acknowledged", incident_id, note or "tiếp nhận sự cố", client)
        row = await store.get_incident(conn, incident_id)
    return access.incident_view(user, row, names=portal.directory.user_name)


async def close(portal: Portal, user: User | None, incident_id: str, *, note: str, client: str) -> access.IncidentView:
    """The operator closes the incident with what was done (required, audited); it leaves the board."""
    user = actions.require(user, "incidents")
    note = _note(note, required=True)
    async with portal.pool.acquire() as conn, conn.transaction():
        row = await _open_incident(conn, incident_id)
        await store.close_incident(conn, incident_id, user_id=user.id, note=note, at=datetime.now(timezone.utc))
        await actions._audit(conn, user, "incident_closed", incident_id, note, client)
        row = await store.get_incident(conn, incident_id)
    return access.incident_view(user, row, names=portal.directory.user_name)


async def read_evidence(portal: Portal, user: User | None, incident_id: str, sha256: str, *,
                        client: str) -> tuple[bytes, str]:
    """An evidence image of an incident (roles allowed evidence images), audited like a case's."""
    user = actions.require(user, "board")
    user = actions.require(user, "evidence")
    async with portal.pool.acquire() as conn, conn.transaction():
        row = await store.get_incident(conn, incident_id)
        if row is None:
            raise actions.ActionError(404, f"không có sự cố {incident_id}")
        ref = actions.evidence_ref(row, sha256, of="sự cố")
        await actions._audit(conn, user, "evidence_read", f"incident:{incident_id}/{sha256}", "theo dõi sự cố", client)
        data = await actions._fetch(portal, sha256)
    return data, ref.get("content_type", "image/jpeg")


async def latest_frame(portal: Portal, user: User | None, camera_id: str, *, client: str):
    """The camera's newest frame (frames.Frame) for the wall; a watch is audited once per period."""
    user = actions.require(user, "camera_images")
    frame = await portal.frames.get(camera_id)
    if frame is None:
        raise actions.ActionError(404, f"không có khung hình mới của camera {camera_id}")
    if portal.views.due(user.id, camera_id):
        async with portal.pool.acquire() as conn, conn.transaction():
            await actions._audit(conn, user, "live_view", f"camera:{camera_id}", "xem hình ảnh trực tiếp (bảng điều hành)",
                                 client)
        portal.views.done(user.id, camera_id)
    return frame


# --- live updates: server-sent events ---------------------------------------------------------------
def _event(name: str, value: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encoder.encode(value) + b"\n\n"


async def events(request: web.Request) -> web.StreamResponse:
    """GET /api/board/events: `snapshot` first (and again after a gap), then `incident` and `camera`
    as they change; a comment every 15 s keeps proxies from closing an idle stream."""
    portal: Portal = request.app[KEY]
    user = actions.require(portal.user(request), "board")
    hub: BoardHub = portal.board
    queue = hub.subscribe()
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    try:
        await response.prepare(request)
        await response.write(b"retry: 2000\n\n" + _event("snapshot", await snapshot(portal, user)))
        while True:
            try:
                change = await asyncio.wait_for(queue.get(), timeout=HEARTBEAT_S)
            except asyncio.TimeoutError:
                if portal.user(request) is None:  # the token was revoked meanwhile
                    break
                await response.write(b": ping\n\n")
                continue
            if change is None:  # the portal is stopping
                break
            if change.kind == "resync":
                await response.write(_event("snapshot", await snapshot(portal, user)))
            elif change.kind == "incident" and change.row is not None:
                await response.write(_event("incident", access.incident_view(user, change.row, names=portal.directory.user_name)))
            elif change.kind == "camera" and change.row is not None:
                await response.write(_event("camera", access.camera_tile(user, change.row, change.signals or [])))
    except ConnectionResetError:  # the browser went away
        pass
    finally:
        hub.unsubscribe(queue)
    return response
