"""Pseudo-labels for the fine-tune: the stock YOLOX-Nano over the frame plus overlapping tiles,
riders fused onto their bikes, smoothed over neighbouring frames.

A compact, self-contained version of the detect service's pipeline (tiles + rider fusion), so that
the training recipe does not depend on the service code:
- windows: the whole frame, 416-px tiles at native size (overlap ~25 %), and 208-px tiles over
  the upper (far) part of the frame enlarged x2; each window letterboxed to 416 (top-left, 114);
- detections from all windows mapped back to the frame; a box touching an inner tile edge is
  dropped (the neighbouring window sees it whole); class-aware NMS 0.5, then car/bus/truck
  duplicates removed;
- riders: a `person` sitting on a motorcycle/bicycle box (x overlap, feet inside the bike box,
  head above its middle) joins it, and the union box becomes one `motorcycle`/`bicycle`; a weak
  two-wheeler box (score >= 0.05) is kept only with a rider on it;
- a `person` left alone is NOT a label: its box becomes an `ignore` region (the trainer paints it
  grey), since a lone person on these roads is as often a rider whose bike was missed as a
  pedestrian;
- one box per object: car/bus/truck duplicates keep the best class, boxes at IoU >= 0.6 the
  better one, a box mostly inside a bigger one of its group (a lone rider box inside a fused
  motorbike, a car's mirror) goes;
- tracks over neighbouring frames (same clip segment): a box with no match (IoU >= 0.3, any
  class) in either neighbour frame is dropped as flicker; a box present in frames t-1 and
  t+1 (IoU >= 0.4) but missing in t is filled in with their mean;
- per clip (training/split.json): boxes centred on a signal head are dropped (the stock model
  calls the heads motorcycle/car in every frame) and classes the clip has none of are renamed
  (no bus or truck in the two intersection clips: those labels are SUVs and vans seen from above).

Output: <out>/images/<clip>_<frame>.jpg and <out>/labels.json
  {"classes": [...], "images": {"<name>.jpg": {"boxes": [[x1, y1, x2, y2, class_index], ...],
   "ignore": [[x1, y1, x2, y2], ...], "source": "<clip>#<frame>"}}}
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from training.split import load_split

CLASSES = ["motorcycle", "bicycle", "car", "bus", "truck"]
COCO_TO_OURS = {3: 0, 1: 1, 2: 2, 5: 3, 7: 4}
COCO_PERSON = 0
SIZE = 416
CONF = 0.3
WEAK_BIKE = 0.05
ZOOM_CONF = 0.4  # enlarged tiles see vehicles in trees and fences more often: stricter
MAX_IGNORE = 0.03  # a lone `person` bigger than this share of the frame is a false detection, not a region to hide


class StockDetector:
    """YOLOX in the shared file's format (any class count): letterbox, run, decode."""

    def __init__(self, path: str, threads: int = 1) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        strides, cells = [], []
        for s in (8, 16, 32):
            n = SIZE // s
            gy, gx = np.mgrid[0:n, 0:n]
            cells.append(np.stack([gx.ravel(), gy.ravel()], 1))
            strides.append(np.full(n * n, s))
        self.cells = np.concatenate(cells).astype(np.float32)
        self.strides = np.concatenate(strides).astype(np.float32)[:, None]

    def raw(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """Rows [tx, ty, tw, th, obj, cls...] for the image, and the letterbox scale."""
        h, w = image.shape[:2]
        r = min(SIZE / h, SIZE / w)
        canvas = np.full((SIZE, SIZE, 3), 114, np.uint8)
        canvas[: int(h * r), : int(w * r)] = cv2.resize(image, (int(w * r), int(h * r)),
                                                        interpolation=cv2.INTER_LINEAR)
        x = canvas.transpose(2, 0, 1)[None].astype(np.float32)
        return self.session.run(None, {"images": x})[0][0], r

    def boxes(self, pred: np.ndarray, r: float, keep: np.ndarray) -> np.ndarray:
        p, c, s = pred[keep], self.cells[keep], self.strides[keep]
        xy = (p[:, :2] + c) * s
        wh = np.exp(np.minimum(p[:, 2:4], 10.0)) * s
        return (np.concatenate([xy - wh / 2, xy + wh / 2], 1) / r).astype(np.float32)

    def __call__(self, image: np.ndarray, conf: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """COCO model: (boxes xyxy in image pixels, scores, COCO classes) above `conf`, plus weak
        two-wheeler boxes (>= WEAK_BIKE) for the rider fusion."""
        pred, r = self.raw(image)
        scores_all = pred[:, 4:5] * pred[:, 5:]
        cls = scores_all.argmax(1)
        score = scores_all[np.arange(len(cls)), cls]
        # also keep weak two-wheeler boxes (they count only under a rider)
        bike = np.maximum(scores_all[:, 1], scores_all[:, 3])
        keep = (score >= conf) | (bike >= WEAK_BIKE)
        cls = np.where(score >= conf, cls, np.where(scores_all[:, 3] >= scores_all[:, 1], 3, 1))
        score = np.where(score >= conf, score, bike)
        return self.boxes(pred, r, keep), score[keep].astype(np.float32), cls[keep].astype(np.int64)

    def plain(self, image: np.ndarray, conf: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Any class list: (boxes, scores, classes) with obj * cls >= conf."""
        pred, r = self.raw(image)
        scores_all = pred[:, 4:5] * pred[:, 5:]
        cls = scores_all.argmax(1)
        score = scores_all[np.arange(len(cls)), cls]
        keep = score >= conf
        return self.boxes(pred, r, keep), score[keep].astype(np.float32), cls[keep].astype(np.int64)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(1)
    return inter / (area_a[:, None] + area_b[None] - inter + 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> np.ndarray:
    order = np.argsort(-scores)
    keep = []
    while len(order):
        i = order[0]
        keep.append(i)
        if len(order) == 1:
            break
        ious = iou_matrix(boxes[i:i + 1], boxes[order[1:]])[0]
        order = order[1:][ious < thr]
    return np.array(keep, dtype=np.int64)


def windows(w: int, h: int, tiles: bool = True, zoom: bool = True) -> list[tuple[int, int, int, int]]:
    """(x, y, size_w, size_h) windows: whole frame, 416 tiles, 208 tiles over the top half."""
    out = [(0, 0, w, h)]

    def starts(total: int, tile: int, overlap: float) -> list[int]:
        if total <= tile:
            return [0]
        n = int(np.ceil((total - tile) / (tile * (1 - overlap)))) + 1
        return [round(i * (total - tile) / (n - 1)) for i in range(n)]

    plan = ([(416, h)] if tiles else []) + ([(208, h // 2)] if zoom else [])
    for tile, y_limit in plan:
        for y in starts(y_limit, tile, 0.25):
            for x in starts(w, tile, 0.25):
                out.append((x, y, min(tile, w), min(tile, y_limit)))
    return out


def detect_windows(det: StockDetector, frame: np.ndarray, wins, stock: bool = True,
                   conf: float = CONF, zoom_conf: float = ZOOM_CONF):
    """Detections of every window mapped back to the frame, boxes cut by inner tile edges
    dropped. stock=True: the COCO model with weak two-wheelers; False: any class list."""
    h, w = frame.shape[:2]
    all_b, all_s, all_c = [], [], []
    for x, y, tw, th in wins:
        crop = frame[y:y + th, x:x + tw]
        whole = (tw, th) == (w, h)
        thr = conf if whole or tw >= 416 else max(conf, zoom_conf)
        if not whole and tw < 416:
            crop = cv2.resize(crop, (tw * 2, th * 2), interpolation=cv2.INTER_LINEAR)
        b, s, c = det(crop, thr) if stock else det.plain(crop, thr)
        if not whole and tw < 416:
            b = b / 2
            # a weak bike in a zoomed tile is too unsure even under a rider
            ok = s >= thr
            b, s, c = b[ok], s[ok], c[ok]
        b = b + np.array([x, y, x, y], np.float32)
        if not whole:  # drop boxes cut by an inner tile edge
            m = 3
            cut = ((b[:, 0] <= x + m) & (x > 0)) | ((b[:, 1] <= y + m) & (y > 0)) | \
                  ((b[:, 2] >= x + tw - m) & (x + tw < w)) | ((b[:, 3] >= y + th - m) & (y + th < h))
            b, s, c = b[~cut], s[~cut], c[~cut]
        all_b.append(b), all_s.append(s), all_c.append(c)
    b, s, c = np.concatenate(all_b), np.concatenate(all_s), np.concatenate(all_c)
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, w)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, h)
    return b, s, c


def detect_frame(det: StockDetector, frame: np.ndarray, wins=None) -> dict:
    """The labelling pipeline: windows, NMS, rider fusion; {"boxes": [[x1,y1,x2,y2,cls,score]],
    "ignore": [lone person boxes]} in our class indices."""
    h, w = frame.shape[:2]
    b, s, c = detect_windows(det, frame, wins or windows(w, h))
    keep = [k for k in (COCO_PERSON, *COCO_TO_OURS) if (c == k).any()]
    kb, ks, kc = [], [], []
    for k in keep:  # class-aware NMS across windows
        idx = np.where(c == k)[0]
        sel = idx[nms(b[idx], s[idx], 0.5)]
        kb.append(b[sel]), ks.append(s[sel]), kc.append(c[sel])
    if not kb:
        return {"boxes": [], "ignore": []}
    b, s, c = np.concatenate(kb), np.concatenate(ks), np.concatenate(kc)
    return fuse(b, s, c, float(w * h))


def _fit(person: np.ndarray, bike: np.ndarray) -> float:
    pw, bw, bh = person[2] - person[0], bike[2] - bike[0], bike[3] - bike[1]
    if pw <= 0 or bw <= 0 or bh <= 0:
        return 0.0
    xo = max(0.0, min(person[2], bike[2]) - max(person[0], bike[0])) / min(pw, bw)
    if xo < 0.5 or pw > 2.0 * bw:
        return 0.0
    if not bike[1] + 0.25 * bh <= person[3] <= bike[3] + 0.35 * bh:
        return 0.0
    if person[1] > bike[1] + 0.5 * bh:
        return 0.0
    return float(xo)


def fuse(b: np.ndarray, s: np.ndarray, c: np.ndarray, frame_area: float) -> dict:
    persons = [i for i in range(len(b)) if c[i] == COCO_PERSON and s[i] >= CONF]
    bikes = [i for i in range(len(b)) if c[i] in (1, 3)]
    pairs = sorted(((f, p, k) for p in persons for k in bikes if (f := _fit(b[p], b[k])) > 0),
                   key=lambda t: -t[0])
    taken, on_bike = {}, {k: [] for k in bikes}
    for _, p, k in pairs:
        if p in taken or len(on_bike[k]) >= 3:
            continue
        taken[p] = k
        on_bike[k].append(p)
    boxes, ignore = [], []
    for i in range(len(b)):
        if c[i] == COCO_PERSON:
            if i not in taken and s[i] >= CONF:
                ignore.append(b[i].tolist())
            continue
        box = b[i].copy()
        if c[i] in (1, 3):
            if on_bike[i]:
                group = b[[i, *on_bike[i]]]
                box = np.array([group[:, 0].min(), group[:, 1].min(), group[:, 2].max(), group[:, 3].max()])
            elif s[i] < CONF:
                continue
        boxes.append([*map(float, box), COCO_TO_OURS[int(c[i])], float(s[i])])
    return {"boxes": dedup(boxes), "ignore": [g for g in ignore if _area(g) <= MAX_IGNORE * frame_area]}


def _area(b) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def dedup(boxes: list) -> list:
    """One box per object: car/bus/truck on one object keep the best class (NMS 0.7); any two
    vehicle boxes at IoU >= 0.6 keep the better; a box >= 85 % inside a bigger box of the same
    group (two-wheelers; car/bus/truck) is a fragment (a rider alone, a car's mirror) and goes."""
    if not boxes:
        return boxes
    arr = np.array(boxes, np.float32)
    keep = set(range(len(arr)))
    big = np.where(np.isin(arr[:, 4], [2, 3, 4]))[0]
    if len(big):
        keep -= set(big) - set(big[nms(arr[big, :4], arr[big, 5], 0.7)])
    idx = np.array(sorted(keep))
    keep = set(idx[nms(arr[idx, :4], arr[idx, 5], 0.6)])
    group = np.where(arr[:, 4] <= 1, 0, 1)
    for i in sorted(keep):
        for j in sorted(keep):
            if i == j or group[i] != group[j] or _area(arr[i]) >= _area(arr[j]):
                continue
            inter = [max(arr[i, 0], arr[j, 0]), max(arr[i, 1], arr[j, 1]),
                     min(arr[i, 2], arr[j, 2]), min(arr[i, 3], arr[j, 3])]
            if _area(inter) >= 0.85 * _area(arr[i]):
                keep.discard(i)
                break
    return [bx for j, bx in enumerate(boxes) if j in keep]


def smooth(labels: list[dict], segments: list[int]) -> list[dict]:
    """Drop one-frame flicker and fill one-frame gaps inside each segment."""
    out = [{"boxes": list(lab["boxes"]), "ignore": lab["ignore"]} for lab in labels]

    def arr(lab):
        return np.array([bx[:4] for bx in lab["boxes"]], np.float32).reshape(-1, 4), \
            np.array([bx[4] for bx in lab["boxes"]])

    def matched(a, ca, b, cb, thr):
        m = iou_matrix(a, b)
        same = ca[:, None] == cb[None, :] if len(a) and len(b) else np.zeros_like(m, bool)
        return (m * same) >= thr, m * same

    n = len(labels)
    for t in range(n):
        nb = [u for u in (t - 1, t + 1) if 0 <= u < n and segments[u] == segments[t]]
        if not nb:
            continue
        a, _ = arr(labels[t])
        support = np.zeros(len(a), bool)
        for u in nb:  # class-agnostic: a car called `truck` in the next frame is still there
            b, _ = arr(labels[u])
            if len(a) and len(b):
                support |= (iou_matrix(a, b) >= 0.3).any(1)
        out[t]["boxes"] = [bx for bx, ok in zip(labels[t]["boxes"], support) if ok]
    for t in range(1, n - 1):
        if not (segments[t - 1] == segments[t] == segments[t + 1]):
            continue
        p, cp = arr(labels[t - 1])
        q, cq = arr(labels[t + 1])
        if not len(p) or not len(q):
            continue
        cur, cc = arr(out[t])
        ok, m = matched(p, cp, q, cq, 0.4)
        for i, j in zip(*np.where(ok)):
            if m[i].argmax() != j:
                continue
            box = (p[i] + q[j]) / 2
            if len(cur) and (iou_matrix(box[None], cur)[0] >= 0.3).any():
                continue
            out[t]["boxes"].append([*map(float, box), int(cp[i]), 0.0])
    return out


def clean(lab: dict, clip, classes: list[str]) -> dict:
    """The clip's fixed corrections (training/split.json): boxes centred on a signal head go,
    classes the clip does not have are renamed."""
    relabel = {classes.index(a): classes.index(b) for a, b in clip.relabel}
    boxes = []
    for bx in lab["boxes"]:
        cx, cy = (bx[0] + bx[2]) / 2, (bx[1] + bx[3]) / 2
        if any(x1 <= cx <= x2 and y1 <= cy <= y2 for x1, y1, x2, y2 in clip.not_vehicles):
            continue
        boxes.append([*bx[:4], relabel.get(int(bx[4]), int(bx[4])), *bx[5:]])
    return {**lab, "boxes": dedup(boxes)}


def read_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    if not frames:
        raise SystemExit(f"{path}: no frame could be decoded")
    return frames


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", default="training/split.json", help="the train/eval split (clips, segments, windows)")
    ap.add_argument("--shared", default="../shared", help="the shared folder (data/video, data/street, models)")
    ap.add_argument("--model", default=None, help="stock detector (default: <shared>/models/yolox_nano.onnx)")
    ap.add_argument("--out", default="var/finetune/data", help="output folder")
    ap.add_argument("--limit", type=int, default=0, help="label at most this many training images (smoke runs)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    shared = Path(args.shared)
    split = load_split(args.split)
    det = StockDetector(args.model or str(shared / "models" / "yolox_nano.onnx"), args.threads)
    out = Path(args.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    result = {"classes": CLASSES, "images": {}}
    t0 = time.time()
    for clip in split.clips:
        frames = read_frames(shared / "data" / "video" / clip.file)
        train = [k for k in range(len(frames)) if clip.is_train(k)]
        if args.limit:
            train = train[: max(0, args.limit - len(result["images"]))]
            if not train:
                continue
        wanted = sorted({u for k in train for u in (k - 1, k, k + 1) if 0 <= u < len(frames)})
        raw = {k: detect_frame(det, frames[k]) for k in wanted}
        order = sorted(raw)
        smoothed = dict(zip(order, smooth([raw[k] for k in order], [clip.segment(k) for k in order])))
        for k in train:
            name = f"{Path(clip.file).stem}_{k:04d}.jpg"
            cv2.imwrite(str(out / "images" / name), frames[k], [cv2.IMWRITE_JPEG_QUALITY, 95])
            result["images"][name] = {**clean(smoothed[k], clip, CLASSES), "source": f"{clip.file}#{k}"}
        print(f"{clip.file}: {len(train)} training frames labelled ({time.time() - t0:.0f} s)", flush=True)
    for still in split.stills:
        if args.limit and len(result["images"]) >= args.limit:
            break
        img = cv2.imread(str(shared / "data" / "street" / still))
        if img is None:
            raise SystemExit(f"{shared / 'data' / 'street' / still}: cannot be read")
        name = f"still_{Path(still).stem}.jpg"
        cv2.imwrite(str(out / "images" / name), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        result["images"][name] = {**detect_frame(det, img), "source": still}
    (out / "labels.json").write_text(json.dumps(result, indent=0))
    n_boxes = sum(len(v["boxes"]) for v in result["images"].values())
    print(f"{len(result['images'])} images, {n_boxes} boxes -> {out / 'labels.json'} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
