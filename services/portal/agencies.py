"""Agencies, their users and bearer tokens, from a YAML file: agencies are data, not code.

Only SHA-256 digests of tokens are kept (in the file and in memory), so that the file can be
reviewed and versioned without handing out access. A mistake in the file stops the portal at
start with the file, line and field, rather than locking an agency out later.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROLES = ("police", "commune_police", "transport", "operations_centre", "citizen")
ROLE_LABELS = {
    "police": "Cảnh sát giao thông",
    "commune_police": "Công an xã, phường",
    "transport": "Sở Xây dựng (giao thông vận tải)",
    "operations_centre": "Trung tâm điều hành",
    "citizen": "Công dân",
}
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMUNE = re.compile(r"^[0-9]{5}$")


class AgencyFileError(Exception):
    def __init__(self, path: Path, line: int, field_name: str, reason: str) -> None:
        super().__init__(f"{path}:{line}: {field_name}: {reason}")
        self.path, self.line, self.field, self.reason = path, line, field_name, reason


@dataclass(frozen=True)
class Agency:
    id: str
    name: str
    role: str
    phone: str = ""
    address: str = ""
    communes: tuple[str, ...] = ()
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


@dataclass(frozen=True)
class RejectReason:
    code: str
    label: str


@dataclass(frozen=True)
class Directory:
    agencies: tuple[Agency, ...]
    reject_reasons: tuple[RejectReason, ...]
    _tokens: dict[str, User] = field(default_factory=dict, repr=False)

    def user_for_token(self, token: str) -> User | None:
        digest = hash_token(token)
        for known, user in self._tokens.items():
            if hmac.compare_digest(known, digest):
                return user
        return None

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


# --- loading with line numbers -------------------------------------------------------------------
class _Node:
    """A YAML value with the line it is on (1-based)."""

    def __init__(self, value: Any, line: int) -> None:
        self.value, self.line = value, line


def _located(node: yaml.Node) -> _Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        return _Node({key.value: (_located(value), key.start_mark.line + 1) for key, value in node.value}, line)
    if isinstance(node, yaml.SequenceNode):
        return _Node([_located(item) for item in node.value], line)
    return _Node(yaml.safe_load(yaml.serialize(node)), line)


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, line: int, name: str, reason: str) -> AgencyFileError:
        return AgencyFileError(self.path, line, name, reason)

    def mapping(self, node: _Node, name: str, known: set[str]) -> dict[str, tuple[_Node, int]]:
        if not isinstance(node.value, dict):
            raise self.fail(node.line, name, "expected a mapping")
        for key, (_, line) in node.value.items():
            if key not in known:
                raise self.fail(line, f"{name}.{key}", f"unknown field (known: {', '.join(sorted(known))})")
        return node.value

    def text(self, fields: dict[str, tuple[_Node, int]], name: str, prefix: str, line: int, *,
             required: bool = True, pattern: re.Pattern[str] | None = None, hint: str = "") -> str:
        if name not in fields:
            if required:
                raise self.fail(line, f"{prefix}.{name}", "missing")
            return ""
        node, key_line = fields[name]
        value = node.value
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(key_line, f"{prefix}.{name}", "expected a non-empty text")
        if pattern is not None and not pattern.match(value):
            raise self.fail(key_line, f"{prefix}.{name}", f"{value!r} is not valid{hint}")
        return value

    def sequence(self, fields: dict[str, tuple[_Node, int]], name: str, prefix: str, line: int,
                 required: bool = True) -> list[_Node]:
        if name not in fields:
            if required:
                raise self.fail(line, f"{prefix}.{name}", "missing")
            return []
        node, key_line = fields[name]
        if node.value is None and not required:
            return []
        if not isinstance(node.value, list):
            raise self.fail(key_line, f"{prefix}.{name}", "expected a list")
        return node.value


def load(path: Path | str) -> Directory:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AgencyFileError(path, 0, "file", f"cannot read: {exc}") from exc
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise AgencyFileError(path, mark.line + 1 if mark else 0, "yaml", str(exc).replace("\n", " ")) from exc
    if root is None:
        raise AgencyFileError(path, 1, "agencies", "the file is empty")
    reader = _Reader(path)
    top = reader.mapping(_located(root), "(top)", {"agencies", "reject_reasons"})

    reasons: list[RejectReason] = []
    for i, item in enumerate(reader.sequence(top, "reject_reasons", "(top)", 1)):
        prefix = f"reject_reasons[{i}]"
        fields = reader.mapping(item, prefix, {"code", "label"})
        code = reader.text(fields, "code", prefix, item.line, pattern=re.compile(r"^[a-z0-9_]+$"),
                           hint=" (lowercase letters, digits, _)")
        if any(r.code == code for r in reasons):
            raise reader.fail(fields["code"][1], f"{prefix}.code", f"{code!r} is listed twice")
        reasons.append(RejectReason(code, reader.text(fields, "label", prefix, item.line)))
    if not reasons:
        raise reader.fail(1, "reject_reasons", "at least one reason is needed to reject a case")

    agencies: list[Agency] = []
    tokens: dict[str, User] = {}
    user_ids: set[str] = set()
    for i, item in enumerate(reader.sequence(top, "agencies", "(top)", 1)):
        prefix = f"agencies[{i}]"
        fields = reader.mapping(item, prefix, {"id", "name", "role", "phone", "address", "communes", "users",
                                                      "parent", "working_hours"})
        agency_id = reader.text(fields, "id", prefix, item.line, pattern=_ID, hint=" (lowercase, '-' inside)")
        if any(a.id == agency_id for a in agencies):
            raise reader.fail(fields["id"][1], f"{prefix}.id", f"{agency_id!r} is listed twice")
        role = reader.text(fields, "role", prefix, item.line)
        if role not in ROLES:
            raise reader.fail(fields["role"][1], f"{prefix}.role", f"{role!r} is not one of {', '.join(ROLES)}")
        communes = []
        for j, node in enumerate(reader.sequence(fields, "communes", prefix, item.line, required=False)):
            value = str(node.value) if node.value is not None else ""
            if not _COMMUNE.match(value):
                raise reader.fail(node.line, f"{prefix}.communes[{j}]", f"{value!r} is not a 5-digit commune code (quote it)")
            communes.append(value)
        if role == "commune_police" and not communes:
            raise reader.fail(item.line, f"{prefix}.communes", "commune police needs the communes it covers")
        agency = Agency(id=agency_id, name=reader.text(fields, "name", prefix, item.line), role=role,
                        phone=reader.text(fields, "phone", prefix, item.line, required=False),
                        address=reader.text(fields, "address", prefix, item.line, required=False),
                        communes=tuple(communes),
                        parent=reader.text(fields, "parent", prefix, item.line, required=False),
                        working_hours=reader.text(fields, "working_hours", prefix, item.line, required=False))
        agencies.append(agency)
        for j, unode in enumerate(reader.sequence(fields, "users", prefix, item.line, required=False)):
            uprefix = f"{prefix}.users[{j}]"
            ufields = reader.mapping(unode, uprefix, {"id", "name", "token_sha256"})
            user_id = reader.text(ufields, "id", uprefix, unode.line, pattern=_ID, hint=" (lowercase, '-' inside)")
            if user_id in user_ids:
                raise reader.fail(ufields["id"][1], f"{uprefix}.id", f"user {user_id!r} is listed twice")
            user_ids.add(user_id)
            digest = reader.text(ufields, "token_sha256", uprefix, unode.line, pattern=_SHA256,
                                 hint=" (64 lowercase hex digits: roadwatch portal token prints one)")
            if digest in tokens:
                raise reader.fail(ufields["token_sha256"][1], f"{uprefix}.token_sha256",
                                  "the same token is given to two users")
            tokens[digest] = User(id=user_id, name=reader.text(ufields, "name", uprefix, unode.line), agency=agency)
    if not agencies:
        raise reader.fail(1, "agencies", "no agency is listed")
    return Directory(agencies=tuple(agencies), reject_reasons=tuple(reasons), _tokens=tokens)
