"""Notify end to end on real servers: nats-server, PostgreSQL, the registry service, an SMTP
server, an SMS gateway and webhook receivers."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import asyncpg
import msgspec
import pytest

from notify_pdf import flat, images_of, text_of
from notify_samples import case, evidence_ref, example, owner, resolved, vehicle
from notify_servers import (
    Clock, HttpSink, SmtpSink, consumer_idle, migrate, notify_settings, put_evidence, register,
    start_notify, start_registry, rules_for_test,
)
from proto import codec, subjects
from proto.v1 import DeadLetter, NoticeFailed, NoticeSent
from services.notify.config import Subscriber
from services.runtime import bus

FRAME = "street/vn_cam_g30_Image3154.jpg"


class Stack:
    """Everything one test needs, started and stopped together."""

    def __init__(self, **kw) -> None:
        self.__dict__.update(kw)

    async def events(self, js, kind: str) -> list:
        """notice.sent or notice.failed events of this test's camera, as stored in NOTICES."""
        subject = f"traffic.notice.{kind}.v1.{self.camera}.*"
        type_ = NoticeSent if kind == "sent" else NoticeFailed
        found = []
        sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy="all")
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=0.5)
                except Exception:
                    break
                found.append(codec.decode(msg.data, type_))
        finally:
            await sub.unsubscribe()
        return found


@pytest.fixture
async def stack(nats_url, database_url, unique, js, tmp_path):
    await migrate(database_url)
    smtp = await SmtpSink().start()
    http = await HttpSink().start()
    lookup_subject, registry_stop, registry_task = await start_registry(nats_url, database_url, unique)
    camera = f"cam-{unique}"
    clock = Clock()
    made = Stack(smtp=smtp, http=http, camera=camera, clock=clock, unique=unique, spool=tmp_path / "post",
                 database_url=database_url, lookup_subject=lookup_subject, notify=None)

    async def start(subscribers=(), webhook_attempts=4):
        rules = rules_for_test(example(), http, subscribers=subscribers, webhook_attempts=webhook_attempts)
        settings = notify_settings(nats_url, database_url, unique=unique, camera=camera, smtp_port=smtp.port,
                                   sms_url=http.url("/sms"), spool=made.spool, lookup_subject=lookup_subject)
        made.notify = await start_notify(settings, rules, clock)
        made.rules, made.settings = rules, settings

    made.start = start
    yield made
    if made.notify is not None:
        stop, task = made.notify
        stop.set()
        await asyncio.wait_for(task, 30)
    registry_stop.set()
    await asyncio.wait_for(registry_task, 30)
    await smtp.stop()
    await http.stop()


async def publish_case(js, event, *, msg_id: str | None = None):
    subject = (subjects.case_reviewed(event.camera_id, event.decision) if hasattr(event, "decision")
               else subjects.case_resolved(event.camera_id))
    await js.publish(subject, codec.encode(event), headers={bus.MSG_ID: msg_id or event.id})


