"""The notify configuration file: units, communes, wording, deadlines, webhooks.

Everything the regulations or an agency may change (periods, legal basis, fines, wording, who
receives what) lives in this YAML file, not in code. It is validated completely at start: an
unknown key, a wrong type, a template naming a field that does not exist, or a secret variable
that is not set stops the service with exit code 2 and `file:line: field: problem`, because a
notice sent with a wrong deadline or an empty legal basis is worse than no notice. Types and
constraints are declared on the Structs (read by services.runtime.config), with the rules across
their own fields in `__post_init__`; the rules across sections, and those that need the agencies
file or the environment, are in `_check`.
"""

from __future__ import annotations

import os
import string
import sys
import typing
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from proto.v1.common import ViolationType
from proto.v1.incident import CongestionLevel, IncidentType, Severity
from services.portal import agencies  # the portal owns the agencies file's format; notify only reads it
from services.runtime import config as runtime_config
from services.runtime.config import FieldError

EXIT_BAD_CONFIG = 2
# The portal's agencies file: the one source of each unit's name, address and phone.
EXAMPLE_AGENCIES = str(Path(__file__).resolve().parents[1] / "portal" / "agencies.example.yaml")
Channel = Literal["email", "sms", "post"]
Text = runtime_config.Text  # neither empty nor blank
Url = Annotated[str, msgspec.Meta(pattern=r"^https?://", description="an http(s) URL")]
Address = Annotated[str, msgspec.Meta(pattern=r"^[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+$",
                                      description="an e-mail address")]
CommuneCode = agencies.Commune
Days = Annotated[int, msgspec.Meta(ge=1, le=365, description="a number of days from 1 to 365")]
TimeOfDay = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="a time of day HH:MM")]
SubjectPattern = Annotated[str, msgspec.Meta(pattern=r"^([a-z0-9_*-]+\.)*([a-z0-9_*-]+|>)$",
                                             description="a NATS subject pattern")]


class ConfigError(runtime_config.ConfigFileError):
    """A notify configuration (or its agencies file) that cannot be used."""


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A typo in a key must be an error, not a silently ignored setting."""


class WebhookTarget(_Strict, kw_only=True):
    url: Url
    secret_env: str  # the name of the environment variable holding the HMAC secret


class Unit(_Strict, kw_only=True):
    """What the letters need of a police unit beyond its contact details (keyed by the agency id
    of case events). Its name, superior body, address, phone and working hours are the agencies
    file's (AGENCIES_FILE, the portal's): one source for the letters and the public pages."""

    place: str = ""  # place name in the letter's date line, e.g. "Hải Phòng"
    signer: str = ""  # title of the signing officer
    communes: tuple[CommuneCode, ...] = ()  # commune codes in this unit's area (owners outside: transfer)


CONTACT_KEYS = ("name", "parent", "address", "phone", "working_hours")


class IssuingUnit(agencies.Agency, frozen=True, kw_only=True):
    """A police unit as the letters print it: the agencies file's entry (name, parent, address,
    phone, working hours) with `units`' place, signer and communes. Built at load time, so every
    letter of a run uses the same values."""

    place: str = ""
    signer: str = ""


class Recipient(_Strict, kw_only=True):
    """A commune police station or the inspection registry; reached by email or webhook."""

    name: str
    email: str = ""
    webhook: WebhookTarget | None = None

    def __post_init__(self) -> None:
        if not self.email and self.webhook is None:
            raise ValueError("needs an email or a webhook")


class LegalText(_Strict, kw_only=True):
    """The legal basis and fine of one violation type for one class of vehicle."""

    legal_basis: Text  # e.g. "Điểm c khoản 7 Điều 7 Nghị định số 168/2024/NĐ-CP"
    fine: Text  # e.g. "Từ 4.000.000 đồng đến 6.000.000 đồng"
    extra_penalty: str = ""  # e.g. "Trừ 04 điểm giấy phép lái xe"
    title: str = ""  # the violation as this class's clause words it, if not the type's title


class ViolationText(_Strict, kw_only=True):
    """A violation type: its title, and its legal basis per class of vehicle (`vehicle_classes`).
    A class without an entry is not guessed at: its cases are held ("cần căn cứ pháp lý")."""

    title: str
    by_class: dict[str, LegalText] = {}


class Deadlines(_Strict, kw_only=True):
    notice_within_days: Days = 10  # from the violation to the notice (monitored, not enforced)
    respond_within_days: Days = 20  # the owner comes within this many days of the notice
    warning_after_days: Days = 20  # no resolution this long after the notice: inspection warning


class Retry(_Strict, kw_only=True):
    attempts: Annotated[int, msgspec.Meta(ge=1, le=100, description="a number from 1 to 100")] = 6
    base_s: Annotated[float, msgspec.Meta(gt=0, description="seconds above 0")] = 30.0
    max_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.base_s > self.max_s:
            raise ValueError(f"base_s ({self.base_s}) must be at most max_s ({self.max_s})")


class LetterTemplate(_Strict, kw_only=True):
    motto: tuple[str, ...] = ()  # the national header, right-aligned opposite the unit
    number: str  # under the unit, e.g. "Số: {case_id}"
    dateline: str  # under the motto, e.g. "{unit_place}, {notice_date_long}"
    footer: str  # every page, e.g. "Số hồ sơ {case_id} – trang {page}/{pages}"
    signature_note: str = ""  # under the signer's title
    title: tuple[str, ...]
    addressee: tuple[str, ...] = ()
    intro: str
    rows: tuple[tuple[str, str], ...]  # (label, template) lines of the case table
    request: str
    bring_title: str = ""
    bring: tuple[str, ...] = ()
    evidence_title: str = ""
    closing: str = ""


class Formats(_Strict, kw_only=True):
    """How times and dates read in notices; placeholders {hour} {minute} {day} {month} {year}."""

    time: str
    date: str
    date_long: str


class Templates(_Strict, kw_only=True):
    owner_letter: LetterTemplate
    transfer_letter: LetterTemplate
    email_subject: str
    email_body: str
    sms: str
    transfer_email_subject: str
    transfer_email_body: str
    warning_subject: str
    warning_body: str
    lifted_subject: str
    lifted_body: str


class Subscriber(_Strict, kw_only=True):
    """An agency system that receives notify's events as signed HTTP POSTs."""

    name: str
    agency: str
    url: Url
    subjects: Annotated[tuple[SubjectPattern, ...], msgspec.Meta(min_length=1)]
    secret_env: str


