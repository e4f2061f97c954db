"""The notify configuration file: units, communes, wording, deadlines, webhooks.

Everything the regulations or an agency may change (periods, legal basis, fines, wording, who
receives what) lives in this YAML file, not in code. It is validated completely at start: an
unknown key, a wrong type, a template naming a field that does not exist, or a secret variable
that is not set stops the service with exit code 2 and `file:line: field: problem`, because a
notice sent with a wrong deadline or an empty legal basis is worse than no notice.
"""

from __future__ import annotations

import os
import re
import string
import sys
import typing
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import yaml

from proto.v1.common import ViolationType
from proto.v1.incident import CongestionLevel, IncidentType, Severity

EXIT_BAD_CONFIG = 2
# The portal's agencies file: the one source of each unit's name, address and phone.
EXAMPLE_AGENCIES = str(Path(__file__).resolve().parents[1] / "portal" / "agencies.example.yaml")
Channel = Literal["email", "sms", "post"]


class ConfigError(ValueError):
    def __init__(self, path: str | Path, field: str, problem: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {field}: {problem}" if field else f"{where}: {problem}")
        self.path, self.field, self.problem, self.line = str(path), field, problem, line


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A typo in a key must be an error, not a silently ignored setting."""


class WebhookTarget(_Strict, kw_only=True):
    url: str
    secret_env: str  # the name of the environment variable holding the HMAC secret


class Unit(_Strict, kw_only=True):
    """What the letters need of a police unit beyond its contact details (keyed by the agency id
    of case events). Its name, superior body, address, phone and working hours are the agencies
    file's (AGENCIES_FILE, the portal's): one source for the letters and the public pages."""

    place: str = ""  # place name in the letter's date line, e.g. "Hải Phòng"
    signer: str = ""  # title of the signing officer
    communes: tuple[str, ...] = ()  # commune codes in this unit's area (owners outside: transfer)


CONTACT_KEYS = ("name", "parent", "address", "phone", "working_hours")


class IssuingUnit(msgspec.Struct, frozen=True, kw_only=True):
    """A unit as the letters print it: contact details from the agencies file, the rest from
    `units`. Built at load time, so every letter of a run uses the same values."""

    agency: str
    name: str  # e.g. "Phòng Cảnh sát giao thông"
    parent: str = ""  # e.g. "Công an thành phố Hải Phòng"
    address: str  # where the owner comes to resolve the case
    phone: str
    working_hours: str = ""
    place: str = ""
    signer: str = ""
    communes: tuple[str, ...] = ()


class Recipient(_Strict, kw_only=True):
    """A commune police station or the inspection registry; reached by email or webhook."""

    name: str
    email: str = ""
    webhook: WebhookTarget | None = None


class LegalText(_Strict, kw_only=True):
    """The legal basis and fine of one violation type for one class of vehicle."""

    legal_basis: str  # e.g. "Điểm c khoản 7 Điều 7 Nghị định số 168/2024/NĐ-CP"
    fine: str  # e.g. "Từ 4.000.000 đồng đến 6.000.000 đồng"
    extra_penalty: str = ""  # e.g. "Trừ 04 điểm giấy phép lái xe"
    title: str = ""  # the violation as this class's clause words it, if not the type's title


class ViolationText(_Strict, kw_only=True):
    """A violation type: its title, and its legal basis per class of vehicle (`vehicle_classes`).
    A class without an entry is not guessed at: its cases are held ("cần căn cứ pháp lý")."""

    title: str
    by_class: dict[str, LegalText] = {}


class Deadlines(_Strict, kw_only=True):
    notice_within_days: int = 10  # from the violation to the notice (monitored, not enforced)
    respond_within_days: int = 20  # the owner comes within this many days of the notice
    warning_after_days: int = 20  # no resolution this long after the notice: inspection warning


class Retry(_Strict, kw_only=True):
    attempts: int = 6
    base_s: float = 30.0
    max_s: float = 3600.0


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
    url: str
    subjects: tuple[str, ...]
    secret_env: str


class DuplicateRule(_Strict, kw_only=True):
    """Confirmed cases of one plate and violation type this close in time and place are taken
    for one event: the later one is held ("có thể trùng với CASE-…") unless the reviewer marked
    it distinct (case.reviewed `distinct_from`)."""

    window_s: float = 600.0
    radius_m: float = 50.0


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
    at: str = "07:00"


class Reports(_Strict, kw_only=True):
    schedules: tuple[ReportSchedule, ...] = ()
    recipients: dict[str, tuple[str, ...]] = {}  # agency id -> addresses (also for `roadwatch report --send`)
    formats: tuple[Literal["pdf", "csv"], ...] = ("pdf", "csv")
    period_names: dict[str, str] = msgspec.field(
        default_factory=lambda: {"week": "tuần", "month": "tháng", "custom": "kỳ"})
    subject: str = "Báo cáo sơ kết {period_name} {period} – {agency}"
    body: str = "Kính gửi {agency},\n\n{summary}\n\nTệp đính kèm: {files}.\n"
class AlertRecipient(_Strict, kw_only=True):
    """An office that wants to hear of incidents at once (a duty desk, a control room): which
    types, from which severity up, by e-mail (one message to all `email` addresses) and/or by a
    signed webhook. `agency` is the agency id in the agencies file (operations centre, transport
    or police)."""

    name: str  # unique; part of each alert's id, so renaming a recipient re-sends open incidents
    agency: str
    types: tuple[IncidentType, ...] = ()  # empty: every type
    min_severity: Severity = "info"
    email: tuple[str, ...] = ()
    webhook: WebhookTarget | None = None
    cleared: bool = False  # also say when the incident is over


class Durations(_Strict, kw_only=True):
    """How a duration reads; placeholders {hours} {minutes} {seconds}."""

    short: str  # under an hour, e.g. "{minutes} phút {seconds} giây"
    long: str  # an hour or more, e.g. "{hours} giờ {minutes} phút"


class IncidentAlerts(_Strict, kw_only=True):
    """Alerts for incidents (incident.detected, and incident.cleared where a recipient wants it):
    their wording and who receives them."""

    board_url: str = ""  # the portal's operations board; placeholders {incident_id} {camera_id}
    email: Email | None = None  # From: of the alerts; none: the notices' `email`
    types: dict[str, str]  # incident type -> its name in the alerts
    severities: dict[str, str]
    levels: dict[str, str]  # congestion level -> wording
    clear_reasons: dict[str, str]  # incident.cleared reason -> wording
    lanes: dict[str, str] = {}  # a scene's lane id -> how alerts name it (else the id itself)
    durations: Durations
    subject: str
    body: str
    cleared_subject: str = ""
    cleared_body: str = ""
    recipients: tuple[AlertRecipient, ...] = ()


class Config(_Strict, kw_only=True):
    timezone: str = "Asia/Ho_Chi_Minh"
    lookup_url: str = ""  # public case lookup, quoted in notices
    channels: tuple[Channel, ...] = ("email", "sms", "post")
    email: Email
    units: dict[str, Unit]
    devices: dict[str, str] = {}  # camera id -> the recording device as named in letters
    device_default: str  # for a camera not listed, e.g. "Camera giám sát {camera_id}"
    communes: dict[str, Recipient] = {}
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
_EMAIL = re.compile(r"[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+")


# --- YAML with line numbers ------------------------------------------------------------------
class _Lines:
    def __init__(self, node: yaml.Node) -> None:
        self.lines: dict[tuple[Any, ...], int] = {}
        self._walk(node, ())

    def _walk(self, node: yaml.Node, path: tuple[Any, ...]) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                self.lines[path + (key.value,)] = key.start_mark.line + 1
                self._walk(value, path + (key.value,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._walk(item, path + (index,))

    def of(self, path: tuple[Any, ...]) -> int | None:
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)


_MSGSPEC_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`")
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+|'[^']*'|\"[^\"]*\")\]")


def _split(path: str) -> tuple[Any, ...]:
    parts: list[Any] = []
    for name, index in _PATH_PART.findall(path):
        if name:
            parts.append(name)
        elif index.isdigit():
            parts.append(int(index))
        else:
            parts.append(index[1:-1])
    return tuple(parts)


def _dotted(path: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path))


def _check_template(text: str, known: tuple[str, ...] = TEMPLATE_FIELDS) -> str | None:
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        return f"not a valid template: {exc}"
    unknown = [n for n in names if n not in known]
    if unknown:
        return f"unknown placeholder {{{unknown[0]}}} (known: {', '.join(known)})"
    return None


def _templates(data: Any, prefix: tuple[Any, ...]):
    if isinstance(data, str):
        yield prefix, data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _templates(value, prefix + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _templates(value, prefix + (index,))


def _located(path: str | Path, message: str, prefix: tuple[Any, ...], lines: _Lines) -> ConfigError:
    match = _MSGSPEC_PATH.search(message)
    where = prefix + (_split(match["path"]) if match else ())
    problem = message[: match.start()] if match else message
    unknown = re.match(r"Object contains unknown field `([^`]+)`", problem)
    if unknown:
        where, problem = where + (unknown[1],), "unknown key"
    missing = re.match(r"Object missing required field `([^`]+)`", problem)
    if missing:
        where, problem = where + (missing[1],), "required but missing"
    return ConfigError(path, _dotted(where), problem, lines.of(where))


def parse(text: str, path: str | Path = "<config>", environ: dict[str, str] | None = None,
          directory: tuple[str, Any] | None = None) -> Config:
    """Check and convert the file; `directory` is (path, agencies Directory) for the units'
    contact details (without it `issuing` stays empty: only for checking the file alone)."""
    environ = dict(os.environ) if environ is None else environ
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(path, "", f"not valid YAML: {getattr(exc, 'problem', exc)}",
                          mark.line + 1 if mark is not None else None) from None
    if not isinstance(data, dict) or node is None:
        raise ConfigError(path, "", "the file must be a mapping", 1)
    lines = _Lines(node)

    def convert(value: Any, type_: Any, prefix: tuple[Any, ...]) -> Any:
        try:
            return msgspec.convert(value, type_)
        except msgspec.ValidationError as exc:
            raise _located(path, str(exc), prefix, lines) from None

    for agency, unit in (data.get("units") or {}).items():
        for key in CONTACT_KEYS:
            if isinstance(unit, dict) and key in unit:
                where = ("units", agency, key)
                raise ConfigError(path, _dotted(where), "a unit's contact details come from the agencies file "
                                  "(AGENCIES_FILE, shared with the portal): remove this key", lines.of(where))
    # msgspec reports a dict entry as `[...]`; validating each entry of the keyed sections first
    # lets the error name the unit, commune or violation type that is wrong.
    hints = typing.get_type_hints(Config)
    for name, hint in hints.items():
        if typing.get_origin(hint) is dict and isinstance(data.get(name), dict):
            for key, value in data[name].items():
                convert(value, typing.get_args(hint)[1], (name, key))
    config = convert(data, Config, ())

    def fail(where: tuple[Any, ...], problem: str) -> ConfigError:
        return ConfigError(path, _dotted(where), problem, lines.of(where))

    try:
        ZoneInfo(config.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise fail(("timezone",), f"unknown time zone {config.timezone!r}") from None
    for where, template in _templates(data.get("templates", {}), ("templates",)):
        problem = _check_template(template)
        if problem:
            raise fail(where, problem)
    for where, template in _templates(data.get("formats", {}), ("formats",)):
        problem = _check_template(template, FORMAT_FIELDS)
        if problem:
            raise fail(where, problem)
    problem = _check_template(config.device_default, ("camera_id",))
    if problem:
        raise fail(("device_default",), problem)
    for name, value in (("notice_within_days", config.deadlines.notice_within_days),
                        ("respond_within_days", config.deadlines.respond_within_days),
                        ("warning_after_days", config.deadlines.warning_after_days)):
        if not 1 <= value <= 365:
            raise fail(("deadlines", name), f"{value} is not between 1 and 365 days")
    if not 0 <= config.duplicates.window_s <= 7 * 86_400:
        raise fail(("duplicates", "window_s"), f"{config.duplicates.window_s} is not between 0 and 604800 s")
    if not 0 <= config.duplicates.radius_m <= 5_000:
        raise fail(("duplicates", "radius_m"), f"{config.duplicates.radius_m} is not between 0 and 5000 m")
    for name, retry in (("retry", config.retry), ("webhook_retry", config.webhook_retry)):
        if not 1 <= retry.attempts <= 100:
            raise fail((name, "attempts"), f"{retry.attempts} is not between 1 and 100")
        if not 0 < retry.base_s <= retry.max_s:
            raise fail((name, "base_s"), "must be above 0 and at most max_s")
    for kind in typing.get_args(ViolationType):
        if kind not in config.violations:
            raise fail(("violations",), f"no wording for violation type {kind!r}")
    for kind in config.violations:
        if kind not in typing.get_args(ViolationType):
            raise fail(("violations", kind), f"unknown violation type (known: {', '.join(typing.get_args(ViolationType))})")
    seen_types: dict[str, str] = {}
    for name, types in config.vehicle_classes.items():
        for index, vehicle_type in enumerate(types):
            if vehicle_type in seen_types:
                raise fail(("vehicle_classes", name, index),
                           f"{vehicle_type!r} is already in class {seen_types[vehicle_type]!r}: a vehicle has one class")
            seen_types[vehicle_type] = name
    for kind, text in config.violations.items():
        for name, legal in text.by_class.items():
            if name not in config.vehicle_classes:
                raise fail(("violations", kind, "by_class", name),
                           f"unknown vehicle class (vehicle_classes lists: {', '.join(config.vehicle_classes)})")
            for field in ("legal_basis", "fine"):
                if not getattr(legal, field).strip():
                    raise fail(("violations", kind, "by_class", name, field), "must not be empty")
    for agency, unit in config.units.items():
        for index, code in enumerate(unit.communes):
            if not re.fullmatch(r"[0-9]{5}", code):
                raise fail(("units", agency, "communes", index), f"{code!r} is not a 5-digit commune code")
    for code in config.communes:
        if not re.fullmatch(r"[0-9]{5}", code):
            raise fail(("communes", code), f"{code!r} is not a 5-digit commune code")
    secrets: dict[str, str] = {}
    recipients = [(("inspection_registry",), config.inspection_registry)]
    recipients += [(("communes", code), r) for code, r in config.communes.items()]
    for where, recipient in recipients:
        if not recipient.email and recipient.webhook is None:
            raise fail(where, "needs an email or a webhook")
        if recipient.webhook is not None:
            if not re.match(r"^https?://", recipient.webhook.url):
                raise fail(where + ("webhook", "url"), "must be an http(s) URL")
            secrets[recipient.webhook.secret_env] = environ.get(recipient.webhook.secret_env, "")
            if not secrets[recipient.webhook.secret_env]:
                raise fail(where + ("webhook", "secret_env"),
                           f"environment variable {recipient.webhook.secret_env} is not set")
    names: set[str] = set()
    for index, subscriber in enumerate(config.webhooks):
        if subscriber.name in names:
            raise fail(("webhooks", index, "name"), f"duplicate subscriber {subscriber.name!r}")
        names.add(subscriber.name)
        if not re.match(r"^https?://", subscriber.url):
            raise fail(("webhooks", index, "url"), "must be an http(s) URL")
        if not subscriber.subjects:
            raise fail(("webhooks", index, "subjects"), "list at least one subject")
        for number, subject in enumerate(subscriber.subjects):
            if not re.fullmatch(r"[a-z0-9_*>-]+(\.[a-z0-9_*>-]+)*", subject) or ">" in subject[:-1]:
                raise fail(("webhooks", index, "subjects", number), f"{subject!r} is not a NATS subject pattern")
        secrets[subscriber.secret_env] = environ.get(subscriber.secret_env, "")
        if not secrets[subscriber.secret_env]:
            raise fail(("webhooks", index, "secret_env"), f"environment variable {subscriber.secret_env} is not set")
    if config.incident_alerts is not None:
        _check_alerts(config.incident_alerts, environ, secrets, fail)
    issuing: dict[str, IssuingUnit] = {}
    if directory is not None:
        agencies_path, found = directory
        by_id = {agency.id: agency for agency in found.agencies}
        for agency_id, unit in config.units.items():
            agency = by_id.get(agency_id)
            if agency is None or agency.role != "police":
                raise fail(("units", agency_id), f"no police agency {agency_id!r} in the agencies file {agencies_path}")
            for field in ("address", "phone"):
                if not getattr(agency, field).strip():
                    raise fail(("units", agency_id),
                               f"agency {agency_id!r} in {agencies_path} has no {field}: the letters need it")
            issuing[agency_id] = IssuingUnit(
                agency=agency_id, name=agency.name, parent=agency.parent, address=agency.address, phone=agency.phone,
                working_hours=agency.working_hours, place=unit.place, signer=unit.signer, communes=unit.communes)
        for index, recipient in enumerate(config.incident_alerts.recipients if config.incident_alerts else ()):
            agency = by_id.get(recipient.agency)
            if agency is None or agency.role not in ALERT_ROLES:
                raise fail(("incident_alerts", "recipients", index, "agency"),
                           f"no agency {recipient.agency!r} with role {' / '.join(ALERT_ROLES)} in the agencies file "
                           f"{agencies_path}")
    # After the units: the reports section comes later in the file, and an agency missing from the
    # agencies file is then reported where a reader looks first.
    _check_reports(config.reports, fail, directory[1] if directory is not None else None)
    return msgspec.structs.replace(config, secrets=secrets, issuing=issuing)


def _check_reports(reports: Reports, fail, directory: Any) -> None:
    for name in ("subject", "body"):
        problem = _check_template(getattr(reports, name), REPORT_FIELDS)
        if problem:
            raise fail(("reports", name), problem)
    roles = {agency.id: agency.role for agency in directory.agencies} if directory is not None else None
    seen: set[tuple[str, str]] = set()
    for index, schedule in enumerate(reports.schedules):
        where = ("reports", "schedules", index)
        if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", schedule.at):
            raise fail(where + ("at",), f"{schedule.at!r} is not a time of day HH:MM")
        if (schedule.agency, schedule.every) in seen:
            raise fail(where, f"{schedule.agency} already has a report every {schedule.every}")
        seen.add((schedule.agency, schedule.every))
        if not reports.recipients.get(schedule.agency):
            raise fail(where + ("agency",), f"no recipients for {schedule.agency!r} in reports.recipients")
    for agency, addresses in reports.recipients.items():
        if roles is not None and roles.get(agency) not in REPORT_ROLES:
            raise fail(("reports", "recipients", agency),
                       f"no agency {agency!r} that receives reports ({', '.join(REPORT_ROLES)}) in the agencies file")
        for index, address in enumerate(addresses):
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", address):
                raise fail(("reports", "recipients", agency, index), f"{address!r} is not an e-mail address")


def _check_alerts(alerts: IncidentAlerts, environ: dict[str, str], secrets: dict[str, str], fail) -> None:
    where = ("incident_alerts",)
    for name, known in (("types", typing.get_args(IncidentType)), ("severities", typing.get_args(Severity)),
                        ("levels", typing.get_args(CongestionLevel)),
                        ("clear_reasons", ("resolved", "track_lost", "stream_break"))):
        wording = getattr(alerts, name)
        for key in known:
            if key in wording and not wording[key].strip():
                raise fail(where + (name, key), "must not be empty")
            if key not in wording:
                raise fail(where + (name,), f"no wording for {key!r}")
        for key in wording:
            if key not in known:
                raise fail(where + (name, key), f"unknown (known: {', '.join(known)})")
    for name in ("subject", "body", "cleared_subject", "cleared_body"):
        problem = _check_template(getattr(alerts, name), INCIDENT_FIELDS)
        if problem:
            raise fail(where + (name,), problem)
    if not alerts.subject.strip():
        raise fail(where + ("subject",), "must not be empty")
    for name in ("short", "long"):
        problem = _check_template(getattr(alerts.durations, name), DURATION_FIELDS)
        if problem:
            raise fail(where + ("durations", name), problem)
    problem = _check_template(alerts.board_url, ("incident_id", "camera_id"))
    if problem:
        raise fail(where + ("board_url",), problem)
    if alerts.board_url and not re.match(r"^https?://", alerts.board_url):
        raise fail(where + ("board_url",), "must be an http(s) URL")
    names: set[str] = set()
    for index, recipient in enumerate(alerts.recipients):
        at = where + ("recipients", index)
        if recipient.name in names or not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", recipient.name):
            raise fail(at + ("name",), f"{recipient.name!r} is a duplicate or not lowercase letters, digits, - and _")
        names.add(recipient.name)
        if not recipient.email and recipient.webhook is None:
            raise fail(at, "needs an email or a webhook")
        for number, address in enumerate(recipient.email):
            if not _EMAIL.fullmatch(address):
                raise fail(at + ("email", number), f"{address!r} is not an e-mail address")
        if recipient.cleared and not (alerts.cleared_subject.strip() and alerts.cleared_body.strip()):
            raise fail(at + ("cleared",), "needs incident_alerts.cleared_subject and cleared_body")
        if len(set(recipient.types)) != len(recipient.types):
            raise fail(at + ("types",), "lists a type twice")
        if recipient.webhook is not None:
            if not re.match(r"^https?://", recipient.webhook.url):
                raise fail(at + ("webhook", "url"), "must be an http(s) URL")
            secrets[recipient.webhook.secret_env] = environ.get(recipient.webhook.secret_env, "")
            if not secrets[recipient.webhook.secret_env]:
                raise fail(at + ("webhook", "secret_env"),
                           f"environment variable {recipient.webhook.secret_env} is not set")


def load(path: str | Path, environ: dict[str, str] | None = None,
         agencies_file: str | Path = EXAMPLE_AGENCIES) -> Config:
    """The notify configuration, with each unit's contact details from the agencies file."""
    from services.portal import agencies  # the portal owns the file's format; notify only reads it

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "", f"cannot read: {exc}") from None
    try:
        directory = agencies.load(agencies_file)
    except agencies.AgencyFileError as exc:
        raise ConfigError(exc.path, exc.field, exc.reason, exc.line) from None
    return parse(text, path, environ, directory=(str(agencies_file), directory))


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
