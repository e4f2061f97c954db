"""Incident alerts end to end on real servers: incident events published on nats-server, notify
recording them in PostgreSQL, e-mails at an SMTP server and signed POSTs at a webhook receiver."""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec
import pytest

from notify_samples import example, incident, incident_cleared
from notify_servers import SECRET, Clock, HttpSink, SmtpSink, migrate, notify_settings, rules_for_test, start_notify
from proto import codec, subjects
from proto.v1 import DeadLetter
from proto.v1.incident import LaneTraffic
from services.notify import alerts, mail, metrics
from services.notify.config import AlertRecipient, WebhookTarget
from services.runtime import bus


def recipients(unique: str, sink: HttpSink) -> tuple[AlertRecipient, ...]:
    return (
        # the operations centre: every type from warning up, two addresses, a webhook, and the end message
        AlertRecipient(name="ttdh", agency="ttdh-ubnd", min_severity="warning",
                       email=(f"ttdh-{unique}@example.vn", f"ttdh-2-{unique}@example.vn"),
                       webhook=WebhookTarget(url=sink.url("/ttdh"), secret_env="TTDH_SECRET"), cleared=True),
        # transport: congestion only
        AlertRecipient(name="sxd", agency="so-xay-dung", types=("congestion",), email=(f"sxd-{unique}@example.vn",),
                       webhook=WebhookTarget(url=sink.url("/sxd"), secret_env="SXD_SECRET")),
        # the police's command desk: critical only
        AlertRecipient(name="csgt", agency="hp-csgt", min_severity="critical", email=(f"csgt-{unique}@example.vn",),
                       webhook=WebhookTarget(url=sink.url("/csgt"), secret_env="CSGT_SECRET")),
        # a desk whose system answers 503 twice, then takes the alert
        AlertRecipient(name="flaky", agency="ttdh-ubnd", webhook=WebhookTarget(url=sink.url("/flaky"),
                                                                                secret_env="FLAKY_SECRET")),
        # a desk whose system is down for good
        AlertRecipient(name="down", agency="ttdh-ubnd", webhook=WebhookTarget(url=sink.url("/down"),
                                                                              secret_env="DOWN_SECRET")),
    )


@pytest.fixture
async def alerting(nats_url, database_url, unique, tmp_path):
    await migrate(database_url)
    smtp = await SmtpSink().start()
    http = await HttpSink().start()
    http.fail = {"/flaky": [503, 503], "/down": [500] * 20}
    camera = f"cam-{unique}"
    base = rules_for_test(example(), http)  # quick retries: 4 attempts, 0.05 s doubling to 0.2 s
    rules = msgspec.structs.replace(
        base, incident_alerts=msgspec.structs.replace(base.incident_alerts, recipients=recipients(unique, http)),
        secrets={**base.secrets, **{name: SECRET for name in ("TTDH_SECRET", "SXD_SECRET", "CSGT_SECRET",
                                                              "FLAKY_SECRET", "DOWN_SECRET")}})
    settings = notify_settings(
        nats_url, database_url, unique=unique, camera=camera, smtp_port=smtp.port, sms_url=http.url("/sms"),
        spool=tmp_path / "post", lookup_subject=f"traffic.registry.v1.lookup-owner-{unique}",
        incident_consumer_name=f"notify-incidents-{unique}",
        incident_consumer_filter=(f"traffic.incident.detected.v1.{camera}.>", f"traffic.incident.cleared.v1.{camera}.>"))
    running = [await start_notify(settings, rules, Clock())]

    async def start_another(name: str):
        """Another notify on the same database with its own durable on the same subjects: every
        incident event is delivered to both, as a redelivery hands it to a second replica."""
        running.append(await start_notify(msgspec.structs.replace(settings, incident_consumer_name=name), rules,
                                          Clock()))

    yield type("Alerting", (), {"smtp": smtp, "http": http, "camera": camera, "unique": unique, "rules": rules,
                                "settings": settings, "database_url": database_url, "start_another": start_another})
    for stop, _ in running:
        stop.set()
    await asyncio.wait_for(asyncio.gather(*(task for _, task in running)), 30)
    await smtp.stop()
    await http.stop()


