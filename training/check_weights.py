"""Check that the PyTorch YOLOX-Nano rebuilt from the shared ONNX file reproduces the ONNX
outputs on a real frame (max absolute difference of all 3549 x 85 outputs; the recipe needs < 1e-3)."""
from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np
import onnxruntime as ort
import torch

from training.nano import INPUT_SIZE, build, load_coco_onnx


def max_difference(onnx_path: str, image: np.ndarray) -> float:
    h, w = image.shape[:2]
    r = min(INPUT_SIZE / h, INPUT_SIZE / w)
    canvas = np.full((INPUT_SIZE, INPUT_SIZE, 3), 114, np.uint8)
    canvas[: int(h * r), : int(w * r)] = cv2.resize(image, (int(w * r), int(h * r)))
    x = canvas.transpose(2, 0, 1)[None].astype(np.float32)
    ref = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    model = build(80)
    load_coco_onnx(model, onnx_path)
    model.eval()
    model.head.decode_in_inference = False
    with torch.no_grad():
        out = model(torch.from_numpy(x)).numpy()
    if out.shape != ref.shape:
        raise SystemExit(f"output shape {out.shape} != ONNX {ref.shape}")
    return float(np.abs(out - ref).max())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--onnx", default="../shared/models/yolox_nano.onnx")
    ap.add_argument("--video", default="../shared/data/video/vn_haiphong_intersection.mp4")
    ap.add_argument("--frame", type=int, default=20)
    ap.add_argument("--tolerance", type=float, default=1e-3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cap = cv2.VideoCapture(args.video)
    for _ in range(args.frame + 1):
        ok, frame = cap.read()
        if not ok:
            raise SystemExit(f"{args.video}: no frame {args.frame}")
    diff = max_difference(args.onnx, frame)
    print(f"max |torch - onnx| = {diff:.2e} on frame {args.frame} of {args.video} (tolerance {args.tolerance:g})")
    return 0 if diff < args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
