"""`roadwatch registry synth --plates`: demo plates are registered with synthetic owners."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from services.registry import synth


def test_pinned_plates_are_registered_first(tmp_path: Path) -> None:
    plates = tmp_path / "plates.txt"
    plates.write_text("# read in the demo clips\n30K-558.78, car\n29-b1 123.45,motorcycle\n", encoding="utf-8")
    out = io.StringIO()
    synth.write(out, 50, synth.load_province(synth.DEFAULT_PROVINCE), pinned=synth.read_plates(plates))
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 52
    assert [(r["plate"], r["vehicle_type"]) for r in rows[:2]] == [("30K-558.78", "car"), ("29-B1 123.45", "motorcycle")]
    assert all(r["owner_name"] for r in rows[:2])
    assert len({r["plate"].replace("-", "").replace(".", "").replace(" ", "") for r in rows}) == 52  # no clash with random ones


@pytest.mark.parametrize(("line", "message"), [("30K-558.78,tank", "vehicle type 'tank'"), ("XX-1,car", "not a Vietnamese plate")])
def test_a_bad_plates_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    plates = tmp_path / "plates.txt"
    plates.write_text(f"30K-558.78,car\n{line}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"plates.txt:2: .*{message}"):
        synth.read_plates(plates)
