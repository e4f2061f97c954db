"""The label error rate: the whole pseudo-labelling pipeline (windows, rider fusion, smoothing
over the neighbour frames, the clip's fixes) run on the person-checked truth frames and scored
against them. These frames are never training frames; they are labelled here only to measure
how wrong the training labels are."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from training.evaluate import score_frame
from training.pseudolabel import CLASSES, StockDetector, clean, detect_frame, read_frames, smooth
from training.split import load_split


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", default="training/split.json")
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args(argv)
    shared = Path(args.shared)
    det = StockDetector(str(shared / "models" / "yolox_nano.onnx"))
    split = load_split(args.split)
    rows = {0.3: [], 0.5: []}
    classes_ok = classes_n = 0
    for clip in split.clips:
        truth = json.loads((Path(args.split).resolve().parent.parent / "eval" / "truth" /
                            (Path(clip.file).stem + ".json")).read_text())
        video = read_frames(shared / "data" / "video" / clip.file)
        for f in truth["frames"]:
            k = f["frame"]
            ks = [u for u in (k - 1, k, k + 1) if 0 <= u < len(video) and clip.segment(u) == clip.segment(k)]
            labs = smooth([detect_frame(det, video[u]) for u in ks], [0] * len(ks))
            lab = clean(labs[ks.index(k)], clip, CLASSES)
            dets = np.array([b[:6] for b in lab["boxes"]], np.float32).reshape(-1, 6)
            for thr in rows:
                rows[thr].append(score_frame(dets, f, thr))
            # class agreement of the boxes matched at IoU 0.5 (two-wheeler vs car group)
            from training.pseudolabel import iou_matrix
            tb = np.array([v["box"] for v in f["vehicles"]], np.float32).reshape(-1, 4)
            m = iou_matrix(dets[:, :4], tb)
            for d in range(len(dets)):
                if len(tb) and m[d].max() >= 0.5:
                    t = int(m[d].argmax())
                    classes_n += 1
                    classes_ok += CLASSES[int(dets[d, 4])] == f["vehicles"][t]["class"]
    out = {}
    for thr, rs in rows.items():
        tp, fp, n = sum(r["tp"] for r in rs), sum(r["fp"] for r in rs), sum(r["n"] for r in rs)
        tpe, ne = sum(r["tp_easy"] for r in rs), sum(r["n_easy"] for r in rs)
        out[f"iou{thr}"] = {"labels": tp + fp, "correct": tp, "wrong": fp, "missing": n - tp, "truth": n,
                            "recall": tp / n, "precision": tp / (tp + fp), "recall_not_difficult": tpe / ne}
        print(f"IoU {thr}: {tp + fp} label boxes on {len(rs)} truth frames, {fp} wrong ({fp / (tp + fp):.1%}), "
              f"{n - tp} of {n} vehicles missing ({(n - tp) / n:.1%}; not difficult: {1 - tpe / ne:.1%})")
    print(f"class right on {classes_ok} of {classes_n} boxes matched at IoU 0.5 ({classes_ok / max(1, classes_n):.1%})")
    out["class_agreement"] = classes_ok / max(1, classes_n)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
