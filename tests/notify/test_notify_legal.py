"""Issue 16 in notify: the legal basis and fine by violation type and vehicle class, parsed back
from the PDF a real notify sends (nats-server, PostgreSQL, the registry service, SMTP); a class
without an entry is held; one event is notified once; the unit's contacts are the agencies file's."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import msgspec
import pytest

from notify_pdf import flat, text_of
from notify_samples import EXAMPLE, case, example, owner, vehicle
from notify_servers import consumer_idle, register
from proto import codec
from proto.v1 import NoticeHeld
from services.notify import config as notify_config
from services.notify import decisions, metrics
from services.notify.config import LegalText, ViolationText
from test_notify_service import publish_case, stack  # noqa: F401  (the fixture: every server of a notify test)

MOTORBIKE_RED_LIGHT = ("Căn cứ pháp lý: Điểm c khoản 7 Điều 7 Nghị định số 168/2024/NĐ-CP",
                       "Mức phạt tiền: Từ 4.000.000 đồng đến 6.000.000 đồng",
                       "Hình thức bổ sung: Trừ 04 điểm giấy phép lái xe (điểm b khoản 13 Điều 7)")
CAR_RED_LIGHT = ("Căn cứ pháp lý: Điểm b khoản 9 Điều 6 Nghị định số 168/2024/NĐ-CP",
                 "Mức phạt tiền: Từ 18.000.000 đồng đến 20.000.000 đồng",
                 "Hình thức bổ sung: Trừ 04 điểm giấy phép lái xe (điểm b khoản 16 Điều 6)")


@pytest.mark.parametrize("violation, vehicle_type, basis", [
    ("red_light", "motorcycle", "Điểm c khoản 7 Điều 7"), ("red_light", "moped", "Điểm c khoản 7 Điều 7"),
    ("red_light", "car", "Điểm b khoản 9 Điều 6"), ("red_light", "truck", "Điểm b khoản 9 Điều 6"),
    ("red_light", "van", "Điểm b khoản 9 Điều 6"), ("wrong_way", "motorcycle", "Điểm a khoản 7 Điều 7"),
    ("wrong_lane", "car", "Điểm b khoản 5 Điều 6"), ("wrong_lane", "motorcycle", "Điểm d khoản 3 Điều 7"),
    ("no_helmet", "motorcycle", "Điểm h khoản 2 Điều 7"),
    ("red_light", "bicycle", None), ("speeding", "car", None), ("no_helmet", "car", None),
])
def test_legal_basis_by_violation_type_and_vehicle_class(violation, vehicle_type, basis):
    config = example()
    reviewed = case(violation_type=violation, vehicle_type=vehicle_type)
    found = decisions.legal(reviewed, vehicle(vehicle_type=vehicle_type), config)
    if basis is None:
        assert found is None
        assert violation in decisions.no_legal_basis(reviewed, vehicle(vehicle_type=vehicle_type), config) or \
            "no vehicle class" in decisions.no_legal_basis(reviewed, vehicle(vehicle_type=vehicle_type), config)
    else:
        assert found.legal_basis.startswith(basis) and found.legal_basis.endswith("Nghị định số 168/2024/NĐ-CP")


def test_the_confirmed_class_decides_over_the_registration():
    """The portal's vehicle type (the officer confirmed it) wins; the registration fills a gap."""
    config = example()
    assert "Điều 7" in decisions.legal(case(vehicle_type="motorcycle"), vehicle(vehicle_type="car"), config).legal_basis
    assert "Điều 7" in decisions.legal(case(vehicle_type=""), vehicle(vehicle_type="motorcycle"), config).legal_basis


def test_units_take_their_contacts_from_the_agencies_file(tmp_path):
    agencies = (EXAMPLE.parent.parent / "portal" / "agencies.example.yaml").read_text(encoding="utf-8")
    no_phone = tmp_path / "agencies.yaml"
    no_phone.write_text(agencies.replace('    phone: "0225 3842 135"\n', ""), encoding="utf-8")
    with pytest.raises(notify_config.ConfigError, match="has no phone: the letters need it") as caught:
        notify_config.load(EXAMPLE, environ={}, agencies_file=no_phone)
    assert caught.value.field == "units.hp-csgt" and caught.value.line is not None
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(agencies.replace("id: hp-csgt", "id: hp-csgt-2"), encoding="utf-8")
    with pytest.raises(notify_config.ConfigError, match="no police agency 'hp-csgt' in the agencies file"):
        notify_config.load(EXAMPLE, environ={}, agencies_file=renamed)
    broken = tmp_path / "broken.yaml"
    broken.write_text(agencies.replace("    role: police\n", "    role: polis\n", 1), encoding="utf-8")
    with pytest.raises(notify_config.ConfigError) as caught:
        notify_config.load(EXAMPLE, environ={}, agencies_file=broken)
    assert str(caught.value).startswith(f"{broken}:") and "role" in caught.value.field


