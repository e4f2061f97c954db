"""The portal end to end on a real nats-server and PostgreSQL: violations become cases, police
decisions become events, notices move cases on, bad messages go to the dead letters."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import asyncpg

from proto import codec, ids, subjects
from proto.v1 import CameraStatus, CaseResolved, CaseReviewed, DeadLetter, NoticeFailed, NoticeSent, VehiclesCounted
from proto.v1.telemetry import VehicleCount
from services.runtime import bus
from portal_samples import case_for, identified, publish_violation, put_evidence, unidentified


async def next_event(sub, type_, timeout: float = 10.0):
    msg = await sub.next_msg(timeout=timeout)
    return msg, codec.decode(msg.data, type_)


async def test_violations_become_cases_and_decisions_become_events(portal_url, start_portal, js, nc, street_dir, wait_for):
    running = await start_portal(portal_url)
    camera, http = running.camera, running.http
    evidence = await put_evidence(js, street_dir, bucket=running.bucket)
    first = identified(camera, 1, evidence=evidence)
    second = unidentified(camera, 2, evidence=evidence)
    for event in (first, second, first):  # the repeat is a replay: one case
        await publish_violation(js, event)
    case1 = await wait_for(lambda: case_for(portal_url, first.violation.id), what="identified case")
    case2 = await wait_for(lambda: case_for(portal_url, second.violation.id), what="unidentified case")
    assert case1["state"] == "identified" and case2["state"] == "unidentified"
    conn = await asyncpg.connect(portal_url)
    assert await conn.fetchval("SELECT count(*) FROM portal.cases WHERE camera_id = $1", camera) == 2
    assert await conn.fetchval("SELECT name FROM portal.owners WHERE case_id = $1", case1["case_id"]) == "Nguyễn Văn An"

    reviewed = await nc.subscribe(f"traffic.case.reviewed.v1.{camera}.>")
    resolved_sub = await nc.subscribe(subjects.case_resolved(camera))
    police = running.headers("police")

    # Confirm with a corrected plate.
    url = f"{running.base}/api/cases/{case1['case_id']}/review"
    async with http.post(url, json={"decision": "confirmed", "plate": "15a12346"}, headers=police) as r:
        assert r.status == 200, await r.text()
        result = await r.json()
    assert result["state"] == "confirmed" and result["next_case"] == case2["case_id"]
    msg, event = await next_event(reviewed, CaseReviewed)
    assert msg.subject == subjects.case_reviewed(camera, "confirmed")
    assert event.plate == "15A-123.46" and event.plate_corrected and event.reviewer == "csgt-binh"
    assert event.agency == "hp-csgt" and event.case_id == case1["case_id"] and event.evidence == evidence
    assert "Nguyễn" not in msg.data.decode()  # no owner data on CASES
    # The registry's owner belonged to the misread plate: dropped with the correction.
    assert await conn.fetchval("SELECT count(*) FROM portal.owners WHERE case_id = $1", case1["case_id"]) == 0
    corrected = await case_for(portal_url, first.violation.id)
    assert corrected["owner_commune"] == "" and corrected["match"] is None and corrected["brand"] == ""
    assert msg.headers["Nats-Msg-Id"] == event.id

    # A second decision on the same case is refused, and changes nothing.
    async with http.post(url, json={"decision": "rejected", "reason": "duplicate"}, headers=police) as r:
        assert r.status == 409 and "không thể" in (await r.json())["error"]
    assert (await case_for(portal_url, first.violation.id))["state"] == "confirmed"

    # Reject the other with a listed reason; an unlisted one is a 400.
    url2 = f"{running.base}/api/cases/{case2['case_id']}/review"
    async with http.post(url2, json={"decision": "rejected", "reason": "made-up"}, headers=police) as r:
        assert r.status == 400
    async with http.post(url2, json={"decision": "rejected", "reason": "plate_unreadable"}, headers=police) as r:
        assert r.status == 200
    msg, event = await next_event(reviewed, CaseReviewed)
    assert event.decision == "rejected" and event.reason.startswith("Biển số không rõ")

    # notify reports the owner notice (twice: a redelivery), then the inspection warning.
    at = datetime.now(timezone.utc)
    notice = NoticeSent(id=ids.event_id("ntc", case1["case_id"], "owner"), camera_id=camera, occurred_at=at,
                        case_id=case1["case_id"], notice_id="N-1", kind="owner_notice", channel="post",
                        recipient="owner", respond_by=at + timedelta(days=20))
    failed = NoticeFailed(id=ids.event_id("ntf", case1["case_id"]), camera_id=camera, occurred_at=at,
                          case_id=case1["case_id"], notice_id="N-2", kind="owner_notice", channel="email",
                          reason="mailbox full", attempt=1, will_retry=True)
    await bus.publish(js, subjects.notice_failed(camera, "email"), failed, service="tests")
    await bus.publish(js, subjects.notice_sent(camera, "post"), notice, service="tests")
    await nc.publish(subjects.notice_sent(camera, "post"), codec.encode(notice))  # plain duplicate (no msg id)

    async def state_is(wanted):
        case = await case_for(portal_url, first.violation.id)
        return case if case["state"] == wanted else None

    case = await wait_for(lambda: state_is("notified"), what="notified")
    assert case["respond_by"] == notice.respond_by
    await wait_for(lambda: _notices(portal_url, case1["case_id"], 2), what="both notices recorded")
    warning = NoticeSent(id=ids.event_id("ntc", case1["case_id"], "warn"), camera_id=camera, occurred_at=at,
                         case_id=case1["case_id"], notice_id="N-3", kind="inspection_warning",
                         channel="inspection_registry", recipient="dang-kiem")
    await bus.publish(js, subjects.notice_sent(camera, "inspection_registry"), warning, service="tests")
    await wait_for(lambda: state_is("warned"), what="warned")

    # Transport sees the inspection hold, without owner data.
    async with http.get(f"{running.base}/api/inspection-holds", headers=running.headers("transport")) as r:
        holds = await r.json()
    assert [h["case_id"] for h in holds if h["case_id"] == case1["case_id"]] == [case1["case_id"]]

    # Resolve (fine paid) → case.resolved; resolving again is a 409.
    url3 = f"{running.base}/api/cases/{case1['case_id']}/resolve"
    async with http.post(url3, json={"resolution": "paid"}, headers=police) as r:
        assert r.status == 200
    msg, event = await next_event(resolved_sub, CaseResolved)
    assert event.resolution == "paid" and event.plate == "15A-123.46" and event.resolved_by == "csgt-binh"
    async with http.post(url3, json={"resolution": "paid"}, headers=police) as r:
        assert r.status == 409
    history = [r["to_state"] for r in await conn.fetch(
        "SELECT to_state FROM portal.case_history WHERE case_id = $1 ORDER BY id", case1["case_id"])]
    assert history == ["identified", "confirmed", "notified", "warned", "resolved"]
    assert await conn.fetchval("SELECT count(*) FROM portal.outbox WHERE published_at IS NULL") == 0
    await conn.close()


async def _notices(url: str, case_id: str, n: int) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT count(*) FROM portal.notices WHERE case_id = $1", case_id) == n
    finally:
        await conn.close()


async def test_bad_messages_go_to_dead_letters(portal_url, start_portal, js, nc, wait_for):
    running = await start_portal(portal_url)
    camera = running.camera
    dlq = await nc.subscribe(subjects.dlq("portal"))
    await js.publish(subjects.violation_identified(camera, "red_light"), b"{not json")
    await js.publish(subjects.violation_identified(camera, "red_light"), json.dumps({"id": "x"}).encode())
    unknown = NoticeSent(id=ids.event_id("ntc", camera, "ghost"), camera_id=camera,
                         occurred_at=datetime.now(timezone.utc), case_id="CASE-2026-999999", notice_id="N-9",
                         kind="owner_notice", channel="sms", recipient="owner")
    await bus.publish(js, subjects.notice_sent(camera, "sms"), unknown, service="tests")
    letters = []
    while len(letters) < 3:
        msg = await dlq.next_msg(timeout=15)
        letter = codec.decode(msg.data, DeadLetter)
        if letter.subject.split(".")[4] == camera:
            letters.append(letter)
    assert sorted(l.error for l in letters) == ["decode", "invalid", "invalid"]
    assert any("unknown case CASE-2026-999999" in l.reason for l in letters)


async def test_telemetry_feeds_statistics(portal_url, start_portal, js):
    running = await start_portal(portal_url)
    camera = running.camera
    now = datetime.now(timezone.utc).replace(microsecond=0)
    for i in range(3):
        counted = VehiclesCounted(id=ids.event_id("cnt", camera, i), camera_id=camera, occurred_at=now - timedelta(minutes=i),
                                  window_start=now - timedelta(minutes=i + 1), window_s=60,
                                  counts=(VehicleCount(vehicle_class="motorcycle", count=40 + i),
                                          VehicleCount(vehicle_class="car", count=5)))
        await bus.publish(js, subjects.vehicles_counted(camera), counted, service="tests")
    # Counted at a count line, both ways apart (same class): both rows are kept.
    at_line = VehiclesCounted(id=ids.event_id("cnt", camera, "line"), camera_id=camera, occurred_at=now,
                              window_start=now - timedelta(seconds=7), window_s=7.0, lines=("main",),
                              counts=(VehicleCount(vehicle_class="motorcycle", count=7, line="main", direction="forward"),
                                      VehicleCount(vehicle_class="motorcycle", count=3, line="main", direction="backward")))
    await bus.publish(js, subjects.vehicles_counted(camera), at_line, service="tests")
    for state, minutes in (("online", 10), ("offline", 5), ("degraded", 30)):  # the last one is late: ignored
        status = CameraStatus(id=ids.event_id("cst", camera, state), camera_id=camera,
                              occurred_at=now - timedelta(minutes=minutes), state=state, reason=f"{state} test",
                              fps_out=4.0)
        await bus.publish(js, subjects.camera_status(camera), status, service="tests")
    ops = running.headers("operations_centre")

    async def counted():
        async with running.http.get(f"{running.base}/api/stats/counts", headers=ops) as r:
            rows = [row for row in await r.json() if row["camera_id"] == camera]
        return rows if sum(row["vehicles"] for row in rows) == 40 + 41 + 42 + 15 + 7 + 3 else None

    deadline = asyncio.get_running_loop().time() + 15
    while not (rows := await counted()):
        assert asyncio.get_running_loop().time() < deadline, "counts never arrived"
        await asyncio.sleep(0.1)
    assert {r["vehicle_class"] for r in rows} == {"motorcycle", "car"}

    async def camera_row():
        async with running.http.get(f"{running.base}/api/stats/cameras", headers=ops) as r:
            return next((c for c in await r.json() if c["camera_id"] == camera), None)

    while (row := await camera_row()) is None or row["state"] != "offline":
        assert asyncio.get_running_loop().time() < deadline, f"camera status never arrived: {row}"
        await asyncio.sleep(0.1)
    consumer = f"portal-telemetry-{camera.removeprefix('cam-')}"

    async def all_acked():
        info = await js.consumer_info("TELEMETRY", consumer)
        return info.num_pending == 0 and info.num_ack_pending == 0

    while not await all_acked():  # the late 'degraded' report has been handled too
        assert asyncio.get_running_loop().time() < deadline, "telemetry not all handled"
        await asyncio.sleep(0.05)
    row = await camera_row()
    assert row["state"] == "offline" and row["changes"] == 1
    async with running.http.get(f"{running.base}/api/stats/cameras?format=csv", headers=ops) as r:
        text = await r.text()
        assert r.headers["Content-Type"].startswith("text/csv")
    assert text.startswith("\ufeffcamera_id,state,") and camera in text


async def test_two_officers_deciding_at_once_make_one_decision(portal_url, start_portal, js, nc, wait_for):
    running = await start_portal(portal_url)
    event = identified(running.camera, 1)
    await publish_violation(js, event)
    case = await wait_for(lambda: case_for(portal_url, event.violation.id))
    reviewed = await nc.subscribe(f"traffic.case.reviewed.v1.{running.camera}.>")
    url = f"{running.base}/api/cases/{case['case_id']}/review"

    async def decide(body):
        async with running.http.post(url, json=body, headers=running.headers("police")) as r:
            return r.status, await r.json()

    results = await asyncio.gather(*(decide({"decision": "confirmed"} if i % 2 else
                                            {"decision": "rejected", "reason": "duplicate"}) for i in range(6)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [409] * 5, results
    winner = next(body for status, body in results if status == 200)
    final = await case_for(portal_url, event.violation.id)
    assert final["state"] == winner["state"]
    msg = await reviewed.next_msg(timeout=10)
    assert codec.decode(msg.data, CaseReviewed).decision == winner["state"]
    # One decision, one event: the CASES stream holds a single message for this camera (each
    # response came after its publish, so nothing is still on its way).
    info = await js.stream_info("CASES", subjects_filter=f"traffic.case.reviewed.v1.{running.camera}.>")
    assert sum(info.state.subjects.values()) == 1, info.state.subjects
