"""Training samples from the pseudo-labelled images: scale crops, mosaic, HSV, flips.

The vehicles of the intersection clips are small (many under 30 px in a 1006x720 frame) and the
service runs the detector over the whole frame AND over 416-px / 208-px tiles, so the main
augmentation is scale: each sample (or each mosaic quadrant) is a random crop whose side is
log-uniform between `min_crop` source pixels and the whole frame, resized to its output area.
Lone-person regions (`ignore`) are painted grey (114) outside the vehicle boxes, so the model is
neither rewarded nor punished for them.
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import cv2
import numpy as np

from training.yoloxlib.data_augment import augment_hsv

GREY = 114


class LabelledImages:
    def __init__(self, folder: str | Path, names: list[str] | None = None) -> None:
        folder = Path(folder)
        doc = json.loads((folder / "labels.json").read_text())
        self.classes: list[str] = doc["classes"]
        self.items = []
        for name, lab in doc["images"].items():
            if names is not None and name not in names:
                continue
            img = cv2.imread(str(folder / "images" / name))
            if img is None:
                raise SystemExit(f"{folder / 'images' / name}: cannot be read")
            boxes = np.array([b[:5] for b in lab["boxes"]], np.float32).reshape(-1, 5)
            self.items.append((name, paint_ignore(img, boxes, lab.get("ignore", [])), boxes))
        if not self.items:
            raise SystemExit(f"{folder / 'labels.json'}: no image")

    def __len__(self) -> int:
        return len(self.items)


def paint_ignore(img: np.ndarray, boxes: np.ndarray, ignore: list) -> np.ndarray:
    if not ignore:
        return img
    h, w = img.shape[:2]
    mask = np.zeros((h, w), bool)
    for x1, y1, x2, y2 in ignore:
        mask[max(0, int(y1)):int(math.ceil(y2)), max(0, int(x1)):int(math.ceil(x2))] = True
    for x1, y1, x2, y2, _ in boxes:
        mask[max(0, int(y1)):int(math.ceil(y2)), max(0, int(x1)):int(math.ceil(x2))] = False
    out = img.copy()
    out[mask] = GREY
    return out


def crop_to(img: np.ndarray, boxes: np.ndarray, out_w: int, out_h: int, min_crop: int,
            rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """A random crop with the output's aspect, side log-uniform in [min_crop, frame], resized
    to out_w x out_h; boxes clipped, kept when >= 40 % of them is visible and >= 2 px."""
    h, w = img.shape[:2]
    max_scale = min(w / out_w, h / out_h)  # source px per output px when the crop is the frame
    min_scale = min(max_scale, min_crop / max(out_w, out_h))
    s = math.exp(rng.uniform(math.log(min_scale), math.log(max_scale)))
    cw, ch = min(w, int(round(out_w * s))), min(h, int(round(out_h * s)))
    x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
    crop = cv2.resize(img[y0:y0 + ch, x0:x0 + cw], (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    if not len(boxes):
        return crop, boxes
    b = boxes.copy()
    area0 = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    b[:, [0, 2]] = (b[:, [0, 2]] - x0).clip(0, cw) * (out_w / cw)
    b[:, [1, 3]] = (b[:, [1, 3]] - y0).clip(0, ch) * (out_h / ch)
    area1 = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) * (cw / out_w) * (ch / out_h)
    keep = (area1 >= 0.4 * np.maximum(area0, 1e-6)) & (b[:, 2] - b[:, 0] >= 2) & (b[:, 3] - b[:, 1] >= 2)
    return crop, b[keep]


def letterbox_sample(img: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The whole frame as the service feeds it: scaled into size x size, top-left, grey padding."""
    h, w = img.shape[:2]
    r = min(size / h, size / w)
    canvas = np.full((size, size, 3), GREY, np.uint8)
    canvas[: int(h * r), : int(w * r)] = cv2.resize(img, (int(w * r), int(h * r)), interpolation=cv2.INTER_LINEAR)
    b = boxes.copy()
    b[:, :4] *= r
    return canvas, b


class Sampler:
    """Random training samples (image CHW float32 BGR 0-255, targets [max_labels, 5] as
    class, cx, cy, w, h in input pixels)."""

    def __init__(self, data: LabelledImages, size: int = 416, mosaic_prob: float = 0.5,
                 whole_prob: float = 0.2, min_crop: int = 160, flip_prob: float = 0.5,
                 max_labels: int = 160, seed: int = 0) -> None:
        self.data, self.size = data, size
        self.mosaic_prob, self.whole_prob, self.min_crop = mosaic_prob, whole_prob, min_crop
        self.flip_prob, self.max_labels = flip_prob, max_labels
        self.rng = random.Random(seed)

    def _one(self, out_w: int, out_h: int) -> tuple[np.ndarray, np.ndarray]:
        _, img, boxes = self.data.items[self.rng.randrange(len(self.data))]
        return crop_to(img, boxes, out_w, out_h, self.min_crop, self.rng)

    def sample(self, mosaic: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """mosaic=False (the last epochs): half whole frames, half single crops."""
        s = self.size
        r = self.rng.random()
        if mosaic and r < self.mosaic_prob:
            cx = int(s * self.rng.uniform(0.3, 0.7))
            cy = int(s * self.rng.uniform(0.3, 0.7))
            img = np.full((s, s, 3), GREY, np.uint8)
            parts = []
            for x0, y0, x1, y1 in ((0, 0, cx, cy), (cx, 0, s, cy), (0, cy, cx, s), (cx, cy, s, s)):
                tile, b = self._one(x1 - x0, y1 - y0)
                img[y0:y1, x0:x1] = tile
                b = b.copy()
                b[:, [0, 2]] += x0
                b[:, [1, 3]] += y0
                parts.append(b)
            boxes = np.concatenate(parts)
        elif (r < self.mosaic_prob + self.whole_prob) if mosaic else (r < 0.5):
            _, src, b = self.data.items[self.rng.randrange(len(self.data))]
            img, boxes = letterbox_sample(src, b, s)
        else:
            img, boxes = self._one(s, s)
        img = np.ascontiguousarray(img)
        augment_hsv(img)
        if self.rng.random() < self.flip_prob:
            img = np.ascontiguousarray(img[:, ::-1])
            boxes = boxes.copy()
            boxes[:, [0, 2]] = s - boxes[:, [2, 0]]
        targets = np.zeros((self.max_labels, 5), np.float32)
        n = min(len(boxes), self.max_labels)
        if n:
            b = boxes[:n]
            targets[:n, 0] = b[:, 4]
            targets[:n, 1] = (b[:, 0] + b[:, 2]) / 2
            targets[:n, 2] = (b[:, 1] + b[:, 3]) / 2
            targets[:n, 3] = b[:, 2] - b[:, 0]
            targets[:n, 4] = b[:, 3] - b[:, 1]
        return img.transpose(2, 0, 1).astype(np.float32), targets

    def batch(self, n: int, mosaic: bool = True) -> tuple[np.ndarray, np.ndarray]:
        imgs, tg = zip(*(self.sample(mosaic) for _ in range(n)))
        return np.stack(imgs), np.stack(tg)