def registered_plate(unique: str, n: int, motorbike: bool) -> tuple[str, str]:
    base = (int(unique[:5], 16) + n) % 100000
    return (f"15B1{base:05d}", f"15-B1 {base // 100:03d}.{base % 100:02d}") if motorbike else \
        (f"15A{base:05d}", f"15A-{base // 100:03d}.{base % 100:02d}")


async def held_events(js, camera: str) -> list[NoticeHeld]:
    found = []
    sub = await js.subscribe(f"traffic.notice.held.v1.{camera}", ordered_consumer=True, deliver_policy="all")
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except Exception:
                break
            found.append(codec.decode(msg.data, NoticeHeld))
    finally:
        await sub.unsubscribe()
    return found


async def test_motorbike_and_car_red_light_cite_their_own_article_and_fine(stack, js, wait_for):  # noqa: F811
    bike_plate, bike_printed = registered_plate(stack.unique, 0, motorbike=True)
    car_plate, car_printed = registered_plate(stack.unique, 1, motorbike=False)
    await register(stack.database_url, vehicle(plate=bike_plate, printed=bike_printed, vehicle_type="motorcycle"),
                   owner(email=f"bike-{stack.unique}@example.vn", national_id="031190011111"))
    await register(stack.database_url, vehicle(plate=car_plate, printed=car_printed),
                   owner(email=f"car-{stack.unique}@example.vn", national_id="031190022222", name="Lê Văn Nam"))
    await stack.start()
    bike = case(f"BIKE-{stack.unique}", camera=stack.camera, plate=bike_printed, vehicle_type="motorcycle")
    car = case(f"CAR-{stack.unique}", camera=stack.camera, plate=car_printed, vehicle_type="car")
    await publish_case(js, bike)
    await publish_case(js, car)

    async def letters():
        mails = stack.smtp.to(f"bike-{stack.unique}@example.vn") + stack.smtp.to(f"car-{stack.unique}@example.vn")
        return mails if len(mails) == 2 else None

    bike_mail, car_mail = await wait_for(letters, timeout=30, what="both owner letters")
    bike_text, car_text = (text_of(mail.attachments[0][1]) for mail in (bike_mail, car_mail))
    for expected in MOTORBIKE_RED_LIGHT + ("Loại phương tiện: Xe mô tô", f"Biển kiểm soát: {bike_printed}"):
        assert flat(expected) in bike_text, expected
    for expected in CAR_RED_LIGHT + ("Loại phương tiện: Xe ô tô con",):
        assert flat(expected) in car_text, expected
    assert "Điều 6" not in bike_text and "18.000.000" not in bike_text
    assert "Điều 7" not in car_text and "4.000.000 đồng đến 6.000.000" not in car_text
    # The unit's contacts as the agencies file (the public lookup's source) gives them.
    unit = stack.rules.unit("hp-csgt")
    for text in (bike_text, car_text):
        assert flat(f"Điện thoại liên hệ: {unit.phone}") in text and flat(unit.address) in text
    # For the report: the motorbike letter's case table, as a reader sees it.
    start = bike_text.index("Hành vi vi phạm")
    print("\nmotorbike red-light notice:", bike_text[start:bike_text.index("Đơn vị phát hiện", start)])


