"""runtime.config: YAML into msgspec Structs, every mistake as file:line: field: reason."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
import pytest

from services.runtime import config


class Location(msgspec.Struct, forbid_unknown_fields=True):
    latitude: Annotated[float, msgspec.Meta(ge=-90, le=90)]


class Camera(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    fps: Annotated[float, msgspec.Meta(gt=0, le=30)] = 5.0
    location: Location | None = None

    def __post_init__(self) -> None:
        if self.id == "bad":
            raise ValueError("id may not be 'bad'")
        if self.id == "slow" and self.fps > 1:
            raise config.FieldError("fps", "a slow camera is at most 1 fps")


class Unit(msgspec.Struct, forbid_unknown_fields=True):
    email: str


Email = Annotated[str, msgspec.Meta(pattern=r"^[^@\s]+@[^@\s]+$", description="an e-mail address")]


class File(msgspec.Struct, forbid_unknown_fields=True):
    cameras: list[Camera] = []
    units: dict[str, Unit] = {}
    limits: dict[str, Annotated[int, msgspec.Meta(ge=0)]] = {}
    groups: dict[str, dict[str, Annotated[int, msgspec.Meta(ge=0)]]] = {}
    roles: dict[str, Literal["police", "transport"]] = {}
    points: dict[str, tuple[float, float]] = {}
    codes: dict[Annotated[str, msgspec.Meta(pattern="^[a-z]+$")], int] = {}
    contact: Email | None = None
    names: list[config.Text] = []
    since: Annotated[datetime, msgspec.Meta(tz=True)] | None = None


@pytest.mark.parametrize(("text", "message"), [
    ("cameras:\n  - id: a\n    fps: 40\n", "f.yaml:3: cameras[0].fps: expected float <= 30.0, got 40"),
    ("cameras:\n  - id: a\n  - id: b\n    jpeg_qualty: 3\n", "f.yaml:4: cameras[1].jpeg_qualty: unknown field"),
    ("cameras:\n  - id: a\n    location:\n      latitude: 100\n",
     "f.yaml:4: cameras[0].location.latitude: expected float <= 90.0, got 100"),
    ("units:\n  u1:\n    email: x\n  u2:\n    emial: y\n", "f.yaml:5: units.u2.emial: unknown field"),
    ("units:\n  u1: {email: x}\n  u2: {email: 3}\n", "f.yaml:3: units.u2.email: expected str, got int"),
    ("cameras:\n  - id: a\n  - id: bad\n", "f.yaml:3: cameras[1]: id may not be 'bad'"),
    ("cameras:\n  - fps: 3\n", "f.yaml:2: cameras[0]: required field id is missing"),
    ("cameras:\n  - id: slow\n    fps: 2\n", "f.yaml:3: cameras[0].fps: a slow camera is at most 1 fps"),
    ("cameras: [\n", "f.yaml:2: not valid YAML: expected the node content, but found '<stream end>'"),
    # the top level: a key, the document's type, an empty file
    ("cameras: []\ncamera: []\n", "f.yaml:2: camera: unknown field"),
    ("- cameras\n", "f.yaml:1: expected object, got array"),
    ("", "f.yaml:1: the file is empty"),
    ("# nothing yet\n", "f.yaml:1: the file is empty"),
    # a mapping's entry is found, and keeps its constraint
    ("limits:\n  a: 1\n  b: -1\n", "f.yaml:3: limits.b: expected int >= 0, got -1"),
    ("groups:\n  a: {x: 1}\n  b:\n    y: 2\n    z: -3\n", "f.yaml:5: groups.b.z: expected int >= 0, got -3"),
    ("roles:\n  a: police\n  b: sheriff\n", "f.yaml:3: roles.b: expected one of police, transport, got 'sheriff'"),
    ("points:\n  a: [1, 2]\n  b: [1]\n", "f.yaml:3: points.b: expected array of length 2, got 1"),
    ("codes:\n  ab: 1\n  A1: 2\n", "f.yaml:3: codes.A1: key: expected str matching regex '^[a-z]+$', got 'A1'"),
    # a described type is named by its description
    ("contact: x\n", "f.yaml:1: contact: expected an e-mail address, got 'x'"),
    ("contact: 3\n", "f.yaml:1: contact: expected an e-mail address, got 3"),
    ("names: [a, '  ']\n", "f.yaml:1: names[1]: expected a non-empty text, got ''"),
    ("since: 2026-11-28T07:00:00\n", "f.yaml:1: since: expected datetime with a timezone component, got 2026-11-28T07:00:00"),
])
def test_a_bad_file_is_named_by_line_and_field(text: str, message: str) -> None:
    with pytest.raises(config.ConfigFileError) as caught:
        config.convert(config.parse_text(text, "f.yaml"), File)
    assert str(caught.value) == message


def test_a_good_file_decodes_and_keeps_its_lines(tmp_path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text("cameras:\n  - id: a\n    location: {latitude: 10.5}\n  - id: b\n", encoding="utf-8")
    value, doc = config.load(path, File)
    assert [c.id for c in value.cameras] == ["a", "b"]
    assert value.cameras[0].location == Location(latitude=10.5)
    assert doc.line(("cameras", 1, "id")) == 4
    error = config.ConfigFileError.at(doc, ("cameras", 1, "id"), "duplicate id")
    assert str(error) == f"{path}:4: cameras[1].id: duplicate id"


def test_a_missing_file_says_so(tmp_path) -> None:
    with pytest.raises(config.ConfigFileError, match="file not found"):
        config.load(tmp_path / "nope.yaml", File)


def test_text_is_stripped() -> None:
    value = config.convert(config.parse_text("names: [' a ', b]\ncontact: x@y\n", "f.yaml"), File)
    assert value.names == ["a", "b"] and value.contact == "x@y"


def test_a_value_given_twice_is_named_with_its_first_line() -> None:
    doc = config.parse_text("cameras:\n  - id: a\n  - id: b\n  - id: a\n", "f.yaml")
    value = config.convert(doc, File)
    with pytest.raises(config.ConfigFileError) as caught:
        config.unique(doc, [(("cameras", i, "id"), c.id) for i, c in enumerate(value.cameras)],
                      "{value!r} is listed twice (first at line {line})")
    assert str(caught.value) == "f.yaml:4: cameras[2].id: 'a' is listed twice (first at line 2)"
