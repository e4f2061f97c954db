"""Draw a truth file (eval/truth/<clip>.json) over one frame of its clip, to check it by eye.

    python eval/show_truth.py eval/truth/vn_haiphong_intersection.json --frame 11 --out /tmp/x.png
    python eval/show_truth.py eval/truth/vn_haiphong_intersection.json --frame 57 \
        --crop 600,300,760,420 --zoom 4 --grid 10 --out /tmp/x.png

Drawn: the vehicle boxes of that frame when it is a labelled frame (green = motorcycle/bicycle
with its riders count, orange = car, magenta = bus/truck; thin = difficult), pedestrians (blue),
ignore regions (grey), the scene's stop lines, lane borders and right-turn exit lines, the signal
head regions with the truth's lamp state, and every crossing's track box at this frame (yellow,
labelled with the crossing's frame; its crossing point as a cross on the line at its own frame).
--crop/--zoom/--grid make a zoomed crop with a pixel grid labelled in ORIGINAL coordinates, so
that a box can be read off and compared to within a few pixels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
VIDEO_DIR = ROOT.parent / "shared" / "data" / "video"

COLOURS = {  # BGR
    "motorcycle": (0, 200, 0),
    "bicycle": (0, 200, 120),
    "car": (0, 140, 255),
    "bus": (200, 0, 200),
    "truck": (200, 0, 200),
}
LAMP_COLOURS = {"red": (0, 0, 255), "amber": (0, 190, 255), "green": (0, 200, 0)}


def read_frame(video: Path, index: int) -> np.ndarray:
    """Frame `index` in decode order (as ffmpeg's select=eq(n,index))."""
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise SystemExit(f"cannot open video {video}")
    frame = None
    for _ in range(index + 1):
        ok, frame = cap.read()
        if not ok:
            raise SystemExit(f"{video} has no frame {index}")
    cap.release()
    return frame


def load_scene(truth: dict, truth_path: Path) -> dict | None:
    if not truth.get("scene"):
        return None
    path = ROOT / truth["scene"]
    if not path.exists():
        print(f"scene {path} not found: lines not drawn", file=sys.stderr)
        return None
    return yaml.safe_load(path.read_text())


def signal_at(truth: dict, head: str, frame: int) -> str:
    for span in truth.get("signal", []):
        if span["head"] == head and span["from_frame"] <= frame <= span["to_frame"]:
            return span["state"]
    return "unknown"


def draw(truth: dict, scene: dict | None, frame_index: int, image: np.ndarray) -> np.ndarray:
    """Everything in original pixel coordinates; returns the image drawn on."""
    img = image.copy()

    def box(b, colour, thick, label=None):
        x1, y1, x2, y2 = (int(round(v)) for v in b)
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, thick)
        if label:
            cv2.putText(img, label, (x1, max(8, y1 - 2)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1, cv2.LINE_AA)

    if scene:
        for lane in scene.get("lanes", []):
            cv2.polylines(img, [np.array(lane["polygon"], np.int32)], True, (120, 120, 120), 1)
        for line in scene.get("stop_lines", []):
            (a, b) = line["line"]
            cv2.line(img, tuple(a), tuple(b), (255, 255, 0), 1)
        for mv in scene.get("movements", []):
            if mv.get("exit"):
                (a, b) = mv["exit"]
                cv2.line(img, tuple(a), tuple(b), (255, 0, 255), 1)
        for head in scene.get("signal", {}).get("heads", []):
            state = signal_at(truth, head["id"], frame_index)
            box(head["region"], LAMP_COLOURS.get(state, (255, 255, 255)), 1, f'{head["id"]}:{state}')

    for labelled in truth.get("frames", []):
        if labelled["frame"] != frame_index:
            continue
        for region in labelled.get("ignore", []):
            box(region, (160, 160, 160), 1, "ignore")
        for ped in labelled.get("pedestrians", []):
            box(ped["box"], (255, 80, 0), 1, "ped")
        for i, v in enumerate(labelled["vehicles"]):
            colour = COLOURS.get(v["class"], (255, 255, 255))
            tag = f'{i}{"m" if v["class"] == "motorcycle" else v["class"][0]}'
            if v.get("riders"):
                tag += f'{v["riders"]}'
            if v.get("difficult"):
                tag += "?"
            box(v["box"], colour, 1 if v.get("difficult") else 2, tag)

    for c in truth.get("crossings", []):
        for step in c.get("track", []):
            if step["frame"] == frame_index:
                box(step["box"], (0, 255, 255), 1, f'x{c["frame"]}{"R" if c.get("red_light_run") else ""}')
        if c["frame"] == frame_index and scene:
            line = next((ln["line"] for ln in scene.get("stop_lines", []) if ln["id"] == c["line"]), None)
            if line:
                (x1, y1), (x2, y2) = line
                x = c["x"]
                y = y1 + (y2 - y1) * (x - x1) / ((x2 - x1) or 1)
                cv2.drawMarker(img, (int(x), int(y)), (0, 0, 255), cv2.MARKER_CROSS, 14, 2)
    return img


def crop_zoom(img: np.ndarray, crop: tuple[int, int, int, int], zoom: float, grid: int) -> np.ndarray:
    x1, y1, x2, y2 = crop
    h, w = img.shape[:2]
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 <= x1 or y2 <= y1:
        raise SystemExit(f"empty crop {crop} in a {w}x{h} frame")
    part = cv2.resize(img[y1:y2, x1:x2], None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
    if grid > 0:
        every = max(1, int(np.ceil(36 / (grid * zoom))))  # label every n-th line, >= 36 screen px apart
        for gx in range((x1 // grid + 1) * grid, x2, grid):
            px = int((gx - x1) * zoom)
            cv2.line(part, (px, 0), (px, part.shape[0] - 1), (255, 255, 255), 1)
            if (gx // grid) % every:
                continue
            cv2.putText(part, str(gx), (px + 2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 2, cv2.LINE_AA)
            cv2.putText(part, str(gx), (px + 2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        for gy in range((y1 // grid + 1) * grid, y2, grid):
            py = int((gy - y1) * zoom)
            cv2.line(part, (0, py), (part.shape[1] - 1, py), (255, 255, 255), 1)
            if (gy // grid) % every:
                continue
            cv2.putText(part, str(gy), (2, py - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 2, cv2.LINE_AA)
            cv2.putText(part, str(gy), (2, py - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return part


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("truth", type=Path)
    ap.add_argument("--frame", type=int, required=True, help="0-based frame index in decode order")
    ap.add_argument("--out", type=Path, required=True, help="PNG to write")
    ap.add_argument("--video", type=Path, help="the clip (default: ../shared/data/video/<truth clip>)")
    ap.add_argument("--crop", help="x1,y1,x2,y2 in original pixels")
    ap.add_argument("--zoom", type=float, default=1.0)
    ap.add_argument("--grid", type=int, default=0, help="grid step in original pixels (0 = none)")
    ap.add_argument("--bare", action="store_true", help="do not draw the truth (grid only)")
    args = ap.parse_args(argv)

    try:
        truth = json.loads(args.truth.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"cannot read truth file {args.truth}: {exc}") from exc
    video = args.video or VIDEO_DIR / truth["clip"]
    image = read_frame(video, args.frame)
    if not args.bare:
        image = draw(truth, load_scene(truth, args.truth), args.frame, image)
    if args.crop or args.zoom != 1.0 or args.grid:
        h, w = image.shape[:2]
        crop = tuple(int(v) for v in args.crop.split(",")) if args.crop else (0, 0, w, h)
        if len(crop) != 4:
            raise SystemExit(f"--crop wants x1,y1,x2,y2, got {args.crop!r}")
        image = crop_zoom(image, crop, args.zoom, args.grid)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), image):
        raise SystemExit(f"cannot write {args.out}")
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
