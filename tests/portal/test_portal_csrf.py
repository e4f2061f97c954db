"""Cross-site request forgery on a running portal: an officer's session cookie is not enough to
change a case from another site (Origin/Referer), nor from a form without the session's token;
API clients with a bearer token are not affected. (The browser test submits the real forms.)"""

from __future__ import annotations

import re

import pytest

from portal_samples import case_for, identified, publish_violation
from services.portal import csrf
from services.portal.origins import origin_of
from services.portal.settings import Settings
from services.runtime.settings import SettingError

EVIL = "http://evil.example"


async def login(running, token: str = "demo-police") -> dict[str, str]:
    """Log in through the form, as a browser does; returns the session cookies."""
    async with running.http.post(f"{running.base}/dang-nhap", data={"token": token, "tiep": "/hang-cho"},
                                 headers={"Origin": running.base}, allow_redirects=False) as r:
        assert r.status == 303, await r.text()
        return {name: morsel.value for name, morsel in r.cookies.items()}


def cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


async def form_token(running, cookies: dict[str, str], case_id: str) -> str:
    async with running.http.get(f"{running.base}/ho-so/{case_id}", headers={"Cookie": cookie_header(cookies)}) as r:
        assert r.status == 200
        html = await r.text()
    tokens = set(re.findall(r'name="csrf_token" value="([0-9a-f]+)"', html))
    assert len(tokens) == 1, tokens  # every form of the page carries the same session token
    return tokens.pop()


async def state_of(database_url: str, violation_id: str) -> str:
    return (await case_for(database_url, violation_id))["state"]


async def test_forged_and_tokenless_requests_are_refused(portal_url, start_portal, js, wait_for):
    running = await start_portal(portal_url)
    events = [identified(running.camera, n, plate=f"15A-123.{40 + n}") for n in range(1, 4)]
    for event in events:
        await publish_violation(js, event)
    ids = [(await wait_for(lambda e=e: case_for(portal_url, e.violation.id)))["case_id"] for e in events]
    cookies = await login(running)
    assert set(cookies) == {"rw_token", csrf.SESSION_COOKIE}
    token = await form_token(running, cookies, ids[0])
    url = f"{running.base}/ho-so/{ids[0]}/xu-ly"
    reject = {"decision": "rejected", "reason": "plate_unreadable"}

    async def post(url: str, data: dict | None = None, json: dict | None = None, **headers: str):
        async with running.http.post(url, data=data, json=json, headers=headers, allow_redirects=False) as r:
            return r.status, await r.text()

    probes: dict[str, int] = {}
    # The police cookie and a valid token, but sent from another site: refused, case unchanged.
    status, body = await post(url, {**reject, "csrf_token": token}, Origin=EVIL, Cookie=cookie_header(cookies))
    probes["forged Origin"] = status
    assert status == 403 and "không phải cổng thông tin này" in body and EVIL in body
    status, body = await post(url, {**reject, "csrf_token": token}, Referer=f"{EVIL}/trap.html",
                              Cookie=cookie_header(cookies))
    probes["forged Referer, no Origin"] = status
    assert status == 403 and "Referer" in body
    status, body = await post(url, {**reject, "csrf_token": token}, Cookie=cookie_header(cookies))
    probes["no Origin, no Referer"] = status
    assert status == 403 and "thiếu Origin" in body
    # Same origin but no token, or another session's token: refused.
    status, body = await post(url, reject, Origin=running.base, Cookie=cookie_header(cookies))
    probes["missing token"] = status
    assert status == 403 and "mã chống giả mạo" in body
    other_session = await login(running)
    assert other_session[csrf.SESSION_COOKIE] != cookies[csrf.SESSION_COOKIE]
    status, _ = await post(url, {**reject, "csrf_token": await form_token(running, other_session, ids[0])},
                           Origin=running.base, Cookie=cookie_header(cookies))
    probes["another session's token"] = status
    assert status == 403
    assert await state_of(portal_url, events[0].violation.id) == "identified"

    # The real form: same origin, the session's token → done.
    status, _ = await post(url, {**reject, "csrf_token": token}, Origin=running.base, Cookie=cookie_header(cookies))
    probes["valid form"] = status
    assert status == 303
    assert await state_of(portal_url, events[0].violation.id) == "rejected"

    # A cookie-authenticated API call is held to the same rules (token in X-CSRF-Token).
    api = f"{running.base}/api/cases/{ids[1]}/review"
    status, body = await post(api, json={"decision": "confirmed"}, Origin=EVIL, Cookie=cookie_header(cookies))
    probes["API with cookie, forged Origin"] = status
    assert status == 403 and "không phải cổng" in body and body.startswith("{")  # JSON problem
    status, _ = await post(api, json={"decision": "confirmed"}, Origin=running.base, Cookie=cookie_header(cookies))
    probes["API with cookie, no token"] = status
    assert status == 403
    assert await state_of(portal_url, events[1].violation.id) == "identified"
    status, _ = await post(api, json={"decision": "confirmed"}, Origin=running.base, Cookie=cookie_header(cookies),
                           **{csrf.HEADER: token})
    probes["API with cookie and token"] = status
    assert status == 200

    # An API client with a bearer token: no cookie, no token, whatever Origin it sends.
    status, _ = await post(f"{running.base}/api/cases/{ids[2]}/review", json={"decision": "confirmed"},
                           Authorization="Bearer demo-police", Origin=EVIL)
    probes["bearer API"] = status
    assert status == 200
    assert await state_of(portal_url, events[2].violation.id) == "confirmed"
    print("\n".join(f"{k:32} {v}" for k, v in probes.items()))


async def test_configured_public_url_is_the_only_origin(portal_url, start_portal, js, wait_for):
    running = await start_portal(portal_url, public_url="https://csgt.example.vn",
                                 allowed_origins=("https://portal.example.vn:8443",))
    async with running.http.post(f"{running.base}/dang-nhap", data={"token": "demo-police"},
                                 headers={"Origin": running.base}, allow_redirects=False) as r:
        assert r.status == 403  # the address the request came to is not the configured origin
    for origin in ("https://csgt.example.vn", "https://CSGT.example.vn:443", "https://portal.example.vn:8443"):
        async with running.http.post(f"{running.base}/dang-nhap", data={"token": "demo-police"},
                                     headers={"Origin": origin}, allow_redirects=False) as r:
            assert r.status == 303, origin
    async with running.http.post(f"{running.base}/dang-nhap", data={"token": "demo-police"},
                                 headers={"Origin": "https://csgt.example.vn.evil.example"},
                                 allow_redirects=False) as r:
        assert r.status == 403


def test_origins_and_settings(tmp_path):
    assert origin_of("https://Portal.Example.vn:443/ho-so/x?y=1") == "https://portal.example.vn"
    assert origin_of("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert origin_of("null") is None and origin_of("javascript:alert(1)") is None
    with pytest.raises(SettingError, match="PUBLIC_URL"):
        Settings(database_url="postgresql://x/y", public_url="csgt.example.vn")
    with pytest.raises(SettingError, match="ALLOWED_ORIGINS"):
        Settings(database_url="postgresql://x/y", allowed_origins=("ftp://x",))
    assert csrf.token_for("demo-police", "a") != csrf.token_for("demo-police", "b")
    assert csrf.token_for("demo-police", "a") != csrf.token_for("demo-commune", "a")