class DuplicateRule(_Strict, kw_only=True):
    """Confirmed cases of one plate and violation type this close in time and place are taken
    for one event: the later one is held ("có thể trùng với CASE-…") unless the reviewer marked
    it distinct (case.reviewed `distinct_from`)."""

    window_s: Annotated[float, msgspec.Meta(ge=0, le=604_800, description="seconds from 0 to 604800")] = 600.0
    radius_m: Annotated[float, msgspec.Meta(ge=0, le=5_000, description="metres from 0 to 5000")] = 50.0


class Email(_Strict, kw_only=True):
    sender: str  # From: address
    sender_name: str = ""


REPORT_FIELDS = ("agency", "period_name", "period", "generated_at", "files", "summary")
REPORT_ROLES = ("police", "operations_centre", "transport", "commune_police")


class ReportSchedule(_Strict, kw_only=True):
    """The coordination report (sơ kết) of one agency, mailed after each week (Monday to Sunday)
    or calendar month, at `at` local time on the day after it ends."""

    agency: str  # an agency id of the agencies file; it decides the report's scope and sections
    every: Literal["week", "month"]
    at: TimeOfDay = "07:00"


class Reports(_Strict, kw_only=True):
    schedules: tuple[ReportSchedule, ...] = ()
    recipients: dict[str, tuple[Address, ...]] = {}  # agency id -> addresses (also for `roadwatch report --send`)
    formats: tuple[Literal["pdf", "csv"], ...] = ("pdf", "csv")
    period_names: dict[str, str] = msgspec.field(
        default_factory=lambda: {"week": "tuần", "month": "tháng", "custom": "kỳ"})
    subject: str = "Báo cáo sơ kết {period_name} {period} – {agency}"
    body: str = "Kính gửi {agency},\n\n{summary}\n\nTệp đính kèm: {files}.\n"

    def __post_init__(self) -> None:
        for index, schedule in enumerate(self.schedules):
            if not self.recipients.get(schedule.agency):
                raise FieldError(("schedules", index, "agency"),
                                 f"no recipients for {schedule.agency!r} in reports.recipients")


