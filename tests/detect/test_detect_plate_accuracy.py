"""Plate reading on the whole labelled set, once, with a floor per subset just below what was
measured (bench/eval_plates.py prints the same figures), so a regression fails the suite."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import cv2
import pytest

from services.detect.vn_plate import plate_key

# measured 2026-11-29: vn_car 48/50, vn_ndata 49/50, vn_xemay 91/100, eu 43/54, us 73/111
FLOORS = {"vn_car": 0.94, "vn_ndata": 0.94, "vn_xemay": 0.88, "eu": 0.77, "us": 0.63}


def group_of(name: str) -> str:
    if name.startswith("vn_"):
        return "vn_xemay" if "xemay" in name else "vn_car" if "CarLongPlate" in name else "vn_ndata"
    return "eu" if name.startswith("openalpr_eu") else "us"


@pytest.fixture(scope="module")
def accuracy(pipeline, shared_dir: Path) -> dict[str, float]:
    folder = shared_dir / "data" / "plates"
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    with open(folder / "labels.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            image = cv2.imread(str(folder / row["file"]))
            group = group_of(row["file"])
            if group.startswith("vn_"):
                got = plate_key(pipeline.read_plate_image(image).plate.text)
            else:
                found = pipeline.reader.detector.detect(image)
                best = max(found, key=lambda f: f.score) if found else None
                got = plate_key(pipeline.reader.read_quad(image, best.corners).raw) if best else ""
            hits[group][0] += got == plate_key(row["plate_text"])
            hits[group][1] += 1
    return {group: ok / n for group, (ok, n) in hits.items()}


@pytest.mark.parametrize("group", sorted(FLOORS))
def test_exact_match_floor(accuracy: dict[str, float], group: str):
    assert accuracy[group] >= FLOORS[group], f"{group}: {accuracy[group]:.1%} < floor {FLOORS[group]:.0%}"


def test_vietnamese_reads_are_formatted(pipeline, shared_dir: Path):
    folder = shared_dir / "data" / "plates"
    car = pipeline.read_plate_image(cv2.imread(str(folder / "vn_5CarLongPlate555.jpg"))).plate
    assert (car.text, car.layout, car.format_valid) == ("51F-220.29", "one_line", True)
    bike = pipeline.read_plate_image(cv2.imread(str(folder / "vn_ndata632.jpg")))
    # a wide shot, not a tight crop: the plate is found inside it by the text detector
    assert (bike.plate.text, bike.plate.layout, bike.source) == ("15-MD1 453.66", "two_line", "text_detector")
    assert bike.box != (0.0, 0.0, *cv2.imread(str(folder / "vn_ndata632.jpg")).shape[1::-1])
