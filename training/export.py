"""Export a training checkpoint (last.pt) to ONNX in the services' YOLOX format, with its
class names file beside it (for a run that was stopped, or to look at a run midway)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from training.nano import build, export_onnx


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--out", required=True, help="ONNX file to write (the .names file goes beside it)")
    args = ap.parse_args(argv)
    ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    for field in ("model", "classes"):
        if field not in ckpt:
            raise SystemExit(f"{args.checkpoint}: not a training checkpoint (no `{field}`)")
    model = build(len(ckpt["classes"]))
    model.load_state_dict(ckpt["model"])
    out = Path(args.out)
    export_onnx(model, str(out))
    out.with_suffix(".names").write_text("\n".join(ckpt["classes"]) + "\n")
    print(f"{out} ({out.stat().st_size} bytes), epoch {ckpt.get('epoch')}, classes {ckpt['classes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
