"""Model-only CPU latency of YOLOX-format ONNX files: median of N session.run calls on one
letterboxed real frame after warm-up, 1 intra-op thread (the services' setting)."""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--video", default="../shared/data/video/vn_haiphong_intersection.mp4")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    ok, frame = cv2.VideoCapture(args.video).read()
    if not ok:
        raise SystemExit(f"{args.video}: no frame")
    h, w = frame.shape[:2]
    r = min(416 / h, 416 / w)
    canvas = np.full((416, 416, 3), 114, np.uint8)
    canvas[: int(h * r), : int(w * r)] = cv2.resize(frame, (int(w * r), int(h * r)))
    x = canvas.transpose(2, 0, 1)[None].astype(np.float32)
    for path in args.models:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        for _ in range(5):
            s.run(None, {"images": x})
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            s.run(None, {"images": x})
            times.append((time.perf_counter() - t0) * 1000)
        print(f"{path}: median {statistics.median(times):.1f} ms, min {min(times):.1f} ms "
              f"({args.runs} runs, {args.threads} thread)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
