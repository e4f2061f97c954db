"""Settings of the notify service, from environment variables (see the README's configuration table).

What the regulations and agencies decide (wording, periods, recipients, webhooks) is in the
NOTIFY_CONFIG file instead; these are the machine's connections and limits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from proto import streams, subjects
from services.runtime.settings import DatabaseSettings, SettingError, between, check_choice, check_url

DEJAVU = "/usr/share/fonts/truetype/dejavu"
SMTP_TLS = ("none", "starttls", "tls")


class Settings(DatabaseSettings, frozen=True, kw_only=True):
    http_port: int = 8085
    # Apply notify's own pending migrations at start (advisory-locked, safe with replicas). Set
    # false where the service's database user may not change the schema; run `roadwatch migrate`.
    migrate_on_start: bool = True
    # units, communes, wording, deadlines, legal basis and fines, webhooks, incident alerts (YAML)
    notify_config: str = str(Path(__file__).resolve().parent / "notify.example.yaml")
    # The portal's agencies file: the units' names, addresses, phones and hours (one source).
    agencies_file: str = str(Path(__file__).resolve().parents[1] / "portal" / "agencies.example.yaml")
    font_path: str = f"{DEJAVU}/DejaVuSans.ttf"  # font of the letters (Vietnamese diacritics; fonts-dejavu-core)
    font_bold_path: str = f"{DEJAVU}/DejaVuSans-Bold.ttf"  # bold font of the letters
    smtp_host: str = "127.0.0.1"  # mail server
    smtp_port: Annotated[int, between(1, 65535)] = 25  # mail server port
    smtp_username: str = ""  # SMTP login; empty: none
    smtp_password: str = ""  # SMTP password
    smtp_tls: str = "none"  # none, starttls or tls
    smtp_timeout_s: Annotated[float, between(0.1, 600)] = 30.0  # SMTP connect and send timeout
    sms_gateway_url: str = ""  # POST JSON {to, text, id}; empty: SMS notices fail visibly
    sms_gateway_token: str = ""  # bearer token for SMS_GATEWAY_URL
    post_spool_dir: str = "var/notify/post"  # letters to print and post, one PDF per notice
    # the registry's owner lookup (request/reply)
    registry_lookup_subject: str = subjects.request("registry", "lookup-owner")
    registry_timeout_s: Annotated[float, between(0.1, 600)] = 5.0  # how long an owner lookup may take
    evidence_images_max: Annotated[int, between(0, 12)] = 4  # images printed per letter
    # The durable consumer on CASES; another name and filter run a second, independent notify.
    consumer_name: str = streams.NOTIFY.name
    consumer_filter: tuple[str, ...] = streams.NOTIFY.filter_subjects  # its subjects, comma-separated
    # The durable consumer on INCIDENTS (alerts); likewise renamable.
    incident_consumer_name: str = streams.NOTIFY_INCIDENTS.name
    # its subjects, comma-separated
    incident_consumer_filter: tuple[str, ...] = streams.NOTIFY_INCIDENTS.filter_subjects
    # A case event not acked in this time (notify died while recording it) goes to another replica.
    ack_wait_s: Annotated[float, between(1, 3600)] = 60.0
    # Case events handled at once (each waits for the registry, evidence and its letter).
    case_workers: Annotated[int, between(1, 64)] = 2
    # worker processes rendering letters (0: a thread of this process)
    render_processes: Annotated[int, between(0, 64)] = 1
    send_concurrency: Annotated[int, between(1, 256)] = 8  # deliveries (mail, SMS, webhooks) in flight at once
    # how often the scheduler looks for due sends and warnings
    poll_interval_s: Annotated[float, between(0.01, 600)] = 1.0
    lease_s: Annotated[float, between(1, 86_400)] = 120.0  # a send not finished in this time is retried by any replica
    # Mail the coordination reports of NOTIFY_CONFIG `reports.schedules` (report_schedule.py). Off
    # unless a deployment turns it on (deploy/base does), so that a test or demo stack sharing the
    # example configuration mails no reports of its own; the period claim keeps replicas to one send.
    reports_enabled: bool = False
    report_interval_s: Annotated[float, between(1, 3600)] = 60.0  # how often a replica looks for a report that is due

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("SMTP_TLS", self.smtp_tls, SMTP_TLS)
        if self.sms_gateway_url:
            check_url("SMS_GATEWAY_URL", self.sms_gateway_url, ("http", "https"))
        if not Path(self.agencies_file).is_file():
            raise SettingError("AGENCIES_FILE", f"{self.agencies_file} is not a file")
        for variable, value in (("FONT_PATH", self.font_path), ("FONT_BOLD_PATH", self.font_bold_path)):
            if not Path(value).is_file():
                raise SettingError(variable, f"{value} is not a file (install fonts-dejavu-core, or point to a TTF)")
        if not self.consumer_filter:
            raise SettingError("CONSUMER_FILTER", "needs at least one subject")
        if not self.incident_consumer_filter:
            raise SettingError("INCIDENT_CONSUMER_FILTER", "needs at least one subject")
