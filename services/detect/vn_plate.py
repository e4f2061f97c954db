"""Vietnamese plate normaliser: OCR characters → `30A-123.45` / `29-B1 123.45`.

The recogniser confuses shapes (0/D, 8/B, 5/S, 2/Z, 6/G, 1/I, 0/O); which reading is right
depends on the position in the plate: the province code and serial are digits, the series is
letters then an optional digit. A blind swap breaks two-letter series (LD, MD, NG), so every
way the read fits the plate grammar is scored and the cheapest wins; the recogniser's own
second choice at a step is a cheaper repair than a table guess.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from services.detect.ocr import CharRead

SERIES_LETTERS = frozenset("ABCDEFGHKLMNPRSTUVXYZ")
DIGITS = frozenset("0123456789")
TO_DIGIT = {"D": "0", "O": "0", "Q": "0", "U": "0", "B": "8", "S": "5", "Z": "2", "G": "6", "I": "1", "L": "1", "T": "1", "J": "1", "A": "4"}
TO_LETTER = {"0": "D", "O": "D", "Q": "D", "8": "B", "5": "S", "2": "Z", "6": "G", "1": "T", "I": "T", "4": "A", "7": "T"}
TABLE_REPAIR_COST = 0.8
TRIM_COST = 1.5
SECOND_LETTER_COST = 0.2
TWO_LINE_SECOND_LETTER_COST = 1.0
ONE_LINE_SERIES_DIGIT_COST = 0.3
MAX_COST = 3.5
ALTERNATIVE_WITHIN = 1.5


@dataclass(frozen=True)
class PlateText:
    text: str
    raw: str
    confidence: float
    format_valid: bool
    layout: str  # "one_line" | "two_line"
    alternatives: tuple[tuple[str, float], ...] = field(default=())  # (text, confidence), best first


@dataclass(frozen=True)
class _Parse:
    cost: float
    province: str
    series: str
    digit: str
    serial: str
    probs: tuple[float, ...]

    @property
    def confidence(self) -> float:
        return min(self.probs, default=0.0) * math.exp(-self.cost / 2)

    def formatted(self, layout: str) -> str:
        serial = f"{self.serial[:3]}.{self.serial[3:]}" if len(self.serial) == 5 else self.serial
        if layout == "two_line":
            top = f"{self.province}-{self.series}{self.digit}" if self.digit else f"{self.province}{self.series}"
            return f"{top} {serial}"
        return f"{self.province}{self.series}{self.digit}-{serial}"


def _fit(c: CharRead, want: str) -> tuple[str, float, float] | None:
    """(character, cost, probability) of reading `c` as a digit ('d') or series letter ('l')."""
    allowed = DIGITS if want == "d" else SERIES_LETTERS
    if c.char in allowed:
        return c.char, 0.0, c.prob
    for alt, q in c.alternatives:
        if alt in allowed and q > 0.02:
            return alt, min(TABLE_REPAIR_COST, max(0.1, math.log(max(c.prob, 1e-6) / q) / 4)), q
    table = TO_DIGIT if want == "d" else TO_LETTER
    if c.char in table:
        return table[c.char], TABLE_REPAIR_COST, c.prob * 0.5
    return None


def _templates(two_lines: bool):
    """(top classes, bottom classes, structural cost); classes: p province digit, l letter, d digit."""
    for letters, digit, serial in itertools.product((1, 2), (0, 1), (5, 4)):
        head = "pp" + "l" * letters + "d" * digit
        # Two letters without a digit is a one-line car series (51LD-, 80NG-); on a two-line
        # (motorbike) plate the second character is almost always the series digit.
        second = TWO_LINE_SECOND_LETTER_COST if two_lines and not digit else SECOND_LETTER_COST
        cost = second * (letters - 1) + (0.0 if two_lines or not digit else ONE_LINE_SERIES_DIGIT_COST)
        cost += 0.05 * (5 - serial)
        yield head, "s" * serial, cost, letters, digit


def _trims(line: tuple[CharRead, ...]):
    for start, end in itertools.product((0, 1), (0, 1)):
        if start + end < len(line):
            yield line[start : len(line) - end], TRIM_COST * (start + end)


def _match(chars: tuple[CharRead, ...], classes: str):
    if len(chars) != len(classes):
        return None
    out, cost, probs = [], 0.0, []
    for c, k in zip(chars, classes):
        fit = _fit(c, "l" if k == "l" else "d")
        if fit is None:
            return None
        out.append(fit[0])
        cost += fit[1]
        probs.append(fit[2])
    return "".join(out), cost, probs


def _parses(lines: list[tuple[CharRead, ...]]) -> list[_Parse]:
    two = len(lines) == 2
    found: list[_Parse] = []
    for head, tail, base, letters, digit in _templates(two):
        if two:
            candidates = [
                (top + bottom, head + tail, tc + bc)
                for (top, tc), (bottom, bc) in itertools.product(_trims(lines[0]), _trims(lines[1]))
                if len(top) == len(head) and len(bottom) == len(tail)
            ]
        else:
            candidates = [(chars, head + tail, tc) for chars, tc in _trims(lines[0]) if len(chars) == len(head) + len(tail)]
        for chars, classes, trim_cost in candidates:
            matched = _match(chars, classes)
            if matched is None:
                continue
            text, cost, probs = matched
            province = text[:2]
            if not 11 <= int(province) <= 99:
                continue
            total = base + trim_cost + cost
            if total > MAX_COST:
                continue
            series = text[2 : 2 + letters]
            found.append(_Parse(total, province, series, text[2 + letters : 2 + letters + digit], text[2 + letters + digit :], tuple(probs)))
    return sorted(found, key=lambda p: p.cost)


def normalise(lines: list[tuple[CharRead, ...]], raw: str, layout: str) -> PlateText:
    """Best Vietnamese reading of one (`layout="one_line"`) or two (`"two_line"`) recognised lines."""
    parses = _parses(lines)
    plain = "".join(c.char for line in lines for c in line)
    if not parses:
        conf = min((c.prob for line in lines for c in line), default=0.0)
        return PlateText(plain, raw, round(conf, 4), False, layout)
    best = parses[0]
    seen = {best.formatted(layout)}
    alternatives = []
    for p in parses[1:]:
        text = p.formatted(layout)
        # Parses that dropped characters the best one kept are other plates, not other readings.
        if text in seen or p.cost > best.cost + ALTERNATIVE_WITHIN or len(p.probs) < len(best.probs):
            continue
        seen.add(text)
        alternatives.append((text, round(p.confidence, 4)))
    return PlateText(best.formatted(layout), raw, round(best.confidence, 4), True, layout, tuple(alternatives[:3]))


def plate_key(text: str) -> str:
    """Letters and digits only: how plates are compared (labels and reads differ in punctuation)."""
    return "".join(ch for ch in text.upper() if ch.isascii() and ch.isalnum())