class AlertRecipient(_Strict, kw_only=True):
    """An office that wants to hear of incidents at once (a duty desk, a control room): which
    types, from which severity up, by e-mail (one message to all `email` addresses) and/or by a
    signed webhook. `agency` is the agency id in the agencies file (operations centre, transport
    or police)."""

    # unique; part of each alert's id, so renaming a recipient re-sends open incidents
    name: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="lowercase letters, digits, -, _")]
    agency: str
    types: tuple[IncidentType, ...] = ()  # empty: every type
    min_severity: Severity = "info"
    email: tuple[Address, ...] = ()
    webhook: WebhookTarget | None = None
    cleared: bool = False  # also say when the incident is over

    def __post_init__(self) -> None:
        if not self.email and self.webhook is None:
            raise ValueError("needs an email or a webhook")
        if len(set(self.types)) != len(self.types):
            raise ValueError("types lists a type twice")


class Durations(_Strict, kw_only=True):
    """How a duration reads; placeholders {hours} {minutes} {seconds}."""

    short: str  # under an hour, e.g. "{minutes} phút {seconds} giây"
    long: str  # an hour or more, e.g. "{hours} giờ {minutes} phút"


class IncidentAlerts(_Strict, kw_only=True):
    """Alerts for incidents (incident.detected, and incident.cleared where a recipient wants it):
    their wording and who receives them."""

    # the portal's operations board; placeholders {incident_id} {camera_id}
    board_url: Annotated[str, msgspec.Meta(pattern=r"^(https?://|$)", description="an http(s) URL")] = ""
    email: Email | None = None  # From: of the alerts; none: the notices' `email`
    types: dict[str, Text]  # incident type -> its name in the alerts
    severities: dict[str, Text]
    levels: dict[str, Text]  # congestion level -> wording
    clear_reasons: dict[str, Text]  # incident.cleared reason -> wording
    lanes: dict[str, str] = {}  # a scene's lane id -> how alerts name it (else the id itself)
    durations: Durations
    subject: Text
    body: str
    cleared_subject: str = ""
    cleared_body: str = ""
    recipients: tuple[AlertRecipient, ...] = ()

    def __post_init__(self) -> None:
        for name, known in (("types", typing.get_args(IncidentType)), ("severities", typing.get_args(Severity)),
                            ("levels", typing.get_args(CongestionLevel)),
                            ("clear_reasons", ("resolved", "track_lost", "stream_break"))):
            _all_named(getattr(self, name), known, name)
        for index, recipient in enumerate(self.recipients):
            if recipient.cleared and not (self.cleared_subject.strip() and self.cleared_body.strip()):
                raise FieldError(("recipients", index, "cleared"),
                                 "needs incident_alerts.cleared_subject and cleared_body")


class Config(_Strict, kw_only=True):
    timezone: str = "Asia/Ho_Chi_Minh"
    lookup_url: str = ""  # public case lookup, quoted in notices
    channels: tuple[Channel, ...] = ("email", "sms", "post")
    email: Email
    units: dict[str, Unit]
    devices: dict[str, str] = {}  # camera id -> the recording device as named in letters
    device_default: str  # for a camera not listed, e.g. "Camera giám sát {camera_id}"
    communes: dict[CommuneCode, Recipient] = {}
    inspection_registry: Recipient
    motorbike_types: tuple[str, ...] = ("motorcycle",)
    # The decree fines by class of vehicle (Art. 6 cars, Art. 7 motorbikes and mopeds): which
    # vehicle types (the registration's, else the camera's class) fall in which class.
    vehicle_classes: dict[str, tuple[str, ...]]
    violations: dict[str, ViolationText]
    vehicle_types: dict[str, str]
    plate_colours: dict[str, str]
    deadlines: Deadlines = Deadlines()
    duplicates: DuplicateRule = DuplicateRule()
    retry: Retry = Retry()
    webhook_retry: Retry = Retry(attempts=8, base_s=5.0, max_s=1800.0)
    webhooks: tuple[Subscriber, ...] = ()
    formats: Formats
    templates: Templates
    reports: Reports = Reports()
    incident_alerts: IncidentAlerts | None = None

    # Filled by load(): secrets read from the environment, never from the file, and the units'
    # contact details read from the agencies file.
    secrets: dict[str, str] = {}
    issuing: dict[str, IssuingUnit] = {}

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise FieldError("timezone", f"unknown time zone {self.timezone!r}") from None
        _all_named(self.violations, typing.get_args(ViolationType), "violations")
        for kind, text in self.violations.items():
            for name in text.by_class:
                if name not in self.vehicle_classes:
                    raise FieldError(("violations", kind, "by_class", name),
                                     f"unknown vehicle class (vehicle_classes lists: {', '.join(self.vehicle_classes)})")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def unit(self, agency: str) -> IssuingUnit:
        return self.issuing[agency]

    def legal_class(self, vehicle_type: str) -> str | None:
        """The decree's class of a vehicle type, or None when no class lists it."""
        return next((name for name, types in self.vehicle_classes.items() if vehicle_type in types), None)

    def legal(self, violation_type: str, vehicle_type: str) -> LegalText | None:
        """The legal basis and fine for this violation by this vehicle, or None: hold the case."""
        kind = self.violations.get(violation_type)
        legal_class = self.legal_class(vehicle_type)
        if kind is None or legal_class is None:
            return None
        return kind.by_class.get(legal_class)

    def device(self, camera_id: str) -> str:
        return self.devices.get(camera_id) or self.device_default.format(camera_id=camera_id)


