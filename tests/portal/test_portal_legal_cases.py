"""Issue 16 on the portal, on a real nats-server, PostgreSQL and registry service: a plate is
checked against the vehicle class (override with a reason, audited), the corrected plate's owner
is shown, a repeated event is flagged and merged (audited, enforced by the state machine), and a
case notify holds shows why."""

from __future__ import annotations

import asyncio
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import msgspec
import pytest

from proto import ids, subjects
from proto.v1 import NoticeHeld
from proto.v1.violation import Owner, Vehicle
from services.portal import cases
from services.runtime import bus, migrations
from portal_samples import ICT, case_for, detected, identified, publish_violation, unidentified
from proto.v1 import ViolationIdentified

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "notify"))
from notify_servers import register, start_registry  # noqa: E402  (the registry service itself)
from test_notify_service import stack  # noqa: E402,F401  (notify with every server it talks to)


@pytest.mark.parametrize("plate, vehicle_class, fits", [
    ("30K-558.78", "car", True), ("30K-558.78", "motorcycle", False), ("51LD-123.45", "truck", True),
    ("29-B1 123.45", "motorcycle", True), ("29-B1 123.45", "car", False), ("29b112345", "bus", False),
    ("29-AA 123.45", "motorcycle", True), ("15A12345", "motorcycle", True), ("15A12345", "car", True),
    ("30K-558.78", "bicycle", True),  # no plate format to check against
])
def test_plate_format_of_each_vehicle_class(plate, vehicle_class, fits):
    assert cases.plate_fits_class(plate, vehicle_class) is fits


def test_bare_plate_reads_as_the_vehicle_class_carries_it():
    assert cases.format_plate("15A12345", "motorcycle") == "15-A1 2345"
    assert cases.format_plate("15A12345", "car") == "15A-123.45"
    assert cases.format_plate("30K-558.78", "motorcycle") == "30K-558.78"  # as typed: a car plate


def motorbike(camera: str, n: int, plate: str, **kw) -> ViolationIdentified:
    event = identified(camera, n, plate=plate, **kw)
    violation = msgspec.structs.replace(event.violation, vehicle_class="motorcycle")
    vehicle = msgspec.structs.replace(event.vehicle, vehicle_type="motorcycle")
    return msgspec.structs.replace(event, violation=violation, vehicle=vehicle)


async def review(running, case_id: str, **body):
    async with running.http.post(f"{running.base}/api/cases/{case_id}/review", json=body,
                                 headers=running.headers("police")) as r:
        return r.status, await r.json()


