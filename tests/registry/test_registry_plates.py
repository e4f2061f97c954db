"""Plate normalisation and near matches, as pure functions."""

from __future__ import annotations

import pytest

from services.registry import plates


@pytest.mark.parametrize("text, bare", [
    ("30A-123.45", "30A12345"), ("29-B1 123.45", "29B112345"), ("51f-999.99", "51F99999"),
    ("30LD-123.45", "30LD12345"), ("29A-1234", "29A1234"), (" 29 - B1\n123.45 ", "29B112345"),
    ("29-Đ1 123.45", "29D112345"),
])
def test_normalise(text: str, bare: str) -> None:
    assert plates.normalise(text) == bare


@pytest.mark.parametrize("bare, valid", [
    ("30A12345", True), ("29B112345", True), ("30LD12345", True), ("29A1234", True), ("29B11234", True),
    ("10A12345", False),   # province codes start at 11
    ("30012345", False),   # the series starts with a letter
    ("29BI12345", False),  # I is never used in a series
    ("30LD112345", False), ("30A123", False),
])
def test_is_valid(bare: str, valid: bool) -> None:
    assert plates.is_valid(bare) is valid


def test_parse_printed_accepts_both_layouts_and_rejects_others() -> None:
    car = plates.parse_printed("30a-123.45")
    bike = plates.parse_printed("29-B1   123.45")
    assert (car.plate, car.display, car.two_line) == ("30A12345", "30A-123.45", False)
    assert (bike.plate, bike.display, bike.two_line) == ("29B112345", "29-B1 123.45", True)
    for bad in ("30A12345", "3OA-123.45", "05A-123.45", "30A-12.345", "29-BI 123.45", ""):
        with pytest.raises(ValueError):
            plates.parse_printed(bad)


def near(text: str) -> dict[str, tuple]:
    return {c.plate: c.substitutions for c in plates.candidates(text) if not c.exact}


def test_confusions_are_undone_by_position() -> None:
    # O where the province code must be digits, S where the serial must be digits.
    assert near("3O A-123.4S") == {"30A12345": ((1, "O", "0"), (7, "S", "5"))}
    # 8 where the series letter must be: B.
    assert near("308-123.45") == {"30B12345": ((2, "8", "B"),)}
    # Every listed pair, one at a time, on the serial digits of a motorbike plate.
    for letter, digit in (("D", "0"), ("B", "8"), ("S", "5"), ("Z", "2"), ("G", "6"), ("I", "1"), ("O", "0")):
        read = "29B1" + letter + "2345"
        assert "29B1" + digit + "2345" in near(read), read


def test_second_series_character_may_be_either_and_both_are_offered() -> None:
    # 29-B8 (motorbike) or 29B-B... : position 3 may hold a letter or a digit.
    assert set(near("29BB12345")) == {"29B812345"}
    assert set(near("29B812345")) == {"29BB12345"}
    assert set(near("29-B0 123.45")) == {"29BD12345"}  # 0/D, O is never a series letter


def test_exact_read_comes_first_and_alternatives_are_marked() -> None:
    found = plates.candidates("30A-123.45", 0.9, (("30A-128.45", 0.4),))
    assert found[0].plate == "30A12345" and found[0].exact
    alt = [c for c in found if c.source == "alternative"]
    assert [(c.plate, c.substitutions, c.confidence) for c in alt] == [("30A12845", ((5, "3", "8"),), 0.4)]


def test_unusual_reads_are_still_looked_up_as_they_are() -> None:
    assert [c.plate for c in plates.candidates("NG-123-45")] == ["NG12345"]
    assert plates.candidates("---") == []
