"""Fine-tune YOLOX-Nano (weights read out of the shared ONNX file) on the pseudo-labelled frames.

Everything about the schedule is in the recipe file (training/recipe.json): input size, epochs,
batch, learning rate, which parts are frozen, augmentation. Progress goes to stdout one line per
`log_every` iterations (the Makefile sends it to var/finetune/train.log); checkpoints are written
at the end of every epoch, so a run that is stopped can be exported from its last checkpoint.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from training.augment import LabelledImages, Sampler
from training.nano import build, export_onnx, freeze_bn, load_coco_onnx

COCO_INDEX = {"person": 0, "bicycle": 1, "car": 2, "motorcycle": 3, "bus": 5, "truck": 7}

RECIPE_FIELDS = {
    "input_size": int, "epochs": int, "iters_per_epoch": int, "batch": int, "lr": float,
    "warmup_iters": int, "weight_decay": float, "momentum": float, "no_aug_epochs": int,
    "freeze": list, "mosaic_prob": float, "whole_prob": float, "min_crop": int,
    "flip_prob": float, "ema_decay": float, "threads": int, "seed": int, "log_every": int,
}


def load_recipe(path: str | Path, overrides: dict | None = None) -> dict:
    path = Path(path)
    try:
        recipe = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"{path}: {e}") from e
    for field, kind in RECIPE_FIELDS.items():
        if field not in recipe:
            raise SystemExit(f"{path}: missing field `{field}`")
        if not isinstance(recipe[field], kind) and not (kind is float and isinstance(recipe[field], int)):
            raise SystemExit(f"{path}: field `{field}` must be {kind.__name__}, got {recipe[field]!r}")
    for field in recipe.get("freeze", []):
        if field not in ("stem", "dark2", "dark3", "dark4", "dark5"):
            raise SystemExit(f"{path}: field `freeze`: unknown part {field!r} (stem, dark2..dark5)")
    recipe.update(overrides or {})
    return recipe


class EMA:
    """Exponential moving average of the weights (as YOLOX's ModelEMA; its decay is ramped in
    over ~100 updates instead of 2000, since this schedule is ~1500 iterations long)."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).eval()
        self.decay, self.updates = decay, 0
        for p in self.model.parameters():
            p.requires_grad_(False)

    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / 100))
        with torch.no_grad():
            msd = model.state_dict()
            for k, v in self.model.state_dict().items():
                if v.dtype.is_floating_point:
                    v.mul_(d).add_(msd[k].detach(), alpha=1 - d)


def frozen_parameters(model, parts: list[str]) -> int:
    n = 0
    for part in parts:
        for p in getattr(model.backbone.backbone, part).parameters():
            p.requires_grad_(False)
            n += p.numel()
    return n