async def test_owner_notice_by_email_sms_and_post_exactly_once(stack, js, shared_dir: Path, wait_for):
    frame = (shared_dir / "data" / FRAME).read_bytes()
    await put_evidence(js, frame)
    plate = f"15A{int(stack.unique[:5], 16) % 100000:05d}"
    await register(stack.database_url, vehicle(plate=plate, printed=f"{plate[:3]}-{plate[3:6]}.{plate[6:]}"),
                   owner(email=f"chu-xe-{stack.unique}@example.vn"))
    stack.http.fail = {"/sms": [503], "/events": [500]}  # one gateway outage, one subscriber outage
    await stack.start(subscribers=(
        Subscriber(name="so-xay-dung", agency="so-xay-dung-hai-phong", url=stack.http.url("/events"),
                   subjects=(f"traffic.notice.sent.v1.{stack.camera}.>",), secret_env="SXD_SECRET"),
        Subscriber(name="broken", agency="broken", url=stack.http.url("/broken"),
                   subjects=(f"traffic.notice.*.v1.{stack.camera}.email",), secret_env="BROKEN_SECRET"),
    ), webhook_attempts=3)
    stack.http.fail["/broken"] = [500] * 10
    reviewed = case(f"CASE-{stack.unique}", camera=stack.camera, plate=plate, evidence=(evidence_ref(frame),))
    dead = await js.pull_subscribe(subjects.dlq("notify"), durable=f"dlq-{stack.unique}", stream="DEAD_LETTERS")
    await publish_case(js, reviewed)
    address = f"chu-xe-{stack.unique}@example.vn"

    async def everything_sent():
        sent = await stack.events(js, "sent")
        return sent if {e.channel for e in sent} == {"email", "sms", "post"} else None

    sent = await wait_for(everything_sent, timeout=30, what="notice.sent on email, sms and post")

    # The email: one message, to the owner, with the letter attached; every field in the PDF.
    mails = stack.smtp.to(address)
    assert len(mails) == 1
    mail = mails[0]
    assert "15A-" in mail.message["Subject"] and f"CASE-{stack.unique}" in mail.message["Subject"]
    assert "Kính gửi Trần Thị Huệ" in mail.body
    [(filename, pdf)] = mail.attachments
    assert filename == f"owner_notice-CASE-{stack.unique}.pdf"
    text = text_of(pdf)
    for expected in ("CÔNG AN THÀNH PHỐ HẢI PHÒNG", f"Số: CASE-{stack.unique}", "Kính gửi: Trần Thị Huệ",
                     "Địa chỉ: Số 18 ngõ 45 Lạch Tray, phường Ngô Quyền, Hải Phòng",
                     f"Biển kiểm soát: {plate[:3]}-{plate[3:6]}.{plate[6:]}", "Màu biển: Nền màu trắng, chữ và số màu đen",
                     "Loại phương tiện: Xe ô tô con", "Thời gian vi phạm: 07 giờ 45 phút, ngày 20/11/2026",
                     "Hành vi vi phạm: Không chấp hành hiệu lệnh của đèn tín hiệu giao thông",
                     "Căn cứ pháp lý: Điểm b khoản 9 Điều 6 Nghị định số 168/2024/NĐ-CP",
                     "Điện thoại liên hệ: 0225 3842 135", "Giấy chứng nhận đăng ký xe", "Hình ảnh vi phạm",
                     f"Camera giám sát {stack.camera}"):
        assert flat(expected) in text, expected
    assert images_of(pdf) == [frame]  # the evidence frame from the object store, byte for byte

    # SMS: the gateway's first answer was 503, the retry went through with the same key.
    sms = stack.http.at("/sms")
    assert [r.status for r in sms] == [503, 200]
    assert {r.headers["Idempotency-Key"] for r in sms} == {sent_event.notice_id for sent_event in sent
                                                          if sent_event.channel == "sms"}
    assert sms[1].json()["to"] == "0912345678" and plate[:3] in sms[1].json()["text"]
    assert sms[1].headers["Authorization"] == "Bearer gateway-token"

    # The paper letter is the same document as the email's attachment.
    [letter_file] = list(stack.spool.glob("*.pdf"))
    assert letter_file.read_bytes() == pdf
    by_channel = {e.channel: e for e in sent}
    assert by_channel["email"].document_sha256 == hashlib.sha256(pdf).hexdigest() == by_channel["post"].document_sha256
    assert by_channel["email"].recipient == "owner" and by_channel["email"].respond_by is not None
    assert len(sent) == 3
    failed = await stack.events(js, "failed")
    assert [(f.channel, f.attempt, f.will_retry) for f in failed] == [("sms", 1, True)]
    assert "503" in failed[0].reason

    # Subscribers: signed POSTs of each notice.sent; the first failed and was retried.
    async def subscriber_has_all():
        return len({r.headers["Roadwatch-Event-Id"] for r in stack.http.at("/events", 200)}) == 3

    await wait_for(subscriber_has_all, timeout=20, what="three notice.sent events at the subscriber")
    received = stack.http.at("/events")
    assert all(r.signed for r in received) and received[0].status == 500
    assert {r.json()["id"] for r in received if r.status == 200} == {e.id for e in sent}
    retried = [r for r in received if r.headers["Roadwatch-Attempt"] == "2"]
    assert len(retried) == 1 and retried[0].headers["Roadwatch-Event-Id"] == received[0].headers["Roadwatch-Event-Id"]

    # The broken subscriber: 3 attempts, then a dead letter with the event, and the log says so.
    async def dead_letter():
        try:
            msgs = await dead.fetch(10, timeout=0.5)
        except Exception:
            return None
        letters = [codec.decode(m.data, DeadLetter) for m in msgs]
        return [d for d in letters if d.consumer == "webhook:broken"] or None

    [letter] = await wait_for(dead_letter, timeout=20, what="the broken subscriber's dead letter")
    assert letter.num_delivered == 3 and "answered 500" in letter.reason
    assert codec.decode(letter.payload, NoticeSent).channel == "email"
    assert len(stack.http.at("/broken")) == 3
    conn = await asyncpg.connect(stack.database_url)
    try:
        log = await conn.fetch("SELECT a.attempt, a.status_code FROM notify.webhook_attempts a "
                               "JOIN notify.webhook_deliveries d USING (delivery_id) WHERE d.subscriber = 'broken' "
                               "ORDER BY a.attempt")
        assert [(r["attempt"], r["status_code"]) for r in log] == [(1, 500), (2, 500), (3, 500)]
    finally:
        await conn.close()

    # The same case again (a replay with another message id): nothing new goes out.
    await publish_case(js, reviewed, msg_id=f"replay-{stack.unique}")
    await wait_for(lambda: consumer_idle(js, f"notify-{stack.unique}"), what="the replay to be handled")
    await asyncio.sleep(0.3)
    assert len(stack.smtp.to(address)) == 1
    assert len(stack.http.at("/sms", 200)) == 1
    assert len(await stack.events(js, "sent")) == 3


