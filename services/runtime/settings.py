"""Settings from environment variables into a msgspec Struct, validated once at start.

A field `http_port` is read from `HTTP_PORT`. A bad or missing value stops the service with
exit code 2 and a message naming the variable, before it connects to anything: a typo in a
Kubernetes manifest should fail the rollout, not a request an hour later. A numeric range is
declared on the field (`Annotated[int, between(1, 200)]`), so that every service refuses an
out-of-range value with the same message and --help and the README show the range.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, TypeVar

import msgspec

T = TypeVar("T", bound=msgspec.Struct)

EXIT_BAD_SETTING = 2

# HTTP_HOST: the address the service's HTTP port (probes, metrics, the portal) binds. Loopback by
# default, so that a service started by hand, or by `make run`, is not reachable from the
# network; the container images set HTTP_HOST=0.0.0.0 (Dockerfile), where the kubelet's probes and
# Prometheus reach the pod over its own address and NetworkPolicies decide who else may.
DEFAULT_HTTP_HOST = "127.0.0.1"
# An IPv4/IPv6 literal or a host name: no scheme, no port, no spaces.
HttpHost = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z:][0-9A-Za-z.:\-]*$")]
_PATH = re.compile(r"at `\$\.(\w+)")
_MISSING = re.compile(r"missing required field `(\w+)`")
_COLLECTIONS = (msgspec.inspect.ListType, msgspec.inspect.TupleType, msgspec.inspect.VarTupleType,
                msgspec.inspect.SetType, msgspec.inspect.FrozenSetType)
_NUMBERS = (msgspec.inspect.IntType, msgspec.inspect.FloatType)


class SettingError(ValueError):
    """Raised from a settings Struct's __post_init__ to blame one variable."""

    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(f"{variable}: {reason}")
        self.variable = variable
        self.reason = reason


def env_name(field: str) -> str:
    return field.upper()


def _is_collection(field_type: msgspec.inspect.Type) -> bool:
    if isinstance(field_type, msgspec.inspect.UnionType):
        return any(_is_collection(t) for t in field_type.types)
    return isinstance(field_type, _COLLECTIONS)


# --- numeric ranges: declared on the field, checked by parse() and __post_init__ alike --------------
def between(low: float, high: float) -> msgspec.Meta:
    """`Annotated[int, between(1, 200)]`: a setting from low to high, both included."""
    return msgspec.Meta(ge=low, le=high)


def at_least(low: float) -> msgspec.Meta:
    """low or more."""
    return msgspec.Meta(ge=low)


def above(low: float) -> msgspec.Meta:
    """More than low (a duration that must not be 0)."""
    return msgspec.Meta(gt=low)


def _number_type(field_type: msgspec.inspect.Type) -> msgspec.inspect.IntType | msgspec.inspect.FloatType | None:
    """The int or float a field holds (also inside `X | None`), when it has bounds."""
    if isinstance(field_type, msgspec.inspect.UnionType):
        return next(filter(None, map(_number_type, field_type.types)), None)
    if isinstance(field_type, _NUMBERS) and any(
            bound is not None for bound in (field_type.gt, field_type.ge, field_type.lt, field_type.le)):
        return field_type
    return None


def _shown(number: float) -> str:
    return str(int(number)) if isinstance(number, float) and number.is_integer() else str(number)


def _closed(bounds: msgspec.inspect.IntType | msgspec.inspect.FloatType) -> bool:
    return bounds.ge is not None and bounds.le is not None and bounds.gt is None and bounds.lt is None


def _limits(bounds: msgspec.inspect.IntType | msgspec.inspect.FloatType) -> list[str]:
    words = (("above", bounds.gt), ("at least", bounds.ge), ("below", bounds.lt), ("at most", bounds.le))
    return [f"{word} {_shown(bound)}" for word, bound in words if bound is not None]


def range_text(field_type: msgspec.inspect.Type) -> str:
    """A field's bounds for --help and the README: `1–200`, `above 0`, `at least 0, below 1`; empty: none."""
    bounds = _number_type(field_type)
    if bounds is None:
        return ""
    if _closed(bounds):
        return f"{_shown(bounds.ge)}–{_shown(bounds.le)}"
    return ", ".join(_limits(bounds))


