"""Configuration files: YAML decoded into typed msgspec Structs, every mistake named by file, line and field.

A configuration file is an operator's interface to a service, so a mistake in it stops the service
at start with `file:line: field: reason`, and nothing is guessed: the Structs forbid unknown keys
(a typo such as `jpeg_qualty` would otherwise fall back to a default without a word). Each reader
declares its file as Structs (types, `msgspec.Meta` constraints, `__post_init__` for rules across
fields) and calls `load`; rules that need more than one object (unique ids, references between
sections) call `ConfigFileError.at(doc, path, reason)` so that they are reported the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import yaml

T = TypeVar("T")
Key = str | int
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
    try:
        return msgspec.convert(value, type_, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        reason, path = _explain(str(exc), value, type_)
        if reason.startswith("expected") and ", got" not in reason:
            found = _value_at(value, path)
            if found is not ...:
                reason += f", got {found!r}"
        raise error(doc.path, reason, field=field_name(at + path), line=doc.line(at + path)) from None


def _value_at(data: Any, path: tuple[Key, ...]) -> Any:
    for key in path:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return ...
    return data


def load(path: str | Path, type_: type[T], *, dec_hook: Callable[[type, Any], Any] | None = None,
         error: type[ConfigFileError] = ConfigFileError) -> tuple[T, Document]:
    """Read a YAML file into `type_`; returns the value and the document (for later checks' lines)."""
    doc = read(path, error=error)
    return convert(doc, type_, dec_hook=dec_hook, error=error), doc


def _explain(message: str, data: Any, type_: Any) -> tuple[str, tuple[Key, ...]]:
    """msgspec's "reason - at `$.a[0].b`" as (reason, path); `[...]` (a mapping's key, which msgspec
    does not name) is resolved by finding the entry that fails on its own."""
    match = _AT.match(message)
    if match is None:
        return message, ()
    reason = match.group("reason")
    raw = match.group("outer") or match.group("path")
    tokens: list[Key | None] = []
    for name, index in _TOKEN.findall(raw[1:] if raw.startswith("$") else ""):
        if name:
            tokens.append(name)
        else:
            tokens.append(None if index == "..." else int(index))
    path = _resolve(tokens, data, msgspec.inspect.type_info(type_))
    unknown = _UNKNOWN.search(reason)
    if unknown:
        path += (unknown.group(1),)
        reason = "unknown field"
    elif match.group("outer"):
        reason = f"key: {reason}"
    return _plain(reason), path


def _plain(reason: str) -> str:
    """msgspec's wording, shortened for an operator: backticks off, `got` kept."""
    reason = reason.replace("`", "")
    reason = re.sub(r"^Object missing required field (\S+)$", r"required field \1 is missing", reason)
    return reason[:1].lower() + reason[1:]


def _resolve(tokens: list[Key | None], data: Any, info: Any) -> tuple[Key, ...]:
    path: list[Key] = []
    for token in tokens:
        info = _concrete(info, data)
        if token is None:  # a mapping's key: the first entry that does not convert on its own
            if not isinstance(data, dict):
                break
            value_type = getattr(info, "value_type", None)
            key = next((k for k, v in data.items() if not _converts(v, value_type)), None)
            if key is None:
                break
            path.append(key)
            data, info = data[key], value_type
        elif isinstance(token, int):
            if not isinstance(data, list) or token >= len(data):
                break
            path.append(token)
            data, info = data[token], getattr(info, "item_type", None)
        else:
            if not isinstance(data, dict):
                break
            field = next((f for f in getattr(info, "fields", ()) if f.encode_name == token), None)
            path.append(token)
            data, info = data.get(token), field.type if field is not None else None
    return tuple(path)


def _concrete(info: Any, data: Any) -> Any:
    """Of a union (e.g. `X | None`), the member that describes `data`."""
    if isinstance(info, msgspec.inspect.UnionType):
        for member in info.types:
            if isinstance(data, dict) and isinstance(member, (msgspec.inspect.DictType, msgspec.inspect.StructType)):
                return member
            if isinstance(data, list) and hasattr(member, "item_type"):
                return member
        return info.types[0]
    return info


def _converts(value: Any, info: Any) -> bool:
    if info is None:
        return True
    try:
        msgspec.convert(value, _python_type(info))
    except msgspec.ValidationError:
        return False
    except TypeError:
        return True
    return True


def _python_type(info: Any) -> Any:
    if isinstance(info, msgspec.inspect.StructType):
        return info.cls
    if isinstance(info, msgspec.inspect.DictType):
        return dict[_python_type(info.key_type), _python_type(info.value_type)]  # type: ignore[misc]
    if isinstance(info, msgspec.inspect.ListType):
        return list[_python_type(info.item_type)]  # type: ignore[misc]
    if isinstance(info, msgspec.inspect.UnionType):
        types = tuple(_python_type(t) for t in info.types)
        out = types[0]
        for t in types[1:]:
            out = out | t
        return out
    simple = {msgspec.inspect.StrType: str, msgspec.inspect.IntType: int, msgspec.inspect.FloatType: float,
              msgspec.inspect.BoolType: bool, msgspec.inspect.NoneType: type(None), msgspec.inspect.AnyType: Any}
    for kind, py in simple.items():
        if isinstance(info, kind):
            return py
    raise TypeError(f"no python type for {info!r}")
