"""Configuration files: YAML decoded into typed msgspec Structs, every mistake named by file, line and field.

A configuration file is an operator's interface to a service, so a mistake in it stops the service
at start with `file:line: field: reason`, and nothing is guessed: the Structs forbid unknown keys
(a typo such as `jpeg_qualty` would otherwise fall back to a default without a word). Each reader
declares its file as Structs (types, `msgspec.Meta` constraints, `__post_init__` for rules across
fields) and calls `load`; rules that need more than one object (unique ids, references between
sections) call `ConfigFileError.at(doc, path, reason)` (or `unique`) so that they are reported the
same way.
A `__post_init__` that raises `FieldError` names one of its own fields (or a path below the Struct)
instead of the whole Struct.
A constrained type with `msgspec.Meta(description="an e-mail address")` is named by it in the
message ("expected an e-mail address, got 'x'"); `Text` is the non-empty, stripped string.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec
import yaml
from msgspec.inspect import Metadata

T = TypeVar("T")
Key = str | int
# A name, label, address...: a string with something in it, stripped of surrounding spaces.
Text = Annotated[str, msgspec.Meta(pattern=r"\S", description="a non-empty text", extra={"strip": True})]
_AT = re.compile(r"^(?P<reason>.*?) - at `(?P<path>[^`]*)`(?: in `(?P<outer>[^`]*)`)?$", re.S)
_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")


class ConfigFileError(ValueError):
    """A configuration file that cannot be used; `str()` is the message shown to the operator."""

    def __init__(self, path: str | Path, reason: str, *, field: str | None = None, line: int | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        self.field = field
        self.line = line
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {field}: {reason}" if field else f"{where}: {reason}")

    @classmethod
    def at(cls, doc: Document, path: tuple[Key, ...], reason: str) -> ConfigFileError:
        """The error for the value at `path` (keys and list indexes) of a document."""
        return cls(doc.path, reason, field=field_name(path), line=doc.line(path))


class FieldError(ValueError):
    """Raised in a Struct's `__post_init__`: the mistake is at `path` below the Struct (a field name,
    or a tuple of keys and list indexes), so that the error names that line and field."""

    def __init__(self, path: Key | tuple[Key, ...], reason: str) -> None:
        super().__init__(reason)
        self.path = path if isinstance(path, tuple) else (path,)


def field_name(path: tuple[Key, ...]) -> str | None:
    """`cameras[0].location.latitude` for ("cameras", 0, "location", "latitude")."""
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text or None


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed YAML file: its plain data and the line of every value, by path."""

    path: str
    data: Any
    lines: dict[tuple[Key, ...], int]

    def line(self, path: tuple[Key, ...]) -> int | None:
        """The line of the value at `path`, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def read(path: str | Path, *, error: type[ConfigFileError] = ConfigFileError) -> Document:
    """Read and parse a YAML file; a missing, unreadable or malformed file raises `error`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(path, f"cannot read: {exc}") from None
    return parse_text(text, path, error=error)


def parse_text(text: str, path: str | Path = "<config>", *,
               error: type[ConfigFileError] = ConfigFileError) -> Document:
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(path, f"not valid YAML: {problem}", line=mark.line + 1 if mark is not None else None) from None
    lines: dict[tuple[Key, ...], int] = {}
    if node is not None:
        _walk(node, (), lines)
    lines.setdefault((), 1)  # an empty file: its mistakes are on line 1
    return Document(str(path), data, lines)