def _out_of_range(variable: str, bounds: msgspec.inspect.IntType | msgspec.inspect.FloatType,
                  value: float) -> SettingError | None:
    inside = ((bounds.gt is None or value > bounds.gt) and (bounds.ge is None or value >= bounds.ge)
              and (bounds.lt is None or value < bounds.lt) and (bounds.le is None or value <= bounds.le))
    if inside:
        return None
    if _closed(bounds):
        return SettingError(variable, f"{_shown(value)} is not between {_shown(bounds.ge)} and {_shown(bounds.le)}")
    return SettingError(variable, f"must be {' and '.join(_limits(bounds))}, got {_shown(value)}")


def check_bounds(settings: msgspec.Struct) -> None:
    """The bounds of every field, for settings built in code (parse() has msgspec check them)."""
    for field in msgspec.inspect.type_info(type(settings)).fields:
        bounds = _number_type(field.type)
        value = getattr(settings, field.name)
        if bounds is not None and isinstance(value, (int, float)):
            error = _out_of_range(env_name(field.name), bounds, value)
            if error is not None:
                raise error


def _bounds_error(cls: type, field_name: str, raw: object) -> SettingError | None:
    """The uniform message when a value msgspec refused is a number outside its field's bounds."""
    for field in msgspec.inspect.type_info(cls).fields:
        if field.name == field_name and (bounds := _number_type(field.type)) is not None:
            kind = int if isinstance(bounds, msgspec.inspect.IntType) else float
            try:
                value = msgspec.convert(raw, kind, strict=False)
            except msgspec.ValidationError:
                return None
            return _out_of_range(env_name(field_name), bounds, value)
    return None


def parse(cls: type[T], environ: Mapping[str, str]) -> T:
    """Build the settings; raises SettingError naming the variable."""
    info = msgspec.inspect.type_info(cls)
    raw: dict[str, object] = {}
    for field in info.fields:
        name = env_name(field.name)
        if name not in environ:
            continue
        value = environ[name]
        if _is_collection(field.type):
            raw[field.name] = [part.strip() for part in value.split(",") if part.strip()]
        else:
            raw[field.name] = value
    try:
        return msgspec.convert(raw, cls, strict=False)
    except msgspec.ValidationError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, SettingError):
            raise cause from None
        message = str(exc)
        missing = _MISSING.search(message)
        if missing:
            raise SettingError(env_name(missing.group(1)), "is required but not set") from None
        path = _PATH.search(message)
        if path:
            out_of_range = _bounds_error(cls, path.group(1), raw.get(path.group(1)))
            if out_of_range is not None:
                raise out_of_range from None
            variable = env_name(path.group(1))
            reason = message.split(" - at ")[0]
            raise SettingError(variable, f"{reason} (got {environ.get(variable)!r})") from None
        raise SettingError("settings", message) from None


