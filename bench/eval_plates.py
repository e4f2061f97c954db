"""Exact-match plate accuracy on a labelled plate set, per group, and the time per plate.

Vietnamese images are plate crops and go through `roadwatch plate`'s code path (the read is
the normalised text); openalpr EU/US images are whole vehicles and go through the frame
pipeline's plate path (detector → rectified crop → recogniser), scored on the raw letters and
digits since they are not Vietnamese plates. Labels and reads are compared on [0-9A-Z] only.

    make eval-plates       (= MODELS_DIR=../shared/models python bench/eval_plates.py --shared ../shared)
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.detect.pipeline import Pipeline  # noqa: E402
from services.detect.settings import Settings  # noqa: E402
from services.detect.vn_plate import plate_key  # noqa: E402
from services.runtime.settings import load  # noqa: E402


def group_of(name: str) -> str:
    if name.startswith("vn_"):
        return "vn_xemay" if "xemay" in name else "vn_car" if "CarLongPlate" in name else "vn_ndata"
    return "eu" if name.startswith("openalpr_eu") else "us" if name.startswith("openalpr_us") else "other"


def read_one(pipeline: Pipeline, path: Path) -> tuple[str, str]:
    """(compared text, shown text) for one image."""
    image = cv2.imread(str(path))
    if image is None:
        raise SystemExit(f"cannot read image {path}")
    if path.name.startswith("vn_"):
        read = pipeline.read_plate_image(image)
        return plate_key(read.plate.text), read.plate.text
    assert pipeline.reader.detector is not None
    found = pipeline.reader.detector.detect(image)
    if not found:
        return "", "<no plate found>"
    best = max(found, key=lambda f: f.score)
    text = pipeline.reader.read_quad(image, best.corners)
    return plate_key(text.raw), text.raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"), help="the shared folder (data/plates)")
    parser.add_argument("--data", type=Path, help="folder with labels.csv (default: SHARED/data/plates)")
    parser.add_argument("--show-errors", action="store_true")
    args = parser.parse_args(argv)
    args.data = args.data or args.shared / "data" / "plates"
    settings = load(Settings, service="eval-plates")
    pipeline = Pipeline.from_settings(settings)
    # Baseline for the times: one bare recogniser run on a 48x320 line, measured in this run.
    line = np.zeros((1, 3, 48, 320), np.float32)
    rec = pipeline.reader.recognizer
    runs = []
    for _ in range(23):
        started = time.perf_counter()
        rec.session.run(None, {rec.input_name: line})
        runs.append(time.perf_counter() - started)
    bare_ms = statistics.median(runs[3:]) * 1000
    counts: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    errors = []
    with open(args.data / "labels.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        path = args.data / row["file"]
        started = time.perf_counter()
        got, shown = read_one(pipeline, path)
        elapsed = time.perf_counter() - started
        group = group_of(row["file"])
        ok = got == plate_key(row["plate_text"])
        counts[group][0] += ok
        counts[group][1] += 1
        counts[group][2] += elapsed
        if not ok:
            errors.append((row["file"], row["plate_text"], shown))
    print(f"{'group':<10} {'exact':>7} {'n':>5} {'accuracy':>9} {'ms/plate':>9} {'x rec':>6}")
    totals = defaultdict(lambda: [0, 0, 0.0])
    for group in sorted(counts):
        ok, n, secs = counts[group]
        print(f"{group:<10} {int(ok):>7} {int(n):>5} {ok / n:>9.1%} {secs / n * 1000:>9.1f} {secs / n * 1000 / bare_ms:>6.1f}")
        top = "vietnamese" if group.startswith("vn") else group
        for i in range(3):
            totals[top][i] += counts[group][i]
    print()
    for group in ("vietnamese", "eu", "us"):
        if group in totals:
            ok, n, secs = totals[group]
            print(f"{group:<10} {int(ok):>7} {int(n):>5} {ok / n:>9.1%} {secs / n * 1000:>9.1f} {secs / n * 1000 / bare_ms:>6.1f}")
    print(f"\nx rec = time per plate over one bare recogniser run on a 48x320 line in this run ({bare_ms:.1f} ms).")
    print("Vietnamese: crops, normalised text compared; EU/US: whole-vehicle photos (plate detector + recogniser),")
    print("raw letters and digits compared. Labels are compared on [0-9A-Z] only.")
    if args.show_errors:
        print()
        for name, label, shown in errors:
            print(f"{name}\tlabel={label}\tread={shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
