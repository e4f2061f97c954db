"""The plate formats file: each country's plate formats and its position-wise confusion repair.

Plates differ by country (a Vietnamese `51F-999.99`, a Slovak `RK-855AP`, a Brazilian
`ABC1D23`), so what a plate may look like is configuration, loaded and checked once at start:
an unknown key, a wrong type, a pattern naming a class that does not exist or a confusion that
leads out of its class stops the service with `file:line: field: problem`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal, Mapping

import msgspec

from services.runtime import config as runtime_config

SHIPPED = Path(__file__).with_name("plate_formats.yaml")
SEPARATORS = frozenset("-. ")
LINE_BREAK = "/"
PLATE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
Vehicle = Literal["car", "motorcycle", "any"]


Cost = Annotated[float, msgspec.Meta(gt=0, description="a cost above 0")]
Count = Annotated[int, msgspec.Meta(ge=0, description="a count of 0 or more")]
CountryCode = Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2,3}$", description="a 2-3 letter lower-case country code")]


class FormatsError(runtime_config.ConfigFileError):
    """A plate formats file that cannot be used, or countries it does not describe."""


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A typo in a key must be an error, not a silently ignored setting."""


class CharClass(_Strict):
    # what may stand in a position of this class
    chars: Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9]+$", description="plate characters A-Z 0-9")]
    confusions: dict[str, str] = {}  # misread character -> what it is in this class
    values: tuple[str, ...] = ()  # allowed values of a run of this class; "11-99" is a range


class FormatSpec(_Strict):
    name: str
    pattern: str  # class names and separators, "/" between the lines of a two-line plate
    cost: Annotated[float, msgspec.Meta(ge=0, description="a cost of 0 or more")] = 0.0  # how unusual the format is
    vehicle: Vehicle = "any"
    free_form: bool = False  # any read of this shape fits: never repaired toward, no evidence of a country


class CountrySpec(_Strict):
    name: str
    classes: dict[str, CharClass]
    formats: Annotated[tuple[FormatSpec, ...], msgspec.Meta(min_length=1)]


class RepairSpec(_Strict):
    table_cost: Cost = 0.8
    alternative_cost_max: Cost = 0.8
    trim_cost: Cost = 1.5
    max_cost: Cost = 3.5
    max_edits: Count = 2
    max_guesses: Count = 1


class FormatsFile(_Strict):
    countries: Annotated[dict[CountryCode, CountrySpec], msgspec.Meta(min_length=1)]
    repair: RepairSpec = RepairSpec()


# --- compiled formats ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Position:
    allowed: frozenset[str]
    confusions: Mapping[str, str]


@dataclass(frozen=True)
class Run:
    """A stretch of positions of one class whose value is restricted (a province code)."""

    start: int
    end: int
    ranges: tuple[tuple[int, int], ...]
    literals: frozenset[str]

    def accepts(self, chars: str) -> bool:
        value = chars[self.start : self.end]
        if value in self.literals:
            return True
        return value.isdigit() and any(lo <= int(value) <= hi for lo, hi in self.ranges)


@dataclass(frozen=True)
class PlateFormat:
    country: str
    name: str
    pattern: str
    positions: tuple[tuple[Position, ...], ...]  # per line
    runs: tuple[Run, ...]
    cost: float
    vehicle: str
    free_form: bool

    @property
    def layout(self) -> str:
        return "two_line" if len(self.positions) == 2 else "one_line"

    @property
    def length(self) -> int:
        return sum(len(line) for line in self.positions)

    def fits(self, chars: str) -> bool:
        """The characters, as read, are a plate of this format (no repair)."""
        flat = [p for line in self.positions for p in line]
        return (len(chars) == len(flat) and all(c in p.allowed for c, p in zip(chars, flat))
                and all(r.accepts(chars) for r in self.runs))

    def display(self, chars: str) -> str:
        """The plate as printed: the pattern with its positions filled in; lines joined by a space."""
        out, it = [], iter(chars)
        for symbol in self.pattern:
            out.append(" " if symbol == LINE_BREAK else symbol if symbol in SEPARATORS else next(it))
        return "".join(out)


@dataclass(frozen=True)
class Expected:
    """The formats a camera expects, and the others the file knows (to recognise foreign plates)."""

    countries: tuple[str, ...]
    formats: tuple[PlateFormat, ...]
    others: tuple[PlateFormat, ...]
    repair: RepairSpec
    file: "PlateFormats"  # where they come from: another camera's countries are looked up there

    def expect(self, codes) -> "Expected":
        return self.file.expect(codes)

    def without_repair(self) -> "Expected":
        """The same formats with every repair off: a read is valid only as read (for measuring)."""
        return replace(self, repair=msgspec.structs.replace(self.repair, max_edits=0))


