"""Recall and precision of a YOLOX-format ONNX detector on the person-checked truth frames.

Matching is class-agnostic over the vehicle classes (a motorbike called `bicycle` still counts as
found; the class confusions are reported apart), greedy by IoU, one detection per truth box. An
unmatched detection whose centre lies in a truth `ignore` region is not a false positive.
Pedestrians are not vehicles: a detection matched to nothing but a pedestrian is a false positive.

Modes: `whole` (one 416 pass over the frame), `tiles` (+ 416-px tiles), `tiles+zoom` (+ 208-px
tiles over the upper half, enlarged x2: the pseudo-labelling windows). The stock COCO model gets
the rider fusion (a person on a two-wheeler is part of it; lone persons are not vehicles); both
get the labels' one-box-per-object rule (training.pseudolabel.dedup).
Runs with onnxruntime, numpy and OpenCV only (no torch).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from training.pseudolabel import (CLASSES, StockDetector, dedup, detect_frame, detect_windows,
                                  iou_matrix, nms, read_frames, windows)

MODES = {"whole": (False, False), "tiles": (True, False), "tiles+zoom": (True, True)}


def finetuned_frame(det: StockDetector, frame: np.ndarray, wins, names: list[str], conf: float = 0.3) -> np.ndarray:
    b, s, c = detect_windows(det, frame, wins, stock=False, conf=conf)
    out = []
    for k in np.unique(c):
        idx = np.where(c == k)[0]
        sel = idx[nms(b[idx], s[idx], 0.5)]
        out += [[*b[i], int(c[i]), float(s[i])] for i in sel]
    if names[:5] != CLASSES:
        raise SystemExit(f"class list {names} is not the fine-tune's {CLASSES}")
    # the labels' rule: one box per object (class duplicates, IoU >= 0.6, fragments inside a bigger box)
    return np.array(dedup([list(map(float, o)) for o in out]), np.float32).reshape(-1, 6)


def score_frame(dets: np.ndarray, truth: dict, thr: float) -> dict:
    tb = np.array([v["box"] for v in truth["vehicles"]], np.float32).reshape(-1, 4)
    hard = np.array([bool(v.get("difficult")) for v in truth["vehicles"]])
    m = iou_matrix(dets[:, :4], tb)
    matched_t, matched_d = set(), set()
    for d, t in sorted(((d, t) for d, t in zip(*np.where(m >= thr))), key=lambda p: -m[p]):
        if d in matched_d or t in matched_t:
            continue
        matched_d.add(d)
        matched_t.add(t)
    fp = 0
    for d in range(len(dets)):
        if d in matched_d:
            continue
        cx, cy = (dets[d, 0] + dets[d, 2]) / 2, (dets[d, 1] + dets[d, 3]) / 2
        if any(x1 <= cx <= x2 and y1 <= cy <= y2 for x1, y1, x2, y2 in truth.get("ignore", [])):
            continue
        fp += 1
    return {"tp": len(matched_t), "fp": fp, "n": len(tb),
            "tp_easy": sum(1 for t in matched_t if not hard[t]), "n_easy": int((~hard).sum())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="YOLOX-format ONNX")
    ap.add_argument("--names", help="class names file (default: the stock model's COCO pipeline)")
    ap.add_argument("--truth", nargs="+", default=["eval/truth/vn_haiphong_intersection.json",
                                                   "eval/truth/vn_saigon_intersection.json"])
    ap.add_argument("--video-dir", default="../shared/data/video")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--conf", type=float, default=0.3, help="score threshold of the fine-tuned model (the stock pipeline keeps 0.3)")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args(argv)
    det = StockDetector(args.model, args.threads)
    names = Path(args.names).read_text().split() if args.names else None
    frames = []
    for path in args.truth:
        truth = json.loads(Path(path).read_text())
        video = read_frames(Path(args.video_dir) / truth["clip"])
        frames += [(video[f["frame"]], f) for f in truth["frames"]]
    results = {}
    for mode in args.modes:
        t_ms, per = [], {0.3: [], 0.5: []}
        for img, truth in frames:
            h, w = img.shape[:2]
            wins = windows(w, h, *MODES[mode])
            t0 = time.perf_counter()
            if names is None:
                labs = detect_frame(det, img, wins)["boxes"]
                dets = np.array([b[:6] for b in labs], np.float32).reshape(-1, 6)
            else:
                dets = finetuned_frame(det, img, wins, names, args.conf)
            t_ms.append((time.perf_counter() - t0) * 1000)
            for thr in per:
                per[thr].append(score_frame(dets, truth, thr))
        row = {"frames": len(frames), "conf": args.conf if names else 0.3, "ms_per_frame_median": float(np.median(t_ms)), "windows": len(wins)}
        for thr, rows in per.items():
            tp, fp, n = sum(r["tp"] for r in rows), sum(r["fp"] for r in rows), sum(r["n"] for r in rows)
            tpe, ne = sum(r["tp_easy"] for r in rows), sum(r["n_easy"] for r in rows)
            row[f"iou{thr}"] = {"recall": tp / max(1, n), "precision": tp / max(1, tp + fp),
                                "recall_not_difficult": tpe / max(1, ne), "tp": tp, "fp": fp, "truth": n}
        results[mode] = row
        r3, r5 = row["iou0.3"], row["iou0.5"]
        print(f"{mode:11s} R@0.3 {r3['recall']:.1%} P@0.3 {r3['precision']:.1%} | R@0.5 {r5['recall']:.1%} "
              f"P@0.5 {r5['precision']:.1%} | R@0.5 not difficult {r5['recall_not_difficult']:.1%} | "
              f"{row['ms_per_frame_median']:.0f} ms/frame ({row['windows']} windows, {args.threads} thread, conf {args.conf if names else 0.3})",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
