"""Golden samples: every v1 message decodes, and old samples keep decoding as the contract grows.

Samples are only ever added, never edited: MANIFEST.sha256 pins each file, so an edit shows up
as a failing test instead of quietly rewriting what old producers sent.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import msgspec
import pytest

from proto import codec
from proto.v1 import BY_NAME, CONTRACT

GOLDEN = Path(__file__).parent / "golden"
SAMPLES = sorted(GOLDEN.rglob("*.json"))


def manifest() -> dict[str, str]:
    entries = {}
    for line in (GOLDEN / "MANIFEST.sha256").read_text().splitlines():
        digest, name = line.split("  ", 1)
        entries[name] = digest
    return entries


def test_every_message_has_a_golden_sample() -> None:
    names = {path.parent.name for path in SAMPLES}
    assert names == set(CONTRACT)  # events, and each request/reply endpoint's request and reply


def test_samples_are_never_edited() -> None:
    pinned = manifest()
    for path in SAMPLES:
        name = str(path.relative_to(GOLDEN))
        assert name in pinned, f"{name} is not in MANIFEST.sha256: add its line (samples are only added)"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == pinned[name], f"{name} was edited: add a new sample instead"
    assert set(pinned) == {str(path.relative_to(GOLDEN)) for path in SAMPLES}, "a pinned sample was deleted"


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_sample_decodes_and_reencodes(path: Path) -> None:
    kind = CONTRACT[path.parent.name]
    event = codec.decode(path.read_bytes(), kind)
    assert isinstance(event, kind)
    again = codec.decode(codec.encode(event), kind)
    assert again == event
    # Nothing in the sample is unknown to the Struct: a renamed field would silently vanish.
    assert json.loads(codec.encode(event)).keys() >= json.loads(path.read_bytes()).keys()


def test_unknown_fields_are_ignored_by_old_readers() -> None:
    path = GOLDEN / "camera_status" / "001.json"
    data = json.loads(path.read_bytes())
    data["field_added_in_a_later_release"] = {"x": 1}
    event = codec.decode(json.dumps(data).encode(), BY_NAME["camera_status"].type)
    assert event.camera_id == data["camera_id"]


@pytest.mark.parametrize(
    ("name", "change", "expected"),
    [
        ("camera_status", {"state": "sleeping"}, r"\$\.state"),
        ("camera_status", {"occurred_at": "2026-11-20T07:45:12"}, r"\$\.occurred_at"),  # no UTC offset
        ("violation_detected", {"camera_id": "cam.07"}, r"\$\.camera_id"),  # a dot would break subjects
        ("detection_made", {"plates": [{"box": {"x1": -1, "y1": 0, "x2": 1, "y2": 1}}]}, r"\$\.plates\[0\]\.box\.x1"),
        ("case_reviewed", {"decision": "rejected", "reason": None}, "rejected case needs a reason"),
    ],
)
def test_invalid_events_are_refused_with_the_field(name: str, change: dict, expected: str) -> None:
    data = json.loads(next((GOLDEN / name).glob("*.json")).read_bytes())
    data.update(change)
    with pytest.raises(msgspec.ValidationError, match=expected):
        codec.decode(json.dumps(data).encode(), BY_NAME[name].type)
