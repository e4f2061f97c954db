"""Cross-site request forgery: no state-changing request that a browser made on behalf of another site.

Two checks on every POST/PUT/PATCH/DELETE, in a middleware so that no route can forget them:

1. **Origin**: the request's `Origin` (or, when a browser sent none, the scheme and host of its
   `Referer`) must be the portal's own origin: `PUBLIC_URL`, or one of `ALLOWED_ORIGINS`, or
   (both unset) the scheme and `Host` the request came to. A request that carries the session
   cookie but neither header is refused too: every browser sends `Origin` on a POST.
2. **Token**: a request authenticated by the session cookie must carry the session's token, in
   the form field `csrf_token` (the pages put it in every form) or the `X-CSRF-Token` header. The
   token is HMAC-SHA256 of the session nonce (a random cookie set at login) keyed with the
   user's own bearer token: another site knows neither, any replica can check it without shared
   state, and it changes with each login. Compared in constant time.

A request with `Authorization: Bearer …` is an API client, not a browser riding on a cookie
(another site cannot make a browser send that header): neither check applies to it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

from aiohttp import web

from services.portal import actions, metrics
from services.portal.context import COOKIE, KEY
from services.portal.origins import origin_of

log = logging.getLogger("portal")

SESSION_COOKIE = "rw_session"
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Forbidden(web.HTTPForbidden):
    def __init__(self, message: str) -> None:
        super().__init__(reason="Forbidden", text=message, content_type="text/plain")
        self.message = message


def own_origins(request: web.Request) -> set[str]:
    """The origins this portal answers as: configured, or else the one the request was sent to."""
    config = request.app[KEY].config
    configured = {o for o in (origin_of(u) for u in (config.public_url, *config.allowed_origins) if u) if o}
    if configured:
        return configured
    scheme, host = request.scheme, request.host
    if config.trust_forwarded:
        scheme = request.headers.get("X-Forwarded-Proto", scheme).split(",")[0].strip()
        host = request.headers.get("X-Forwarded-Host", host).split(",")[0].strip()
    own = origin_of(f"{scheme}://{host}")
    return {own} if own else set()


def token_for(bearer: str, nonce: str) -> str:
    return hmac.new(bearer.encode(), nonce.encode(), hashlib.sha256).hexdigest()


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def session_token(request: web.Request) -> str:
    """The token for the forms of this page ("" when the visitor has no session cookie)."""
    bearer = request.cookies.get(COOKIE, "")
    nonce = request.get("csrf_nonce") or request.cookies.get(SESSION_COOKIE, "")
    return token_for(bearer, nonce) if bearer and nonce else ""


def ensure_nonce(request: web.Request, response: web.StreamResponse) -> None:
    """A session from before the nonce cookie existed gets one with its next page."""
    if request.cookies.get(COOKIE) and not request.cookies.get(SESSION_COOKIE) and request.get("csrf_nonce"):
        set_nonce(response, request["csrf_nonce"], secure=request.secure)


def set_nonce(response: web.StreamResponse, nonce: str, *, secure: bool) -> None:
    response.set_cookie(SESSION_COOKIE, nonce, httponly=True, samesite="Strict", path="/", secure=secure,
                        max_age=12 * 3600)


def _bearer(request: web.Request) -> bool:
    return request.headers.get("Authorization", "")[:7].lower() == "bearer "


def _refuse(request: web.Request, why: str, message: str) -> Exception:
    metrics.CSRF_REFUSED.labels(why).inc()
    log.warning("state-changing request refused", extra={"fields": {
        "reason": why, "path": request.path, "origin": request.headers.get("Origin", ""),
        "referer": request.headers.get("Referer", "")}})
    if request.path.startswith("/api/"):
        return actions.ActionError(403, message)  # a JSON problem, like every /api error
    return Forbidden(message)


def check_origin(request: web.Request) -> None:
    sent = request.headers.get("Origin")
    source = "Origin"
    if sent is None and request.headers.get("Referer"):
        sent, source = request.headers["Referer"], "Referer"
    if sent is None:
        if request.cookies.get(COOKIE):
            raise _refuse(request, "no_origin", "Yêu cầu bị từ chối: trình duyệt không cho biết nguồn gửi "
                                                "(thiếu Origin và Referer).")
        return  # no ambient credentials to abuse: a script, checked by its token if it has one
    origin = origin_of(sent)
    if origin is None or origin not in own_origins(request):
        raise _refuse(request, "foreign_origin", f"Yêu cầu bị từ chối: nguồn gửi ({source}: {sent[:200]}) không phải "
                                                 "cổng thông tin này (chống giả mạo yêu cầu).")


async def check_token(request: web.Request) -> None:
    bearer = request.cookies.get(COOKIE, "")
    if not bearer:
        return
    sent = request.headers.get(HEADER, "")
    if not sent and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        sent = str((await request.post()).get(FIELD, ""))
    expected = session_token(request)
    if not expected or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise _refuse(request, "bad_token", "Yêu cầu bị từ chối: thiếu hoặc sai mã chống giả mạo của phiên "
                                            "(tải lại trang rồi thử lại).")


@web.middleware
async def protect(request: web.Request, handler):
    if request.method in UNSAFE and not _bearer(request):
        check_origin(request)
        await check_token(request)
    elif request.cookies.get(COOKIE) and not request.cookies.get(SESSION_COOKIE):
        request["csrf_nonce"] = new_nonce()
    response = await handler(request)
    ensure_nonce(request, response)
    return response