# Fields a template may use; every template is checked against these names at load time.
TEMPLATE_FIELDS = (
    "case_id", "notice_id", "plate", "plate_colour", "vehicle_type", "owner_name", "owner_address",
    "violation", "legal_basis", "fine", "extra_penalty", "violation_time", "place", "device",
    "unit", "unit_parent", "unit_place", "unit_address", "unit_phone", "working_hours", "respond_by", "notice_date",
    "notice_date_long", "commune", "lookup_url", "warned_since", "page", "pages",
)
FORMAT_FIELDS = ("hour", "minute", "day", "month", "year")
# Fields an incident alert's subject and body may use (services/notify/incidents.py fills them).
INCIDENT_FIELDS = (
    "incident_id", "type", "type_code", "severity", "severity_code", "camera_id", "device", "place", "lane", "zone",
    "vehicle_class", "began_at", "detected_at", "cleared_at", "duration", "level", "occupancy", "queue_vehicles",
    "vehicles", "mean_speed", "board_url", "clear_reason", "recipient",
)
DURATION_FIELDS = ("hours", "minutes", "seconds")
ALERT_ROLES = ("operations_centre", "transport", "police")
# Where the templates are (every string under the path) and which placeholders they may use.
PLACEHOLDERS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("templates",), TEMPLATE_FIELDS), (("formats",), FORMAT_FIELDS), (("device_default",), ("camera_id",)),
    (("reports", "subject"), REPORT_FIELDS), (("reports", "body"), REPORT_FIELDS),
    *((("incident_alerts", name), INCIDENT_FIELDS) for name in ("subject", "body", "cleared_subject", "cleared_body")),
    (("incident_alerts", "durations"), DURATION_FIELDS),
    (("incident_alerts", "board_url"), ("incident_id", "camera_id")),
)


def _placeholder_problem(text: str, known: tuple[str, ...]) -> str | None:
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        return f"not a valid template: {exc}"
    unknown = [n for n in names if n not in known]
    return f"unknown placeholder {{{unknown[0]}}} (known: {', '.join(known)})" if unknown else None


def _strings(data: Any, path: tuple[Any, ...]):
    """Every string in `data` (found at `path` in the file) with its path."""
    if isinstance(data, str):
        yield path, data
    for key, value in data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ():
        yield from _strings(value, path + (key,))


