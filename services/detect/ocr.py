"""PP-OCRv4 text recognition and text detection (PaddleOCR models exported to ONNX).

The recogniser reads one text line; a Vietnamese motorbike plate is two lines, so callers cut
it first. Its alphabet is mostly Chinese: only Latin letters and digits mean anything on a
plate, so every emitted character also carries the best Latin alternative the model saw at
that step, which the plate normaliser uses for position-aware repairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from services.detect.sessions import ModelError, open_session

REC_HEIGHT = 48
REC_MIN_WIDTH = 160
PLATE_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True)
class CharRead:
    char: str  # upper-case letter or digit
    prob: float
    alternatives: tuple[tuple[str, float], ...]  # other plate characters at the same step, best first


@dataclass(frozen=True)
class LineRead:
    raw: str  # everything the model emitted, punctuation included
    chars: tuple[CharRead, ...]  # plate characters only

    @property
    def text(self) -> str:
        return "".join(c.char for c in self.chars)

    @property
    def confidence(self) -> float:
        return float(min((c.prob for c in self.chars), default=0.0))


class TextRecognizer:
    def __init__(self, model_path, intra_op_threads: int = 1, sha256: str = "") -> None:
        self.session = open_session(model_path, intra_op_threads, sha256)
        meta = self.session.get_modelmeta().custom_metadata_map
        if "character" not in meta:
            raise ModelError(f"recogniser {model_path} has no 'character' metadata (not a PP-OCR rec model?)")
        self.charset = ["<blank>", *meta["character"].splitlines(), " "]
        self.input_name = self.session.get_inputs()[0].name
        try:
            probe = self.session.run(None, {self.input_name: np.zeros((1, 3, REC_HEIGHT, REC_MIN_WIDTH), np.float32)})[0]
        except Exception as exc:
            raise ModelError(f"recogniser {model_path} failed on a 48-pixel line: {exc}") from exc
        if probe.ndim != 3 or probe.shape[2] != len(self.charset):
            raise ModelError(
                f"recogniser {model_path} outputs {probe.shape}, expected (N, T, {len(self.charset)}) for its character list"
            )
        upper = [c.upper() if len(c) == 1 else "" for c in self.charset]
        self._plate_idx = np.array([i for i, c in enumerate(upper) if c in PLATE_CHARS], dtype=np.int64)
        self._plate_char = [upper[i] for i in self._plate_idx]

    def _tensor(self, lines: list[np.ndarray]) -> np.ndarray:
        widths = [max(REC_MIN_WIDTH, math.ceil(REC_HEIGHT * l.shape[1] / max(l.shape[0], 1))) for l in lines]
        batch = np.zeros((len(lines), 3, REC_HEIGHT, max(widths)), dtype=np.float32)
        for i, line in enumerate(lines):
            w = min(widths[i], math.ceil(REC_HEIGHT * line.shape[1] / max(line.shape[0], 1)))
            resized = cv2.resize(line, (max(w, 1), REC_HEIGHT), interpolation=cv2.INTER_LINEAR)
            batch[i, :, :, : resized.shape[1]] = (resized.astype(np.float32) / 255.0 - 0.5).transpose(2, 0, 1) / 0.5
        return batch

    def read(self, lines: list[np.ndarray]) -> list[LineRead]:
        """Read BGR line images one run each: a batch pads every line to the widest, and with
        one thread per session that costs more than it saves (measured 27 against 24 CPU ms for
        a plate's three candidate lines)."""
        return [self._decode(self.session.run(None, {self.input_name: self._tensor([line])})[0][0]) for line in lines]

    def _decode(self, probs: np.ndarray) -> LineRead:
        """Greedy CTC: argmax per step, collapse repeats, drop blanks."""
        best = probs.argmax(axis=1)
        raw, chars = [], []
        previous = 0
        for t, idx in enumerate(best):
            if idx != 0 and idx != previous:
                symbol = self.charset[idx]
                raw.append(symbol)
                upper = symbol.upper()
                if upper in PLATE_CHARS:
                    latin = probs[t, self._plate_idx]
                    alts: list[tuple[str, float]] = []
                    for j in np.argsort(-latin)[:6]:
                        ch = self._plate_char[j]  # 's' and 'S' are one plate character
                        if ch != upper and all(ch != a for a, _ in alts):
                            alts.append((ch, float(latin[j])))
                    chars.append(CharRead(upper, float(probs[t, idx]), tuple(alts[:2])))
            previous = idx
        return LineRead("".join(raw), tuple(chars))


class TextDetector:
    """DB text detector: probability map → quadrilaterals of text lines."""

    def __init__(self, model_path, intra_op_threads: int = 1, limit_side: int = 480, sha256: str = "") -> None:
        self.session = open_session(model_path, intra_op_threads, sha256)
        self.input_name = self.session.get_inputs()[0].name
        self.limit_side = limit_side
        try:
            out = self.session.run(None, {self.input_name: np.zeros((1, 3, 64, 64), np.float32)})[0]
        except Exception as exc:
            raise ModelError(f"text detector {model_path} failed on a 64x64 input: {exc}") from exc
        if out.ndim != 4 or out.shape[1] != 1:
            raise ModelError(f"text detector {model_path} outputs {out.shape}, expected (N, 1, H, W)")

    def detect(self, image: np.ndarray, thresh: float = 0.3, box_thresh: float = 0.5, unclip: float = 1.6) -> list[np.ndarray]:
        h, w = image.shape[:2]
        r = min(1.0 * self.limit_side / max(h, w), 4.0)
        nh, nw = max(32, round(h * r / 32) * 32), max(32, round(w * r / 32) * 32)
        resized = cv2.resize(image, (nw, nh))
        tensor = ((resized.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None]
        prob = self.session.run(None, {self.input_name: np.ascontiguousarray(tensor)})[0][0, 0]
        mask = (prob > thresh).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        quads = []
        for contour in contours:
            if len(contour) < 4:
                continue
            x, y, cw, ch = cv2.boundingRect(contour)
            region = np.zeros((ch, cw), np.uint8)
            cv2.fillPoly(region, [contour - [x, y]], 1)
            if region.sum() == 0 or float(prob[y : y + ch, x : x + cw][region > 0].mean()) < box_thresh:
                continue
            rect = cv2.minAreaRect(contour)
            (cx, cy), (rw, rh), angle = rect
            if min(rw, rh) < 3:
                continue
            # DB "unclip": grow the shrunk text kernel by area * ratio / perimeter on every side.
            distance = rw * rh * unclip / (2 * (rw + rh))
            quad = cv2.boxPoints(((cx, cy), (rw + 2 * distance, rh + 2 * distance), angle))
            quad[:, 0] *= w / nw
            quad[:, 1] *= h / nh
            quads.append(order_corners(quad))
        return quads


def order_corners(points: np.ndarray) -> np.ndarray:
    """Top-left, top-right, bottom-right, bottom-left."""
    points = np.asarray(points, dtype=np.float32)
    s = points.sum(axis=1)
    d = points[:, 1] - points[:, 0]
    return np.array([points[s.argmin()], points[d.argmin()], points[s.argmax()], points[d.argmax()]], dtype=np.float32)
