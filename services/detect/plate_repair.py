"""Recognised characters → a plate of an expected format, repaired position by position.

The recogniser confuses shapes (0/D, 8/B, 5/S, 2/Z, 6/G, 1/I, 0/O); which reading is right
depends on the position in the plate, so the repair follows the formats of the countries a
camera expects (plate_formats.yaml):

1. a read that already fits an expected format is kept as read: a valid Vietnamese two-letter
   series (51NG, 21LA) is not a misread digit;
2. a read that fits a format of a country that is not expected is a foreign plate and is kept
   raw (format_valid false): the local repair is never applied to it;
3. otherwise every way the read fits an expected format is scored and the cheapest wins; the
   recogniser's own runner-up at a step is a cheaper repair than a guess from the shape table;
4. a read no format takes within the repair limits is kept raw, format_valid false.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from services.detect.ocr import CharRead
from services.detect.plate_formats import Expected, PlateFormat

ALTERNATIVE_WITHIN = 1.5
MIN_ALTERNATIVE = 0.05  # a runner-up under this probability is noise, not evidence


@dataclass(frozen=True)
class PlateText:
    text: str
    raw: str
    confidence: float
    format_valid: bool
    layout: str  # "one_line" | "two_line"
    alternatives: tuple[tuple[str, float], ...] = field(default=())  # (text, confidence), best first
    country: str = ""  # the expected country whose format the text fits; "" when none
    format: str = ""  # that format's name
    edits: int = 0  # characters substituted or dropped by the repair (0: as read)
    vehicle: str = "any"  # the kind of vehicle that format is for
    free_form: bool = False  # the format takes any characters of its length (says little)
    foreign: str = ""  # a country not expected whose format the read fits as it is (kept raw)


@dataclass(frozen=True)
class _Parse:
    cost: float
    edits: int
    chars: str
    fmt: PlateFormat
    probs: tuple[float, ...]

    @property
    def confidence(self) -> float:
        return min(self.probs, default=0.0) * math.exp(-self.cost / 2)

    @property
    def text(self) -> str:
        return self.fmt.display(self.chars)


def _fit(c: CharRead, allowed: frozenset[str], confusions, expected: Expected) -> tuple[str, float, float, bool] | None:
    """(character, cost, probability, guessed from the shape table alone) of reading `c` in a
    position that allows `allowed`."""
    if c.char in allowed:
        return c.char, 0.0, c.prob, False
    for alt, q in c.alternatives:
        if alt in allowed and q > MIN_ALTERNATIVE:
            cost = min(expected.repair.alternative_cost_max, max(0.1, math.log(max(c.prob, 1e-6) / q) / 4))
            return alt, cost, q, False
    if c.char in confusions:
        return confusions[c.char], expected.repair.table_cost, c.prob * 0.5, True
    return None


def _trims(line: tuple[CharRead, ...]):
    for start, end in itertools.product((0, 1), (0, 1)):
        if start + end < len(line):
            yield line[start : len(line) - end], start + end


def _lines_fit(fmt: PlateFormat, lines: list[tuple[CharRead, ...]]) -> bool:
    return len(lines) == len(fmt.positions) and all(len(l) == len(p) for l, p in zip(lines, fmt.positions))


def _as_read(fmt: PlateFormat, lines: list[tuple[CharRead, ...]]) -> bool:
    return _lines_fit(fmt, lines) and fmt.fits("".join(c.char for line in lines for c in line))


def _parses(lines: list[tuple[CharRead, ...]], expected: Expected) -> list[_Parse]:
    repair = expected.repair
    found: list[_Parse] = []
    for fmt in expected.formats:
        if fmt.free_form or len(fmt.positions) != len(lines):
            continue
        for trimmed in itertools.product(*(_trims(line) for line in lines)):
            chosen = [t for t, _ in trimmed]
            dropped = sum(n for _, n in trimmed)
            if not _lines_fit(fmt, chosen):
                continue
            out, probs, cost, edits, guesses = [], [], fmt.cost + repair.trim_cost * dropped, dropped, 0
            for chars, positions in zip(chosen, fmt.positions):
                for c, p in zip(chars, positions):
                    fit = _fit(c, p.allowed, p.confusions, expected)
                    if fit is None:
                        break
                    out.append(fit[0])
                    cost += fit[1]
                    probs.append(fit[2])
                    edits += fit[0] != c.char
                    guesses += fit[3]
                else:
                    continue
                break
            else:
                text = "".join(out)
                if (cost <= repair.max_cost and edits <= repair.max_edits and guesses <= repair.max_guesses
                        and all(r.accepts(text) for r in fmt.runs)):
                    found.append(_Parse(cost, edits, text, fmt, tuple(probs)))
    return sorted(found, key=lambda p: (p.cost, p.edits))


def normalise(lines: list[tuple[CharRead, ...]], raw: str, layout: str, expected: Expected) -> PlateText:
    """Best reading of one (`layout="one_line"`) or two (`"two_line"`) recognised lines as a
    plate of the expected countries' formats."""
    plain = "".join(c.char for line in lines for c in line)
    probs = [c.prob for line in lines for c in line]
    read_conf = min(probs, default=0.0)
    as_read = sorted((f for f in expected.formats if _as_read(f, lines)), key=lambda f: f.cost)
    foreign = next((f.country for f in expected.others if not f.free_form and _as_read(f, lines)), "")
    if not as_read and foreign:
        # A plate of a country this camera does not expect: no local repair applies to it.
        return PlateText(plain, raw, round(read_conf, 4), False, layout, foreign=foreign)
    parses = _parses(lines, expected)
    if as_read:
        fmt = as_read[0]
        best = _Parse(fmt.cost, 0, plain, fmt, tuple(probs))
    elif parses:
        best = parses[0]
    else:
        return PlateText(plain, raw, round(read_conf, 4), False, layout)
    seen = {plate_key(best.text)}
    alternatives = []
    for p in parses:
        # Parses that dropped characters the best one kept are other plates, not other readings.
        key = plate_key(p.text)
        if key in seen or p.cost > best.cost + ALTERNATIVE_WITHIN or len(p.probs) < len(best.probs):
            continue
        seen.add(key)
        alternatives.append((p.text, round(p.confidence, 4)))
    return PlateText(best.text, raw, round(best.confidence, 4), True, layout, tuple(alternatives[:3]),
                     best.fmt.country, best.fmt.name, best.edits, best.fmt.vehicle, best.fmt.free_form)


def evidence(plate: PlateText) -> int:
    """How much a reading says it is a plate: valid as read (3), a foreign plate as read (2),
    valid only after a repair (1), nothing (0). Readings of one plate are compared on it first."""
    if plate.format_valid:
        return 3 if plate.edits == 0 else 1
    return 2 if plate.foreign else 0


def plate_key(text: str) -> str:
    """Letters and digits only: how plates are compared (labels and reads differ in punctuation)."""
    return "".join(ch for ch in text.upper() if ch.isascii() and ch.isalnum())
