"""Webhook signatures and retry spacing, as a subscriber would check them."""

from __future__ import annotations

from notify_samples import example
from services.notify import webhooks
from services.notify.config import Retry
from services.notify.sender import backoff

BODY = b'{"id":"ntc-1","kind":"owner_notice"}'


def test_signature_verifies_and_catches_tampering_and_replays():
    header = webhooks.sign("s3cret", BODY, 1_764_400_000)
    assert header.startswith("t=1764400000,v1=") and len(header.split("v1=")[1]) == 64
    assert webhooks.verify("s3cret", header, BODY, now=1_764_400_010)
    assert not webhooks.verify("other", header, BODY, now=1_764_400_010)  # wrong secret
    assert not webhooks.verify("s3cret", header, BODY.replace(b"owner", b"other"), now=1_764_400_010)  # body changed
    assert not webhooks.verify("s3cret", header, BODY, now=1_764_400_000 + 301)  # too old: a replay
    assert not webhooks.verify("s3cret", "garbage", BODY, now=1_764_400_000)


def test_backoff_doubles_up_to_the_cap():
    retry = Retry(attempts=8, base_s=5, max_s=60)
    assert [backoff(retry, attempt) for attempt in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert example().webhook_retry.attempts == 8


def test_a_long_vietnamese_subject_and_sender_name_keep_their_spaces():
    import email
    import email.policy
    from email.header import decode_header, make_header
    from datetime import datetime, timezone

    from services.notify import mail

    subject = "[Đã kết thúc] Phương tiện dừng, đỗ trên làn đường – Ngã tư Lạch Tray – Văn Cao, Ngô Quyền, Hải Phòng"
    name = "Hệ thống camera giám sát giao thông Hải Phòng"
    message = mail.compose(sender="a@example.vn", sender_name=name, to="b@example.vn", subject=subject,
                           body="x", notice_id="alert-1", case_id="", sent_at=datetime.now(timezone.utc))
    raw = message.as_bytes()
    assert max(len(line) for line in raw.split(b"\n")) <= 78  # folded, as SMTP wants
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == subject
    # As RFC 2047 decoders read it (folding whitespace between encoded words ignored), and as
    # Python's address parser does (it adds a space between encoded words: at most a double one).
    raw_from = email.message_from_bytes(raw)["From"]
    assert str(make_header(decode_header(raw_from))) == f"{name} <a@example.vn>"
    assert " ".join(parsed["From"].addresses[0].display_name.split()) == name
    assert parsed["From"].addresses[0].addr_spec == "a@example.vn"