async def test_transfer_warning_after_20_days_and_lifting_on_resolution(stack, js, wait_for):
    """A motorbike whose owner lives in Kiến An (outside the unit's area): transferred to the
    commune police; 20 days after the notice (injected clock) warned to the inspection registry
    and the commune police; lifted on resolution. A second case resolved in time is never warned."""
    base = int(stack.unique[:5], 16) % 100000
    bike_plate, car_plate = f"15B1{base:05d}", f"15A{base:05d}"
    kien_an = owner(commune="11410", email=f"bike-{stack.unique}@example.vn", phone="",
                    address="Số 3 Trần Thành Ngọ, phường Kiến An, Hải Phòng")
    await register(stack.database_url, vehicle(plate=bike_plate, printed=f"15-B1 {base:05d}", vehicle_type="motorcycle"),
                   kien_an)
    await register(stack.database_url, vehicle(plate=car_plate, printed=f"15A-{base:05d}"),
                   owner(email=f"car-{stack.unique}@example.vn", phone="", name="Lê Văn Nam",
                         address="Số 9 Văn Cao, Hải Phòng", national_id="031190099999"))
    await stack.start()
    bike = case(f"BIKE-{stack.unique}", camera=stack.camera, plate=bike_plate, vehicle_type="motorcycle")
    car = case(f"CAR-{stack.unique}", camera=stack.camera, plate=car_plate)
    await publish_case(js, bike)
    await publish_case(js, car)
    commune_email = "congan.kienan@haiphong.gov.vn"

    async def notices_out():
        sent = await stack.events(js, "sent")
        return sent if len(sent) == 5 else None  # bike: email, post, transfer; car: email, post

    sent = await wait_for(notices_out, timeout=30, what="owner notices and the transfer")
    [transfer] = [e for e in sent if e.kind == "commune_transfer"]
    assert (transfer.case_id, transfer.channel, transfer.recipient) == (bike.case_id, "commune_police", "11410")
    [mail] = stack.smtp.to(commune_email)
    [(_, pdf)] = mail.attachments
    assert transfer.document_sha256 == hashlib.sha256(pdf).hexdigest()
    text = text_of(pdf)
    for expected in ("PHIẾU CHUYỂN KẾT QUẢ GHI NHẬN VI PHẠM", "Kính gửi: Công an phường Kiến An, thành phố Hải Phòng",
                     "Trần Thị Huệ", "Số 3 Trần Thành Ngọ, phường Kiến An, Hải Phòng", f"15-B1 {base:05d}",
                     "Loại phương tiện: Xe mô tô"):
        assert flat(expected) in text, expected
    assert "Lê Văn Nam" not in text

    # The car's case is settled on day 5; then 19 days pass: nothing is due yet.
    stack.clock.advance(days=5)
    await publish_case(js, resolved(car))
    await wait_for(lambda: consumer_idle(js, f"notify-{stack.unique}"), what="the resolution to be handled")
    stack.clock.advance(days=14)
    await asyncio.sleep(0.5)
    assert stack.http.at("/dang-kiem") == []
    # Day 20 after the notice: the bike's owner has not come. Warning to the inspection registry
    # (signed webhook, no owner data) and, for a motorbike, to the owner's commune police.
    stack.clock.advance(days=1, minutes=1)

    async def warned():
        return [e for e in await stack.events(js, "sent") if e.kind == "inspection_warning"] or None

    await wait_for(lambda: _count(warned, 2), timeout=20, what="the inspection warnings")
    [warning] = stack.http.at("/dang-kiem")
    assert warning.signed and warning.status == 200
    body = warning.json()
    assert (body["kind"], body["case_id"], body["plate"]) == ("inspection_warning", bike.case_id, f"15-B1 {base:05d}")
    assert "Trần Thị Huệ" not in warning.body.decode() and "Kiến An" not in warning.body.decode()
    assert "Cảnh báo phương tiện chưa chấp hành" in body["title"]
    commune_mails = stack.smtp.to(commune_email)
    assert len(commune_mails) == 2 and commune_mails[1].message["Subject"].startswith("Cảnh báo phương tiện")
    assert all(e.case_id == bike.case_id for e in await warned())

    # Resolution: the warning is lifted on both channels; nothing else moves.
    stack.clock.advance(days=3)
    await publish_case(js, resolved(bike, at=None))

    async def lifted():
        return [e for e in await stack.events(js, "sent") if e.kind == "inspection_lifted"] or None

    await wait_for(lambda: _count(lifted, 2), timeout=20, what="the lifting notices")
    lifting = stack.http.at("/dang-kiem")[-1]
    assert lifting.signed and lifting.json()["kind"] == "inspection_lifted"
    assert "Gỡ cảnh báo" in lifting.json()["title"]
    assert "đặt từ ngày" in lifting.json()["text"]
    stack.clock.advance(days=30)
    await asyncio.sleep(0.5)
    sent = await stack.events(js, "sent")
    assert sorted(e.kind for e in sent if e.case_id == car.case_id) == ["owner_notice", "owner_notice"]
    assert len(stack.http.at("/dang-kiem")) == 2


