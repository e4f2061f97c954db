"""Exact-match plate accuracy on a labelled plate set, per subset, raw and repaired.

Each subset is read expecting its own countries' formats, as a camera there would be set up
(Vietnamese crops: vn; openalpr EU photos: sk, cz, pl; US photos: us). Vietnamese images are
plate crops and go through `roadwatch plate`'s code path; openalpr images are whole vehicles:
every plate candidate the detector finds is read and the best is chosen (a plate's
proportions, an expected format, then the confidences).

RAW is that same path with the repair off (a read is taken as the recogniser gave it);
REPAIRED is the format-aware repair of the expected countries. Labels and reads are compared
on [0-9A-Z] only. CHECKED is REPAIRED against the labels with the label errors found by looking
at the images (bench/plate_label_checks.csv) put right; the other columns use the labels as given.

    make eval-plates       (= MODELS_DIR=../shared/models python bench/eval_plates.py --shared ../shared)
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.detect.pipeline import Pipeline  # noqa: E402
from services.detect.plate_formats import Expected  # noqa: E402
from services.detect.plate_repair import plate_key  # noqa: E402
from services.detect.plates import PlateRead  # noqa: E402
from services.detect.settings import Settings  # noqa: E402
from services.runtime.settings import load  # noqa: E402

# The countries a camera filming each subset would expect.
COUNTRIES = {"vn_car": ["vn"], "vn_ndata": ["vn"], "vn_xemay": ["vn"], "eu": ["sk", "cz", "pl"], "us": ["us"], "br": ["br"]}
LABEL_CHECKS = Path(__file__).with_name("plate_label_checks.csv")


def checked_labels() -> dict[str, str]:
    """file -> what the image shows, for labels found wrong by eye."""
    with open(LABEL_CHECKS, newline="", encoding="utf-8") as fh:
        return {row["file"]: row["seen_on_image"] for row in csv.DictReader(fh)}


def group_of(name: str) -> str:
    if name.startswith("vn_"):
        return "vn_xemay" if "xemay" in name else "vn_car" if "CarLongPlate" in name else "vn_ndata"
    for prefix, group in (("openalpr_eu", "eu"), ("openalpr_us", "us"), ("openalpr_br", "br")):
        if name.startswith(prefix):
            return group
    return "other"


def read_image(pipeline: Pipeline, name: str, image, expected: Expected) -> PlateRead | None:
    """The plate read from one labelled image, as the project would choose it."""
    if name.startswith("vn_"):
        return pipeline.read_plate_image(image, expected)
    # Each photo is of one vehicle, often with others cut at the edges: every plate candidate
    # in it competes (no vehicle box; the box rule is tested in tests/detect).
    reads = pipeline.reader.read_all(image, None, expected)
    return reads[0] if reads else None


def measure(pipeline: Pipeline, data: Path):
    """Per image: (file, group, label, raw read, repaired read, seconds for the repaired read)."""
    with open(data / "labels.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        name, group = row["file"], group_of(row["file"])
        image = cv2.imread(str(data / name))
        if image is None:
            raise SystemExit(f"cannot read image {data / name}")
        expected = pipeline.reader.expected.expect(COUNTRIES.get(group, ["vn"]))
        raw = read_image(pipeline, name, image, expected.without_repair())
        started = time.perf_counter()
        repaired = read_image(pipeline, name, image, expected)
        elapsed = time.perf_counter() - started
        yield name, group, row["plate_text"], raw, repaired, elapsed


def _text(read: PlateRead | None) -> str:
    return read.plate.text if read is not None else "<no plate found>"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"), help="the shared folder (data/plates)")
    parser.add_argument("--data", type=Path, help="folder with labels.csv (default: SHARED/data/plates)")
    parser.add_argument("--show-errors", action="store_true", help="list every image the repaired read gets wrong")
    args = parser.parse_args(argv)
    args.data = args.data or args.shared / "data" / "plates"
    # The models of ../shared unless MODELS_DIR says otherwise (the repository's models/ holds
    # only the project's own detector).
    settings = load(Settings, {"MODELS_DIR": str(args.shared / "models"), **os.environ}, service="eval-plates")
    pipeline = Pipeline.from_settings(settings)
    counts: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0.0, 0])  # raw ok, repaired ok, n, seconds, checked ok
    errors = []
    checks = checked_labels()
    for name, group, label, raw, repaired, elapsed in measure(pipeline, args.data):
        want = plate_key(label)
        ok_raw = raw is not None and plate_key(raw.plate.text) == want
        ok = repaired is not None and plate_key(repaired.plate.text) == want
        c = counts[group]
        c[0] += ok_raw
        c[1] += ok
        c[2] += 1
        c[3] += elapsed
        c[4] += repaired is not None and plate_key(repaired.plate.text) == plate_key(checks.get(name, label))
        if not ok or not ok_raw:
            errors.append((name, label, _text(raw), _text(repaired)))
    print(f"{'subset':<11} {'countries':<10} {'n':>4} {'RAW':>13} {'REPAIRED':>13} {'CHECKED':>13} {'ms/plate':>9}")
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0.0, 0])
    for group in sorted(counts):
        _row(group, ",".join(COUNTRIES.get(group, ["vn"])), counts[group])
        top = "vietnamese" if group.startswith("vn") else group
        for i in range(5):
            totals[top][i] += counts[group][i]
    print()
    for group in ("vietnamese", "eu", "us", "br"):
        if group in totals:
            _row(group, ",".join(COUNTRIES.get(group, ["vn"])), totals[group])
    print("\nRAW: the same reading with the repair off; REPAIRED: repaired toward the expected countries' formats;")
    print(f"CHECKED: REPAIRED against the labels with the {len(checks)} label errors seen on the images put right ({LABEL_CHECKS.name}).")
    print("Vietnamese: plate crops; EU/US: whole-vehicle photos, the best of the plate candidates. [0-9A-Z] compared.")
    if args.show_errors:
        print()
        for name, label, raw, repaired in errors:
            print(f"{name}\tlabel={label}\traw={raw}\trepaired={repaired}")
    return 0


def _row(group: str, countries: str, c: list[float]) -> None:
    raw, ok, n, secs, checked = c
    print(f"{group:<11} {countries:<10} {int(n):>4} {int(raw):>5} {raw / n:>6.1%} {int(ok):>5} {ok / n:>6.1%} "
          f"{int(checked):>5} {checked / n:>6.1%} {secs / n * 1000:>9.1f}")


if __name__ == "__main__":
    sys.exit(main())
