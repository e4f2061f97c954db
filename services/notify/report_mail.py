"""The coordination report by e-mail: the message (wording from NOTIFY_CONFIG `reports:`, the
report's PDF and CSV attached) and its sending, for the schedule (report_schedule.py) and for
`roadwatch report --send`. The report itself is the portal's (services/portal/report.py): its
figures come from the portal's tables; notify only has the mailer and the schedule."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timezone
from email.header import Header
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr

import msgspec

from services.notify import mail
from services.notify.config import Config, ConfigError, load
from services.notify.outcome import DeliveryError
from services.notify.settings import SMTP_TLS, Settings
from services.portal import report_format, report_pdf
from services.portal.report_data import ReportData
from services.runtime import settings

SUBTYPES = {"pdf": ("application", "pdf"), "csv": ("text", "csv")}


def compose(config: Config, data: ReportData, files: dict[str, bytes], recipients: tuple[str, ...], every: str,
            sent_at: datetime) -> MIMEMultipart:
    """The message. Built with the compat32 classes: their Header splits a long Vietnamese subject
    into encoded words without losing the spaces between them, which the default policy's folding
    does (a subject of this length would read "16/11/2026đến")."""
    reports = config.reports
    first, last = report_format.period(data.start, data.end, data.timezone).split(" – ")
    fields = {
        "agency": data.scope.agency_name or data.scope.agency_id,
        "period_name": reports.period_names.get(every, every),
        "period": f"từ {first} đến {last}",
        "generated_at": report_format.local(data.generated_at, data.timezone),
        "files": ", ".join(files),
        "summary": "\n".join("- " + line for line in report_pdf.summary_lines(data)),
    }
    message = MIMEMultipart()
    sender = config.email.sender
    message["From"] = formataddr((config.email.sender_name, sender)) if config.email.sender_name else sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = Header(reports.subject.format(**fields), "utf-8")
    message["Date"] = format_datetime(sent_at)
    key = f"report-{data.scope.agency_id}-{every}-{data.start.date():%Y%m%d}-{data.end.date():%Y%m%d}"
    message["Message-ID"] = f"<{key}@{mail.DOMAIN}>"  # a resend is recognisable as the same report
    message["X-Roadwatch-Report"] = key
    message.attach(MIMEText(reports.body.format(**fields), "plain", "utf-8"))
    for name, body in files.items():
        maintype, subtype = SUBTYPES[name.rsplit(".", 1)[-1]]
        part = MIMEApplication(body, subtype) if maintype == "application" else MIMEApplication(body, "octet-stream")
        if maintype == "text":
            part.replace_header("Content-Type", f"{maintype}/{subtype}; charset=utf-8")
        part.add_header("Content-Disposition", "attachment", filename=name)
        message.attach(part)
    return message


def _check_tls(smtp) -> None:
    settings.check_choice("SMTP_TLS", smtp.smtp_tls, SMTP_TLS)


# notify's SMTP_* settings alone (same fields, types and defaults), for a command line that has
# no DATABASE_URL or notify configuration of its own.
SmtpSettings = msgspec.defstruct("SmtpSettings", [
    (field.name, field.type, field.default) for field in msgspec.structs.fields(Settings) if field.name.startswith("smtp_")
], kw_only=True, frozen=True, namespace={"__post_init__": _check_tls})


def smtp_from_environ(environ: dict[str, str] | None = None, *, prog: str = "roadwatch report") -> mail.Smtp:
    """The SMTP_* settings of notify, for the command line; a bad value exits 2 naming it."""
    smtp = settings.load(SmtpSettings, environ, service=prog.removeprefix("roadwatch "))
    return mail.Smtp(host=smtp.smtp_host, port=smtp.smtp_port, username=smtp.smtp_username,
                     password=smtp.smtp_password, tls=smtp.smtp_tls, timeout_s=smtp.smtp_timeout_s)


def send_from_command_line(data: ReportData, files: dict[str, bytes], config_path: str, agencies_file: str,
                           prog: str) -> int:
    try:
        config = load(config_path, agencies_file=agencies_file)
    except ConfigError as exc:
        print(f"{prog}: bad configuration: {exc}", file=sys.stderr)
        return 2
    recipients = config.reports.recipients.get(data.scope.agency_id, ())
    if not recipients:
        print(f"{prog}: no recipients for {data.scope.agency_id} in {config_path} (reports.recipients)", file=sys.stderr)
        return 2
    message = compose(config, data, files, recipients, "custom", datetime.now(timezone.utc))
    try:
        asyncio.run(mail.send(smtp_from_environ(prog=prog), message))
    except DeliveryError as exc:
        print(f"{prog}: not sent: {exc}", file=sys.stderr)
        return 1
    print(f"sent to {', '.join(recipients)}")
    return 0
