"""Email with aiosmtplib. The Message-ID is derived from the notice id, so a resend after a crash
(the server accepted, we died before recording it) is recognisable as the same message."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.header import Header
from email.message import EmailMessage
from email.utils import formataddr, format_datetime
from datetime import datetime

import aiosmtplib

from services.notify.outcome import DeliveryError

DOMAIN = "roadwatch.notify"


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    username: str = ""
    password: str = ""
    tls: str = "none"  # none, starttls, tls
    timeout_s: float = 30.0


class _Subject(str):
    """A Subject the policy stores as it is and folds with email.header: CPython 3.11's default
    folding of a long non-ASCII header drops the space where it splits two encoded words, so
    "dừng, đỗ trên làn đường" arrived as "dừng,đỗ trên làn đường"; this encoder keeps spaces
    inside the encoded words (RFC 2047)."""

    name = "Subject"

    def fold(self, *, policy) -> str:
        return f"Subject: {Header(str(self), 'utf-8', header_name='Subject').encode(linesep=policy.linesep)}{policy.linesep}"


def message_id(notice_id: str) -> str:
    return f"<{notice_id}@{DOMAIN}>"


def compose(*, sender: str, sender_name: str, to: str, subject: str, body: str, notice_id: str, case_id: str,
            sent_at: datetime, attachments: Sequence[tuple[str, bytes]] = (),
            headers: dict[str, str] | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = formataddr((sender_name, sender)) if sender_name else sender
    message["To"] = to
    message["Subject"] = _Subject(subject) if not subject.isascii() else subject
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = message_id(notice_id)
    message["X-Roadwatch-Notice-Id"] = notice_id
    if case_id:
        message["X-Roadwatch-Case-Id"] = case_id
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body, charset="utf-8")
    for filename, content in attachments:
        message.add_attachment(content, maintype="application", subtype="pdf", filename=filename)
    return message


async def send(smtp: Smtp, message: EmailMessage) -> None:
    if not message["To"]:
        raise DeliveryError("no email address for this recipient", permanent=True)
    try:
        await aiosmtplib.send(
            message, hostname=smtp.host, port=smtp.port, username=smtp.username or None,
            password=smtp.password or None, use_tls=smtp.tls == "tls", start_tls=smtp.tls == "starttls",
            timeout=smtp.timeout_s, tls_context=ssl.create_default_context() if smtp.tls != "none" else None)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [refused.code for refused in exc.recipients]
        raise DeliveryError(f"recipient refused: {exc}", permanent=all(500 <= code < 600 for code in codes)) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise DeliveryError(f"smtp {exc.code}: {exc.message}", permanent=500 <= exc.code < 600) from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise DeliveryError(f"smtp unavailable: {exc!r}") from exc
