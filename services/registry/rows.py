"""The registry's CSV files and the checks every row passes before anything is imported.

Pure functions: a row in, a typed tuple or the list of what is wrong with it out, so that an
import can report every bad row of a file (with its line number) in one pass and then refuse
the whole file, instead of stopping at the first error or importing half of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from services.registry import plates

VEHICLE_COLUMNS = (
    "plate", "plate_colour", "vehicle_type", "brand", "colour", "registration_date",
    "inspection_status", "inspection_expires",
    "owner_kind", "owner_name", "owner_national_id", "owner_address", "owner_commune_code",
    "owner_province", "owner_phone", "owner_email",
)
OPTIONAL_VEHICLE_COLUMNS = frozenset({"inspection_expires", "owner_phone", "owner_email"})
HOTLIST_COLUMNS = ("plate", "reason", "agency", "valid_from", "valid_to")
OPTIONAL_HOTLIST_COLUMNS = frozenset({"valid_to"})

PLATE_COLOURS = ("white", "yellow", "blue", "red")
VEHICLE_TYPES = ("motorcycle", "car", "van", "truck", "bus")
COLOURS = ("black", "white", "silver", "grey", "red", "blue", "yellow", "green", "brown", "orange", "other")
INSPECTION_STATUSES = ("valid", "expired", "held", "not_required")
OWNER_KINDS = ("person", "organisation")

# Dates without a time (and times without an offset) in these files are Vietnamese local time.
VIETNAM = timezone(timedelta(hours=7))
EARLIEST_REGISTRATION = date(1950, 1, 1)

_PERSON_ID = re.compile(r"^\d{12}$")  # citizen identity card (CCCD)
_TAX_CODE = re.compile(r"^\d{10}(?:\d{3})?$")  # organisation tax code, optionally with a branch suffix
_COMMUNE = re.compile(r"^\d{5}$")
_PHONE = re.compile(r"^0\d{9,10}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_AGENCY = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_PHONE_SEPARATORS = str.maketrans("", "", " .-()")


class HeaderError(ValueError):
    """The file is not one of the registry's CSV files."""


def column_index(header: list[str], columns: tuple[str, ...], optional: frozenset[str]) -> dict[str, int]:
    """Map each known column to its position; unknown or missing columns are an error."""
    names = [name.strip().lower() for name in header]
    unknown = [name for name in names if name not in columns]
    missing = [name for name in columns if name not in names and name not in optional]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s) {', '.join(unknown)}")
    if duplicated:
        problems.append(f"repeated column(s) {', '.join(duplicated)}")
    if problems:
        raise HeaderError("; ".join(problems) + f" (expected: {','.join(columns)})")
    return {name: names.index(name) for name in columns if name in names}


def kind_of(header: list[str]) -> str:
    """'vehicles' or 'hotlist', told apart by the header so one command imports both."""
    names = {name.strip().lower() for name in header}
    if "owner_national_id" in names or "vehicle_type" in names:
        return "vehicles"
    if "reason" in names or "agency" in names:
        return "hotlist"
    raise HeaderError("the header is neither a vehicles file (plate,vehicle_type,...,owner_national_id,...) "
                      "nor a hotlist file (plate,reason,agency,valid_from,valid_to)")


def _choice(value: str, choices: tuple[str, ...], what: str, errors: list[str]) -> str:
    if value in choices:
        return value
    value = value.strip().lower()
    if value not in choices:
        errors.append(f"{what} {value!r} is not one of {', '.join(choices)}")
    return value


def _parsed(value: str, what: str, errors: list[str], required: bool, parse: Callable[[str], Any],
            expected: str) -> Any:
    """`parse` of the stripped value; None, with an error when required, for an empty one; None and
    an error naming what was `expected` when it does not parse."""
    value = value.strip()
    if not value:
        if required:
            errors.append(f"{what} is empty")
        return None
    try:
        return parse(value)
    except ValueError:
        errors.append(f"{what} {value!r} is not {expected}")
        return None


def _date(value: str, what: str, errors: list[str], required: bool = True) -> date | None:
    return _parsed(value, what, errors, required, date.fromisoformat, "a date (YYYY-MM-DD)")


def _text(value: str, what: str, errors: list[str], max_length: int = 200) -> str:
    value = " ".join(value.split())
    if not value:
        errors.append(f"{what} is empty")
    elif len(value) > max_length:
        errors.append(f"{what} is longer than {max_length} characters")
    return value


def positions(index: dict[str, int], columns: tuple[str, ...] = VEHICLE_COLUMNS) -> tuple[int, ...]:
    """Field position of each column in `columns` order (-1 for an absent optional column)."""
    return tuple(index.get(name, -1) for name in columns)