async def _count(find, n: int):
    found = await find()
    return found is not None and len(found) == n


async def test_bad_messages_go_to_dead_letters(stack, js, wait_for):
    """Not JSON, a case for a plate the registry does not know, an unconfigured agency, evidence
    whose bytes do not match its hash: each is a dead letter with its reason; none is retried
    forever, printed, or dropped silently."""
    base = int(stack.unique[:5], 16) % 100000
    await register(stack.database_url, vehicle(plate=f"15A{base:05d}", printed=f"15A-{base:05d}"), owner())
    tampered = f"evidence for {stack.unique}".encode()
    claimed = hashlib.sha256(b"the frame the officer saw " + tampered).hexdigest()
    await put_evidence(js, tampered)  # makes sure the bucket exists
    store = await js.object_store("evidence")
    await store.put(claimed, tampered)  # stored under another image's hash
    await stack.start()
    dead = await js.pull_subscribe(subjects.dlq("notify"), durable=f"dlq-{stack.unique}", stream="DEAD_LETTERS")
    await js.publish(subjects.case_reviewed(stack.camera, "confirmed"), b"{not json",
                     headers={bus.MSG_ID: f"bad-{stack.unique}"})
    await publish_case(js, case(f"NOPLATE-{stack.unique}", camera=stack.camera, plate="99Z99999"))
    await publish_case(js, msgspec.structs.replace(case(f"AGENCY-{stack.unique}", camera=stack.camera),
                                                   agency="cong-an-khong-ton-tai", id=f"rev-agency-{stack.unique}"))
    ref = msgspec.structs.replace(evidence_ref(tampered), name=claimed, sha256=claimed)
    await publish_case(js, case(f"TAMPER-{stack.unique}", camera=stack.camera, plate=f"15A{base:05d}", evidence=(ref,)))
    letters: list[DeadLetter] = []

    async def three():
        try:
            msgs = await dead.fetch(10, timeout=0.5)
        except Exception:
            return False
        for m in msgs:
            letter = codec.decode(m.data, DeadLetter)
            if letter.subject.startswith(f"traffic.case.reviewed.v1.{stack.camera}."):
                letters.append(letter)
            await m.ack()
        return len(letters) >= 4

    await wait_for(three, timeout=20, what="four dead letters")
    reasons = sorted((d.error, d.reason) for d in letters)
    assert reasons[0][0] == "decode"
    assert any(e == "invalid" and "no registration for plate '99Z99999'" in r for e, r in reasons)
    assert any(e == "invalid" and "cong-an-khong-ton-tai" in r for e, r in reasons)
    assert any(e == "invalid" and f"{claimed} does not match its sha256" in r for e, r in reasons)
    assert stack.smtp.mails == []