async def audit_actions(url: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT action, object, purpose FROM portal.audit ORDER BY seq")
        return [(r["action"], r["object"], r["purpose"]) for r in rows]
    finally:
        await conn.close()


async def test_a_car_plate_on_a_motorbike_is_refused_unless_overridden_with_a_reason(portal_url, start_portal, js,
                                                                                    wait_for):
    running = await start_portal(portal_url)
    event = motorbike(running.camera, 1, "29-B1 123.45")
    await publish_violation(js, event)
    case = await wait_for(lambda: case_for(portal_url, event.violation.id), what="the motorbike case")
    status, body = await review(running, case["case_id"], decision="confirmed", plate="30K-558.78")
    assert status == 400
    assert "30K-558.78 không phải biển mô tô, xe máy" in body["error"] and "plate_override_reason" in body["error"]
    assert (await case_for(portal_url, event.violation.id))["state"] == "identified"  # nothing applied

    status, body = await review(running, case["case_id"], decision="confirmed", plate="30K-558.78",
                                plate_override_reason="Biển gắn trên xe ba bánh tự chế, đã đối chiếu ảnh")
    assert status == 200, body
    after = await case_for(portal_url, event.violation.id)
    assert after["state"] == "confirmed" and after["plate"] == "30K-558.78"
    assert after["plate_class_override"] == "Biển gắn trên xe ba bánh tự chế, đã đối chiếu ảnh"
    assert ("plate_class_override", case["case_id"], "Biển gắn trên xe ba bánh tự chế, đã đối chiếu ảnh") \
        in await audit_actions(portal_url)
    async with running.http.get(f"{running.base}/ho-so/{case['case_id']}", headers=running.headers("police")) as r:
        assert "Biển số không đúng loại biển của phương tiện camera ghi nhận" in await r.text()

    # The right format needs no reason: a motorbike case confirmed with a motorbike plate.
    ok = motorbike(running.camera, 2, "29-B1 555.66", at=datetime(2026, 11, 21, 8, 0, tzinfo=ICT))
    await publish_violation(js, ok)
    second = await wait_for(lambda: case_for(portal_url, ok.violation.id), what="second motorbike case")
    status, body = await review(running, second["case_id"], decision="confirmed")
    assert status == 200, body
    assert (await case_for(portal_url, ok.violation.id))["plate_class_override"] is None


async def test_the_corrected_plates_owner_is_shown(portal_url, start_portal, js, nats_url, unique, wait_for):
    await migrations.migrate(portal_url, services=["portal", "registry"])
    plate = f"15A{int(unique[:5], 16) % 100000:05d}"
    printed = f"{plate[:3]}-{plate[3:6]}.{plate[6:]}"
    await register(portal_url, Vehicle(plate=plate, plate_printed=printed, plate_colour="white", vehicle_type="car",
                                       brand="Kia Morning", colour="red", inspection_status="valid",
                                       registration_date=date(2022, 5, 6)),
                   Owner(kind="person", name="Phạm Thị Thu", national_id=f"0311{int(unique[:8], 16) % 10**8:08d}",
                         address="Số 3 Cát Dài, Lê Chân, Hải Phòng", commune_code="11311", province="Hải Phòng",
                         phone="0903111222"))
    subject, registry_stop, registry_task = await start_registry(nats_url, portal_url, unique)
    try:
        running = await start_portal(portal_url, registry_lookup_subject=subject)
        misread = unidentified(running.camera, 1, plate="15A-999.99")
        await publish_violation(js, misread)
        case = await wait_for(lambda: case_for(portal_url, misread.violation.id), what="unidentified case")
        assert case["unidentified_reason"] == "no_record"
        status, body = await review(running, case["case_id"], decision="confirmed", plate=plate)
        assert status == 200, body
        async with running.http.get(f"{running.base}/api/cases/{case['case_id']}",
                                    headers=running.headers("police")) as r:
            view = await r.json()
        assert view["plate"] == printed and view["plate_corrected"]
        assert view["owner"]["name"] == "Phạm Thị Thu" and view["owner"]["address"] == "Số 3 Cát Dài, Lê Chân, Hải Phòng"
        assert view["unidentified_reason"] is None and view["brand"] == "Kia Morning" and view["match"] == "exact"
        async with running.http.get(f"{running.base}/ho-so/{case['case_id']}", headers=running.headers("police")) as r:
            page = await r.text()
        assert "<dt>Chủ phương tiện</dt><dd>Phạm Thị Thu" in page
        assert "<dt>Chưa xác định chủ xe</dt>" not in page  # (the timeline still lists the state it was in)
        # The lookup of the owner was a read of personal data: audited.
        assert ("owner_read", case["case_id"], "tra cứu chủ xe theo biển số đã sửa") in await audit_actions(portal_url)
        # ... and in the registry's own audit of the bus lookup: which case, which officer, why.
        conn = await asyncpg.connect(portal_url)
        try:
            lookups = await conn.fetch("SELECT case_id, requested_by, purpose, plate_normalised, outcome "
                                       "FROM registry.owner_lookup_audit WHERE case_id = $1", case["case_id"])
        finally:
            await conn.close()
        assert [tuple(r) for r in lookups] == [(case["case_id"], "portal:csgt-binh", "plate_correction", plate, "found")]
        # A corrected plate nobody registered: the case says so, with no one's data.
        other = unidentified(running.camera, 2, plate="15A-999.98", at=datetime(2026, 11, 22, 8, 0, tzinfo=ICT))
        await publish_violation(js, other)
        case2 = await wait_for(lambda: case_for(portal_url, other.violation.id), what="second unidentified case")
        status, body = await review(running, case2["case_id"], decision="confirmed", plate="15A-999.97")
        assert status == 200, body
        after = await case_for(portal_url, other.violation.id)
        assert after["unidentified_reason"] == "no_record" and after["owner_commune"] == ""
    finally:
        registry_stop.set()
        await registry_task


async def test_a_review_refused_as_a_repeat_reads_no_owner(portal_url, start_portal, js, nats_url, unique, wait_for):
    """A looped clip's second crossing, corrected to the plate the first was confirmed with, is
    refused as a possible repeat before the registry is asked: retrying the refused review reads
    no owner data (make chaos-video's reviewer, retrying twice a second, once left ~12,000 lines
    in the registry's audit for 15 cases)."""
    await migrations.migrate(portal_url, services=["portal", "registry"])
    plate = f"15A{int(unique[:5], 16) % 100000:05d}"
    await register(portal_url, Vehicle(plate=plate, plate_printed=f"{plate[:3]}-{plate[3:6]}.{plate[6:]}",
                                       plate_colour="white", vehicle_type="car", brand="Kia Morning", colour="red",
                                       inspection_status="valid", registration_date=date(2022, 5, 6)),
                   Owner(kind="person", name="Phạm Thị Thu", national_id=f"0312{int(unique[:8], 16) % 10**8:08d}",
                         address="Số 3 Cát Dài, Lê Chân, Hải Phòng", commune_code="11311", province="Hải Phòng"))
    subject, registry_stop, registry_task = await start_registry(nats_url, portal_url, unique)
    try:
        running = await start_portal(portal_url, registry_lookup_subject=subject)
        at = datetime(2026, 11, 20, 7, 45, 12, tzinfo=ICT)
        first = unidentified(running.camera, 1, plate="15A-999.91", at=at)
        again = unidentified(running.camera, 2, plate="15A-999.92", at=at + timedelta(seconds=7))
        for event in (first, again):
            await publish_violation(js, event)
        case1 = await wait_for(lambda: case_for(portal_url, first.violation.id), what="first case")
        case2 = await wait_for(lambda: case_for(portal_url, again.violation.id), what="second case")
        status, body = await review(running, case1["case_id"], decision="confirmed", plate=plate)
        assert status == 200, body
        for _ in range(3):
            status, body = await review(running, case2["case_id"], decision="confirmed", plate=plate)
            assert status == 409 and f"có thể trùng với {case1['case_id']}" in body["error"]

        async def lookups(case_id: str) -> int:
            conn = await asyncpg.connect(portal_url)
            try:
                return await conn.fetchval("SELECT count(*) FROM registry.owner_lookup_audit WHERE case_id = $1",
                                           case_id)
            finally:
                await conn.close()

        assert await lookups(case1["case_id"]) == 1
        assert await lookups(case2["case_id"]) == 0
        assert (await case_for(portal_url, again.violation.id))["state"] == "unidentified"
        # Judged another event: confirmed, and only now is the owner read.
        status, body = await review(running, case2["case_id"], decision="confirmed", plate=plate, not_duplicate=True)
        assert status == 200, body
        assert await lookups(case2["case_id"]) == 1
    finally:
        registry_stop.set()
        await registry_task


async def test_a_repeated_event_is_flagged_and_merged(portal_url, start_portal, js, nc, wait_for):
    running = await start_portal(portal_url)
    at = datetime(2026, 11, 20, 7, 45, 12, tzinfo=ICT)
    first = identified(running.camera, 1, plate="15A-222.33", at=at)
    again = identified(running.camera, 2, plate="15A-222.33", at=at + timedelta(seconds=7))  # the loop came round
    later = identified(running.camera, 3, plate="15A-222.33", at=at + timedelta(hours=2))  # another day's ride
    other_rule = identified(running.camera, 4, plate="15A-222.33", type_="speeding", at=at + timedelta(seconds=3))
    for event in (first, again, later, other_rule):
        await publish_violation(js, event)
    cases_ = {}
    for name, event in (("first", first), ("again", again), ("later", later), ("other_rule", other_rule)):
        cases_[name] = await wait_for(lambda e=event: case_for(portal_url, e.violation.id), what=name)
    assert cases_["first"]["duplicate_of"] is None
    assert cases_["again"]["duplicate_of"] == cases_["first"]["case_id"]
    assert cases_["later"]["duplicate_of"] is None and cases_["other_rule"]["duplicate_of"] is None
    police = running.headers("police")
    async with running.http.get(f"{running.base}/hang-cho", headers=police) as r:
        assert f"có thể trùng với {cases_['first']['case_id']}" in await r.text()
    async with running.http.get(f"{running.base}/ho-so/{cases_['again']['case_id']}", headers=police) as r:
        assert f"Có thể trùng với" in await r.text()

    # Confirming the repeat as it is would be a second notice for one event: refused.
    status, body = await review(running, cases_["again"]["case_id"], decision="confirmed")
    assert status == 409 and f"có thể trùng với {cases_['first']['case_id']}" in body["error"]
    # Merge it into the first: final, audited; the state machine refuses a second merge or a review.
    url = f"{running.base}/api/cases/{cases_['again']['case_id']}/merge"
    async with running.http.post(url, json={"into": cases_["first"]["case_id"], "reason": "cùng một lần vượt đèn"},
                                 headers=police) as r:
        assert r.status == 200, await r.text()
    merged = await case_for(portal_url, again.violation.id)
    assert merged["state"] == "merged" and merged["merged_into"] == cases_["first"]["case_id"]
    assert ("case_merged", f"{cases_['again']['case_id']}->{cases_['first']['case_id']}", "cùng một lần vượt đèn") \
        in await audit_actions(portal_url)
    # Statistics count the event once.
    async with running.http.get(f"{running.base}/api/stats/violations",
                                params={"group": "type", "from": "2026-11-19", "to": "2026-11-21"}, headers=police) as r:
        totals = {row["key"]: row["total"] for row in await r.json()}
    assert totals == {"red_light": 2, "speeding": 1}
    async with running.http.post(url, json={"into": cases_["later"]["case_id"]}, headers=police) as r:
        assert r.status == 409
    status, _ = await review(running, cases_["again"]["case_id"], decision="confirmed", not_duplicate=True)
    assert status == 409
    # Into itself, or into a merged case: refused.
    url_later = f"{running.base}/api/cases/{cases_['later']['case_id']}/merge"
    for into in (cases_["later"]["case_id"], cases_["again"]["case_id"]):
        async with running.http.post(url_later, json={"into": into}, headers=police) as r:
            assert r.status in (400, 409), into
    # The commune police may read cases but not merge them.
    async with running.http.post(url_later, json={"into": cases_["first"]["case_id"]},
                                 headers=running.headers("commune_police")) as r:
        assert r.status == 403

    # The first is confirmed as usual; a repeat judged distinct by the reviewer carries that to notify.
    reviewed = await nc.subscribe(f"traffic.case.reviewed.v1.{running.camera}.>")
    status, _ = await review(running, cases_["first"]["case_id"], decision="confirmed")
    assert status == 200
    third = identified(running.camera, 5, plate="15A-222.33", at=at + timedelta(minutes=3))
    await publish_violation(js, third)
    case3 = await wait_for(lambda: case_for(portal_url, third.violation.id), what="third")
    assert case3["duplicate_of"] == cases_["first"]["case_id"]
    status, _ = await review(running, case3["case_id"], decision="confirmed", not_duplicate=True)
    assert status == 200
    from proto import codec
    from proto.v1 import CaseReviewed
    events = [codec.decode((await reviewed.next_msg(timeout=5)).data, CaseReviewed) for _ in range(2)]
    assert events[1].case_id == case3["case_id"] and events[1].distinct_from == (cases_["first"]["case_id"],)
    assert ("not_duplicate", f"{case3['case_id']}/{cases_['first']['case_id']}",
            "xác nhận không trùng vụ việc đã lập") in await audit_actions(portal_url)


async def test_a_case_notify_holds_shows_why(portal_url, start_portal, js, wait_for):
    running = await start_portal(portal_url)
    event = identified(running.camera, 1, plate="15A-444.55")
    await publish_violation(js, event)
    case = await wait_for(lambda: case_for(portal_url, event.violation.id), what="case")
    status, _ = await review(running, case["case_id"], decision="confirmed")
    assert status == 200
    held = NoticeHeld(id=ids.event_id("held", case["case_id"], "no_legal_basis", ""), camera_id=running.camera,
                      occurred_at=datetime.now(timezone.utc), case_id=case["case_id"], reason="no_legal_basis",
                      detail="speeding × car (car) has no legal basis and fine in the notify configuration",
                      violation_type="red_light", vehicle_class="car")
    await bus.publish(js, subjects.notice_held(running.camera), held, service="tests")

    async def shown():
        row = await case_for(portal_url, event.violation.id)
        return row if row["notice_hold"] == "no_legal_basis" else None

    row = await wait_for(shown, what="the hold on the case")
    assert row["state"] == "confirmed"
    async with running.http.get(f"{running.base}/ho-so/{case['case_id']}", headers=running.headers("police")) as r:
        page = await r.text()
    assert "Tạm giữ thông báo: cần căn cứ pháp lý" in page
    async with running.http.get(f"{running.base}/hang-cho?state=confirmed", headers=running.headers("police")) as r:
        assert "tạm giữ: cần căn cứ pháp lý" in await r.text()


async def test_the_letter_and_the_public_lookup_give_the_same_contacts(portal_url, start_portal, js, wait_for,
                                                                       tmp_path):
    """Both read the agencies file: the unit the owner is told to visit, its address and phone."""
    from notify_pdf import flat, text_of
    from notify_samples import FONTS, EXAMPLE as NOTIFY_EXAMPLE, case as reviewed_case, owner, vehicle
    from services.notify import config as notify_config, decisions, letter
    from services.portal.settings import EXAMPLE_AGENCIES

    running = await start_portal(portal_url)
    event = identified(running.camera, 1, plate="15A-777.88")
    await publish_violation(js, event)
    case = await wait_for(lambda: case_for(portal_url, event.violation.id), what="case")
    status, _ = await review(running, case["case_id"], decision="confirmed")
    assert status == 200
    case = await case_for(portal_url, event.violation.id)
    async with running.http.get(f"{running.base}/api/public/lookup", params={"plate": "15A77788"}) as r:
        [public] = (await r.json())["items"]
    async with running.http.get(f"{running.base}/tra-cuu", params={"plate": "15A77788"}) as r:
        page = await r.text()

    rules = notify_config.load(NOTIFY_EXAMPLE, environ={}, agencies_file=EXAMPLE_AGENCIES)
    reviewed = reviewed_case(case["case_id"], camera=running.camera, plate="15A-777.88")
    assert reviewed.agency == case["reviewer_agency"] == "hp-csgt"
    values = decisions.fields(reviewed, vehicle(), owner(), rules, notice_at=reviewed.occurred_at,
                              respond_by_at=decisions.respond_by(reviewed.occurred_at, rules))
    text = text_of(letter.render_letter(rules.templates.owner_letter, values, rules.unit(reviewed.agency),
                                        issued_at=reviewed.occurred_at, fonts=FONTS.prepare(tmp_path / "fonts")))
    assert public["resolving_unit"] == "Phòng Cảnh sát giao thông – Công an thành phố Hải Phòng"
    assert flat(f"{rules.unit('hp-csgt').name} – {rules.unit('hp-csgt').parent}") == public["resolving_unit"]
    assert flat(f"địa chỉ: {public['resolving_address']}") in text
    assert flat(f"Điện thoại liên hệ: {public['resolving_phone']}") in text
    assert public["resolving_phone"] == "0225 3842 135"
    assert public["resolving_hours"] and flat(public["resolving_hours"]) in text
    for value in (public["resolving_address"], public["resolving_phone"]):
        assert value in page


async def test_merged_cases_get_one_notice_end_to_end(portal_url, start_portal, stack, js, wait_for):  # noqa: F811
    """Portal, notify and the registry together: the same rider opened twice (a looped clip),
    merged by the reviewer, and one letter goes out."""
    from notify_samples import owner, vehicle
    plate, printed = "15A70707", "15A-707.07"
    address = f"chu-xe-{stack.unique}@example.vn"
    await register(stack.database_url, vehicle(plate=plate, printed=printed), owner(email=address))
    await stack.start()
    running = await start_portal(portal_url)
    assert running.camera == stack.camera
    # Case numbers restart in every test database, and event ids derive from them: numbers of
    # their own keep this test's events apart from earlier tests' on the shared streams.
    conn = await asyncpg.connect(portal_url)
    try:
        await conn.execute("SELECT setval('portal.case_number', $1)", int(stack.unique[:6], 16))
    finally:
        await conn.close()
    at = datetime(2026, 11, 20, 7, 45, 12, tzinfo=ICT)
    first = identified(running.camera, 1, plate=printed, at=at)
    again = identified(running.camera, 2, plate=printed, at=at + timedelta(seconds=7))
    for event in (first, again):
        await publish_violation(js, event)
    case1 = await wait_for(lambda: case_for(portal_url, first.violation.id), what="first case")
    case2 = await wait_for(lambda: case_for(portal_url, again.violation.id), what="second case")
    assert case2["duplicate_of"] == case1["case_id"]
    async with running.http.post(f"{running.base}/api/cases/{case2['case_id']}/merge",
                                 json={"into": case1["case_id"]}, headers=running.headers("police")) as r:
        assert r.status == 200, await r.text()
    status, body = await review(running, case1["case_id"], decision="confirmed")
    assert status == 200, body

    async def notified():
        row = await case_for(portal_url, first.violation.id)
        return row if row["state"] == "notified" else None

    await wait_for(notified, timeout=30, what="the first case notified")
    status, _ = await review(running, case2["case_id"], decision="confirmed", not_duplicate=True)
    assert status == 409  # merged is final
    await asyncio.sleep(1.0)
    assert len(stack.smtp.to(address)) == 1
    assert {e.case_id for e in await stack.events(js, "sent")} == {case1["case_id"]}
    assert (await case_for(portal_url, again.violation.id))["state"] == "merged"


async def test_duplicate_flag_and_merge_in_the_browser(portal_url, start_portal, js, wait_for, repo_dir):
    from playwright.async_api import async_playwright, expect
    from test_portal_browser import ARGS, CHROMIUM

    running = await start_portal(portal_url)
    at = datetime(2026, 11, 20, 7, 45, 12, tzinfo=ICT)
    first = identified(running.camera, 1, plate="15A-313.13", at=at)
    again = identified(running.camera, 2, plate="15A-313.13", at=at + timedelta(seconds=7))
    for event in (first, again):
        await publish_violation(js, event)
    case1 = (await wait_for(lambda: case_for(portal_url, first.violation.id)))["case_id"]
    case2 = (await wait_for(lambda: case_for(portal_url, again.violation.id)))["case_id"]
    artifacts = repo_dir / "var" / "artifacts" / "portal"
    artifacts.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000}, locale="vi-VN")
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(f"{running.base}/dang-nhap")
            await page.fill("#token", "demo-police")
            await page.click("button[type=submit]")
            await expect(page.locator("#queue tbody tr")).to_have_count(2)
            await expect(page.locator(f"tr[data-href='/ho-so/{case2}'] .duplicate-flag")).to_have_text(
                f"có thể trùng với {case1}")
            await expect(page.locator(f"tr[data-href='/ho-so/{case1}'] .duplicate-flag")).to_have_count(0)
            await page.goto(f"{running.base}/ho-so/{case2}")
            await expect(page.locator("#duplicate-flag")).to_contain_text(f"Có thể trùng với {case1}")
            await expect(page.locator("#into")).to_have_value(case1)
            await page.screenshot(path=artifacts / "trung-vu-viec.png", full_page=True)
            await page.click("#merge")
            await expect(page.locator(".flash")).to_contain_text(f"Đã gộp vụ việc {case2}")
            await page.goto(f"{running.base}/ho-so/{case2}")
            await expect(page.locator("#merged-into")).to_contain_text(f"Đã gộp vào vụ việc {case1}")
            await expect(page.locator("#review-form")).to_have_count(0)
            await expect(page.locator("#merge-form")).to_have_count(0)
            await page.goto(f"{running.base}/hang-cho")
            await expect(page.locator("#queue tbody tr")).to_have_count(1)
            assert errors == []
        finally:
            await browser.close()
    assert (await case_for(portal_url, again.violation.id))["state"] == "merged"


