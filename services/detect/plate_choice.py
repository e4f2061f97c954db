"""Which of several plate reads on a vehicle is its plate.

The plate detector also fires on a dealer's frame, a sticker, a slogan, a phone number
painted on the body or the date burnt into the picture, sometimes more confidently than on
the plate. A plate is inside the
vehicle, has a plate's proportions for its number of lines, and fits an expected format; the
detector's and the recogniser's confidences only break what those leave open. Every read is
kept, best first, so that the others stay available as alternatives.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from services.detect.plates import PlateRead

Box = tuple[float, float, float, float]

# Width over height of a rectified plate, by number of lines: one-line plates run from the
# US 2:1 (30 x 15 cm) to the EU 4.7:1 (52 x 11 cm) and Vietnamese 4.3:1 (47 x 11 cm); two-line
# plates from the Vietnamese motorbike 1.36:1 (19 x 14 cm) to a US plate read as two lines.
ASPECT = {"one_line": (1.6, 6.0), "two_line": (0.9, 2.4)}
FORMAT_WEIGHT = 2.0  # fits a format with a fixed structure (a Vietnamese or Slovak plate)
FREE_FORM_WEIGHT = 0.7  # fits only a free form (any 2-8 letters and digits: a word on a frame does too)
AS_READ_WEIGHT = 0.3  # fits without any repair
FOREIGN_WEIGHT = 1.0  # fits, as read, a format of a country not expected: a plate all the same
ASPECT_WEIGHT = 2.0  # per unit of log-distance outside the plate's band
OUTSIDE_VEHICLE = -10.0
# Eight or more digits and nothing else: a phone number painted on the body, not a plate
# (Vietnamese plates all carry a series letter; a free-form plate of only digits is rare).
PHONE_NUMBER = re.compile(r"[0-9]{8,}")
PHONE_NUMBER_WEIGHT = -1.5
# A date or a time as cameras burn them into frames (2014-05-01, 2014:04:28, 12:30:05).
DATE_OR_TIME = re.compile(r"(?:\d{4}\s*[-:/.]\s*\d{1,2}\s*[-:/.]\s*\d{1,2}|\d{1,2}\s*:\s*\d{2}(?:\s*:\s*\d{2})?)")
DATE_OR_TIME_WEIGHT = -3.0


def aspect(corners) -> float:
    """Width over height of the quadrilateral (TL, TR, BR, BL)."""
    c = np.asarray(corners, dtype=np.float64)
    width = (np.linalg.norm(c[1] - c[0]) + np.linalg.norm(c[2] - c[3])) / 2
    height = (np.linalg.norm(c[3] - c[0]) + np.linalg.norm(c[2] - c[1])) / 2
    return float(width / max(height, 1e-6))


def inside(box: Box, vehicle: Box) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return vehicle[0] <= cx <= vehicle[2] and vehicle[1] <= cy <= vehicle[3]


def plate_score(read: "PlateRead", vehicle: Box | None = None) -> float:
    plate = read.plate
    score = 0.0
    if plate.format_valid:
        score += FREE_FORM_WEIGHT if plate.free_form else FORMAT_WEIGHT
        score += AS_READ_WEIGHT if plate.edits == 0 else 0.0
    elif plate.foreign:
        score += FOREIGN_WEIGHT
    low, high = ASPECT.get(plate.layout, ASPECT["one_line"])
    ratio = aspect(read.corners)
    if ratio < low:
        score -= ASPECT_WEIGHT * math.log(low / ratio)
    elif ratio > high:
        score -= ASPECT_WEIGHT * math.log(ratio / high)
    score += min(max(read.score, 0.0), 1.0) + min(max(plate.confidence, 0.0), 1.0)
    if PHONE_NUMBER.fullmatch("".join(ch for ch in plate.text if ch.isalnum())):
        score += PHONE_NUMBER_WEIGHT
    if DATE_OR_TIME.search(plate.raw):
        score += DATE_OR_TIME_WEIGHT
    if vehicle is not None and not inside(read.box, vehicle):
        score += OUTSIDE_VEHICLE
    return score


def choose(reads: list["PlateRead"], vehicle: Box | None = None) -> list["PlateRead"]:
    """The reads best first; with a vehicle box, those outside it come last."""
    return sorted(reads, key=lambda r: -plate_score(r, vehicle))
