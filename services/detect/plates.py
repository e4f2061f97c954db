"""Plate finding and reading.

The bundled plate detector (HyperLPR's YOLOv5-face export) gives four corner points, so a
perspective warp turns a slanted plate into an upright crop the line recogniser can read.
Vietnamese motorbike plates are two lines; the recogniser reads one, so squarish crops are cut
into halves. The detector's own 1-/2-line class is less reliable than the crop's aspect
ratio, and in the ambiguous middle both readings are tried and the one that fits the plate
grammar wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from services.detect.nms import nms
from services.detect.ocr import LineRead, TextDetector, TextRecognizer, order_corners
from services.detect.sessions import ModelError, open_session, static_hw
from services.detect.vehicles import letterbox
from services.detect.plate_formats import Expected, load as load_formats
from services.detect.plate_repair import PlateText, evidence, normalise

TWO_LINE_BELOW = 2.0  # width / height under which a plate is read as two lines
ONE_LINE_ABOVE = 3.2  # over which it is read as one line; in between, both are tried
BAND_TRIM = 0.15  # share of the height cut above and below for the middle-band reading
BAND_MIN_HEIGHT = 24  # a smaller crop has no readable band: skip the extra recogniser run
MAX_CANDIDATES = 6  # plate detections read per image, most confident first


@dataclass(frozen=True)
class PlateBox:
    box: np.ndarray  # (4,) x1, y1, x2, y2
    corners: np.ndarray  # (4, 2) TL, TR, BR, BL
    score: float
    two_line_class: bool  # the detector's own opinion, kept for diagnostics


@dataclass(frozen=True)
class PlateRead:
    box: tuple[float, float, float, float]
    corners: tuple[tuple[float, float], ...]
    plate: PlateText
    score: float  # detector score (1.0 for a crop given by the caller)
    source: str  # "plate_detector" | "text_detector" | "crop"


class PlateDetector:
    def __init__(self, model_path, conf: float = 0.5, iou: float = 0.5, intra_op_threads: int = 1, sha256: str = "") -> None:
        self.session = open_session(model_path, intra_op_threads, sha256)
        self.input_name = self.session.get_inputs()[0].name
        self.size = static_hw(self.session, (640, 640))
        self.conf, self.iou = conf, iou
        try:
            out = self.session.run(None, {self.input_name: np.zeros((1, 3, *self.size), np.float32)})
        except Exception as exc:
            raise ModelError(f"plate model {model_path} failed on a {self.size} input: {exc}") from exc
        if len(out) != 1 or out[0].ndim != 3 or out[0].shape[2] != 15:
            raise ModelError(
                f"plate model {model_path} outputs {[o.shape for o in out]}, expected one (1, N, 15) "
                "[cx, cy, w, h, obj, 4 corners, p_single, p_double] output"
            )

    def preprocess(self, image: np.ndarray):
        canvas, lb = letterbox(image, self.size, centred=True, fill=0)
        tensor = canvas[:, :, ::-1].astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        return np.ascontiguousarray(tensor), lb

    def run(self, tensor: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: tensor})[0]

    def postprocess(self, output: np.ndarray, lb, image_hw) -> list[PlateBox]:
        pred = output[0]
        obj = pred[:, 4]
        cls = pred[:, 13:15]
        score = obj * cls.max(axis=1)
        keep = (obj > self.conf) & (score > self.conf)
        pred, score, cls = pred[keep], score[keep], cls[keep]
        if not len(pred):
            return []
        half = pred[:, 2:4] / 2
        boxes = np.concatenate([pred[:, :2] - half, pred[:, :2] + half], axis=1)
        order = nms(boxes, score, self.iou)
        h, w = image_hw
        shift = np.array([lb.pad_x, lb.pad_y], dtype=np.float32)
        out = []
        for i in order:
            box = ((boxes[i].reshape(2, 2) - shift) / lb.scale).ravel()
            corners = (pred[i, 5:13].reshape(4, 2) - shift) / lb.scale
            box = np.clip(box, 0, [w, h, w, h])
            corners = np.clip(corners, 0, [w, h])
            out.append(PlateBox(box.astype(np.float32), corners.astype(np.float32), float(score[i]), bool(cls[i, 1] > cls[i, 0])))
        return out

    def detect(self, image: np.ndarray) -> list[PlateBox]:
        tensor, lb = self.preprocess(image)
        return self.postprocess(self.run(tensor), lb, image.shape[:2])


def rectify(image: np.ndarray, corners: np.ndarray, margin: float = 0.04) -> np.ndarray:
    """Warp the quadrilateral to an upright rectangle, with a small margin around the plate."""
    tl, tr, br, bl = corners.astype(np.float32)
    width = max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl))
    height = max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr))
    width, height = max(int(round(width)), 8), max(int(round(height)), 4)
    mx, my = width * margin, height * margin
    target = np.array([[mx, my], [mx + width, my], [mx + width, my + height], [mx, my + height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(np.array([tl, tr, br, bl]), target)
    return cv2.warpPerspective(image, matrix, (int(round(width + 2 * mx)), int(round(height + 2 * my))), borderMode=cv2.BORDER_REPLICATE)


def split_row(crop: np.ndarray) -> int:
    """Row between the two text lines: the emptiest row of ink near the middle.

    A fixed 50 % cut slices characters when the plate sits off-centre in its crop; the gap
    between the lines is where the fewest dark pixels are (Otsu decides what dark is).
    """
    h = crop.shape[0]
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    _, ink = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    w = ink.shape[1]
    rows = ink[:, int(w * 0.1) : int(w * 0.9)].mean(axis=1)
    lo, hi = int(h * 0.38), int(h * 0.62)
    if hi - lo < 2:
        return h // 2
    window = np.convolve(rows, np.ones(3) / 3, mode="same")[lo:hi]
    centre_bias = np.abs(np.arange(lo, hi) - h / 2) / h * 0.2
    return int(lo + np.argmin(window + centre_bias))


def _halves(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = crop.shape[0]
    cut = split_row(crop)
    pad = int(round(h * 0.02))
    return crop[: cut + pad], crop[max(cut - pad, 0) :]


def _better(a: PlateText, b: PlateText) -> PlateText:
    """Valid as read, then a foreign plate as read, then valid after a repair; then the more confident."""
    return a if (evidence(a), a.confidence) >= (evidence(b), b.confidence) else b


class PlateReader:
    """Reads plate crops; finds plates in frames with the plate detector and, for vehicles
    where it finds none, the text detector."""

    def __init__(self, recognizer: TextRecognizer, detector: PlateDetector | None = None, text_detector: TextDetector | None = None,
                 expected: Expected | None = None) -> None:
        self.recognizer = recognizer
        self.detector = detector
        self.text_detector = text_detector
        # The formats expected when a call names none (PLATE_COUNTRIES); a camera passes its own.
        self.expected = expected if expected is not None else load_formats().expect(["vn"])

    def read_crop(self, crop: np.ndarray, expected: Expected | None = None) -> PlateText:
        expected = expected or self.expected
        h, w = crop.shape[:2]
        ratio = w / max(h, 1)
        layouts = ["two_line"] if ratio < TWO_LINE_BELOW else ["one_line"] if ratio > ONE_LINE_ABOVE else ["one_line", "two_line"]
        lines: list[np.ndarray] = []
        for layout in layouts:
            lines += [crop] if layout == "one_line" else list(_halves(crop))
        reads = self.recognizer.read(lines)
        results, i = [], 0
        for layout in layouts:
            n = 1 if layout == "one_line" else 2
            results.append(_plate_text(reads[i : i + n], layout, expected))
            i += n
        best = results[0]
        for other in results[1:]:
            best = _better(best, other)
        unsure = evidence(best) < 3 or best.free_form
        if unsure and h >= BAND_MIN_HEIGHT:
            # Not read as a plate of a fixed expected format (or only after a repair): many
            # plates carry a state or country name, a slogan or stickers above and below the
            # number, so the middle band alone often reads cleanly.
            band = crop[int(round(h * BAND_TRIM)) : int(round(h * (1 - BAND_TRIM)))]
            if band.shape[0] >= 4:
                best = _better(best, _plate_text(self.recognizer.read([band]), "one_line", expected))
        return best

    def read_quad(self, image: np.ndarray, corners: np.ndarray, expected: Expected | None = None) -> PlateText:
        return self.read_crop(rectify(image, corners), expected)

    def read_all(self, image: np.ndarray, vehicle: tuple[float, float, float, float] | None = None,
                 expected: Expected | None = None, limit: int = MAX_CANDIDATES) -> list[PlateRead]:
        """Every plate the detector finds in the image, read, best first (plate_choice): inside
        the vehicle's box when one is given, a plate's proportions, an expected format."""
        from services.detect.plate_choice import choose

        if self.detector is None:
            return []
        found = sorted(self.detector.detect(image), key=lambda f: -f.score)[:limit]
        reads = [PlateRead(box_of(f.corners), tuple((float(x), float(y)) for x, y in f.corners),
                           self.read_quad(image, f.corners, expected), f.score, "plate_detector") for f in found]
        return choose([r for r in reads if r.plate.text], vehicle)

    def read_text_lines(self, image: np.ndarray, region: np.ndarray,
                        expected: Expected | None = None) -> tuple[PlateText, np.ndarray] | None:
        """Fallback for a vehicle the plate detector found nothing on: text lines in its crop,
        paired top-over-bottom, the pair (or single line) that best fits a plate wins."""
        if self.text_detector is None:
            return None
        x1, y1, x2, y2 = (int(v) for v in region)
        crop = image[y1:y2, x1:x2]
        if crop.shape[0] < 16 or crop.shape[1] < 16:
            return None
        quads = self.text_detector.detect(crop)
        quads = [q for q in quads if (q[:, 0].max() - q[:, 0].min()) >= 8][:8]
        if not quads:
            return None
        quads.sort(key=lambda q: float(q[:, 1].mean()))
        reads = self.recognizer.read([rectify(crop, q, margin=0.0) for q in quads])
        best: tuple[PlateText, np.ndarray] | None = None
        offset = np.array([x1, y1], dtype=np.float32)
        for i, read in enumerate(reads):
            options = [([read], "one_line", quads[i])]
            if i + 1 < len(reads):
                options.append(([read, reads[i + 1]], "two_line", np.concatenate([quads[i][:2], quads[i + 1][2:]])))
            for pair, layout, quad in options:
                text = _plate_text(pair, layout, expected or self.expected)
                if text.format_valid and (best is None or text.confidence > best[0].confidence):
                    best = (text, order_corners(quad) + offset)
        return best


def _plate_text(reads: list[LineRead], layout: str, expected: Expected) -> PlateText:
    return normalise([r.chars for r in reads], " ".join(r.raw for r in reads), layout, expected)


def box_of(corners: np.ndarray) -> tuple[float, float, float, float]:
    return (float(corners[:, 0].min()), float(corners[:, 1].min()), float(corners[:, 0].max()), float(corners[:, 1].max()))