@dataclass(frozen=True)
class PlateFormats:
    path: str
    repair: RepairSpec
    countries: Mapping[str, tuple[PlateFormat, ...]]
    names: Mapping[str, str]

    def expect(self, codes) -> Expected:
        codes = tuple(dict.fromkeys(c.strip().lower() for c in codes if c.strip()))
        if not codes:
            raise FormatsError(self.path, "at least one country must be expected", field="countries")
        unknown = [c for c in codes if c not in self.countries]
        if unknown:
            raise FormatsError(self.path, f"no formats for {', '.join(unknown)} (the file has "
                               f"{', '.join(sorted(self.countries))})", field="countries")
        return Expected(
            codes,
            tuple(f for c in codes for f in self.countries[c]),
            tuple(f for c, fs in self.countries.items() if c not in codes for f in fs),
            self.repair,
            self,
        )


# --- loading -------------------------------------------------------------------------------------
_RANGE = re.compile(r"([0-9]+)-([0-9]+)")


def load(path: str | Path = SHIPPED) -> PlateFormats:
    return _compiled(runtime_config.read(path, error=FormatsError))


def parse(text: str, path: str | Path = "<formats>") -> PlateFormats:
    return _compiled(runtime_config.parse_text(text, path, error=FormatsError))


def _compiled(doc: runtime_config.Document) -> PlateFormats:
    def fail(where: tuple[str | int, ...], problem: str) -> FormatsError:
        return FormatsError.at(doc, where, problem)

    spec = runtime_config.convert(doc, FormatsFile, error=FormatsError)
    countries: dict[str, tuple[PlateFormat, ...]] = {}
    for code, country in spec.countries.items():
        where = ("countries", code)
        positions = _classes(country, where, fail)
        runtime_config.unique(doc, [(where + ("formats", i, "name"), f.name) for i, f in enumerate(country.formats)],
                              "format {value!r} is described twice (first on line {line})", error=FormatsError)
        countries[code] = tuple(_compile(code, fmt, country, positions, where + ("formats", index), fail)
                                for index, fmt in enumerate(country.formats))
    return PlateFormats(doc.path, spec.repair, countries, {c: s.name for c, s in spec.countries.items()})


def _classes(country: CountrySpec, where, fail) -> dict[str, Position]:
    out = {}
    for name, cls in country.classes.items():
        at = where + ("classes", name)
        if len(name) != 1 or name in SEPARATORS or name == LINE_BREAK:
            raise fail(at, f"a class name is one character other than {' '.join(sorted(SEPARATORS))} and /, got {name!r}")
        for wrong, right in cls.confusions.items():
            if len(wrong) != 1 or wrong not in PLATE_CHARS:
                raise fail(at + ("confusions", wrong), f"{wrong!r} is not one plate character")
            if right not in cls.chars:
                raise fail(at + ("confusions", wrong), f"{right!r} is not a character of this class ({cls.chars})")
            if wrong in cls.chars:
                raise fail(at + ("confusions", wrong), f"{wrong!r} is already valid here: repairing it would change a valid read")
        for i, value in enumerate(cls.values):
            if not (_RANGE.fullmatch(value) or value and set(value) <= set(cls.chars)):
                raise fail(at + ("values", i), f"{value!r} is neither a range like 11-99 nor made of {cls.chars}")
        out[name] = Position(frozenset(cls.chars), dict(cls.confusions))
    return out


def _compile(code: str, fmt: FormatSpec, country: CountrySpec, positions, at, fail) -> PlateFormat:
    parts = fmt.pattern.split(LINE_BREAK)
    if len(parts) > 2:
        raise fail(at + ("pattern",), "a plate has one or two lines (at most one /)")
    lines: list[tuple[Position, ...]] = []
    names: list[str] = []
    for part in parts:
        line = []
        for symbol in part:
            if symbol in SEPARATORS:
                continue
            if symbol not in positions:
                raise fail(at + ("pattern",), f"{symbol!r} is neither a class of {code} ({', '.join(positions)}) nor a separator (- . space /)")
            line.append(positions[symbol])
            names.append(symbol)
        if not line:
            raise fail(at + ("pattern",), "every line needs at least one character")
        lines.append(tuple(line))
    runs = []
    i = 0
    while i < len(names):
        j = i
        while j < len(names) and names[j] == names[i]:
            j += 1
        values = country.classes[names[i]].values
        if values:
            ranges = tuple((int(m[1]), int(m[2])) for v in values if (m := _RANGE.fullmatch(v)))
            literals = frozenset(v for v in values if not _RANGE.fullmatch(v))
            runs.append(Run(i, j, ranges, literals))
        i = j
    return PlateFormat(code, fmt.name, fmt.pattern, tuple(lines), tuple(runs), fmt.cost, fmt.vehicle, fmt.free_form)