def vehicle(fields: list[str], index: dict[str, int] | tuple[int, ...], today: date) -> tuple[tuple, list[str]]:
    """One vehicles row as the staging tuple (see importer.STAGING_COLUMNS), and its errors.

    `index` may be given as `positions(index)`, computed once per file: this runs a million
    times per import.
    """
    errors: list[str] = []
    where = positions(index) if isinstance(index, dict) else index
    width = len(fields)
    expected = sum(1 for position in where if position >= 0)
    if width != expected:
        errors.append(f"has {width} fields, the header has {expected}")
    (plate_text, plate_colour, vehicle_type, brand, colour, registered_text, inspection, expires_text,
     owner_kind, owner_name, national_id, address, commune, province, phone_text, email) = (
        fields[position] if 0 <= position < width else "" for position in where)
    plate = display = ""
    try:
        parsed = plates.parse_printed(plate_text)
        plate, display = parsed.plate, parsed.display
    except ValueError as exc:
        errors.append(str(exc))
    plate_colour = _choice(plate_colour, PLATE_COLOURS, "plate_colour", errors)
    vehicle_type = _choice(vehicle_type, VEHICLE_TYPES, "vehicle_type", errors)
    brand = _text(brand, "brand", errors, 60)
    colour = _choice(colour, COLOURS, "colour", errors)
    registered = _date(registered_text, "registration_date", errors)
    if registered and not EARLIEST_REGISTRATION <= registered <= today:
        errors.append(f"registration_date {registered} is not between {EARLIEST_REGISTRATION} and today")
    inspection = _choice(inspection, INSPECTION_STATUSES, "inspection_status", errors)
    expires = _date(expires_text, "inspection_expires", errors, required=inspection == "valid")
    owner_kind = _choice(owner_kind, OWNER_KINDS, "owner_kind", errors)
    owner_name = _text(owner_name, "owner_name", errors)
    national_id = national_id.strip().replace("-", "")
    if owner_kind == "person" and not _PERSON_ID.match(national_id):
        errors.append(f"owner_national_id {national_id!r} is not a 12-digit citizen identity number")
    elif owner_kind == "organisation" and not _TAX_CODE.match(national_id):
        errors.append(f"owner_national_id {national_id!r} is not a 10- or 13-digit tax code")
    address = _text(address, "owner_address", errors, 300)
    commune = commune.strip()
    if not _COMMUNE.match(commune):
        errors.append(f"owner_commune_code {commune!r} is not a 5-digit commune/ward code")
    province = _text(province, "owner_province", errors, 100)
    phone = phone_text.strip().translate(_PHONE_SEPARATORS) if phone_text else ""
    if phone.startswith("+84"):
        phone = "0" + phone[3:]
    if phone and not _PHONE.match(phone):
        errors.append(f"owner_phone {phone_text!r} is not a Vietnamese phone number")
    email = email.strip()
    if email and not _EMAIL.match(email):
        errors.append(f"owner_email {email!r} is not an e-mail address")
    record = (plate, display, plate_colour, vehicle_type, brand, colour, registered, inspection, expires,
              owner_kind, owner_name, national_id, address, commune, province, phone or None, email or None)
    return record, errors


def _vietnam_moment(value: str) -> datetime:
    """A date (its midnight) or an ISO 8601 time; Vietnam's time when it names no offset."""
    if len(value) == 10:
        return datetime.combine(date.fromisoformat(value), time(), VIETNAM)
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=VIETNAM)


def _moment(value: str, what: str, errors: list[str], required: bool) -> datetime | None:
    return _parsed(value, what, errors, required, _vietnam_moment, "a date or an ISO 8601 time")


def hotlist_entry(fields: list[str], index: dict[str, int]) -> tuple[tuple, list[str]]:
    """One hotlist row as (plate, display, reason, agency, valid_from, valid_to), and its errors."""
    errors: list[str] = []

    def get(name: str) -> str:
        position = index.get(name)
        return fields[position] if position is not None and position < len(fields) else ""

    if len(fields) != len(index):
        errors.append(f"has {len(fields)} fields, the header has {len(index)}")
    plate = display = ""
    try:
        parsed = plates.parse_printed(get("plate"))
        plate, display = parsed.plate, parsed.display
    except ValueError as exc:
        errors.append(str(exc))
    reason = _text(get("reason"), "reason", errors, 500)
    agency = get("agency").strip()
    if not _AGENCY.match(agency):
        errors.append(f"agency {agency!r} is not an agency id (lowercase letters, digits and '-')")
    valid_from = _moment(get("valid_from"), "valid_from", errors, required=True)
    valid_to = _moment(get("valid_to"), "valid_to", errors, required=False)
    if valid_from and valid_to and valid_to <= valid_from:
        errors.append("valid_to is not after valid_from")
    return (plate, display, reason, agency, valid_from, valid_to), errors