def _walk(node: yaml.Node, path: tuple[Key, ...], lines: dict[tuple[Key, ...], int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key: Key = key_node.value
                if key_node.tag == "tag:yaml.org,2002:int":
                    try:
                        key = int(key_node.value)
                    except ValueError:
                        pass
                lines[path + (key,)] = key_node.start_mark.line + 1
                _walk(value_node, path + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, path + (index,), lines)


def convert(doc: Document, type_: type[T], *, data: Any = ..., at: tuple[Key, ...] = (),
            dec_hook: Callable[[type, Any], Any] | None = None,
            error: type[ConfigFileError] = ConfigFileError) -> T:
    """Decode the document (or `data`, found at `at` in it) into `type_`; a mismatch raises `error`
    naming the line and field of the offending value."""
    value = doc.data if data is ... else data
    info = msgspec.inspect.type_info(type_)
    clean = _stripped(value, info)
    try:
        return msgspec.convert(clean, type_, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        reason, path = _explain(str(exc), clean, type_, info, dec_hook)
        path += exc.__cause__.path if isinstance(exc.__cause__, FieldError) else ()
        if data is ... and value is None and not path:
            reason = "the file is empty"
        raise error(doc.path, reason, field=field_name(at + path), line=doc.line(at + path)) from None


def load(path: str | Path, type_: type[T], *, dec_hook: Callable[[type, Any], Any] | None = None,
         error: type[ConfigFileError] = ConfigFileError) -> tuple[T, Document]:
    """Read a YAML file into `type_`; returns the value and the document (for later checks' lines)."""
    doc = read(path, error=error)
    return convert(doc, type_, dec_hook=dec_hook, error=error), doc


def unique(doc: Document, items: Iterable[tuple[tuple[Key, ...], Hashable]], reason: str, *,
           error: type[ConfigFileError] = ConfigFileError) -> None:
    """Refuse a value given twice (ids, codes...): `items` are (path, value); `reason` is formatted
    with `value` and `line`, the line where the value was first given."""
    first: dict[Hashable, int | None] = {}
    for path, value in items:
        if value in first:
            raise error.at(doc, path, reason.format(value=value, line=first[value]))
        first[value] = doc.line(path)


def _explain(message: str, data: Any, type_: Any, info: Any,
             dec_hook: Callable[[type, Any], Any] | None) -> tuple[str, tuple[Key, ...]]:
    """msgspec's "reason - at `$.a[0].b`" as (reason, path); `[...]` (a mapping's entry, which msgspec
    does not name) and a failing key are resolved by converting the entries again one by one."""
    match = _AT.match(message)
    reason, raw = (match.group("reason"), match.group("outer") or match.group("path")) if match else (message, "$")
    tokens: list[Key | None] = []
    for name, index in _TOKEN.findall(raw[1:] if raw.startswith("$") else ""):
        tokens.append(name if name else (None if index == "..." else int(index)))
    is_key = bool(match and match.group("outer"))
    if is_key:
        tokens.append(None)
    path = _resolve(tokens, data, lambda candidate: _fails_with(candidate, type_, dec_hook, message))
    unknown = _UNKNOWN.search(reason)
    if unknown:
        return "unknown field", path + (unknown.group(1),)
    reason = _plain(reason)
    if is_key:
        found = path[-1] if len(path) == len(tokens) else ...
    else:
        found = _value_at(data, path)
    if reason.startswith(("expected", "invalid enum value")) and not is_key:
        expected = _info_at(info, data, path)
        description = (expected.extra_json_schema or {}).get("description") if isinstance(expected, Metadata) else None
        bare = expected.type if isinstance(expected, Metadata) else expected
        if description:
            reason = f"expected {description}"
        elif isinstance(bare, msgspec.inspect.LiteralType):
            reason = "expected one of " + ", ".join(map(str, bare.values))
    if reason.startswith("expected") and ", got" not in reason and found is not ...:
        reason += f", got {found.isoformat() if isinstance(found, (date, time)) else repr(found)}"
    return (f"key: {reason}" if is_key else reason), path


def _fails_with(data: Any, type_: Any, dec_hook: Callable[[type, Any], Any] | None, message: str) -> bool:
    try:
        msgspec.convert(data, type_, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        return str(exc) == message
    return False


def _resolve(tokens: list[Key | None], data: Any, fails: Callable[[Any], bool]) -> tuple[Key, ...]:
    """The path that msgspec's tokens stand for. A mapping's entry (None) is the first one whose
    prefix of the mapping, put in place of the whole mapping, fails with the same message:
    msgspec stops at the first failure, and an entry is checked with every constraint of its type."""
    path: list[Key] = []
    value = data
    for token in tokens:
        if token is None:
            if not isinstance(value, dict):
                break
            items = list(value.items())
            key = next((k for i, (k, _) in enumerate(items)
                        if fails(_replaced(data, tuple(path), dict(items[:i + 1])))), None)
            if key is None:
                break
            token = key
        elif isinstance(token, int):
            if not isinstance(value, list) or token >= len(value):
                break
        elif not isinstance(value, dict):
            break
        path.append(token)
        value = value.get(token) if isinstance(value, dict) else value[token]
    return tuple(path)


def _replaced(data: Any, path: tuple[Key, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(data) if isinstance(data, dict) else list(data)
    copy[path[0]] = _replaced(data[path[0]], path[1:], new)  # type: ignore[index]
    return copy


def _value_at(data: Any, path: tuple[Key, ...]) -> Any:
    for key in path:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return ...
    return data


def _plain(reason: str) -> str:
    """msgspec's wording, shortened for an operator: backticks off, `got` kept."""
    reason = reason.replace("`", "")
    reason = re.sub(r"^Object missing required field (\S+)$", r"required field \1 is missing", reason)
    return reason[:1].lower() + reason[1:]


def _info_at(info: Any, data: Any, path: tuple[Key, ...]) -> Any:
    """The type (with its `Meta`) that the value at `path` was checked against, or None."""
    for key in path:
        info = _bare(_concrete(info, data))
        data = _value_at(data, (key,))
        if isinstance(info, msgspec.inspect.StructType):
            info = next((f.type for f in info.fields if f.encode_name == key), None)
        elif isinstance(info, msgspec.inspect.DictType):
            info = info.value_type
        elif isinstance(info, msgspec.inspect.TupleType) and isinstance(key, int) and key < len(info.item_types):
            info = info.item_types[key]
        else:
            info = getattr(info, "item_type", None)
    return _concrete(info, data)


def _bare(info: Any) -> Any:
    return info.type if isinstance(info, Metadata) else info


_SHAPES: dict[type, tuple[type, ...]] = {
    dict: (msgspec.inspect.DictType, msgspec.inspect.StructType),
    list: (msgspec.inspect.ListType, msgspec.inspect.TupleType, msgspec.inspect.VarTupleType,
           msgspec.inspect.SetType, msgspec.inspect.FrozenSetType),
    str: (msgspec.inspect.StrType, msgspec.inspect.LiteralType),
}


def _concrete(info: Any, data: Any) -> Any:
    """Of a union (e.g. `X | None`), the member that describes `data` (else the first that is not None)."""
    if not isinstance(info, msgspec.inspect.UnionType):
        return info
    members = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
    shapes = _SHAPES.get(type(data), ())
    return next((t for t in members if isinstance(_bare(t), shapes)), members[0] if members else None)


def _stripped(data: Any, info: Any) -> Any:
    """The data with every value declared as `Text` stripped of surrounding spaces."""
    info = _concrete(info, data)
    if isinstance(info, Metadata) and (info.extra or {}).get("strip") and isinstance(data, str):
        return data.strip()
    info = _bare(info)
    if isinstance(info, msgspec.inspect.StructType) and isinstance(data, dict):
        fields = {f.encode_name: f.type for f in info.fields}
        return {k: _stripped(v, fields[k]) if k in fields else v for k, v in data.items()}
    if isinstance(info, msgspec.inspect.DictType) and isinstance(data, dict):
        return {k: _stripped(v, info.value_type) for k, v in data.items()}
    if isinstance(data, list) and hasattr(info, "item_type"):
        return [_stripped(v, info.item_type) for v in data]
    return data