async def publish(js, event, *, msg_id: str | None = None) -> bool:
    """Publish as track does (the event id as Nats-Msg-Id); True when the stream stored it."""
    subject = (subjects.incident_detected(event.camera_id, event.type) if hasattr(event, "detected_at")
               else subjects.incident_cleared(event.camera_id, event.type))
    ack = await js.publish(subject, codec.encode(event), headers={bus.MSG_ID: msg_id or event.id})
    return not ack.duplicate


async def settled(js, consumer: str, database_url: str) -> bool:
    """The consumer has nothing in hand and no alert is waiting or being sent."""
    info = await js.consumer_info("INCIDENTS", consumer)
    if info.num_pending or info.num_ack_pending:
        return False
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM notify.notices WHERE incident_id IS NOT NULL "
                                   "AND (status IN ('sending') OR (status = 'pending' AND attempts = 0))") == 0
    finally:
        await conn.close()


def counter(kind: str, channel: str, result: str) -> float:
    return metrics.INCIDENT_ALERTS.labels(kind, channel, result)._value.get()


async def test_one_alert_per_recipient_once_retried_and_failed_visibly(alerting, js, wait_for):
    a = alerting
    event = incident("stopped_vehicle", camera=a.camera, severity="warning", incident_id=f"incident-{a.unique}")
    sent_before = counter(alerts.ALERT, "email", "sent")
    failed_before = counter(alerts.ALERT, "webhook", "failed")
    dead = await js.pull_subscribe(subjects.dlq("notify"), durable=f"dlq-{a.unique}", stream="DEAD_LETTERS")
    assert await publish(js, event)

    async def delivered():
        return (len(a.smtp.mails) >= 1 and a.http.at("/ttdh", 200) and a.http.at("/flaky", 200)
                and len(a.http.at("/down")) >= 4)

    await wait_for(delivered, timeout=30, what="the e-mail, both webhooks and four attempts at the dead one")

    # One e-mail, to both of the operations centre's addresses, in Vietnamese, with the alert's id.
    [message] = a.smtp.mails
    assert sorted(message.rcpt) == sorted([f"ttdh-{a.unique}@example.vn", f"ttdh-2-{a.unique}@example.vn"])
    alert_id = alerts.alert_id(event.incident_id, alerts.ALERT, "ttdh", "email")
    assert message.message["Message-ID"] == mail.message_id(alert_id)
    assert message.message["X-Roadwatch-Incident-Id"] == event.incident_id
    sender = message.message["From"].addresses[0]
    assert " ".join(sender.display_name.split()) == "Hệ thống camera giám sát giao thông Hải Phòng"
    assert sender.addr_spec == "canhbao@giamsat.haiphong.gov.vn"
    assert message.message["Subject"] == ("[Cảnh báo] Phương tiện dừng, đỗ trên làn đường – "
                                          "Ngã tư Lạch Tray – Văn Cao, Ngô Quyền, Hải Phòng")
    for line in ("Cảnh báo: Phương tiện dừng, đỗ trên làn đường", "Làn đường: làn giữa",
                 "Loại phương tiện: Xe ô tô con", "Phát hiện lúc: 07 giờ 46 phút, ngày 20/11/2026",
                 f"Camera: Camera giám sát {a.camera}", f"dieu-hanh#inc-{event.incident_id}"):
        assert line in message.body, line
    shown = "".join(f"{name}: {message.message[name]}\n" for name in ("From", "To", "Subject", "Date", "Message-ID",
                                                                        "X-Roadwatch-Incident-Id"))
    print(f"\n--- alert e-mail as received (headers decoded) ---\n{shown}\n{message.body}--- end ---")

    # One signed POST to the operations centre's system; the flaky one after its two 503s (same id).
    [post] = a.http.at("/ttdh")
    assert post.signed and post.headers["Roadwatch-Event-Id"] == alerts.alert_id(
        event.incident_id, alerts.ALERT, "ttdh", "webhook")
    body = post.json()
    assert body["incident_id"] == event.incident_id and body["kind"] == "incident_alert"
    assert body["type"] == "stopped_vehicle" and body["title"] == message.message["Subject"]
    assert [r.status for r in a.http.at("/flaky")] == [503, 503, 200]
    assert len({r.headers["Roadwatch-Event-Id"] for r in a.http.at("/flaky")}) == 1
    assert [r.headers["Roadwatch-Attempt"] for r in a.http.at("/flaky")] == ["1", "2", "3"]

    # Not subscribed: transport (congestion only) and the police desk (critical only) got nothing.
    assert a.smtp.to(f"sxd-{a.unique}@example.vn") == [] and a.smtp.to(f"csgt-{a.unique}@example.vn") == []
    assert a.http.at("/sxd") == [] and a.http.at("/csgt") == []

    # The dead desk: four attempts (retry.attempts), then failed, with a dead letter and a count.
    async def failed_recorded():
        conn = await asyncpg.connect(a.database_url)
        try:
            return await conn.fetchrow("SELECT status, attempts, last_error FROM notify.notices "
                                       "WHERE incident_id = $1 AND recipient = 'down'", event.incident_id)
        finally:
            await conn.close()

    row = await wait_for(lambda: _status(failed_recorded, "failed"), timeout=15, what="the dead desk's alert failed")
    assert row["attempts"] == 4 and "answered 500" in row["last_error"]
    assert len(a.http.at("/down")) == 4
    letters = [codec.decode(m.data, DeadLetter) for m in await dead.fetch(10, timeout=10)]
    [letter] = [d for d in letters if d.consumer == "alert:down:webhook"]
    assert letter.error == "gave_up" and codec.decode(letter.payload, type(event)).incident_id == event.incident_id
    assert counter(alerts.ALERT, "webhook", "failed") == failed_before + 1
    assert counter(alerts.ALERT, "email", "sent") == sent_before + 1

    # Republished (a new message id: the stream stores it again) and the same id again (the
    # stream drops it): nothing more is sent.
    mails, posts = len(a.smtp.mails), len(a.http.requests)
    assert await publish(js, event, msg_id=f"republished-{a.unique}")
    assert not await publish(js, event)
    await wait_for(lambda: settled(js, a.settings.incident_consumer_name, a.database_url), timeout=15,
                   what="the republished event handled")
    await asyncio.sleep(5 * a.settings.poll_interval_s)
    assert len(a.smtp.mails) == mails and len(a.http.requests) == posts
    conn = await asyncpg.connect(a.database_url)
    try:
        rows = await conn.fetch("SELECT recipient, channel, kind, status FROM notify.notices WHERE incident_id = $1 "
                                "ORDER BY recipient, channel", event.incident_id)
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [
        ("down", "webhook", "incident_alert", "failed"), ("flaky", "webhook", "incident_alert", "sent"),
        ("ttdh", "email", "incident_alert", "sent"), ("ttdh", "webhook", "incident_alert", "sent")]

    # Cleared: the end message to the one recipient that asked for it, by e-mail and webhook, once.
    cleared = incident_cleared(event, after_s=300)
    assert await publish(js, cleared)
    assert await publish(js, cleared, msg_id=f"republished-cleared-{a.unique}")

    async def cleared_sent():
        return len(a.smtp.mails) == mails + 1 and len(a.http.at("/ttdh")) == 2

    await wait_for(cleared_sent, timeout=15, what="the end message")
    await wait_for(lambda: settled(js, a.settings.incident_consumer_name, a.database_url), timeout=15,
                   what="the cleared events handled")
    await asyncio.sleep(5 * a.settings.poll_interval_s)
    end = a.smtp.mails[-1]
    assert end.message["Subject"].startswith("[Đã kết thúc] Phương tiện dừng, đỗ trên làn đường")
    assert "đã kết thúc lúc 07 giờ 51 phút, ngày 20/11/2026: sự cố đã kết thúc." in end.body
    assert len(a.smtp.mails) == mails + 1 and len(a.http.at("/ttdh")) == 2
    assert a.http.at("/ttdh")[1].json()["kind"] == "incident_cleared"