def load(cls: type[T], environ: Mapping[str, str] | None = None, *, service: str = "roadwatch") -> T:
    """parse() for a service's main(): on a bad value print why and exit 2."""
    try:
        return parse(cls, os.environ if environ is None else environ)
    except SettingError as exc:
        print(f"roadwatch {service}: invalid setting {exc.variable}: {exc.reason}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_SETTING) from None


# --- validators used in __post_init__ of the services' settings ----------------------------------
def check_url(variable: str, value: str, schemes: tuple[str, ...]) -> None:
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in schemes or not rest:
        raise SettingError(variable, f"{value!r} is not a URL with scheme {' or '.join(schemes)}")


def check_port(variable: str, value: int) -> None:
    if not 0 <= value <= 65535:
        raise SettingError(variable, f"{value} is not a TCP port (0-65535)")


def check_choice(variable: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SettingError(variable, f"{value!r} is not one of {', '.join(choices)}")


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def check_common(*, nats_url: str, http_port: int, log_level: str) -> None:
    """The settings every service has: NATS_URL, HTTP_PORT, LOG_LEVEL."""
    for url in nats_url.split(","):
        check_url("NATS_URL", url.strip(), ("nats", "tls", "ws", "wss"))
    check_port("HTTP_PORT", http_port)
    check_choice("LOG_LEVEL", log_level, LOG_LEVELS)


PoolSize = Annotated[int, between(1, 200)]
Port = Annotated[int, between(0, 65535)]  # a TCP port


# --- what every service reads (each service's Settings subclasses one of these) ------------------
class ServiceSettings(msgspec.Struct, frozen=True, kw_only=True):
    # NATS server(s), comma-separated, with the service's user: nats://detect:PASSWORD@host:4222
    nats_url: str = "nats://127.0.0.1:4222"
    # /healthz, /readyz, /metrics (and the portal's pages and API); each service has its own default.
    http_port: int = 8080
    http_host: HttpHost = DEFAULT_HTTP_HOST  # address the HTTP port binds (the container images set 0.0.0.0)
    log_level: str = "INFO"  # DEBUG, INFO, WARNING or ERROR; logs are JSON lines on stderr

    def __post_init__(self) -> None:
        check_bounds(self)
        check_common(nats_url=self.nats_url, http_port=self.http_port, log_level=self.log_level)


class DatabaseSettings(ServiceSettings, frozen=True, kw_only=True):
    # PostgreSQL, postgresql://user@host:port/db; `roadwatch migrate` applies the schemas.
    database_url: str
    db_pool_size: PoolSize = 10  # connections in the pool

    def __post_init__(self) -> None:
        super().__post_init__()
        check_url("DATABASE_URL", self.database_url, ("postgresql", "postgres"))


# --- `roadwatch <service> --help`: the settings, read off the Struct -------------------------------
def _comments(cls: type) -> dict[str, str]:
    """field -> its comment in the class source (a trailing `# ...`, or the `#` lines just above);
    a field a subclass redefines without a comment keeps its base's."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if issubclass(klass, msgspec.Struct) and klass is not msgspec.Struct:
            found.update((name, text) for name, text in _own_comments(klass).items() if text or name not in found)
    return found


def _own_comments(cls: type) -> dict[str, str]:
    import inspect

    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    found: dict[str, str] = {}
    above: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("#").strip())
            continue
        match = re.match(r"(\w+)\s*:[^#]*?(?:#\s*(.*))?$", stripped)
        if match and not stripped.startswith(("def ", "class ", "@")):
            found[match.group(1)] = " ".join([*above, match.group(2) or ""]).strip()
        above = []
    return found


def ranges(cls: type[msgspec.Struct]) -> dict[str, str]:
    """field -> its bounds as range_text() words, for the fields that have some."""
    found = {field.name: range_text(field.type) for field in msgspec.inspect.type_info(cls).fields}
    return {name: text for name, text in found.items() if text}


def describe(cls: type[msgspec.Struct], *, root: Path | None = None,
             bounds: bool = True) -> list[tuple[str, str, str]]:
    """(VARIABLE, default or 'required', comment) for every setting, in declaration order.

    The comment ends with the field's bounds, `(1–200)`, unless `bounds` is false. With `root`
    (the README's table) a default is shown the same on every machine: a path under root
    relative to it, a default computed at start (WORKERS: the cores) by its function's name.
    """
    comments = _comments(cls)
    if bounds:
        for name, text in ranges(cls).items():
            comments[name] = f"{comments.get(name, '')} ({text})".strip()
    rows = []
    for field in msgspec.structs.fields(cls):
        factory = field.default_factory
        if field.default is not msgspec.NODEFAULT:
            default = field.default
        elif factory is not msgspec.NODEFAULT:
            computed = root is not None and not isinstance(factory, type) and factory.__name__ != "<lambda>"
            default = f"{factory.__name__}()" if computed else factory()
        else:
            default = None
        if default is None:
            shown = "required"
        elif isinstance(default, (list, tuple, set, frozenset)):
            shown = ",".join(str(item) for item in default)
        elif isinstance(default, bool):
            shown = "true" if default else "false"
        else:
            shown = str(default)
        if root is not None and shown.startswith(f"{root}/"):
            shown = shown[len(str(root)) + 1:]
        rows.append((env_name(field.name), shown, comments.get(field.name, "")))
    return rows


def help_text(cls: type[msgspec.Struct]) -> str:
    """The settings as a help epilog: one block per variable (default, then what it is for)."""
    lines = ["settings (environment variables; a bad value exits 2 naming the variable):"]
    for variable, default, comment in describe(cls):
        lines.append(f"  {variable}={default}" if default != "required" else f"  {variable}  (required)")
        if comment:
            lines.append(f"      {comment}")
    return "\n".join(lines)
