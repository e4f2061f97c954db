"""The plate repair on recogniser outputs: Vietnamese confusions seen on real plates, valid
reads of every format never changed, foreign plates never rewritten."""

import random

import pytest

from services.detect.ocr import CharRead
from services.detect.plate_formats import load
from services.detect.plate_repair import normalise, plate_key

FORMATS = load()
VN = FORMATS.expect(["vn"])
EVERY = FORMATS.expect(sorted(FORMATS.countries))


def line(text: str, prob: float = 0.95, alternatives: dict[int, tuple[tuple[str, float], ...]] | None = None):
    alternatives = alternatives or {}
    return tuple(CharRead(ch, prob, alternatives.get(i, ())) for i, ch in enumerate(text))


def test_one_line_car_plate_is_formatted():
    plate = normalise([line("30A12345")], "30A-123.45", "one_line", VN)
    assert (plate.text, plate.format_valid, plate.layout, plate.country, plate.edits) == ("30A-123.45", True, "one_line", "vn", 0)


def test_old_four_digit_serial():
    assert normalise([line("30Z0751")], "30Z-0751", "one_line", VN).text == "30Z-0751"


def test_two_line_motorbike_plate_is_formatted():
    plate = normalise([line("29B1"), line("12345")], "29-B1 123.45", "two_line", VN)
    assert (plate.text, plate.format_valid, plate.vehicle) == ("29-B1 123.45", True, "motorcycle")


def test_confusables_are_repaired_by_position():
    # province read with a letter O (the recogniser's runner-up there is 0), a serial digit as
    # a letter S (a guess from the shape table)
    plate = normalise([line("3OB1", alternatives={1: (("0", 0.3),)}), line("1S345")], "3OB1 1S345", "two_line", VN)
    assert plate.text == "30-B1 153.45"
    assert (plate.format_valid, plate.edits) == (True, 2)
    assert plate.confidence < normalise([line("30B1"), line("15345")], "", "two_line", VN).confidence


def test_at_most_one_guess_from_the_shape_table():
    # O→0 and S→5 with no support from the recogniser: two guesses, not a plate
    plate = normalise([line("3OB1"), line("1S345")], "3OB1 1S345", "two_line", VN)
    assert (plate.text, plate.format_valid) == ("3OB11S345", False)


@pytest.mark.parametrize("read, layout, text", [
    (["51NG12345"], "one_line", "51NG-123.45"),
    (["21LA12345"], "one_line", "21LA-123.45"),
    (["51LD12345"], "one_line", "51LD-123.45"),
    (["80NG1234"], "one_line", "80NG-1234"),
    (["36MD1", "38158"], "two_line", "36-MD1 381.58"),
    (["29AB", "12345"], "two_line", "29-AB 123.45"),  # motorbike two-letter series (Circular 24/2023)
    (["59XZ", "81467"], "two_line", "59-XZ 814.67"),
])
def test_valid_two_letter_series_stay(read, layout, text):
    plate = normalise([line(r) for r in read], " ".join(read), layout, VN)
    assert (plate.text, plate.edits, plate.format_valid) == (text, 0, True)


def test_recogniser_second_choice_beats_a_table_guess():
    # '7' in the series position: the table says T, the model's runner-up is 'Y'.
    plate = normalise([line("297", alternatives={2: (("Y", 0.3),)}), line("12345")], "", "two_line", VN)
    assert plate.text == "29Y 123.45"


def test_province_must_be_11_to_99():
    plate = normalise([line("10A12345")], "10A-123.45", "one_line", VN)
    assert not plate.format_valid
    assert plate.text == "10A12345"


@pytest.mark.parametrize("read, country", [
    ("RK855AP", "sk"),   # Slovak
    ("1B19839", "cz"),   # Czech: the old repair made a Vietnamese 18T-9839 of it
    ("3B29485", "cz"),
    ("WA56660", "pl"),   # Polish
    ("ABC1D23", "br"),   # Brazilian Mercosur
    ("ABC1234", "br"),
])
def test_foreign_plate_is_not_rewritten_when_vietnam_is_expected(read, country):
    plate = normalise([line(read)], read, "one_line", VN)
    assert (plate.text, plate.raw, plate.format_valid, plate.edits) == (read, read, False, 0)
    own = normalise([line(read)], read, "one_line", FORMATS.expect([country]))
    assert (plate_key(own.text), own.country, own.format_valid, own.edits) == (read, country, True, 0)