async def _status(fetch, status: str):
    row = await fetch()
    return row if row is not None and row["status"] == status else None


async def test_severity_and_type_choose_the_recipients_and_an_early_end_is_kept(alerting, js, wait_for):
    a = alerting
    a.http.fail.clear()
    # Critical congestion: the operations centre, transport (congestion is its type) and the police
    # desk (critical, and its `types` is empty here: every type) all get it.
    jam = incident("congestion", camera=a.camera, severity="critical", incident_id=f"jam-{a.unique}", lane="left",
                   vehicle_class=None, traffic=LaneTraffic(lane="left", occupancy=0.9, queue_vehicles=30, vehicles=34,
                                                           level="jammed"))
    # The end of a stopped vehicle that arrives before its detection (another subject): kept, and the
    # end message goes out with the alert once the detection comes.
    stopped = incident("stopped_vehicle", camera=a.camera, severity="warning", incident_id=f"stop-{a.unique}")
    assert await publish(js, incident_cleared(stopped, after_s=60, reason="track_lost"))
    assert await publish(js, jam)

    async def jam_sent():
        return {tuple(m.rcpt) for m in a.smtp.mails} >= {(f"sxd-{a.unique}@example.vn",),
                                                          (f"csgt-{a.unique}@example.vn",)}

    await wait_for(jam_sent, timeout=30, what="the congestion alert at transport and the police desk")
    assert await publish(js, stopped)

    async def stopped_sent():
        subjects_ = [m.message["Subject"] for m in a.smtp.mails]
        return sum("Phương tiện dừng" in s for s in subjects_) == 2

    await wait_for(stopped_sent, timeout=30, what="the stopped vehicle's alert and end message")
    await wait_for(lambda: settled(js, a.settings.incident_consumer_name, a.database_url), timeout=15,
                   what="everything handled")
    await asyncio.sleep(5 * a.settings.poll_interval_s)
    by_subject = sorted((m.message["Subject"].split(" – ")[0], tuple(sorted(m.rcpt))) for m in a.smtp.mails)
    ops = tuple(sorted([f"ttdh-{a.unique}@example.vn", f"ttdh-2-{a.unique}@example.vn"]))
    assert by_subject == sorted([
        ("[Khẩn cấp] Ùn tắc giao thông", ops),
        ("[Khẩn cấp] Ùn tắc giao thông", (f"sxd-{a.unique}@example.vn",)),
        ("[Khẩn cấp] Ùn tắc giao thông", (f"csgt-{a.unique}@example.vn",)),
        ("[Cảnh báo] Phương tiện dừng, đỗ trên làn đường", ops),
        ("[Đã kết thúc] Phương tiện dừng, đỗ trên làn đường", ops),
    ])
    jam_mail = next(m for m in a.smtp.mails if "Ùn tắc" in m.message["Subject"])
    assert "Mức độ ùn tắc: ùn tắc nghiêm trọng" in jam_mail.body and "Làn đường: làn bên trái" in jam_mail.body
    end = next(m for m in a.smtp.mails if "Đã kết thúc" in m.message["Subject"])
    assert "không còn thấy phương tiện, người trong khung hình" in end.body


