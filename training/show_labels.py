"""Draw the pseudo-labels of one image (for checking them by eye): boxes coloured by class with
their index, `ignore` regions hatched grey; optional crop and zoom."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

COLOURS = [(0, 255, 0), (255, 0, 0), (0, 128, 255), (255, 0, 255), (0, 255, 255)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="var/finetune/data")
    ap.add_argument("image", help="image name in labels.json")
    ap.add_argument("--crop", help="x1,y1,x2,y2")
    ap.add_argument("--zoom", type=float, default=1.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    doc = json.loads((Path(args.data) / "labels.json").read_text())
    if args.image not in doc["images"]:
        raise SystemExit(f"{args.image}: not in {args.data}/labels.json")
    lab = doc["images"][args.image]
    img = cv2.imread(str(Path(args.data) / "images" / args.image))
    x0, y0 = 0, 0
    if args.crop:
        x0, y0, x1, y1 = map(int, args.crop.split(","))
        img = img[y0:y1, x0:x1]
    z = args.zoom
    img = cv2.resize(img, None, fx=z, fy=z, interpolation=cv2.INTER_CUBIC)
    over = img.copy()
    for x1, y1, x2, y2 in lab["ignore"]:
        p1, p2 = (int((x1 - x0) * z), int((y1 - y0) * z)), (int((x2 - x0) * z), int((y2 - y0) * z))
        cv2.rectangle(over, p1, p2, (128, 128, 128), -1)
    img = cv2.addWeighted(over, 0.4, img, 0.6, 0)
    for i, (x1, y1, x2, y2, c, s) in enumerate(lab["boxes"]):
        p1, p2 = (int((x1 - x0) * z), int((y1 - y0) * z)), (int((x2 - x0) * z), int((y2 - y0) * z))
        cv2.rectangle(img, p1, p2, COLOURS[int(c)], 1)
        cv2.putText(img, f"{i}{doc['classes'][int(c)][:2]}", (p1[0], p1[1] - 2), cv2.FONT_HERSHEY_SIMPLEX,
                    0.35 * max(1.0, z / 2), COLOURS[int(c)], 1)
    cv2.imwrite(args.out, img)
    return 0


if __name__ == "__main__":
    sys.exit(main())
