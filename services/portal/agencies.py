"""Agencies, their users and bearer tokens, from a YAML file: agencies are data, not code.

Only SHA-256 digests of tokens are kept (in the file and in memory), so that the file can be
reviewed and versioned without handing out access. A mistake in the file stops the portal at
start with the file, line and field, rather than locking an agency out later.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, get_args

import msgspec
from msgspec import Meta

from services.runtime import config
from services.runtime.config import Text

Role = Literal["police", "commune_police", "transport", "operations_centre", "citizen"]
ROLES: tuple[str, ...] = get_args(Role)
ROLE_LABELS = {
    "police": "Cảnh sát giao thông",
    "commune_police": "Công an xã, phường",
    "transport": "Sở Xây dựng (giao thông vận tải)",
    "operations_centre": "Trung tâm điều hành",
    "citizen": "Công dân",
}
Id = Annotated[str, Meta(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", description="an id (lowercase, '-' inside)")]
Commune = Annotated[str, Meta(pattern=r"^[0-9]{5}$", description="a 5-digit commune code (quote it)")]
Digest = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$",
                             description="64 lowercase hex digits (roadwatch portal token prints one)")]


class AgencyFileError(config.ConfigFileError):
    """An agencies file that cannot be used; `str()` is `file:line: field: reason`."""


class Agency(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: Id
    name: Text
    role: Role
    phone: str = ""
    address: str = ""
    communes: tuple[Commune, ...] = ()
    # The superior body (e.g. "Công an thành phố Hải Phòng") and opening hours. With name,
    # address and phone, the one source of a unit's contact details: the public pages show
    # them and notify prints them in the letters.
    parent: str = ""
    working_hours: str = ""

    @property
    def full_name(self) -> str:
        return f"{self.name} – {self.parent}" if self.parent else self.name


@dataclass(frozen=True)
class User:
    id: str
    name: str
    agency: Agency

    @property
    def role(self) -> str:
        return self.agency.role


class RejectReason(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: Annotated[str, Meta(pattern=r"^[a-z0-9_]+$", description="a code of lowercase letters, digits, _")]
    label: Text


@dataclass(frozen=True)
class Directory:
    agencies: tuple[Agency, ...]
    reject_reasons: tuple[RejectReason, ...]
    _tokens: dict[str, User] = field(default_factory=dict, repr=False)

    def user_for_token(self, token: str) -> User | None:
        digest = hash_token(token)
        return next((user for known, user in self._tokens.items() if hmac.compare_digest(known, digest)), None)

    def user_name(self, user_id: str | None) -> str | None:
        """The person's name for a user id (shown beside who acknowledged an incident)."""
        return next((u.name for u in self._tokens.values() if u.id == user_id), None) if user_id else None

    @property
    def user_count(self) -> int:
        return len(self._tokens)

    def reason_label(self, code: str) -> str | None:
        return next((r.label for r in self.reject_reasons if r.code == code), None)

    def resolving_unit(self, commune_code: str) -> Agency | None:
        """The police unit that handles a case at this place: the first police agency that lists
        the commune, else the first police agency without a list (the provincial unit)."""
        police = [a for a in self.agencies if a.role == "police"]
        return (next((a for a in police if commune_code and commune_code in a.communes), None)
                or next((a for a in police if not a.communes), None))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> tuple[str, str]:
    """(token to hand to the user, digest to put in the agencies file)."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


class _User(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: Id
    name: Text
    token_sha256: Digest


class _AgencyEntry(Agency, frozen=True, forbid_unknown_fields=True):
    users: list[_User] = []


class _File(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reject_reasons: Annotated[list[RejectReason], Meta(
        min_length=1, description="a list of at least one reason (needed to reject a case)")]
    agencies: Annotated[list[_AgencyEntry], Meta(min_length=1, description="a list of at least one agency")]


def load(path: Path | str) -> Directory:
    file, doc = config.load(path, _File, error=AgencyFileError)
    reasons = [(("reject_reasons", i), reason) for i, reason in enumerate(file.reject_reasons)]
    entries = [(("agencies", i), entry) for i, entry in enumerate(file.agencies)]
    users = [(at + ("users", j), user) for at, entry in entries for j, user in enumerate(entry.users)]
    twice = "{value!r} is listed twice"
    config.unique(doc, [(at + ("code",), r.code) for at, r in reasons], twice, error=AgencyFileError)
    config.unique(doc, [(at + ("id",), a.id) for at, a in entries], twice, error=AgencyFileError)
    config.unique(doc, [(at + ("id",), u.id) for at, u in users], "user " + twice, error=AgencyFileError)
    config.unique(doc, [(at + ("token_sha256",), u.token_sha256) for at, u in users],
                  "the same token is given to two users", error=AgencyFileError)
    for at, entry in entries:
        if entry.role == "commune_police" and not entry.communes:
            raise AgencyFileError.at(doc, at + ("communes",), "commune police needs the communes it covers")
    agencies = {a.id: Agency(**{name: getattr(a, name) for name in Agency.__struct_fields__}) for a in file.agencies}
    tokens = {u.token_sha256: User(id=u.id, name=u.name, agency=agencies[a.id]) for a in file.agencies for u in a.users}
    return Directory(agencies=tuple(agencies.values()), reject_reasons=tuple(file.reject_reasons), _tokens=tokens)