def _check(doc: runtime_config.Document, environ: dict[str, str], agencies_path: str, directory: Any) -> Config:
    """Convert the file and check what its types cannot say; fills `secrets` and `issuing`."""
    def fail(where: tuple[Any, ...], problem: str) -> ConfigError:
        return ConfigError.at(doc, where, problem)

    def unique(items: list[tuple[tuple[Any, ...], Any]], reason: str) -> None:
        runtime_config.unique(doc, items, reason, error=ConfigError)

    data = doc.data if isinstance(doc.data, dict) else {}
    for agency, unit in (data.get("units") or {}).items():
        for key in CONTACT_KEYS:
            if isinstance(unit, dict) and key in unit:
                raise fail(("units", agency, key), "a unit's contact details come from the agencies file "
                           "(AGENCIES_FILE, shared with the portal): remove this key")
    config = runtime_config.convert(doc, Config, error=ConfigError)
    for where, text in _strings(data, ()):  # the first bad template in the file
        for prefix, known in PLACEHOLDERS:
            if where[:len(prefix)] == prefix and (problem := _placeholder_problem(text, known)):
                raise fail(where, problem)
    unique([(("vehicle_classes", name, i), vehicle_type) for name, types in config.vehicle_classes.items()
            for i, vehicle_type in enumerate(types)], "{value!r} is already in the class on line {line}: a vehicle "
           "has one class")
    unique([(("webhooks", i, "name"), s.name) for i, s in enumerate(config.webhooks)],
           "duplicate subscriber {value!r} (first on line {line})")
    if (alerts := config.incident_alerts) is not None:
        unique([(("incident_alerts", "recipients", i, "name"), r.name) for i, r in enumerate(alerts.recipients)],
               "duplicate recipient {value!r} (first on line {line})")
    secrets: dict[str, str] = {}
    for where, name in _strings(data, ()):  # in file order: each webhook's and subscriber's secret_env
        if where[-1] == "secret_env" and (where[-2] == "webhook" or where[0] == "webhooks"):
            secrets[name] = environ.get(name, "")
            if not secrets[name]:
                raise fail(where, f"environment variable {name} is not set")
    by_id = {agency.id: agency for agency in directory.agencies}

    def role(agency_id: str) -> str | None:
        return by_id[agency_id].role if agency_id in by_id else None

    issuing: dict[str, IssuingUnit] = {}
    for agency_id, unit in config.units.items():
        if role(agency_id) != "police":
            raise fail(("units", agency_id), f"no police agency {agency_id!r} in the agencies file {agencies_path}")
        for field in ("address", "phone"):
            if not getattr(by_id[agency_id], field).strip():
                raise fail(("units", agency_id),
                           f"agency {agency_id!r} in {agencies_path} has no {field}: the letters need it")
        issuing[agency_id] = IssuingUnit(**msgspec.structs.asdict(by_id[agency_id]) | msgspec.structs.asdict(unit))
    for index, recipient in enumerate(alerts.recipients if alerts else ()):
        if role(recipient.agency) not in ALERT_ROLES:
            raise fail(("incident_alerts", "recipients", index, "agency"), f"no agency {recipient.agency!r} with role "
                       f"{' / '.join(ALERT_ROLES)} in the agencies file {agencies_path}")
    # After the units: the reports section comes later in the file, and an agency missing from the
    # agencies file is then reported where a reader looks first.
    unique([(("reports", "schedules", i), (s.agency, s.every)) for i, s in enumerate(config.reports.schedules)],
           "the same agency and period as the schedule on line {line}")
    for agency_id in config.reports.recipients:
        if role(agency_id) not in REPORT_ROLES:
            raise fail(("reports", "recipients", agency_id), f"no agency {agency_id!r} that receives reports "
                       f"({', '.join(REPORT_ROLES)}) in the agencies file")
    return msgspec.structs.replace(config, secrets=secrets, issuing=issuing)


def _all_named(wording: dict[str, Any], known: tuple[str, ...], field: str) -> None:
    """A section keyed by a fixed set of names (violation types, incident types, ...) has them all."""
    if missing := [key for key in known if key not in wording]:
        raise FieldError(field, f"no wording for {missing[0]!r}")
    if unknown := [key for key in wording if key not in known]:
        raise FieldError((field, unknown[0]), f"unknown (known: {', '.join(known)})")


def load(path: str | Path, environ: dict[str, str] | None = None,
         agencies_file: str | Path = EXAMPLE_AGENCIES) -> Config:
    """The notify configuration, with each unit's contact details from the agencies file."""
    doc = runtime_config.read(path, error=ConfigError)
    try:
        directory = agencies.load(agencies_file)
    except agencies.AgencyFileError as exc:
        raise ConfigError(exc.path, exc.reason, field=exc.field, line=exc.line) from None
    return _check(doc, dict(os.environ) if environ is None else environ, str(agencies_file), directory)


def load_or_exit(path: str | Path, service: str = "notify", agencies_file: str | Path = EXAMPLE_AGENCIES) -> Config:
    try:
        return load(path, agencies_file=agencies_file)
    except ConfigError as exc:
        print(f"roadwatch {service}: bad configuration: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_CONFIG) from None


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: `*` one token, `>` one or more trailing tokens."""
    want, have = pattern.split("."), subject.split(".")
    for index, token in enumerate(want):
        if token == ">":
            return len(have) > index
        if index >= len(have) or (token != "*" and token != have[index]):
            return False
    return len(want) == len(have)