def test_foreign_repair_follows_its_own_format():
    # a Slovak plate whose last letters were read as digits: O and I in letter positions
    plate = normalise([line("RK101A0")], "", "one_line", FORMATS.expect(["sk"]))
    assert (plate.text, plate.edits) == ("RK-101AO", 1)
    plate = normalise([line("LM298A1")], "", "one_line", FORMATS.expect(["sk"]))
    assert plate.text == "LM-298AI"


def test_free_form_us_reads_are_kept_as_read():
    plate = normalise([line("DL9EIU")], "DL9EIU", "one_line", FORMATS.expect(["us"]))
    assert (plate.text, plate.format_valid, plate.free_form, plate.edits) == ("DL9EIU", True, True, 0)


def test_a_read_needing_too_many_repairs_is_kept_raw():
    plate = normalise([line("S0ABCD12")], "", "one_line", VN)
    assert (plate.text, plate.format_valid) == ("S0ABCD12", False)


def test_alternatives_are_other_readings_of_the_same_characters():
    # the recogniser saw a Z under the 2: 50-CZ is another reading of the same characters
    plate = normalise([line("5OC2", alternatives={3: (("Z", 0.4),)}), line("24729")], "", "two_line", VN)
    assert plate.text == "50-C2 247.29"
    assert plate.alternatives
    assert all(plate_key(text) != plate_key(plate.text) for text, _ in plate.alternatives)
    assert all(len(plate_key(text)) == len(plate_key(plate.text)) for text, _ in plate.alternatives)


def test_plate_key_compares_letters_and_digits_only():
    assert plate_key("59-P1 857.00") == plate_key("59P185700") == "59P185700"


def _generate(fmt, rng: random.Random) -> list[str]:
    """A random plate of the format, as recognised lines (one string per line)."""
    lines = []
    for positions in fmt.positions:
        lines.append("".join(rng.choice(sorted(p.allowed)) for p in positions))
    flat = "".join(lines)
    for run in fmt.runs:  # values of restricted runs (a province code) drawn from what is allowed
        if run.ranges:
            lo, hi = rng.choice(run.ranges)
            value = str(rng.randint(lo, hi)).zfill(run.end - run.start)
        else:
            value = rng.choice(sorted(run.literals))
        flat = flat[: run.start] + value + flat[run.end :]
    out, i = [], 0
    for positions in fmt.positions:
        out.append(flat[i : i + len(positions)])
        i += len(positions)
    return out


@pytest.mark.parametrize("expected", [VN, EVERY], ids=["vn", "every_country"])
def test_repair_never_changes_a_valid_read(expected):
    """Property: any plate valid in an expected format comes out exactly as read."""
    rng = random.Random(20261204)
    checked = 0
    for fmt in expected.formats:
        for _ in range(150):
            read = _generate(fmt, rng)
            assert fmt.fits("".join(read)), (fmt.name, read)
            plate = normalise([line(r, prob=rng.uniform(0.3, 1.0)) for r in read], " ".join(read), fmt.layout, expected)
            assert plate.format_valid and plate.edits == 0, (fmt.country, fmt.name, read, plate)
            assert plate_key(plate.text) == "".join(read), (fmt.country, fmt.name, read, plate.text)
            checked += 1
    assert checked == 150 * len(expected.formats)


def test_every_format_is_generated_and_kept_with_its_country():
    rng = random.Random(7)
    for country, formats in FORMATS.countries.items():
        for fmt in formats:
            if fmt.free_form:
                continue
            read = _generate(fmt, rng)
            plate = normalise([line(r) for r in read], "", fmt.layout, FORMATS.expect([country]))
            assert plate.country == country and plate_key(plate.text) == "".join(read)


def test_a_letter_no_vietnamese_series_uses_is_read_as_its_look_alike():
    # the plate font's M reads as W, which no Vietnamese series uses; a 2 % runner-up N is noise
    plate = normalise([line("59W1", alternatives={2: (("N", 0.022), ("M", 0.012))}), line("21704")], "", "two_line", VN)
    assert (plate.text, plate.edits) == ("59-M1 217.04", 1)
