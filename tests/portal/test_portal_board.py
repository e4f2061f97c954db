"""The operations board over HTTP, on a real nats-server and PostgreSQL: the newest frame of a
camera, who may see it, incidents acknowledged and closed over the JSON API (audited), and the
live event stream."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import asyncpg

from portal_samples import (camera_status, clip_frames, incident_events, publish_frame, publish_incident,
                            put_evidence, signal_phase)
from proto import codec, subjects


async def _audit(database_url: str) -> list[dict]:
    conn = await asyncpg.connect(database_url)
    try:
        return [dict(r) for r in await conn.fetch("SELECT user_id, role, action, object, purpose FROM portal.audit "
                                                  "ORDER BY seq")]
    finally:
        await conn.close()


async def test_latest_frame_is_the_newest_published(portal_url, start_portal, js, shared_dir):
    running = await start_portal(portal_url, board_frame_cache_s=0.0)
    camera, http = running.camera, running.http
    url = f"{running.base}/api/cameras/{camera}/frame"
    async with http.get(url, headers=running.headers("operations_centre")) as r:
        assert r.status == 404  # nothing published yet
    frames = clip_frames(shared_dir / "data" / "video" / "vn_haiphong_intersection.mp4", 4)
    assert len(set(frames)) == 4
    for jpeg in frames[:3]:
        seq = await publish_frame(js, camera, jpeg)
    async with http.get(url, headers=running.headers("operations_centre")) as r:
        assert r.status == 200 and r.content_type == "image/jpeg"
        assert await r.read() == frames[2]
        etag = r.headers["ETag"]
        assert etag == f'"{seq}"' and r.headers["X-Captured-At"]
    # Nothing newer: 304, no image sent again.
    async with http.get(url, headers={**running.headers("operations_centre"), "If-None-Match": etag}) as r:
        assert r.status == 304
    await publish_frame(js, camera, frames[3])
    async with http.get(url, headers={**running.headers("police"), "If-None-Match": etag}) as r:
        assert r.status == 200 and await r.read() == frames[3]
    # Camera images: not for the transport department, nor citizens, nor anonymous callers.
    for role, status in (("transport", 403), ("citizen", 403), ("commune_police", 403), (None, 401)):
        async with http.get(url, headers=running.headers(role)) as r:
            assert r.status == status, role
    # Watching is audited once per user and camera and period, not once per frame.
    watched = [a for a in await _audit(portal_url) if a["action"] == "live_view"]
    assert sorted(a["user_id"] for a in watched) == ["csgt-binh", "ttdh-lan"], watched
    assert {a["object"] for a in watched} == {f"camera:{camera}"}


async def test_frame_reads_are_shared_by_viewers(portal_url, start_portal, js, shared_dir):
    """Many viewers at once cost one read of FRAMES per cache period."""
    running = await start_portal(portal_url, board_frame_cache_s=2.0)
    frames = clip_frames(shared_dir / "data" / "video" / "vn_saigon_intersection.mp4", 1)
    await publish_frame(js, running.camera, frames[0])
    from services.portal import metrics

    before = metrics.FRAME_GETS.labels("fetched")._value.get()

    async def view() -> bytes:
        async with running.http.get(f"{running.base}/api/cameras/{running.camera}/frame",
                                    headers=running.headers("operations_centre")) as r:
            assert r.status == 200
            return await r.read()

    assert set(await asyncio.gather(*(view() for _ in range(20)))) == {frames[0]}
    assert metrics.FRAME_GETS.labels("fetched")._value.get() - before == 1


async def test_incident_acknowledged_and_closed_over_the_api(portal_url, start_portal, js, street_dir, wait_for):
    running = await start_portal(portal_url)
    http, base = running.http, running.base
    evidence = await put_evidence(js, street_dir, bucket=running.bucket)
    detected, updated, _ = incident_events(running.camera, 1, evidence=evidence)
    await publish_incident(js, detected)

    async def listed():
        async with http.get(f"{base}/api/incidents", headers=running.headers("transport")) as r:
            assert r.status == 200
            items = await r.json()
            return items if any(i["incident_id"] == detected.incident_id for i in items) else None

    (item,) = await wait_for(listed, what="incident listed")
    assert item["status"] == "new" and item["type_label"] == "Xe dừng đỗ bất thường"
    assert [e["url"] for e in item["evidence"]] == [None, None]  # transport: no evidence images
    incident = f"{base}/api/incidents/{detected.incident_id}"
    async with http.get(incident, headers=running.headers("operations_centre")) as r:
        seen = await r.json()
    assert seen["evidence"][0]["url"] == f"/api/incidents/{detected.incident_id}/evidence/{evidence[0].sha256}"
    async with http.get(f"{base}{seen['evidence'][0]['url']}", headers=running.headers("operations_centre")) as r:
        assert r.status == 200 and r.headers["X-Evidence-SHA256"] == evidence[0].sha256
    async with http.get(f"{base}{seen['evidence'][0]['url']}", headers=running.headers("transport")) as r:
        assert r.status == 403
    async with http.get(incident, headers=running.headers("citizen")) as r:
        assert r.status == 403

    # The police look on; the centre acknowledges (once), with a note.
    async with http.post(f"{incident}/acknowledge", json={"note": "đã báo CSGT tổ 3"},
                         headers=running.headers("police")) as r:
        assert r.status == 403
    async with http.post(f"{incident}/acknowledge", json={"note": "đã báo CSGT tổ 3"},
                         headers=running.headers("operations_centre")) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
    assert body["status"] == "acknowledged" and body["acknowledged_by"] == "ttdh-lan"
    assert body["acknowledge_note"] == "đã báo CSGT tổ 3"
    async with http.post(f"{incident}/acknowledge", json={}, headers=running.headers("transport")) as r:
        assert r.status == 409 and "ttdh-lan" in (await r.json())["error"]
    # An update after the acknowledgement still applies; the acknowledgement stays.
    await publish_incident(js, updated)

    async def critical():
        async with http.get(incident, headers=running.headers("transport")) as r:
            b = await r.json()
            return b if b["severity"] == "critical" else None

    after = await wait_for(critical, what="update applied")
    assert after["status"] == "acknowledged"
    # Closing needs a note.
    async with http.post(f"{incident}/close", json={"note": "  "}, headers=running.headers("transport")) as r:
        assert r.status == 400
    async with http.post(f"{incident}/close", json={"note": "xe cứu hộ đã kéo xe đi"},
                         headers=running.headers("transport")) as r:
        assert r.status == 200 and (await r.json())["status"] == "closed"
    async with http.post(f"{incident}/close", json={"note": "lần nữa"}, headers=running.headers("transport")) as r:
        assert r.status == 409
    async with http.get(f"{base}/api/incidents", headers=running.headers("transport")) as r:
        assert detected.incident_id not in {i["incident_id"] for i in await r.json()}
    async with http.get(f"{base}/api/incidents?state=all", headers=running.headers("transport")) as r:
        assert detected.incident_id in {i["incident_id"] for i in await r.json()}

    rows = [(a["user_id"], a["action"], a["object"], a["purpose"]) for a in await _audit(portal_url)]
    assert ("ttdh-lan", "incident_acknowledged", detected.incident_id, "đã báo CSGT tổ 3") in rows
    assert ("sxd-tuan", "incident_closed", detected.incident_id, "xe cứu hộ đã kéo xe đi") in rows
    assert ("ttdh-lan", "evidence_read", f"incident:{detected.incident_id}/{evidence[0].sha256}",
            "theo dõi sự cố") in rows


async def test_cookie_session_needs_the_form_token(portal_url, start_portal, js):
    running = await start_portal(portal_url)
    detected, _, _ = incident_events(running.camera, 2)
    await publish_incident(js, detected)
    url = f"{running.base}/api/incidents/{detected.incident_id}/acknowledge"
    async with running.http.post(url, json={"note": ""}, cookies={"rw_token": "demo-ops"},
                                 headers={"Origin": running.base}) as r:
        assert r.status == 403 and "chống giả mạo" in (await r.json())["error"]


async def _sse_events(response, wanted: int, timeout: float = 15.0) -> list[tuple[str, dict]]:
    events, name, data = [], None, []
    async def read():
        nonlocal name, data
        while len(events) < wanted:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and name:
                events.append((name, json.loads("".join(data))))
                name, data = None, []
    await asyncio.wait_for(read(), timeout)
    return events


async def test_event_stream_brings_changes_live(portal_url, start_portal, js, nc, wait_for):
    running = await start_portal(portal_url)
    camera = running.camera
    await nc.flush()
    async with running.http.get(f"{running.base}/api/board/events", headers=running.headers("transport")) as r:
        assert r.status == 200 and r.content_type == "text/event-stream"
        ((name, first),) = await _sse_events(r, 1)
        assert name == "snapshot" and first["incidents"] == [] and first["can_act"] and not first["can_see_images"]
        detected, updated, cleared = incident_events(camera, 3)
        await publish_incident(js, detected)
        ((name, seen),) = await _sse_events(r, 1)
        assert name == "incident" and seen["incident_id"] == detected.incident_id and seen["status"] == "new"
        await js.publish(subjects.camera_status(camera), codec.encode(camera_status(camera, "degraded")))
        ((name, tile),) = await _sse_events(r, 1)
        assert name == "camera" and tile["camera_id"] == camera and tile["state_label"] == "Suy giảm"
        assert tile["frame_url"] is None  # transport: no pictures
        await js.publish(subjects.signal_phase(f"int-{camera[4:]}"),
                         codec.encode(signal_phase(f"int-{camera[4:]}", camera, "north", "red")))
        ((name, tile),) = await _sse_events(r, 1)
        assert name == "camera" and [(s["head"], s["phase_label"]) for s in tile["signals"]] == [("north", "Đỏ")]
        async with running.http.post(f"{running.base}/api/incidents/{detected.incident_id}/acknowledge",
                                     json={"note": "đã xem"}, headers=running.headers("operations_centre")) as a:
            assert a.status == 200
        ((name, seen),) = await _sse_events(r, 1)
        assert name == "incident" and seen["status"] == "acknowledged" and seen["acknowledge_note"] == "đã xem"
        await publish_incident(js, cleared)
        ((name, seen),) = await _sse_events(r, 1)
        assert name == "incident" and seen["cleared_at"] is not None and seen["clear_label"] == "Đã hết trên đường"


async def test_board_is_refused_to_citizens(portal_url, start_portal):
    running = await start_portal(portal_url)
    for path in ("/api/board", "/api/board/events", "/api/incidents"):
        async with running.http.get(f"{running.base}{path}", headers=running.headers("citizen")) as r:
            assert r.status == 403, path
        async with running.http.get(f"{running.base}{path}", headers=running.headers("commune_police")) as r:
            assert r.status == 403, path
    async with running.http.get(f"{running.base}/dieu-hanh", cookies={"rw_token": "demo-citizen"},
                                allow_redirects=False) as r:
        assert r.status == 403


async def test_a_change_on_one_replica_reaches_the_boards_of_another(portal_url, start_portal, js):
    """Two replicas on one database: an operator acknowledging through replica A is seen live on a
    board connected to replica B (PostgreSQL NOTIFY, not replica-local memory)."""
    a = await start_portal(portal_url)
    b = await start_portal(portal_url)
    detected, _, _ = incident_events(a.camera, 4)
    async with b.http.get(f"{b.base}/api/board/events", headers=b.headers("operations_centre")) as stream:
        ((name, _),) = await _sse_events(stream, 1)
        assert name == "snapshot"
        await publish_incident(js, detected)  # taken by whichever replica's consumer fetches first
        ((name, seen),) = await _sse_events(stream, 1)
        assert name == "incident" and seen["status"] == "new"
        async with a.http.post(f"{a.base}/api/incidents/{detected.incident_id}/acknowledge", json={"note": "tổ 5"},
                               headers=a.headers("transport")) as r:
            assert r.status == 200
        ((name, seen),) = await _sse_events(stream, 1)
        assert name == "incident" and seen["status"] == "acknowledged"
        assert seen["acknowledged_by"] == "sxd-tuan" and seen["acknowledged_by_name"]


async def test_page_forms_work_without_javascript(portal_url, start_portal, js, wait_for):
    running = await start_portal(portal_url)
    detected, _, _ = incident_events(running.camera, 5)
    await publish_incident(js, detected)
    origin = {"Origin": running.base}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.post(f"{running.base}/dang-nhap", data={"token": "demo-ops", "tiep": "/dieu-hanh"},
                                headers=origin) as r:
            assert r.status == 200 and r.url.path == "/dieu-hanh"

        async def page_with_card():
            async with browser.get(f"{running.base}/dieu-hanh") as r:
                html = await r.text()
                return html if f'id="inc-{detected.incident_id}"' in html else None

        html = await wait_for(page_with_card, what="incident on the page")
        token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', html)[1]
        action = f"{running.base}/dieu-hanh/su-co/{detected.incident_id}"
        # Without the form token: refused.
        async with browser.post(f"{action}/acknowledged", data={"note": "x"}, headers=origin,
                                allow_redirects=False) as r:
            assert r.status == 403
        async with browser.post(f"{action}/acknowledged", data={"note": "đã thấy", "csrf_token": token},
                                headers=origin, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/dieu-hanh?da=acknowledged"
        async with browser.post(f"{action}/closed", data={"note": "", "csrf_token": token}, headers=origin) as r:
            assert r.status == 400 and "nhập ghi chú khi đóng sự cố" in await r.text()
        async with browser.post(f"{action}/closed", data={"note": "đã thông xe", "csrf_token": token},
                                headers=origin) as r:
            html = await r.text()
            assert r.status == 200 and "Đã đóng sự cố." in html and f'id="inc-{detected.incident_id}"' not in html
    rows = [(a["action"], a["object"], a["purpose"]) for a in await _audit(portal_url)]
    assert ("incident_acknowledged", detected.incident_id, "đã thấy") in rows
    assert ("incident_closed", detected.incident_id, "đã thông xe") in rows
