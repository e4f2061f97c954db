"""The plate formats file: the shipped one loads; a wrong one is refused with file, line and field."""

from pathlib import Path

import pytest

from services.detect.plate_formats import SHIPPED, FormatsError, load, parse
from services.detect.settings import Settings
from services.runtime.settings import SettingError, parse as parse_settings

GOOD = """\
countries:
  vn:
    name: Viet Nam
    classes:
      P: {chars: "0123456789", values: ["11-99"]}
      L: {chars: "ABCDEFGHKLMNPRSTUVXYZ", confusions: {"8": B}}
      D: {chars: "0123456789", confusions: {B: "8"}}
    formats:
      - {name: car, pattern: "PPL-DDD.DD"}
      - {name: motorbike, pattern: "PP-LD/DDD.DD", vehicle: motorcycle}
"""


def test_shipped_file_describes_the_countries_of_the_development_plates():
    formats = load(SHIPPED)
    assert {"vn", "sk", "cz", "pl", "us", "br"} <= set(formats.countries)
    names = {f.name for f in formats.countries["vn"]}
    assert {"car", "car_special_series", "motorbike", "motorbike_two_letters", "electric_motorbike"} <= names
    car = next(f for f in formats.countries["vn"] if f.name == "car")
    assert car.display("51F99999") == "51F-999.99" and car.fits("51F99999") and not car.fits("10F99999")
    bike = next(f for f in formats.countries["vn"] if f.name == "motorbike")
    assert (bike.layout, bike.display("29B112345")) == ("two_line", "29-B1 123.45")


def test_a_small_file_parses():
    formats = parse(GOOD, "mine.yaml")
    assert [f.name for f in formats.expect(["vn"]).formats] == ["car", "motorbike"]


def _error(text: str) -> FormatsError:
    with pytest.raises(FormatsError) as caught:
        parse(text, "mine.yaml")
    return caught.value


@pytest.mark.parametrize("change, line, field, words", [
    (("{name: car, pattern", "{name: car, patern"), 9, "countries.vn.formats[0].patern", "unknown field"),
    (('"PPL-DDD.DD"', '"PPQ-DDD.DD"'), 9, "countries.vn.formats[0].pattern", "'Q' is neither a class"),
    (('"PPL-DDD.DD"', '"PP/L/DDD.DD"'), 9, "countries.vn.formats[0].pattern", "one or two lines"),
    (('{"8": B}', '{"8": "9"}'), 6, "countries.vn.classes.L.confusions.8", "not a character of this class"),
    (('{B: "8"}', '{"3": "8"}'), 7, "countries.vn.classes.D.confusions.3", "already valid here"),
    (('["11-99"]', '["11-A9"]'), 5, "countries.vn.classes.P.values[0]", "neither a range"),
    (("vehicle: motorcycle", "vehicle: bicycle"), 10, "countries.vn.formats[1].vehicle",
     "expected one of any, car, motorcycle, got 'bicycle'"),
    (("    name: Viet Nam\n", ""), 2, "countries.vn", "required field name is missing"),
    (("  vn:", "  VN1:"), 2, "countries.VN1", "key: expected str matching regex"),
    (("- {name: motorbike", "- {name: car"), 10, "countries.vn.formats[1].name", "described twice"),
    (('{chars: "0123456789", values', '{chars: "0123456789x", values'), 5, "countries.vn.classes.P.chars",
     "expected plate characters A-Z 0-9, got '0123456789x'"),
    ((GOOD[GOOD.index("    formats:"):], "    formats: []\n"), 8, "countries.vn.formats",
     "expected array of length >= 1"),
])
def test_a_wrong_file_names_file_line_and_field(change, line, field, words):
    error = _error(GOOD.replace(*change))
    assert (error.path, error.line, error.field) == ("mine.yaml", line, field), str(error)
    assert words in error.reason
    assert str(error).startswith(f"mine.yaml:{line}: {field}: ")


def test_not_yaml_names_the_line():
    error = _error(GOOD.replace("    formats:", "    formats: [\n"))
    assert error.line is not None and "not valid YAML" in str(error)


def test_an_unknown_country_is_refused():
    with pytest.raises(FormatsError, match="no formats for xx"):
        parse(GOOD, "mine.yaml").expect(["vn", "xx"])


def test_settings_check_the_formats_file_and_the_countries(tmp_path: Path):
    assert parse_settings(Settings, {"PLATE_COUNTRIES": "sk, cz"}).plate_expectation().countries == ("sk", "cz")
    with pytest.raises(SettingError) as caught:
        parse_settings(Settings, {"PLATE_COUNTRIES": "vn, zz"})
    assert caught.value.variable == "PLATE_COUNTRIES" and "zz" in caught.value.reason
    bad = tmp_path / "formats.yaml"
    bad.write_text(GOOD.replace('"PPL-DDD.DD"', '"PPX-DDD.DD"'), encoding="utf-8")
    with pytest.raises(SettingError) as caught:
        parse_settings(Settings, {"PLATE_FORMATS_FILE": str(bad)})
    assert caught.value.variable == "PLATE_FORMATS_FILE"
    assert f"{bad}:9: countries.vn.formats[0].pattern:" in caught.value.reason
    with pytest.raises(SettingError) as caught:
        parse_settings(Settings, {"PLATE_FORMATS_FILE": str(tmp_path / "missing.yaml")})
    assert "missing.yaml: file not found" in caught.value.reason