async def test_refused_and_unreachable_recipients_fail_visibly(stack, js, wait_for):
    """A mailbox the server refuses (550), an SMS gateway down longer than the retries, and an
    owner in a commune with no police configured: each ends as notice.failed with will_retry
    false and the reason; the paper letter still goes; nothing is retried after that."""
    base = int(stack.unique[:5], 16) % 100000
    plate = f"15A{base:05d}"
    await register(stack.database_url, vehicle(plate=plate, printed=f"15A-{base:05d}"),
                   owner(email=f"refused-{stack.unique}@example.vn", commune="79001"))
    stack.http.fail = {"/sms": [503] * 10}
    await stack.start()
    reviewed = case(f"FAIL-{stack.unique}", camera=stack.camera, plate=plate)
    await publish_case(js, reviewed)

    async def final():
        failed = [e for e in await stack.events(js, "failed") if not e.will_retry]
        return failed if len(failed) == 3 else None

    failed = {e.channel: e for e in await wait_for(final, timeout=30, what="three final failures")}
    assert failed["email"].attempt == 1 and "550" in failed["email"].reason
    assert failed["commune_police"].kind == "commune_transfer" and "no email address" in failed["commune_police"].reason
    assert failed["sms"].attempt == 4 and "503" in failed["sms"].reason  # retry.attempts in the test rules
    sms_failures = [e for e in await stack.events(js, "failed") if e.channel == "sms"]
    assert [(e.attempt, e.will_retry) for e in sms_failures] == [(1, True), (2, True), (3, True), (4, False)]
    assert len(stack.http.at("/sms")) == 4
    assert [e.channel for e in await stack.events(js, "sent")] == ["post"]
    conn = await asyncpg.connect(stack.database_url)
    try:
        rows = await conn.fetch("SELECT channel, status, attempts FROM notify.notices ORDER BY channel")
        assert [(r["channel"], r["status"], r["attempts"]) for r in rows] == [
            ("commune_police", "failed", 1), ("email", "failed", 1), ("post", "sent", 1), ("sms", "failed", 4)]
    finally:
        await conn.close()


async def test_resolution_before_the_case_is_recorded_means_no_notice(stack, js, wait_for):
    """case.resolved handled before case.reviewed (a retry, another replica): the resolution is
    kept, and the case, when it comes, gets no notice (and no owner lookup)."""
    base = int(stack.unique[:5], 16) % 100000
    plate = f"15A{base:05d}"
    await register(stack.database_url, vehicle(plate=plate, printed=f"15A-{base:05d}"), owner())
    await stack.start()
    reviewed = case(f"EARLY-{stack.unique}", camera=stack.camera, plate=plate)
    await publish_case(js, resolved(reviewed))
    await wait_for(lambda: consumer_idle(js, f"notify-{stack.unique}"), what="the resolution to be handled")
    await publish_case(js, reviewed)
    await wait_for(lambda: consumer_idle(js, f"notify-{stack.unique}"), what="the case to be handled")
    conn = await asyncpg.connect(stack.database_url)
    try:
        assert await conn.fetchval("SELECT event_id FROM notify.early_resolutions WHERE case_id = $1",
                                   reviewed.case_id) == resolved(reviewed).id
        assert await conn.fetchval("SELECT count(*) FROM notify.notices") == 0
        assert await conn.fetchval("SELECT count(*) FROM notify.cases") == 0
    finally:
        await conn.close()
    assert stack.smtp.mails == [] and stack.http.requests == []


async def test_two_replicas_send_each_notice_once(stack, js, wait_for, nats_url):
    """Two notify replicas on the same durable consumer and database: cases are shared out, and
    every notice goes out exactly once (the lease and unique keys, not luck)."""
    base = int(stack.unique[:4], 16) % 1000
    cases = []
    for number in range(12):
        plate = f"15A{base:03d}{number:02d}"
        await register(stack.database_url, vehicle(plate=plate, printed=f"15A-{plate[3:6]}.{plate[6:]}"),
                       owner(email=f"r{number}-{stack.unique}@example.vn", phone="", national_id=f"0312{base:04d}{number:04d}"))
        cases.append(case(f"R-{stack.unique}-{number:02d}", camera=stack.camera, plate=plate))
    await stack.start()
    second = await start_notify(stack.settings, stack.rules, stack.clock)
    try:
        for reviewed in cases:
            await publish_case(js, reviewed)

        async def all_sent():
            return len(await stack.events(js, "sent")) >= 24  # email and post for each case

        await wait_for(all_sent, timeout=60, what="every notice")
    finally:
        second[0].set()
        await asyncio.wait_for(second[1], 30)
    sent = await stack.events(js, "sent")
    assert len(sent) == 24 and len({e.notice_id for e in sent}) == 24
    message_ids = [m.message["Message-ID"] for m in stack.smtp.mails]
    assert len(message_ids) == 12 and len(set(message_ids)) == 12
    assert len(list(stack.spool.glob("*.pdf"))) == 12