async def test_a_case_notify_holds_as_a_duplicate_is_released_by_the_reviewer(portal_url, start_portal, stack, js,
                                                                             wait_for):  # noqa: F811
    """The portal's window is shorter than notify's here, so the portal does not flag the repeat;
    notify holds it; the reviewer says it is another event and its letter goes out."""
    from notify_samples import owner, vehicle
    plate, printed = "15A71717", "15A-717.17"
    address = f"chu-xe-{stack.unique}@example.vn"
    await register(stack.database_url, vehicle(plate=plate, printed=printed), owner(email=address))
    await stack.start()
    running = await start_portal(portal_url, duplicate_window_s=1.0)
    conn = await asyncpg.connect(portal_url)
    try:
        await conn.execute("SELECT setval('portal.case_number', $1)", int(stack.unique[:6], 16))
    finally:
        await conn.close()
    at = datetime(2026, 11, 20, 7, 45, 12, tzinfo=ICT)
    first = identified(running.camera, 1, plate=printed, at=at)
    again = identified(running.camera, 2, plate=printed, at=at + timedelta(seconds=30))
    for event in (first, again):
        await publish_violation(js, event)
    case1 = await wait_for(lambda: case_for(portal_url, first.violation.id), what="first case")
    case2 = await wait_for(lambda: case_for(portal_url, again.violation.id), what="second case")
    assert case2["duplicate_of"] is None
    assert (await review(running, case1["case_id"], decision="confirmed"))[0] == 200
    await wait_for(lambda: _mails_to(stack, address, 1), timeout=30, what="the first letter")
    assert (await review(running, case2["case_id"], decision="confirmed"))[0] == 200

    async def held():
        row = await case_for(portal_url, again.violation.id)
        return row if row["notice_hold"] == "possible_duplicate" else None

    row = await wait_for(held, timeout=30, what="notify's hold shown on the case")
    assert row["duplicate_of"] == case1["case_id"]
    async with running.http.get(f"{running.base}/ho-so/{case2['case_id']}", headers=running.headers("police")) as r:
        assert "Gửi thông báo (vụ việc khác)" in await r.text()
    url = f"{running.base}/api/cases/{case2['case_id']}/not-duplicate"
    async with running.http.post(url, json={"reason": "hai lần qua nút giao, cách 30 giây"},
                                 headers=running.headers("police")) as r:
        assert r.status == 200, await r.text()
    await wait_for(lambda: _mails_to(stack, address, 2), timeout=30, what="the released letter")
    assert ("not_duplicate", f"{case2['case_id']}/{case1['case_id']}", "hai lần qua nút giao, cách 30 giây") \
        in await audit_actions(portal_url)
    async with running.http.post(url, json={}, headers=running.headers("police")) as r:
        assert r.status == 409  # nothing held any more


async def _mails_to(stack, address: str, n: int) -> bool:  # noqa: F811
    return len(stack.smtp.to(address)) == n
