"""Vehicle (and rider) detection with one onnxruntime session.

An agency must be able to drop in a detector trained on its own cameras, so the output
decoders of the common export styles (YOLOX, NanoDet, YOLOv5, YOLOv8) live side by side and a
`format` setting picks one. Each format carries its own letterbox and normalisation: feeding a
model the wrong one gives plausible-looking but wrong boxes, so the output shape is checked
against the format when the model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from services.detect import slicing
from services.detect.nms import batched_nms
from services.detect.regions import DetectionPlan
from services.detect.sessions import ModelError, open_session, static_hw

FORMATS = ("yolox", "nanodet", "yolov5", "yolov8")
STRIDES = (8, 16, 32)
TILE_OVERLAP = 0.2
CONTAINED = 0.8  # share of a tile box inside a bigger box of the same class that makes it a fragment
NANODET_MEAN = np.array([103.53, 116.28, 123.675], dtype=np.float32)
NANODET_STD = np.array([57.375, 57.12, 58.395], dtype=np.float32)


@dataclass(frozen=True)
class Letterbox:
    """Where the image went inside the model input, to map boxes back."""

    scale: float
    pad_x: float
    pad_y: float


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # (n, 4) float32 x1, y1, x2, y2 in image pixels
    scores: np.ndarray  # (n,) float32
    classes: np.ndarray  # (n,) int64 index into the class names

    def __len__(self) -> int:
        return len(self.scores)


def letterbox(image: np.ndarray, size: tuple[int, int], centred: bool, fill: float) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and paste on a filled canvas of the model's input size."""
    h, w = image.shape[:2]
    th, tw = size
    r = min(th / h, tw / w)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((th, tw, 3), fill, dtype=np.uint8)
    px, py = ((tw - nw) // 2, (th - nh) // 2) if centred else (0, 0)
    canvas[py : py + nh, px : px + nw] = resized
    return canvas, Letterbox(r, float(px), float(py))


def read_class_names(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"class names file not found: {path}")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise ModelError(f"class names file is empty: {path}")
    return names


def _grid(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Cell x, y and stride of every anchor-free prediction, strides 8/16/32, row-major."""
    cells, strides = [], []
    for s in STRIDES:
        gh, gw = size[0] // s, size[1] // s
        ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        strides.append(np.full(gh * gw, s))
    return np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)


def _best_class(cls_scores: np.ndarray, conf: float, obj: np.ndarray | None = None):
    classes = cls_scores.argmax(axis=1)
    scores = cls_scores[np.arange(len(classes)), classes]
    if obj is not None:
        scores = scores * obj
    keep = scores >= conf
    return keep, scores, classes


def _xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    half = xywh[:, 2:4] / 2
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)


def decode_yolox(outputs, size, conf):
    pred = outputs[0][0]
    cells, strides = _grid(size)
    keep, scores, classes = _best_class(pred[:, 5:], conf, pred[:, 4])
    pred, cells, strides = pred[keep], cells[keep], strides[keep][:, None]
    xy = (pred[:, :2] + cells) * strides
    wh = np.exp(np.minimum(pred[:, 2:4], 10.0)) * strides
    return _xywh_to_xyxy(np.concatenate([xy, wh], axis=1)), scores[keep], classes[keep]


def decode_nanodet(outputs, size, conf, names):
    cls_parts, dis_parts = [], []
    for s in STRIDES:
        cls_parts.append(outputs[names.index(f"cls_pred_stride_{s}")][0])
        dis_parts.append(outputs[names.index(f"dis_pred_stride_{s}")][0])
    cls_scores, dis = np.concatenate(cls_parts), np.concatenate(dis_parts)
    cells, strides = _grid(size)
    keep, scores, classes = _best_class(cls_scores, conf)
    dis, cells, strides = dis[keep], cells[keep], strides[keep][:, None]
    bins = dis.shape[1] // 4
    logits = dis.reshape(-1, 4, bins)
    prob = np.exp(logits - logits.max(axis=2, keepdims=True))
    prob /= prob.sum(axis=2, keepdims=True)
    dist = (prob @ np.arange(bins, dtype=np.float32)) * strides
    centre = cells * strides + (strides - 1) / 2
    boxes = np.concatenate([centre - dist[:, :2], centre + dist[:, 2:]], axis=1)
    return boxes, scores[keep], classes[keep]


def decode_yolov5(outputs, size, conf):
    pred = outputs[0][0]
    keep, scores, classes = _best_class(pred[:, 5:], conf, pred[:, 4])
    return _xywh_to_xyxy(pred[keep, :4]), scores[keep], classes[keep]


def decode_yolov8(outputs, size, conf):
    pred = outputs[0][0].T  # exported as (4 + classes, anchors)
    keep, scores, classes = _best_class(pred[:, 4:], conf)
    return _xywh_to_xyxy(pred[keep, :4]), scores[keep], classes[keep]


@dataclass(frozen=True)
class Format:
    rgb: bool
    centred: bool
    fill: int
    normalise: Callable[[np.ndarray], np.ndarray]
    iou: float  # the NMS IoU the model was validated with


FORMAT_SPECS = {
    "yolox": Format(rgb=False, centred=False, fill=114, normalise=lambda x: x, iou=0.45),
    "nanodet": Format(rgb=False, centred=True, fill=0, normalise=lambda x: (x - NANODET_MEAN) / NANODET_STD, iou=0.6),
    "yolov5": Format(rgb=True, centred=True, fill=114, normalise=lambda x: x / 255.0, iou=0.45),
    "yolov8": Format(rgb=True, centred=True, fill=114, normalise=lambda x: x / 255.0, iou=0.45),
}


class VehicleDetector:
    """One model, its format and thresholds; `detect(bgr_image)` gives boxes in image pixels."""

    def __init__(
        self,
        model_path: str | Path,
        fmt: str,
        class_names: list[str],
        conf: float = 0.3,
        iou: float | None = None,
        intra_op_threads: int = 1,
        input_size: tuple[int, int] = (640, 640),
        sha256: str = "",
        tiles: int = 0,
    ) -> None:
        if fmt not in FORMAT_SPECS:
            raise ModelError(f"unknown detector format {fmt!r}; expected one of {', '.join(FORMATS)}")
        self.fmt = fmt
        self.spec = FORMAT_SPECS[fmt]
        self.class_names = class_names
        self.conf = conf
        self.iou = self.spec.iou if iou is None else iou
        self.session = open_session(model_path, intra_op_threads, sha256)
        self.tiles = tiles
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.size = static_hw(self.session, input_size)
        self._check(Path(model_path))

    def _check(self, path: Path) -> None:
        """Run a blank frame once so that a model that does not fit the format fails at start."""
        try:
            outputs = self.session.run(None, {self.input_name: self.preprocess(np.zeros((*self.size, 3), np.uint8))[0]})
        except Exception as exc:
            raise ModelError(f"model {path} failed on a {self.size} input: {exc}") from exc
        n = len(self.class_names)
        anchors = sum((self.size[0] // s) * (self.size[1] // s) for s in STRIDES)
        shapes = [tuple(o.shape) for o in outputs]
        problem = None
        if self.fmt == "nanodet":
            wanted = {f"{k}_pred_stride_{s}" for k in ("cls", "dis") for s in STRIDES}
            if not wanted <= set(self.output_names):
                problem = f"nanodet outputs {sorted(wanted)} expected, model has {self.output_names}"
            else:
                cls = outputs[self.output_names.index("cls_pred_stride_8")]
                dis = outputs[self.output_names.index("dis_pred_stride_8")]
                if cls.shape[-1] != n or dis.shape[-1] % 4:
                    problem = f"nanodet class output has {cls.shape[-1]} classes, class names file has {n}"
        elif len(outputs) != 1 or len(shapes[0]) != 3:
            problem = f"{self.fmt} expects one (1, N, C) output, model gives {shapes}"
        elif self.fmt == "yolox" and shapes[0][1:] != (anchors, 5 + n):
            problem = f"yolox output {shapes[0]} does not match (1, {anchors}, {5 + n}) for {n} classes"
        elif self.fmt == "yolov5" and shapes[0][2] != 5 + n:
            problem = f"yolov5 output {shapes[0]} does not have 5 + {n} columns"
        elif self.fmt == "yolov8" and shapes[0][1] != 4 + n:
            problem = f"yolov8 output {shapes[0]} does not have 4 + {n} rows"
        if problem:
            raise ModelError(f"model {path} does not fit VEHICLE_FORMAT={self.fmt}: {problem}")

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        canvas, box = letterbox(image, self.size, self.spec.centred, self.spec.fill)
        if self.spec.rgb:
            canvas = canvas[:, :, ::-1]
        tensor = self.spec.normalise(canvas.astype(np.float32))
        return np.ascontiguousarray(tensor.transpose(2, 0, 1)[None], dtype=np.float32), box

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: tensor})

    def postprocess(self, outputs: list[np.ndarray], box: Letterbox, image_hw: tuple[int, int],
                    thresholds: np.ndarray | None = None) -> Detections:
        """Boxes in image pixels after NMS; `thresholds` (one score per class) replaces VEHICLE_CONF."""
        conf = self.conf if thresholds is None else float(thresholds.min())
        if self.fmt == "yolox":
            boxes, scores, classes = decode_yolox(outputs, self.size, conf)
        elif self.fmt == "nanodet":
            boxes, scores, classes = decode_nanodet(outputs, self.size, conf, self.output_names)
        elif self.fmt == "yolov5":
            boxes, scores, classes = decode_yolov5(outputs, self.size, conf)
        else:
            boxes, scores, classes = decode_yolov8(outputs, self.size, conf)
        if thresholds is not None:
            passed = scores >= thresholds[classes]
            boxes, scores, classes = boxes[passed], scores[passed], classes[passed]
        boxes = (boxes - np.array([box.pad_x, box.pad_y] * 2, dtype=np.float32)) / box.scale
        h, w = image_hw
        boxes = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)
        keep = batched_nms(boxes, scores, classes, self.iou)
        return Detections(boxes[keep], scores[keep].astype(np.float32), classes[keep].astype(np.int64))

    def thresholds(self, plan: DetectionPlan | None = None) -> np.ndarray:
        """The score each class must reach: the plan's `min_score`, else VEHICLE_CONF."""
        min_score = plan.min_score if plan is not None else {}
        return np.array([min_score.get(name, self.conf) for name in self.class_names], dtype=np.float32)

    def detect(self, image: np.ndarray, thresholds: np.ndarray | None = None,
               strong: np.ndarray | None = None) -> Detections:
        """The whole frame (and VEHICLE_TILES strips). Given `strong` (see detect_plan), the
        windows are merged by the slicing rules, which know weak boxes; else by plain NMS."""
        found = self._detect_one(image, thresholds)
        if strong is not None:
            h, w = image.shape[:2]
            parts = [slicing.Found(found.boxes, found.scores, found.classes, (0, 0, w, h))]
            if self.tiles >= 2:
                parts += [slicing.Found(d.boxes, d.scores, d.classes, (x0, 0, x0 + width, h))
                          for d, (x0, width) in zip(self._detect_tiles(image, thresholds), self._strips(w))]
            boxes, scores, classes = slicing.merge(parts, (w, h), self.iou, self.class_names, strong)
            return Detections(boxes, scores, classes)
        if self.tiles < 2:
            return found
        return self._merge([found, *self._detect_tiles(image, thresholds)])

    def _detect_one(self, image: np.ndarray, thresholds: np.ndarray | None = None) -> Detections:
        tensor, box = self.preprocess(image)
        return self.postprocess(self.run(tensor), box, image.shape[:2], thresholds)

    def detect_plan(self, image: np.ndarray, plan: DetectionPlan, thresholds: np.ndarray | None = None,
                    strong: np.ndarray | None = None) -> Detections:
        """The scene's plan: the whole frame and/or tiles over the road, merged, then only what
        stands on the road. `thresholds` (per class) is what the decoder keeps, `strong` (per
        class) the score a box needs to be trusted on its own: in the merge, trusted boxes are
        taken before weaker ones (a low-score bike kept only to carry a rider must not push out a
        sure box)."""
        h, w = image.shape[:2]
        plan = plan.scaled_to(w, h)
        strong = self.thresholds(plan) if strong is None else strong
        thresholds = strong if thresholds is None else thresholds
        parts: list[slicing.Found] = []
        if plan.full_frame:
            found = self._detect_one(image, thresholds)
            parts.append(slicing.Found(found.boxes, found.scores, found.classes, (0, 0, w, h)))
        for x1, y1, x2, y2 in plan.tiles(self.size):
            found = self._detect_one(np.ascontiguousarray(image[y1:y2, x1:x2]), thresholds)
            shift = np.array([x1, y1, x1, y1], dtype=np.float32)
            parts.append(slicing.Found(found.boxes + shift, found.scores, found.classes, (x1, y1, x2, y2)))
        boxes, scores, classes = slicing.merge(parts, (w, h), self.iou, self.class_names, strong)
        keep = plan.inside_roi(boxes)
        return Detections(boxes[keep], scores[keep], classes[keep])

    def _detect_tiles(self, image: np.ndarray, thresholds: np.ndarray | None = None) -> list[Detections]:
        """Overlapping vertical strips, each seen at a higher scale than the whole frame: far
        vehicles under ~30 px vanish when a wide frame is shrunk to the model's input."""
        out = []
        for x0, width in self._strips(image.shape[1]):
            part = self._detect_one(np.ascontiguousarray(image[:, x0 : x0 + width]), thresholds)
            boxes = part.boxes + np.array([x0, 0, x0, 0], dtype=np.float32)
            out.append(Detections(boxes, part.scores, part.classes))
        return out

    def _strips(self, w: int) -> list[tuple[int, int]]:
        width = int(w / self.tiles * (1 + TILE_OVERLAP))
        return [(max(min(int(i * w / self.tiles - (width - w / self.tiles) / 2), w - width), 0), width)
                for i in range(self.tiles)]

    def _merge(self, parts: list[Detections]) -> Detections:
        boxes = np.concatenate([p.boxes for p in parts])
        scores = np.concatenate([p.scores for p in parts])
        classes = np.concatenate([p.classes for p in parts])
        keep = batched_nms(boxes, scores, classes, self.iou)
        boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
        # A vehicle cut by a strip's edge leaves a partial box inside the whole-frame one.
        inside = np.zeros(len(boxes), dtype=bool)
        for i in range(len(boxes)):
            same = (classes == classes[i]) & (np.arange(len(boxes)) != i)
            if same.any():
                ix = np.clip(np.minimum(boxes[i, 2], boxes[same, 2]) - np.maximum(boxes[i, 0], boxes[same, 0]), 0, None)
                iy = np.clip(np.minimum(boxes[i, 3], boxes[same, 3]) - np.maximum(boxes[i, 1], boxes[same, 1]), 0, None)
                area = max((boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1]), 1e-6)
                others = ((boxes[same, 2] - boxes[same, 0]) * (boxes[same, 3] - boxes[same, 1]))
                inside[i] = bool(((ix * iy / area > CONTAINED) & (others > area)).any())
        return Detections(boxes[~inside], scores[~inside], classes[~inside])