async def test_a_class_without_legal_basis_is_held_then_sent_once_the_entry_exists(stack, js, wait_for):  # noqa: F811
    plate, printed = registered_plate(stack.unique, 2, motorbike=False)
    await register(stack.database_url, vehicle(plate=plate, printed=printed, vehicle_type="car"),
                   owner(email=f"speed-{stack.unique}@example.vn", national_id="031190033333"))
    before = metrics.CASES.labels("reviewed", "no_legal_basis")._value.get()
    await stack.start()
    # Speeding has no entry: its clause and fine depend on the excess speed, which the case lacks.
    reviewed = case(f"SPEED-{stack.unique}", camera=stack.camera, plate=printed, vehicle_type="car",
                    violation_type="speeding")
    await publish_case(js, reviewed)
    [held] = await wait_for(lambda: held_events(js, stack.camera), what="notice.held")
    assert (held.case_id, held.reason, held.vehicle_class) == (reviewed.case_id, "no_legal_basis", "car")
    assert held.detail == "speeding × car (car) has no legal basis and fine in the notify configuration"
    assert metrics.CASES.labels("reviewed", "no_legal_basis")._value.get() == before + 1
    await wait_for(lambda: consumer_idle(js, f"notify-{stack.unique}"), what="the case handled")
    await asyncio.sleep(0.3)
    assert stack.smtp.to(f"speed-{stack.unique}@example.vn") == [] and await stack.events(js, "sent") == []
    conn = await asyncpg.connect(stack.database_url)
    try:
        assert await conn.fetchval("SELECT status FROM notify.cases WHERE case_id = $1", reviewed.case_id) == "held"
        assert await conn.fetchval("SELECT count(*) FROM notify.notices WHERE case_id = $1", reviewed.case_id) == 0
    finally:
        await conn.close()

    # The legal team adds the entry; notify restarts and sends the held case.
    stop, task = stack.notify
    stop.set()
    await asyncio.wait_for(task, 30)
    stack.notify = None
    rules = stack.rules
    speeding_rules = msgspec.structs.replace(rules, violations={**rules.violations, "speeding": ViolationText(
        title=rules.violations["speeding"].title, by_class={
            "car": LegalText(legal_basis="Điểm đ khoản 5 Điều 6 Nghị định số 168/2024/NĐ-CP",
                             fine="Từ 4.000.000 đồng đến 6.000.000 đồng")})})
    from notify_servers import start_notify
    stack.notify = await start_notify(stack.settings, speeding_rules, stack.clock)
    [mail] = await wait_for(lambda: _mails(stack, f"speed-{stack.unique}@example.vn"), timeout=30,
                            what="the released case's letter")
    assert flat("Căn cứ pháp lý: Điểm đ khoản 5 Điều 6") in text_of(mail.attachments[0][1])
    assert len(await held_events(js, stack.camera)) == 1


async def _mails(stack, address):  # noqa: F811
    return stack.smtp.to(address) or None


async def test_one_event_is_notified_once(stack, js, wait_for):  # noqa: F811
    plate, printed = registered_plate(stack.unique, 3, motorbike=True)
    address = f"lap-{stack.unique}@example.vn"
    await register(stack.database_url, vehicle(plate=plate, printed=printed, vehicle_type="motorcycle"),
                   owner(email=address, national_id="031190044444"))
    await stack.start()
    first = case(f"LOOP1-{stack.unique}", camera=stack.camera, plate=printed, vehicle_type="motorcycle")
    # The same rider on the next loop of the clip: another case id, 7 s later, same stop line.
    again = msgspec.structs.replace(case(f"LOOP2-{stack.unique}", camera=stack.camera, plate=printed,
                                         vehicle_type="motorcycle"), violation_at=first.violation_at + timedelta(seconds=7))
    await publish_case(js, first)
    await wait_for(lambda: _mails(stack, address), timeout=30, what="the first letter")
    await publish_case(js, again)
    [held] = await wait_for(lambda: held_events(js, stack.camera), what="the repeat held")
    assert (held.case_id, held.reason, held.duplicate_of) == (again.case_id, "possible_duplicate", first.case_id)
    assert held.detail == f"có thể trùng với {first.case_id}"
    await asyncio.sleep(0.5)
    assert len(stack.smtp.to(address)) == 1
    assert {e.case_id for e in await stack.events(js, "sent")} == {first.case_id}
    # A redelivery of the held case changes nothing.
    await publish_case(js, again, msg_id=f"again-{stack.unique}")
    await wait_for(lambda: consumer_idle(js, f"notify-{stack.unique}"), what="the redelivery handled")
    assert len(stack.smtp.to(address)) == 1

    # The reviewer then judges the held case another event (the portal's not-duplicate action
    # sends case.reviewed again with distinct_from and a new id): it is notified.
    released = msgspec.structs.replace(again, id=f"rev-distinct-{stack.unique}", distinct_from=(first.case_id,))
    await publish_case(js, released)

    async def letters(n):
        return len(stack.smtp.to(address)) == n

    await wait_for(lambda: letters(2), timeout=30, what="the released case's letter")

    # The reviewer judged a third one a separate event from both (distinct_from): it is notified.
    third = msgspec.structs.replace(case(f"LOOP3-{stack.unique}", camera=stack.camera, plate=printed,
                                         vehicle_type="motorcycle"),
                                    violation_at=first.violation_at + timedelta(minutes=4),
                                    distinct_from=(first.case_id, again.case_id))
    await publish_case(js, third)

    await wait_for(lambda: letters(3), timeout=30, what="the distinct case's letter")
    assert {e.case_id for e in await stack.events(js, "sent")} == {first.case_id, again.case_id, third.case_id}
