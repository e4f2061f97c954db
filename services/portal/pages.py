"""Server-rendered pages in Vietnamese: login, review queue, case review, public lookup, statistics.

The pages call the same actions as the JSON API (actions.py), so that a role sees and may do
exactly the same in both. Login sets the bearer token in an HttpOnly, SameSite=Strict cookie:
no server-side session, so any replica serves any page. Every form carries the session's
anti-forgery token and every POST is checked for its origin (csrf.py).
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import jinja2
from aiohttp import web

from services.portal import access, actions, board, cases, csrf, store
from services.portal.agencies import ROLE_LABELS, User
from services.portal.api import check_rate
from services.portal.context import COOKIE, KEY, Portal

HERE = Path(__file__).resolve().parent
ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                         undefined=jinja2.StrictUndefined)
KIND_LABELS = {"frame": "Toàn cảnh", "plate_crop": "Biển số", "overlay": "Ảnh có chú thích", "clip": "Đoạn video"}
CAMERA_LABELS = {"online": "Hoạt động", "degraded": "Suy giảm", "offline": "Mất tín hiệu"}
# Scripts and styles are our static files only; evidence is shown from blob: URLs after the
# in-browser SHA-256 check; no framing (the review buttons must not be clickjacked).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; script-src 'self'; style-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
FLASH = {"confirmed": "Đã xác nhận vi phạm {case}.", "rejected": "Đã loại bỏ vụ việc {case}.",
         "acknowledged": "Đã tiếp nhận sự cố.", "closed": "Đã đóng sự cố.",
         "merged": "Đã gộp vụ việc {case} vào vụ việc trùng.",
         "resolved": "Đã đánh dấu vụ việc {case} đã xử lý."}


def _render(request: web.Request, template: str, status: int = 200, **context) -> web.Response:
    portal: Portal = request.app[KEY]
    user = portal.user(request)
    done = request.query.get("da")
    flash = FLASH[done].format(case=request.query.get("ma", "")) if done in FLASH else None
    html = ENV.get_template(template).render(
        user=user, role_label=ROLE_LABELS.get(user.role, "") if user else "",
        can_cases=access.can(user, "cases"), can_stats=access.can(user, "stats"), can_board=access.can(user, "board"),
        can_uptime=access.can(user, "uptime"), csrf_token=csrf.session_token(request),
        flash=context.pop("flash", flash), flash_kind=context.pop("flash_kind", "ok"), **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS)


def _login_redirect(request: web.Request) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/dang-nhap?tiep={quote(request.path_qs)}")


def _user(request: web.Request, permission: str) -> User:
    user: User | None = request.app[KEY].user(request)
    if user is None:
        raise _login_redirect(request)
    if not access.can(user, permission):
        raise web.HTTPForbidden(text="Vai trò của bạn không được xem trang này.", content_type="text/plain")
    return user


def _home(user: User) -> str:
    if access.can(user, "review"):
        return "/hang-cho"
    if access.can(user, "incidents"):  # the operations centre and the transport department
        return "/dieu-hanh"
    if access.can(user, "cases"):
        return "/hang-cho?state=confirmed"
    if access.can(user, "stats"):
        return "/thong-ke"
    return "/tra-cuu"


async def index(request: web.Request) -> web.Response:
    user = request.app[KEY].user(request)
    raise web.HTTPSeeOther(_home(user) if user else "/tra-cuu")


async def login_form(request: web.Request) -> web.Response:
    return _render(request, "login.html", error=None, next_url=request.query.get("tiep", ""))


async def login(request: web.Request) -> web.Response:
    portal: Portal = request.app[KEY]
    form = await request.post()
    token = str(form.get("token", "")).strip()
    user = portal.directory.user_for_token(token) if token else None
    if user is None:
        return _render(request, "login.html", status=401, error="Mã truy cập không đúng.",
                       next_url=str(form.get("tiep", "")))
    target = str(form.get("tiep", ""))
    if not target.startswith("/") or target.startswith("//"):
        target = _home(user)
    response = web.HTTPSeeOther(target)
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                        secure=request.secure, max_age=12 * 3600)
    csrf.set_nonce(response, csrf.new_nonce(), secure=request.secure)  # a new session: a new form token
    raise response


async def logout(_: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/tra-cuu")
    response.del_cookie(COOKIE, path="/")
    response.del_cookie(csrf.SESSION_COOKIE, path="/")
    raise response


async def queue(request: web.Request) -> web.Response:
    user = _user(request, "cases")
    portal: Portal = request.app[KEY]
    state = request.query.get("state") or ""
    if state and state not in cases.STATES:
        raise web.HTTPBadRequest(text="Trạng thái không hợp lệ.")
    states = [state] if state else sorted(cases.REVIEWABLE)
    plate = (request.query.get("plate") or "")[:20]
    result = await actions.list_cases(portal, user, states=states, plate=plate or None, camera_id=None, limit=200,
                                      offset=0, queue=True)
    heading = "Hàng chờ xác minh vi phạm" if not state else f"Vụ việc: {cases.STATE_LABELS[state]}"
    return _render(request, "queue.html", heading=heading, total=result.total, items=result.items, state=state,
                   plate=plate, state_options=[(s, cases.STATE_LABELS[s]) for s in cases.STATES if s != "detected"])


async def case_page(request: web.Request) -> web.Response:
    user = _user(request, "cases")
    portal: Portal = request.app[KEY]
    case_id = request.match_info["case_id"]
    try:
        view = await actions.read_case(portal, user, case_id, purpose="xác minh vi phạm", client=portal.client(request))
    except actions.ActionError as exc:
        return _render(request, "base.html", status=exc.status, flash=exc.message, flash_kind="error")
    async with portal.pool.acquire() as conn:
        next_case = await store.next_in_queue(conn, case_id)
    return _render(request, "case.html", c=view, can_review=access.can(user, "review"),
                   can_resolve=access.can(user, "resolve"), reasons=portal.directory.reject_reasons,
                   next_case=next_case, kind_labels=KIND_LABELS, vehicle_labels=cases.VEHICLE_LABELS,
                   plate_colours=cases.PLATE_COLOUR_LABELS, state_labels=cases.STATE_LABELS,
                   colour_labels=cases.COLOUR_LABELS, unidentified_labels=cases.UNIDENTIFIED_LABELS)


async def _decide(request: web.Request, run) -> web.Response:
    case_id = request.match_info["case_id"]
    try:
        result = await run()
    except actions.ActionError as exc:
        portal: Portal = request.app[KEY]
        user = portal.user(request)
        view = await actions.read_case(portal, user, case_id, purpose="xác minh vi phạm", client=portal.client(request))
        return _render(request, "case.html", status=exc.status, flash=exc.message, flash_kind="error", c=view,
                       can_review=access.can(user, "review"), can_resolve=access.can(user, "resolve"),
                       reasons=portal.directory.reject_reasons, next_case=None, kind_labels=KIND_LABELS,
                       vehicle_labels=cases.VEHICLE_LABELS, plate_colours=cases.PLATE_COLOUR_LABELS,
                       state_labels=cases.STATE_LABELS, colour_labels=cases.COLOUR_LABELS, unidentified_labels=cases.UNIDENTIFIED_LABELS)
    target = f"/ho-so/{result.next_case}" if result.next_case and result.state in ("confirmed", "rejected", "merged") \
        else "/hang-cho"
    raise web.HTTPSeeOther(f"{target}?da={result.state}&ma={quote(case_id)}")


async def review(request: web.Request) -> web.Response:
    user = _user(request, "review")
    form = await request.post()
    portal: Portal = request.app[KEY]
    return await _decide(request, lambda: actions.review(
        portal, user, request.match_info["case_id"], decision=str(form.get("decision", "")),
        plate=str(form.get("plate", "")) or None, reason=str(form.get("reason", "")) or None,
        plate_override_reason=str(form.get("plate_override_reason", "")).strip() or None,
        not_duplicate=form.get("not_duplicate") == "1", client=portal.client(request)))


async def not_duplicate(request: web.Request) -> web.Response:
    user = _user(request, "review")
    form = await request.post()
    portal: Portal = request.app[KEY]
    return await _decide(request, lambda: actions.not_duplicate(
        portal, user, request.match_info["case_id"], reason=str(form.get("reason", "")), client=portal.client(request)))


async def merge(request: web.Request) -> web.Response:
    user = _user(request, "review")
    form = await request.post()
    portal: Portal = request.app[KEY]
    return await _decide(request, lambda: actions.merge(
        portal, user, request.match_info["case_id"], into=str(form.get("into", "")).strip(),
        reason=str(form.get("reason", "")), client=portal.client(request)))


async def resolve(request: web.Request) -> web.Response:
    user = _user(request, "resolve")
    form = await request.post()
    portal: Portal = request.app[KEY]
    return await _decide(request, lambda: actions.resolve(
        portal, user, request.match_info["case_id"], resolution=str(form.get("resolution", ""))))


async def lookup(request: web.Request) -> web.Response:
    portal: Portal = request.app[KEY]
    plate = (request.query.get("plate") or "").strip()[:20]
    if not plate:
        return _render(request, "lookup.html", plate="", result=None, error=None)
    try:
        check_rate(portal, request)
    except web.HTTPTooManyRequests as exc:
        return _render(request, "lookup.html", status=429, plate=plate, result=None, error=exc.reason)
    try:
        result = await actions.public_lookup(portal, plate)
    except actions.ActionError as exc:
        return _render(request, "lookup.html", status=exc.status, plate=plate, result=None, error=exc.message)
    return _render(request, "lookup.html", plate=plate, result=result, error=None)


async def stats(request: web.Request) -> web.Response:
    _user(request, "stats")
    portal: Portal = request.app[KEY]
    tz = zoneinfo.ZoneInfo(portal.config.timezone)
    try:
        start, end = actions.parse_period(request.query.get("from") or None, request.query.get("to") or None, tz)
    except actions.ActionError as exc:
        raise web.HTTPBadRequest(text=exc.message) from exc
    async with portal.pool.acquire() as conn:
        groups = [(title, group, await store.violations_by(conn, group, start, end, portal.config.timezone))
                  for title, group in (("Vi phạm theo loại", "type"), ("Vi phạm theo camera", "camera"),
                                       ("Vi phạm theo ngày", "day"))]
        counts = await store.counts_by(conn, start, end, portal.config.timezone)
        cameras = await store.cameras(conn)
    last_day = datetime.fromtimestamp(end.timestamp() - 1, tz).date()
    return _render(request, "stats.html", groups=groups, counts=counts, cameras=cameras, labels=cases.VIOLATION_LABELS,
                   vehicle_labels=cases.VEHICLE_LABELS, camera_labels=CAMERA_LABELS,
                   start=start.date().isoformat(), end=last_day.isoformat())


async def board_page(request: web.Request) -> web.Response:
    """The operations board: the page renders the state at load; board.js keeps it live."""
    user = _user(request, "board")
    portal: Portal = request.app[KEY]
    view = await board.snapshot(portal, user)
    return _render(request, "board.html", b=view, timezone=portal.config.timezone,
                   refresh_ms=round(portal.config.board_frame_refresh_s * 1000))


async def _incident_form(request: web.Request, run) -> web.Response:
    form = await request.post()
    try:
        await run(str(form.get("note", "")))
    except actions.ActionError as exc:
        portal: Portal = request.app[KEY]
        user = portal.user(request)
        view = await board.snapshot(portal, user)
        return _render(request, "board.html", status=exc.status, flash=exc.message, flash_kind="error", b=view,
                       timezone=portal.config.timezone, refresh_ms=round(portal.config.board_frame_refresh_s * 1000))
    raise web.HTTPSeeOther(f"/dieu-hanh?da={request.match_info['action']}")


async def incident_action(request: web.Request) -> web.Response:
    """The board's forms without JavaScript (board.js sends the same through the JSON API)."""
    user = _user(request, "incidents")
    portal: Portal = request.app[KEY]
    incident_id = request.match_info["incident_id"]
    client = portal.client(request)
    if request.match_info["action"] == "acknowledged":
        return await _incident_form(request, lambda note: board.acknowledge(portal, user, incident_id, note=note,
                                                                             client=client))
    return await _incident_form(request, lambda note: board.close(portal, user, incident_id, note=note, client=client))


def setup(app: web.Application, timezone_name: str) -> None:
    tz = zoneinfo.ZoneInfo(timezone_name)
    ENV.filters["localtime"] = lambda value: value.astimezone(tz).strftime("%H:%M:%S %d/%m/%Y") if value else ""
    app.add_routes([
        web.get("/", index),
        web.get("/dang-nhap", login_form),
        web.post("/dang-nhap", login),
        web.get("/dang-xuat", logout),
        web.get("/hang-cho", queue),
        web.get("/ho-so/{case_id}", case_page),
        web.post("/ho-so/{case_id}/xu-ly", review),
        web.post("/ho-so/{case_id}/hoan-tat", resolve),
        web.post("/ho-so/{case_id}/gop", merge),
        web.post("/ho-so/{case_id}/khong-trung", not_duplicate),
        web.get("/tra-cuu", lookup),
        web.get("/thong-ke", stats),
        web.get("/dieu-hanh", board_page),
        web.post(r"/dieu-hanh/su-co/{incident_id}/{action:acknowledged|closed}", incident_action),
        web.static("/static", HERE / "static", append_version=False),
    ])
