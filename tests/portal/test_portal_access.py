"""Every endpoint × every role on a running portal: who gets what, and owner data never reaches
the transport department, the operations centre, citizens or commune police of another commune."""

from __future__ import annotations

import asyncpg

from services.portal import access
from portal_samples import (LACH_TRAY, OTHER_COMMUNE, OWNER_SECRETS, OWNERS, case_for, identified, publish_violation,
                            put_evidence, unidentified)

ROLES = ("police", "commune_police", "transport", "operations_centre", "citizen", None)
ALL = {r: 200 for r in ROLES}


def expect(allowed: set[str], denied: int = 403, anon: int = 401, ok: int = 200) -> dict:
    return {r: (ok if r in allowed else (anon if r is None else denied)) for r in ROLES}


CASE_READERS = {"police", "commune_police", "operations_centre"}
STATS = {"police", "operations_centre", "transport"}


async def test_role_matrix(portal_url, start_portal, js, street_dir, wait_for):
    running = await start_portal(portal_url)
    camera, http, base = running.camera, running.http, running.base
    evidence = await put_evidence(js, street_dir, bucket=running.bucket)
    mine = identified(camera, 1, owner_commune=LACH_TRAY, evidence=evidence)
    other = identified(camera, 2, plate="15A-678.90", owner_commune=OTHER_COMMUNE, evidence=evidence)
    unknown = unidentified(camera, 3, evidence=evidence)
    for e in (mine, other, unknown):
        await publish_violation(js, e)
    c_mine = (await wait_for(lambda: case_for(portal_url, mine.violation.id)))["case_id"]
    c_other = (await wait_for(lambda: case_for(portal_url, other.violation.id)))["case_id"]
    c_unknown = (await wait_for(lambda: case_for(portal_url, unknown.violation.id)))["case_id"]
    # The other commune's case is confirmed, so that it is public.
    async with http.post(f"{base}/api/cases/{c_other}/review", json={"decision": "confirmed"},
                         headers=running.headers("police")) as r:
        assert r.status == 200
    sha = evidence[0].sha256

    no_commune = {r: s for r, s in expect(CASE_READERS).items()} | {"commune_police": 404}
    matrix = [
        ("GET", "/api/me", ALL | {None: 401}),
        ("GET", "/api/cases", expect(CASE_READERS)),
        ("GET", f"/api/cases/{c_mine}", expect(CASE_READERS)),
        ("GET", f"/api/cases/{c_other}", no_commune),
        ("GET", f"/api/cases/{c_mine}/evidence/{sha}", expect(CASE_READERS)),
        ("GET", f"/api/cases/{c_other}/evidence/{sha}", no_commune),
        ("GET", "/api/reject-reasons", ALL | {None: 401}),
        ("GET", "/api/public/lookup?plate=15A67890", ALL),
        ("GET", f"/api/public/cases/{c_other}/evidence/{sha}", ALL),
        ("GET", f"/api/public/cases/{c_mine}/evidence/{sha}", {r: 404 for r in ROLES}),  # not confirmed: not public
        ("GET", "/api/stats/violations?group=camera", expect(STATS)),
        ("GET", "/api/stats/violations?group=day&format=csv", expect(STATS)),
        ("GET", "/api/stats/counts", expect(STATS)),
        ("GET", "/api/stats/cameras", expect(STATS)),
        ("GET", "/api/inspection-holds", expect({"police", "transport"})),
        ("GET", "/api/audit", expect({"police"})),
        ("GET", "/api/openapi.json", ALL),
        ("GET", "/api/reports/summary.pdf", expect(STATS)),
        ("GET", "/api/reports/summary.csv", expect(STATS)),
        ("POST", f"/api/cases/{c_unknown}/review", expect({"police"}, ok=400)),   # police: empty body → 400
        ("POST", f"/api/cases/{c_other}/resolve", expect({"police"}, ok=400)),
        ("GET", "/hang-cho", {**expect(CASE_READERS), None: 303}),
        ("GET", "/thong-ke", {**expect(STATS), None: 303}),
        ("GET", "/camera/hoat-dong", {**expect({"police", "operations_centre", "transport"}), None: 303}),
        ("GET", "/tra-cuu?plate=15A67890", ALL),
        ("GET", f"/ho-so/{c_mine}", {**expect(CASE_READERS), None: 303}),
        ("GET", f"/ho-so/{c_other}", {**no_commune, None: 303}),
        ("POST", f"/ho-so/{c_unknown}/xu-ly", {**expect({"police"}, ok=400), None: 303}),  # no decision → 400
        ("GET", "/dang-nhap", ALL),
    ]
    seen: dict[str | None, list[str]] = {r: [] for r in ROLES}
    failures = []
    for method, path, wanted in matrix:
        for role in ROLES:
            async with http.request(method, base + path, headers=running.headers(role), allow_redirects=False,
                                    data=b"" if method == "POST" else None) as r:
                body = await r.read()
                if r.status != wanted[role]:
                    failures.append(f"{method} {path} as {role}: {r.status} != {wanted[role]} {body[:200]!r}")
                if path.startswith("/api/") and r.status >= 400:
                    assert r.headers["Content-Type"].startswith("application/json"), path
                    assert (await r.json())["error"]
                seen[role].append(body.decode("utf-8", "replace"))
    assert not failures, "\n".join(failures)

    # Owner data: never for roles without the permission; never another commune's for commune police.
    for role in ("transport", "operations_centre", "citizen", None):
        leaked = [s for s in OWNER_SECRETS for body in seen[role] if s in body]
        assert not leaked, f"{role} received owner data: {leaked}"
    other_owner = OWNERS[OTHER_COMMUNE]
    assert not any(other_owner.name in b or other_owner.national_id in b for b in seen["commune_police"])
    assert any(OWNERS[LACH_TRAY].national_id in b for b in seen["commune_police"])  # their own commune: yes
    assert any(other_owner.national_id in b for b in seen["police"])  # the check above can fail

    # Commune police list only their commune's cases; the others see all three.
    async def listed(role):
        async with http.get(f"{base}/api/cases?camera={camera}", headers=running.headers(role)) as r:
            return sorted(c["case_id"] for c in (await r.json())["items"])
    assert await listed("commune_police") == [c_mine]
    assert await listed("operations_centre") == sorted([c_mine, c_other, c_unknown])
    async with http.get(f"{base}/api/cases/{c_mine}", headers=running.headers("operations_centre")) as r:
        view = await r.json()
    assert view["owner"] is None and view["owner_commune"] is None and view["evidence"]
    async with http.get(f"{base}/api/cases/{c_mine}", headers=running.headers("police")) as r:
        view = await r.json()
    assert view["owner"]["national_id"] == OWNERS[LACH_TRAY].national_id

    # The public lookup: the confirmed case, public fields only.
    async with http.get(f"{base}/api/public/lookup?plate=15a-678.90") as r:
        found = (await r.json())["items"]
    assert [f["case_id"] for f in found] == [c_other]
    assert set(found[0]) == set(access.PublicCase.__struct_fields__)
    assert found[0]["resolving_unit"].startswith("Phòng Cảnh sát giao thông") and found[0]["resolving_phone"]

    # Each owner read and evidence read left an audit row naming the user.
    conn = await asyncpg.connect(portal_url)
    try:
        rows = await conn.fetch("SELECT user_id, action, object FROM portal.audit")
    finally:
        await conn.close()
    assert ("ca-lach-tray-hoa", "owner_read", c_mine) in {tuple(r) for r in rows}
    assert ("ttdh-lan", "evidence_read", f"{c_mine}/{sha}") in {tuple(r) for r in rows}
    assert not any(r["user_id"] == "sxd-tuan" for r in rows)  # transport read nothing personal


async def test_public_lookup_is_rate_limited(portal_url, start_portal):
    running = await start_portal(portal_url, public_rate_per_minute=5)
    statuses = []
    for _ in range(7):
        async with running.http.get(f"{running.base}/api/public/lookup?plate=15A12345") as r:
            statuses.append(r.status)
            if r.status == 429:
                assert int(r.headers["Retry-After"]) >= 1 and (await r.json())["error"]
    assert statuses == [200] * 5 + [429] * 2
    async with running.http.get(f"{running.base}/api/public/lookup?plate=x") as r:
        assert r.status == 429  # still limited: a bad query does not bypass the limit