def lr_at(it: int, total: int, recipe: dict) -> float:
    base, warm = recipe["lr"], recipe["warmup_iters"]
    if it < warm:
        return base * ((it + 1) / warm) ** 2
    return 0.05 * base + 0.95 * base * 0.5 * (1 + math.cos(math.pi * (it - warm) / max(1, total - warm)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipe", default="training/recipe.json")
    ap.add_argument("--data", default="var/finetune/data", help="folder with images/ and labels.json")
    ap.add_argument("--onnx", default="../shared/models/yolox_nano.onnx", help="stock weights (ONNX)")
    ap.add_argument("--out", default="var/finetune/run", help="checkpoints and the exported model")
    ap.add_argument("--epochs", type=int, help="override the recipe (smoke runs)")
    ap.add_argument("--iters-per-epoch", type=int, help="override the recipe (smoke runs)")
    ap.add_argument("--batch", type=int, help="override the recipe (smoke runs)")
    args = ap.parse_args(argv)
    over = {k: v for k, v in (("epochs", args.epochs), ("iters_per_epoch", args.iters_per_epoch),
                              ("batch", args.batch)) if v is not None}
    recipe = load_recipe(args.recipe, over)
    torch.set_num_threads(recipe["threads"])
    torch.manual_seed(recipe["seed"])
    np.random.seed(recipe["seed"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    data = LabelledImages(args.data)
    classes = data.classes
    unknown = [c for c in classes if c not in COCO_INDEX]
    if unknown:
        raise SystemExit(f"{args.data}/labels.json: classes without a COCO row to start from: {unknown}")
    model = build(len(classes))
    load_coco_onnx(model, args.onnx, [COCO_INDEX[c] for c in classes])
    n_frozen = frozen_parameters(model, recipe["freeze"])
    n_all = sum(p.numel() for p in model.parameters())
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": recipe["weight_decay"]},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=recipe["lr"], momentum=recipe["momentum"], nesterov=True)
    ema = EMA(model, recipe["ema_decay"])
    sampler = Sampler(data, recipe["input_size"], recipe["mosaic_prob"], recipe["whole_prob"],
                      recipe["min_crop"], recipe["flip_prob"], seed=recipe["seed"])
    epochs, ipe, bs = recipe["epochs"], recipe["iters_per_epoch"], recipe["batch"]
    total = epochs * ipe
    (out / "classes.names").write_text("\n".join(classes) + "\n")
    (out / "recipe.used.json").write_text(json.dumps(recipe, indent=1))
    print(f"data: {len(data)} images, {sum(len(b) for _, _, b in data.items)} boxes, classes {classes}", flush=True)
    print(f"model: {n_all} parameters, {n_frozen} frozen ({', '.join(recipe['freeze']) or 'none'}), "
          f"BatchNorm statistics frozen; {epochs} epochs x {ipe} iterations x batch {bs} "
          f"= {total * bs} samples, {recipe['threads']} thread(s)", flush=True)
    t0 = time.time()
    it = 0
    for epoch in range(epochs):
        mosaic = epoch < epochs - recipe["no_aug_epochs"]
        model.train()
        freeze_bn(model)
        sums: dict[str, float] = {}
        for _ in range(ipe):
            for g in opt.param_groups:
                g["lr"] = lr_at(it, total, recipe)
            imgs, targets = sampler.batch(bs, mosaic)
            losses = model(torch.from_numpy(imgs), torch.from_numpy(targets))
            loss = losses["total_loss"]
            if not torch.isfinite(loss):
                raise SystemExit(f"iteration {it}: loss is {loss.item()}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            opt.step()
            ema.update(model)
            for k in ("total_loss", "iou_loss", "conf_loss", "cls_loss"):
                sums[k] = sums.get(k, 0.0) + float(losses[k].detach())
            sums["num_fg"] = sums.get("num_fg", 0.0) + float(losses["num_fg"])
            it += 1
            if it % recipe["log_every"] == 0 or it == total:
                el = time.time() - t0
                print(f"epoch {epoch + 1}/{epochs} iter {it}/{total} lr {opt.param_groups[0]['lr']:.5f} "
                      f"loss {float(loss):.3f} (iou {float(losses['iou_loss']):.3f} obj {float(losses['conf_loss']):.3f} "
                      f"cls {float(losses['cls_loss']):.3f}) {el / it:.2f} s/it, eta {el / it * (total - it) / 60:.1f} min",
                      flush=True)
        n = ipe
        print(f"epoch {epoch + 1} done{' (no mosaic)' if not mosaic else ''}: mean loss {sums['total_loss'] / n:.3f} "
              f"iou {sums['iou_loss'] / n:.3f} obj {sums['conf_loss'] / n:.3f} cls {sums['cls_loss'] / n:.3f} "
              f"fg/img {sums['num_fg'] / n:.1f}; {(time.time() - t0) / 60:.1f} min", flush=True)
        torch.save({"model": ema.model.state_dict(), "classes": classes, "epoch": epoch + 1, "recipe": recipe},
                   out / "last.pt")
    export_onnx(ema.model, str(out / "model.onnx"))
    print(f"exported {out / 'model.onnx'} ({(out / 'model.onnx').stat().st_size} bytes) after "
          f"{(time.time() - t0) / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
