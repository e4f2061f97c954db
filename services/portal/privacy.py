"""The public copy of an evidence image (Law 91/2025 on personal data: show no more than needed).

The public lookup shows the violating vehicle and its plate; everything else in the picture
(other vehicles and their plates, people, faces) is blurred beyond recognition. The copy is
derived on each request from the original, which stays unchanged in the evidence store under its
SHA-256 for the police and the court; the public copy is never stored and never carries that
hash as its own.

- `plate_crop`: the violating vehicle's plate alone: shown as it is.
- `frame` / `overlay` with the vehicle's box (`EvidenceRef.subject_box`, set by track): the box,
  widened by a margin, is kept; the rest is pixelated and blurred.
- Without a box there is no public copy (the image is not listed publicly).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

MARGIN = 0.08      # of the box's size, on each side: the vehicle's edges stay sharp
BLOCK = 24         # pixelation block, in pixels of a 1920-wide image (scaled to the image)
JPEG_QUALITY = 88


class NoPublicCopy(Exception):
    """This image has no public copy (no box to keep, or not an image)."""


def has_public_copy(ref: dict[str, Any]) -> bool:
    return ref["kind"] == "plate_crop" or (ref["kind"] in ("frame", "overlay") and bool(ref.get("subject_box")))


def keep_region(box: dict[str, float], width: int, height: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box["x1"], box["y1"], box["x2"], box["y2"]
    mx, my = (x2 - x1) * MARGIN, (y2 - y1) * MARGIN
    return (max(0, int(x1 - mx)), max(0, int(y1 - my)), min(width, int(x2 + mx + 0.999)),
            min(height, int(y2 + my + 0.999)))


def obscure(image: np.ndarray) -> np.ndarray:
    """Pixelate, then blur: no plate character or face survives, the scene's layout does."""
    h, w = image.shape[:2]
    block = max(8, int(BLOCK * w / 1920))
    small = cv2.resize(image, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA)
    coarse = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    k = block | 1
    return cv2.GaussianBlur(coarse, (k, k), 0)


def public_copy(data: bytes, ref: dict[str, Any]) -> bytes:
    """The JPEG the public sees for this evidence object."""
    if ref["kind"] == "plate_crop":
        return data
    if not has_public_copy(ref):
        raise NoPublicCopy(ref["kind"])
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise NoPublicCopy("not an image")
    h, w = image.shape[:2]
    x1, y1, x2, y2 = keep_region(ref["subject_box"], w, h)
    out = obscure(image)
    if x2 > x1 and y2 > y1:
        out[y1:y2, x1:x2] = image[y1:y2, x1:x2]
    ok, jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise NoPublicCopy("could not encode")
    return jpeg.tobytes()