async def test_an_event_handled_twice_at_once_sends_once(alerting, js, wait_for):
    """Two notify instances each receive the same incident.detected (as after a redelivery to
    another replica) and record it at the same time: one e-mail and one POST per recipient."""
    a = alerting
    a.http.fail.clear()
    second = f"notify-incidents-{a.unique}-b"
    await a.start_another(second)
    events = [incident("wrong_way_driving", camera=a.camera, severity="critical", incident_id=f"ww-{a.unique}-{n}",
                       vehicle_class="motorcycle") for n in range(5)]
    for event in events:
        assert await publish(js, event)

    async def handled_by_both():
        return all([await settled(js, name, a.database_url)
                    for name in (a.settings.incident_consumer_name, second)]) and len(a.smtp.mails) >= 10

    await wait_for(handled_by_both, timeout=30, what="both instances handled the incidents")
    await asyncio.sleep(5 * a.settings.poll_interval_s)
    for event in events:
        mails = [m for m in a.smtp.mails if m.message["X-Roadwatch-Incident-Id"] == event.incident_id]
        # The operations centre and the police desk (critical, every type here); not transport.
        assert sorted(tuple(sorted(m.rcpt)) for m in mails) == sorted([
            tuple(sorted([f"ttdh-{a.unique}@example.vn", f"ttdh-2-{a.unique}@example.vn"])),
            (f"csgt-{a.unique}@example.vn",)])
        posts = [r for r in a.http.requests if r.json()["incident_id"] == event.incident_id]
        assert sorted(r.path for r in posts) == ["/csgt", "/down", "/flaky", "/ttdh"]
        assert "Loại phương tiện: Xe mô tô" in mails[0].body
    info = [await js.consumer_info("INCIDENTS", name) for name in (a.settings.incident_consumer_name, second)]
    assert [i.delivered.consumer_seq for i in info] == [5, 5]  # each instance got every event
