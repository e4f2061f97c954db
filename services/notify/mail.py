"""Email with aiosmtplib. The Message-ID is derived from the notice id, so a resend after a crash
(the server accepted, we died before recording it) is recognisable as the same message."""

from __future__ import annotations

import base64
import ssl
from collections.abc import Callable, Sequence
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


class _Prefolded(str):
    """A header the policy stores as it is and that folds itself. CPython 3.11's default folding
    of long non-ASCII headers mangles the spaces where it splits encoded words: "dừng, đỗ"
    arrived as "dừng,đỗ". Here every space stays inside an encoded word (RFC 2047), and a
    sender's name is cut between words only (a cut inside one read as "H ải Phòng")."""

    def __new__(cls, header: str, text: str, folded: Callable[[str], str]) -> _Prefolded:
        made = super().__new__(cls, text)
        made.name, made._folded = header, folded
        return made

    def fold(self, *, policy) -> str:
        return f"{self.name}: {self._folded(policy.linesep)}{policy.linesep}"


def _subject(subject: str) -> str:
    if subject.isascii():
        return subject
    return _Prefolded("Subject", subject,
                      lambda linesep: Header(subject, "utf-8", header_name="Subject").encode(linesep=linesep))


def _encoded_phrase(text: str, linesep: str) -> str:
    """A display name as RFC 2047 encoded words cut between words, each space kept inside the
    word before it: decoders ignore the folding whitespace between encoded words, so a cut in
    the middle of a word or before a space would join or split words ("H ải Phòng")."""
    chunks: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if current and len(f"{candidate} ".encode()) > 45:  # base64 of 45 bytes + 12: under 75 characters
            chunks.append(current + " ")
            current = word
        else:
            current = candidate
    chunks.append(current)
    return f"{linesep} ".join(f"=?utf-8?b?{base64.b64encode(chunk.encode()).decode()}?=" for chunk in chunks)


def _from(sender: str, sender_name: str) -> str:
    if not sender_name:
        return sender
    if sender_name.isascii():
        return formataddr((sender_name, sender))
    return _Prefolded("From", formataddr((sender_name, sender)),
                      lambda linesep: f"{_encoded_phrase(sender_name, linesep)} <{sender}>")


def message_id(notice_id: str) -> str:
    return f"<{notice_id}@{DOMAIN}>"


def compose(*, sender: str, sender_name: str, to: str, subject: str, body: str, notice_id: str, case_id: str,
            sent_at: datetime, attachments: Sequence[tuple[str, bytes]] = (),
            headers: dict[str, str] | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = _from(sender, sender_name)
    message["To"] = to
    message["Subject"] = _subject(subject)
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
