"""The normaliser on hand-made recogniser outputs: each case is a confusion seen on real plates."""

from services.detect.ocr import CharRead
from services.detect.vn_plate import normalise, plate_key


def line(text: str, prob: float = 0.95, alternatives: dict[int, tuple[tuple[str, float], ...]] | None = None):
    alternatives = alternatives or {}
    return tuple(CharRead(ch, prob, alternatives.get(i, ())) for i, ch in enumerate(text))


def test_one_line_car_plate_is_formatted():
    plate = normalise([line("30A12345")], "30A-123.45", "one_line")
    assert (plate.text, plate.format_valid, plate.layout) == ("30A-123.45", True, "one_line")


def test_old_four_digit_serial():
    assert normalise([line("30Z0751")], "30Z-0751", "one_line").text == "30Z-0751"


def test_two_line_motorbike_plate_is_formatted():
    plate = normalise([line("29B1"), line("12345")], "29-B1 123.45", "two_line")
    assert plate.text == "29-B1 123.45"
    assert plate.format_valid


def test_confusables_are_repaired_by_position():
    # province read with a letter O, series read as a digit 8, serial with S and Z
    plate = normalise([line("3O81"), line("1S3Z5")], "3O81 1S3Z5", "two_line")
    assert plate.text == "30-B1 153.25"
    assert plate.format_valid
    assert plate.confidence < normalise([line("30B1"), line("15325")], "", "two_line").confidence


def test_two_letter_series_is_not_broken():
    assert normalise([line("51LD12345")], "", "one_line").text == "51LD-123.45"
    assert normalise([line("36MD1"), line("38158")], "", "two_line").text == "36-MD1 381.58"


def test_recogniser_second_choice_beats_a_table_guess():
    # '7' in the series position: the table has no letter for it, but the model's runner-up is 'T'.
    plate = normalise([line("297", alternatives={2: (("T", 0.3),)}), line("12345")], "", "two_line")
    assert plate.text == "29T 123.45"


def test_province_must_be_11_to_99():
    plate = normalise([line("10A12345")], "10A-123.45", "one_line")
    assert not plate.format_valid
    assert plate.text == "10A12345"


def test_foreign_plate_is_kept_raw():
    plate = normalise([line("RK855AP")], "RK-855AP", "one_line")
    assert (plate.text, plate.raw, plate.format_valid) == ("RK855AP", "RK-855AP", False)


def test_alternatives_are_other_readings_of_the_same_characters():
    plate = normalise([line("59C2"), line("24729")], "", "two_line")
    assert plate.text == "59-C2 247.29"
    assert all(plate_key(text) != plate_key(plate.text) for text, _ in plate.alternatives)
    assert all(len(plate_key(text)) == len(plate_key(plate.text)) for text, _ in plate.alternatives)


def test_plate_key_compares_letters_and_digits_only():
    assert plate_key("59-P1 857.00") == plate_key("59P185700") == "59P185700"


def test_two_line_plate_prefers_a_series_digit_over_a_second_letter():
    # 59-X2 read as "59XZ": Z→2 is a cheaper story than a rare letter-letter motorbike series
    assert normalise([line("59XZ"), line("81467")], "", "two_line").text == "59-X2 814.67"
    # ... while on one line a two-letter car series stays
    assert normalise([line("80NG12345")], "", "one_line").text == "80NG-123.45"
