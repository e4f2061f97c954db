"""The JSON API (/api/...): thin handlers over actions.py; documented by openapi.py."""

from __future__ import annotations

import csv
import io
import logging
import time
import zoneinfo
from datetime import date
from typing import Any

import msgspec
from aiohttp import web

from proto import subjects
from services.portal import access, actions, board, cases, dataset, metrics, store
from services.portal.agencies import User
from services.portal.context import KEY, Portal

log = logging.getLogger("portal")
_encoder = msgspec.json.Encoder()
MAX_BODY = 16 * 1024


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(value), status=status, content_type="application/json", charset="utf-8")


def problem(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_encoder.encode(access.Problem(error=message)), status=status,
                        content_type="application/json", charset="utf-8", headers=headers)


@web.middleware
async def errors_and_metrics(request: web.Request, handler):
    """Every /api error is JSON with a message; every request is counted by its route."""
    started = time.perf_counter()
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    try:
        response = await handler(request)
    except actions.ActionError as exc:
        response = problem(exc.status, exc.message)
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            metrics.REQUESTS.labels(route, str(exc.status)).inc()
            raise
        response = problem(exc.status, exc.reason or "lỗi yêu cầu", headers={
            k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")})
    except Exception:
        log.exception("request failed", extra={"fields": {"path": request.path}})
        response = problem(500, "lỗi máy chủ") if request.path.startswith("/api/") else \
            web.Response(status=500, text="Lỗi máy chủ", content_type="text/plain")
    metrics.REQUESTS.labels(route, str(response.status)).inc()
    metrics.REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)
    return response


def _portal(request: web.Request) -> Portal:
    return request.app[KEY]


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise actions.ActionError(400, f"{name} phải là số nguyên") from None
    if not low <= value <= high:
        raise actions.ActionError(400, f"{name} phải trong khoảng {low}–{high}")
    return value


def _text(request: web.Request, name: str, default: str | None = None, max_len: int = 200) -> str | None:
    value = request.query.get(name, default)
    if value is not None and (len(value) > max_len or "\x00" in value):
        raise actions.ActionError(400, f"{name} quá dài hoặc không hợp lệ")
    return value


async def _body(request: web.Request, type_: type) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise actions.ActionError(413, "nội dung quá lớn")
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise actions.ActionError(413, "nội dung quá lớn")
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        raise actions.ActionError(400, f"nội dung không hợp lệ: {exc}") from None
    except msgspec.DecodeError:
        raise actions.ActionError(400, "nội dung phải là JSON") from None


def _user(request: web.Request, permission: str) -> tuple[Portal, User]:
    """The portal and the signed-in user, who must hold `permission` (401 or 403 otherwise)."""
    portal = _portal(request)
    return portal, actions.require(portal.user(request), permission)


async def _command(request: web.Request, permission: str, body_type: type) -> tuple[Portal, User, Any]:
    """A command's portal, user and body; the permission is checked before the body is read."""
    portal, user = _user(request, permission)
    return portal, user, await _body(request, body_type)


def _sha(request: web.Request) -> str:
    sha = request.match_info["sha256"]
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise actions.ActionError(400, "sha256 phải là 64 chữ số hex viết thường")
    return sha


def _image(data: bytes, content_type: str, sha256: str) -> web.Response:
    # no-store: every look at evidence must reach the server, so that it is audited.
    return web.Response(body=data, content_type=content_type, headers={
        "X-Evidence-SHA256": sha256, "X-Evidence-Verified": "true", "Cache-Control": "private, no-store"})


# --- handlers -------------------------------------------------------------------------------------
async def me(request: web.Request) -> web.Response:
    user = _portal(request).user(request)
    if user is None:
        raise actions.ActionError(401, "cần đăng nhập (Authorization: Bearer <mã truy cập>)")
    return json_response(access.Me(user=user.id, name=user.name, agency=user.agency.id, agency_name=user.agency.name,
                                   role=user.role,
                                   permissions=sorted(p for p in access.PERMISSIONS if access.can(user, p))))


async def list_cases(request: web.Request) -> web.Response:
    portal = _portal(request)
    states = request.query.getall("state", [])
    for state in states:
        if state not in cases.STATES:
            raise actions.ActionError(400, f"state {state!r} không hợp lệ ({', '.join(cases.STATES)})")
    camera = _text(request, "camera", max_len=64)
    result = await actions.list_cases(
        portal, portal.user(request), states=states or None, plate=_text(request, "plate", max_len=20),
        camera_id=camera, limit=_int(request, "limit", 50, 1, 200), offset=_int(request, "offset", 0, 0, 10_000_000),
        queue=request.query.get("order") == "oldest")
    return json_response(result)


async def get_case(request: web.Request) -> web.Response:
    portal = _portal(request)
    view = await actions.read_case(portal, portal.user(request), request.match_info["case_id"],
                                   purpose=_text(request, "purpose", "xem hồ sơ vụ việc") or "xem hồ sơ vụ việc",
                                   client=portal.client(request))
    return json_response(view)


async def case_evidence(request: web.Request) -> web.Response:
    portal = _portal(request)
    sha = _sha(request)
    data, content_type = await actions.read_evidence(
        portal, portal.user(request), request.match_info["case_id"], sha,
        purpose=_text(request, "purpose", "xem chứng cứ") or "xem chứng cứ", client=portal.client(request))
    return _image(data, content_type, sha)


async def review(request: web.Request) -> web.Response:
    portal, user, body = await _command(request, "review", access.ReviewRequest)
    result = await actions.review(portal, user, request.match_info["case_id"], decision=body.decision,
                                  plate=body.plate, reason=body.reason, plate_override_reason=body.plate_override_reason,
                                  not_duplicate=body.not_duplicate, client=portal.client(request))
    return json_response(result)


async def not_duplicate(request: web.Request) -> web.Response:
    portal, user, body = await _command(request, "review", access.NotDuplicateRequest)
    return json_response(await actions.not_duplicate(portal, user, request.match_info["case_id"], reason=body.reason,
                                                     client=portal.client(request)))


async def merge(request: web.Request) -> web.Response:
    portal, user, body = await _command(request, "review", access.MergeRequest)
    return json_response(await actions.merge(portal, user, request.match_info["case_id"], into=body.into,
                                             reason=body.reason, client=portal.client(request)))


async def resolve(request: web.Request) -> web.Response:
    portal, user, body = await _command(request, "resolve", access.ResolveRequest)
    return json_response(await actions.resolve(portal, user, request.match_info["case_id"], resolution=body.resolution))


async def reject_reasons(request: web.Request) -> web.Response:
    portal = _portal(request)
    if portal.user(request) is None:
        raise actions.ActionError(401, "cần đăng nhập")
    return json_response([access.RejectReasonView(code=r.code, label=r.label) for r in portal.directory.reject_reasons])


def check_rate(portal: Portal, request: web.Request) -> None:
    allowed, wait = portal.limiter.allow(portal.client(request))
    if not allowed:
        metrics.RATE_LIMITED.inc()
        raise web.HTTPTooManyRequests(reason="tra cứu quá nhiều lần, vui lòng thử lại sau",
                                      headers={"Retry-After": str(max(1, round(wait)))})


async def public_lookup(request: web.Request) -> web.Response:
    portal = _portal(request)
    check_rate(portal, request)
    plate = _text(request, "plate", max_len=20)
    if not plate:
        raise actions.ActionError(400, "thiếu tham số plate (biển số)")
    return json_response(await actions.public_lookup(portal, plate))


async def public_evidence(request: web.Request) -> web.Response:
    portal = _portal(request)  # not rate-limited: the names come from a (limited) lookup
    sha = _sha(request)
    data, content_type = await actions.read_public_evidence(portal, request.match_info["case_id"], sha,
                                                            client=portal.client(request))
    # A derived copy (bystanders blurred): it does not hash to the original's SHA-256, so it names
    # the original it comes from and says it is derived.
    return web.Response(body=data, content_type=content_type, headers={
        "X-Evidence-Derived-From": sha, "X-Evidence-Public-Copy": "bystanders-blurred",
        "Cache-Control": "private, no-store"})


def _tz(portal: Portal) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(portal.config.timezone)


def _table(request: web.Request, rows: list[Any], name: str) -> web.Response:
    fmt = request.query.get("format", "json")
    if fmt == "json":
        return json_response(rows)
    if fmt != "csv":
        raise actions.ActionError(400, "format phải là json hoặc csv")
    out = io.StringIO()
    builtins = [msgspec.to_builtins(r) for r in rows]
    fields = list(msgspec.structs.asdict(rows[0])) if rows else []
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    writer.writerows(builtins)
    # A BOM so that Excel, which the agencies open these in, reads the Vietnamese text as UTF-8.
    return web.Response(body=("\ufeff" + out.getvalue()).encode("utf-8"), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


async def stats_violations(request: web.Request) -> web.Response:
    portal, _ = _user(request, "stats")
    group = request.query.get("group", "type")
    if group not in store.GROUPS:
        raise actions.ActionError(400, "group phải là type, camera hoặc day")
    start, end = actions.parse_period(_text(request, "from", max_len=10), _text(request, "to", max_len=10), _tz(portal))
    async with portal.pool.acquire() as conn:
        rows = await store.violations_by(conn, group, start, end, portal.config.timezone)
    return _table(request, [access.ViolationStat(**r) for r in rows], f"vi-pham-theo-{group}")


async def stats_counts(request: web.Request) -> web.Response:
    portal, _ = _user(request, "stats")
    start, end = actions.parse_period(_text(request, "from", max_len=10), _text(request, "to", max_len=10), _tz(portal))
    async with portal.pool.acquire() as conn:
        rows = await store.counts_by(conn, start, end, portal.config.timezone)
    return _table(request, [access.CountStat(**r) for r in rows], "luu-luong")


async def stats_cameras(request: web.Request) -> web.Response:
    portal, _ = _user(request, "stats")
    async with portal.pool.acquire() as conn:
        rows = await store.cameras(conn)
    return _table(request, [access.CameraView(**r) for r in rows], "camera")


async def inspection_holds(request: web.Request) -> web.Response:
    portal, _ = _user(request, "holds")
    async with portal.pool.acquire() as conn:
        rows = await store.inspection_holds(conn)
    return _table(request, [access.HoldView(**r) for r in rows], "tam-dung-dang-kiem")


async def audit_log(request: web.Request) -> web.Response:
    portal, _ = _user(request, "audit")
    async with portal.pool.acquire() as conn:
        rows = await store.audit_rows(conn, _int(request, "limit", 100, 1, 1000))
    return json_response([access.AuditView(**r) for r in rows])


async def appeal(request: web.Request) -> web.Response:
    portal, user, body = await _command(request, "appeal", access.AppealRequest)
    return json_response(await actions.appeal(portal, user, request.match_info["case_id"], note=body.note,
                                              client=portal.client(request)))


async def dataset_export(request: web.Request) -> web.Response:
    """The reviewed cases since a date as a zip of labelled frames and plate crops (dataset.py)."""
    portal, user = _user(request, "dataset")
    since_text = _text(request, "since", default="", max_len=10) or ""
    try:
        since = date.fromisoformat(since_text)
    except ValueError as exc:
        raise actions.ActionError(400, "since phải có dạng YYYY-MM-DD") from exc
    try:
        result = await dataset.export(portal, user, since=since, purpose=request.query.get("purpose", ""),
                                      client=portal.client(request))
    except dataset.ExportError as exc:
        raise actions.ActionError(exc.status, exc.message) from exc
    return web.Response(body=result.data, content_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="roadwatch-dataset-{since.isoformat()}.zip"',
        "X-Export-Id": result.export_id, "X-Manifest-Sha256": result.manifest_sha256,
        "Cache-Control": "no-store"})


# --- the operations board ---------------------------------------------------------------------------
def _incident_id(request: web.Request) -> str:
    incident_id = request.match_info["incident_id"]
    if len(incident_id) > 128:
        raise actions.ActionError(400, "incident_id quá dài")
    return incident_id


async def board_snapshot(request: web.Request) -> web.Response:
    portal = _portal(request)
    return json_response(await board.snapshot(portal, portal.user(request)))


async def list_incidents(request: web.Request) -> web.Response:
    portal = _portal(request)
    state = request.query.get("state", "open")
    if state not in ("open", "all"):
        raise actions.ActionError(400, "state phải là open hoặc all")
    return json_response(await board.list_incidents(
        portal, portal.user(request), open_only=state == "open", camera_id=_text(request, "camera", max_len=64),
        limit=_int(request, "limit", 200, 1, 1000)))


async def get_incident(request: web.Request) -> web.Response:
    portal = _portal(request)
    return json_response(await board.read_incident(portal, portal.user(request), _incident_id(request)))


async def _incident_note(request: web.Request, act) -> web.Response:
    """Acknowledge or close an incident (board.acknowledge / board.close) with the body's note."""
    portal, user, body = await _command(request, "incidents", access.IncidentNote)
    return json_response(await act(portal, user, _incident_id(request), note=body.note, client=portal.client(request)))


async def acknowledge_incident(request: web.Request) -> web.Response:
    return await _incident_note(request, board.acknowledge)


async def close_incident(request: web.Request) -> web.Response:
    return await _incident_note(request, board.close)


async def incident_evidence(request: web.Request) -> web.Response:
    portal = _portal(request)
    sha = _sha(request)
    data, content_type = await board.read_evidence(portal, portal.user(request), _incident_id(request), sha,
                                                   client=portal.client(request))
    return _image(data, content_type, sha)


async def camera_frame(request: web.Request) -> web.Response:
    """The camera's newest frame. `If-None-Match` with the last ETag answers 304 while no newer
    frame has arrived, so a wall polling faster than the camera sends no image twice."""
    portal = _portal(request)
    camera_id = request.match_info["camera_id"]
    if len(camera_id) > 64 or not subjects.TOKEN.match(camera_id):
        raise actions.ActionError(400, "camera_id không hợp lệ (chữ thường, chữ số, '-' hoặc '_')")
    frame = await board.latest_frame(portal, portal.user(request), camera_id, client=portal.client(request))
    etag = f'"{frame.seq}"'
    headers = {"ETag": etag, "X-Frame-Seq": frame.frame_seq, "X-Captured-At": frame.captured_at,
               "Cache-Control": "private, no-cache"}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=frame.data, content_type=frame.content_type, headers=headers)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/me", me),
        web.get("/api/cases", list_cases),
        web.get("/api/cases/{case_id}", get_case),
        web.get("/api/cases/{case_id}/evidence/{sha256}", case_evidence),
        web.post("/api/cases/{case_id}/review", review),
        web.post("/api/cases/{case_id}/resolve", resolve),
        web.post("/api/cases/{case_id}/merge", merge),
        web.post("/api/cases/{case_id}/not-duplicate", not_duplicate),
        web.post("/api/cases/{case_id}/appeal", appeal),
        web.get("/api/dataset/export", dataset_export),
        web.get("/api/reject-reasons", reject_reasons),
        web.get("/api/public/lookup", public_lookup),
        web.get("/api/public/cases/{case_id}/evidence/{sha256}", public_evidence),
        web.get("/api/stats/violations", stats_violations),
        web.get("/api/stats/counts", stats_counts),
        web.get("/api/stats/cameras", stats_cameras),
        web.get("/api/inspection-holds", inspection_holds),
        web.get("/api/audit", audit_log),
        web.get("/api/board", board_snapshot),
        web.get("/api/board/events", board.events),
        web.get("/api/incidents", list_incidents),
        web.get("/api/incidents/{incident_id}", get_incident),
        web.get("/api/incidents/{incident_id}/evidence/{sha256}", incident_evidence),
        web.post("/api/incidents/{incident_id}/acknowledge", acknowledge_incident),
        web.post("/api/incidents/{incident_id}/close", close_incident),
        web.get("/api/cameras/{camera_id}/frame", camera_frame),
    ]
