"""Vietnamese plates: the printed forms, the bare form used for matching, and near matches.

A camera reads `30A-123.45` as anything from `30A12345` to `3OA-l23.4S`. Registration records
and camera reads meet on the bare `[0-9A-Z]` string, and the usual OCR confusions are undone by
position: the province code and the serial number are digits, the series starts with a letter,
so an `O` read where a digit must be can only be a `0`. Only the second character of the series
(`29-B1` for a motorbike, `30LD` for a car) may be either, so that is where a read can honestly
match more than one plate. Every correction is reported, never silently applied.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass

# Pairs an OCR model confuses on Vietnamese plates (digit <-> letter).
CONFUSIONS: tuple[tuple[str, str], ...] = (
    ("0", "D"), ("8", "B"), ("5", "S"), ("2", "Z"), ("6", "G"), ("1", "I"), ("0", "O"),
)
PARTNERS: dict[str, frozenset[str]] = {}
for _a, _b in CONFUSIONS:
    PARTNERS[_a] = PARTNERS.get(_a, frozenset()) | {_b}
    PARTNERS[_b] = PARTNERS.get(_b, frozenset()) | {_a}

# Province (11-99), series (one or two letters, or a letter and a digit), serial (4 or 5 digits).
_L = "[ABCDEFGHKLMNPRSTUVXYZ]"  # I, J, O, Q and W are never used in a series
NORMALISED = re.compile(rf"^(?:1[1-9]|[2-9][0-9]){_L}(?:{_L}|[0-9])?[0-9]{{4,5}}$")
# Printed forms: one line on cars (`30A-123.45`, older `29A-1234`), two lines on motorbikes
# (`29-B1 123.45`, older `29-B1 1234`), written on one line with a space between the lines.
ONE_LINE = re.compile(rf"^(?P<province>\d{{2}})(?P<series>{_L}{_L}?)-(?P<serial>\d{{3}}\.\d{{2}}|\d{{4}})$")
TWO_LINE = re.compile(rf"^(?P<province>\d{{2}})-(?P<series>{_L}(?:{_L}|[0-9]))\s+(?P<serial>\d{{3}}\.\d{{2}}|\d{{4}})$")
_NOT_PLATE = re.compile(r"[^0-9A-Z]")


def normalise(text: str) -> str:
    """The bare matching form: upper case, Đ as D, separators and anything else dropped."""
    text = text.upper()
    if not text.isascii():  # rare: Đ, or accents an OCR model or a keyboard added
        text = unicodedata.normalize("NFKD", text.replace("Đ", "D"))
    return _NOT_PLATE.sub("", text)


def is_valid(plate: str) -> bool:
    return bool(NORMALISED.match(plate))


@dataclass(frozen=True)
class Printed:
    plate: str  # normalised
    display: str  # as printed, canonical spacing
    two_line: bool


def parse_printed(text: str) -> Printed:
    """Parse a plate as printed on a registration record; ValueError says what is wrong."""
    text = " ".join(text.strip().upper().replace("Đ", "D").split())
    match = ONE_LINE.match(text) or TWO_LINE.match(text)
    if not match:
        raise ValueError(f"plate {text!r} is not a Vietnamese plate (e.g. 30A-123.45 or 29-B1 123.45)")
    province = int(match["province"])
    if not 11 <= province <= 99:
        raise ValueError(f"plate {text!r}: province code {province:02d} is outside 11-99")
    two_line = match.re is TWO_LINE
    return Printed(plate=normalise(text), display=text, two_line=two_line)


def printed(plate: str, two_line: bool) -> str:
    """The printed form of a normalised plate whose series length is known from its type."""
    province, rest = plate[:2], plate[2:]
    series_len = 2 if two_line or (len(rest) > 5 and rest[1].isalpha()) else 1
    series, serial = rest[:series_len], rest[series_len:]
    serial = f"{serial[:3]}.{serial[3:]}" if len(serial) == 5 else serial
    return f"{province}-{series} {serial}" if two_line else f"{province}{series}-{serial}"


@dataclass(frozen=True)
class Candidate:
    """A registered plate the read may stand for, and the corrections that lead to it."""
    plate: str
    substitutions: tuple[tuple[int, str, str], ...]  # (position, read, corrected)
    source: str  # "read" or "alternative"
    confidence: float

    @property
    def exact(self) -> bool:
        return self.source == "read" and not self.substitutions


def _table(keep) -> dict[str, tuple[str, ...]]:
    chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return {c: tuple(o for o in (c, *sorted(PARTNERS.get(c, ()))) if keep(o)) for c in chars}


# What a read character may really be, by the class of its position (computed once: this runs
# for every lookup).
_AS_DIGIT = _table(str.isdigit)
_AS_LETTER = _table(str.isalpha)
_AS_EITHER = _table(lambda c: True)


def _options(char: str, position: int, length: int) -> tuple[str, ...]:
    """Characters this position may really hold, given what was read there."""
    if position < 2 or position >= 4 or (position == 3 and length == 7):
        return _AS_DIGIT[char]
    if position == 2:
        return _AS_LETTER[char]
    return _AS_EITHER[char]  # second character of the series: a letter or a digit


def corrections(read: str, limit: int = 16) -> list[tuple[str, tuple[tuple[int, str, str], ...]]]:
    """Valid plates reachable from a normalised read by undoing known confusions, by position."""
    if not 7 <= len(read) <= 9:
        return [(read, ())] if is_valid(read) else []
    per_position = [_options(char, i, len(read)) for i, char in enumerate(read)]
    if any(not options for options in per_position):
        return []
    found = []
    for chars in itertools.islice(itertools.product(*per_position), limit * 4):
        plate = "".join(chars)
        if is_valid(plate):
            found.append((plate, tuple((i, read[i], c) for i, c in enumerate(chars) if c != read[i])))
    found.sort(key=lambda item: (len(item[1]), item[0]))
    return found[:limit]


def candidates(text: str, confidence: float = 1.0,
               alternatives: tuple[tuple[str, float], ...] = ()) -> list[Candidate]:
    """The plates to look up for one read: the read itself first, then its near matches.

    The read as normalised is always looked up, even when it is not a valid plate form (a
    special plate, a foreign one): an exact record wins over any reasoning about formats.
    """
    seen: dict[str, Candidate] = {}
    read = normalise(text)
    if read:
        seen[read] = Candidate(read, (), "read", confidence)
        for plate, subs in corrections(read):
            seen.setdefault(plate, Candidate(plate, subs, "read", confidence))
    for alt_text, alt_confidence in alternatives:
        alt = normalise(alt_text)
        for plate, _subs in corrections(alt) or ([(alt, ())] if alt else []):
            if plate not in seen:
                subs = tuple((i, a, b) for i, (a, b) in enumerate(zip(read, plate)) if a != b) \
                    if len(read) == len(plate) else ()
                seen[plate] = Candidate(plate, subs, "alternative", alt_confidence)
    return list(seen.values())
