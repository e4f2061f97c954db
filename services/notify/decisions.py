"""What to send for a case event: pure functions, no I/O, so that the legal rules are testable
on their own and every replica, retry and restart decides the same way.

A notice is identified by (case, kind, channel); its id is derived from those, so a second
decision about the same case produces the same ids and the store's unique keys drop it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

import msgspec

from proto import ids
from proto.v1 import CaseReviewed, Owner, Vehicle
from services.notify.config import Config, LegalText, Recipient

Kind = Literal["owner_notice", "commune_transfer", "inspection_warning", "inspection_lifted", "incident_alert",
               "incident_cleared"]
Channel = Literal["email", "sms", "post", "webhook", "inspection_registry", "commune_police"]
Transport = Literal["smtp", "sms", "spool", "webhook"]
Document = Literal["owner_letter", "transfer_letter", ""]

INSPECTION_REGISTRY = "inspection-registry"


class Planned(msgspec.Struct, frozen=True, kw_only=True):
    notice_id: str
    case_id: str  # "" for an incident alert
    incident_id: str = ""  # "" for a case's notice
    kind: Kind
    channel: Channel
    recipient: str  # "owner", a commune code, "inspection-registry", or an alert recipient's name
    transport: Transport
    address: str  # email address(es), phone number, webhook URL, or "" for the print spool
    secret_env: str = ""  # for webhook transports
    document: Document = ""


def notice_id(case_id: str, kind: str, channel: str) -> str:
    return ids.event_id("notice", case_id, kind, channel)


def vehicle_type(case: CaseReviewed, vehicle: Vehicle) -> str:
    """The vehicle the notice is about: as the portal confirmed it (the registration's type, or
    the camera's class when the plate is not registered), else the registration's."""
    return case.vehicle_type or vehicle.vehicle_type


def legal(case: CaseReviewed, vehicle: Vehicle, config: Config) -> LegalText | None:
    """The legal basis and fine for this case, or None: the case is held ("cần căn cứ pháp lý")."""
    return config.legal(case.violation_type, vehicle_type(case, vehicle))


def no_legal_basis(case: CaseReviewed, vehicle: Vehicle, config: Config) -> str:
    """Why `legal` found nothing, for the reviewer and the log."""
    kind = vehicle_type(case, vehicle)
    legal_class = config.legal_class(kind)
    if legal_class is None:
        return f"vehicle type {kind!r} is in no vehicle class of the notify configuration"
    return f"{case.violation_type} × {legal_class} ({kind}) has no legal basis and fine in the notify configuration"


def is_outside(owner: Owner, case: CaseReviewed, config: Config) -> bool:
    """The owner lives outside the detecting unit's area: the case goes to their commune police."""
    unit = config.unit(case.agency)
    return bool(owner.commune_code) and owner.commune_code not in unit.communes


def _to(recipient: Recipient) -> tuple[Transport, str, str]:
    if recipient.webhook is not None:
        return "webhook", recipient.webhook.url, recipient.webhook.secret_env
    return "smtp", recipient.email, ""


def _unit_notice(case_id: str, kind: Kind, channel: Channel, code: str, recipient: Recipient | None,
                 document: Document = "") -> Planned:
    # A commune missing from the configuration still gets a notice row: its delivery fails
    # visibly (notice.failed) instead of the transfer being silently skipped.
    transport, address, secret = _to(recipient) if recipient is not None else ("smtp", "", "")
    return Planned(notice_id=notice_id(case_id, kind, channel), case_id=case_id, kind=kind, channel=channel,
                   recipient=code, transport=transport, address=address, secret_env=secret, document=document)


def plan_case(case: CaseReviewed, vehicle: Vehicle, owner: Owner, config: Config) -> list[Planned]:
    """Notices for a confirmed case: the owner on every channel we have an address for (the
    paper letter always, when post is enabled), and the transfer to the owner's commune police
    when they live outside the detecting unit's area."""
    if case.decision != "confirmed":
        return []
    planned: list[Planned] = []

    def owner_notice(channel: Channel, transport: Transport, address: str, document: Document) -> None:
        planned.append(Planned(notice_id=notice_id(case.case_id, "owner_notice", channel), case_id=case.case_id,
                               kind="owner_notice", channel=channel, recipient="owner", transport=transport,
                               address=address, document=document))

    if "email" in config.channels and owner.email:
        owner_notice("email", "smtp", owner.email, "owner_letter")
    if "sms" in config.channels and owner.phone:
        owner_notice("sms", "sms", owner.phone, "")
    if "post" in config.channels or not planned:
        # Without an electronic address the paper letter is the only way: never send nothing.
        owner_notice("post", "spool", owner.address, "owner_letter")
    if is_outside(owner, case, config):
        planned.append(_unit_notice(case.case_id, "commune_transfer", "commune_police", owner.commune_code,
                                    config.communes.get(owner.commune_code), "transfer_letter"))
    return planned


def plan_inspection(case_id: str, vehicle: Vehicle, owner: Owner, config: Config,
                    kind: Literal["inspection_warning", "inspection_lifted"]) -> list[Planned]:
    """The warning (or its lifting) goes to the inspection registry, and for motorbikes, which
    have no periodic inspection to hold, to the owner's commune police as well."""
    planned = [_unit_notice(case_id, kind, "inspection_registry", INSPECTION_REGISTRY, config.inspection_registry)]
    if vehicle.vehicle_type in config.motorbike_types and owner.commune_code:
        planned.append(_unit_notice(case_id, kind, "commune_police", owner.commune_code,
                                    config.communes.get(owner.commune_code)))
    return planned


def respond_by(notice_at: datetime, config: Config) -> datetime:
    return notice_at + timedelta(days=config.deadlines.respond_within_days)


def warning_due(notice_at: datetime, config: Config) -> datetime:
    return notice_at + timedelta(days=config.deadlines.warning_after_days)


# --- wording --------------------------------------------------------------------------------
def _format(template: str, at: datetime, config: Config) -> str:
    local = at.astimezone(config.tz)
    return template.format(hour=f"{local:%H}", minute=f"{local:%M}", day=f"{local:%d}", month=f"{local:%m}",
                           year=f"{local:%Y}")


def format_time(at: datetime, config: Config) -> str:
    return _format(config.formats.time, at, config)


def format_date(at: datetime, config: Config) -> str:
    return _format(config.formats.date, at, config)


def format_date_long(at: datetime, config: Config) -> str:
    return _format(config.formats.date_long, at, config)


def fields(case: CaseReviewed, vehicle: Vehicle, owner: Owner, config: Config, *, notice_id: str = "",
           notice_at: datetime, respond_by_at: datetime | None = None, commune: str = "",
           warned_since: datetime | None = None) -> dict[str, str]:
    """The values templates may use (config.TEMPLATE_FIELDS), formatted for Vietnamese readers."""
    unit = config.unit(case.agency)
    # A notice is only planned for a case with a legal basis; a warning about an old case whose
    # entry was since removed still names the violation, with empty legal rows.
    text = legal(case, vehicle, config) or LegalText(legal_basis="", fine="")
    return {
        "case_id": case.case_id,
        "notice_id": notice_id,
        "plate": vehicle.plate_printed or case.plate,
        "plate_colour": config.plate_colours.get(vehicle.plate_colour, vehicle.plate_colour),
        "vehicle_type": config.vehicle_types.get(vehicle_type(case, vehicle), vehicle_type(case, vehicle)),
        "owner_name": owner.name,
        "owner_address": owner.address,
        "violation": text.title or config.violations[case.violation_type].title,
        "legal_basis": text.legal_basis,
        "fine": text.fine,
        "extra_penalty": text.extra_penalty,  # empty: the letter leaves the row out
        "violation_time": format_time(case.violation_at, config),
        "place": case.location.address,
        "device": config.device(case.camera_id),
        "unit": unit.name,
        "unit_parent": unit.parent,
        "unit_place": unit.place,
        "unit_address": unit.address,
        "unit_phone": unit.phone,
        "working_hours": unit.working_hours,
        "respond_by": format_date(respond_by_at, config) if respond_by_at else "",
        "notice_date": format_date(notice_at, config),
        "notice_date_long": format_date_long(notice_at, config),
        "commune": commune,
        "lookup_url": config.lookup_url,
        "warned_since": format_date(warned_since, config) if warned_since else "",
        "page": "",  # filled per page in the letter's footer
        "pages": "",
    }


def render(template: str, values: dict[str, str]) -> str:
    return template.format_map(values)
