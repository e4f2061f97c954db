"""The train/eval split by clip segment (training/split.json, written down in eval/split.md).

The eval frames are the ones of the person-checked truth (eval/truth/<clip>.json); a frame is a
training frame only when it is more than `window` frames from every eval frame of its clip, so
the fine-tune never sees an eval frame nor its immediate neighbours.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ClipSplit:
    file: str
    eval_frames: tuple[int, ...]
    segments: tuple[tuple[int, int], ...]
    window: int
    not_vehicles: tuple[tuple[float, float, float, float], ...] = ()
    relabel: tuple[tuple[str, str], ...] = ()

    def segment(self, k: int) -> int:
        for i, (a, b) in enumerate(self.segments):
            if a <= k <= b:
                return i
        raise ValueError(f"{self.file}: frame {k} is in no segment")

    def is_train(self, k: int) -> bool:
        self.segment(k)
        return all(abs(k - e) > self.window for e in self.eval_frames)


@dataclass(frozen=True)
class Split:
    clips: tuple[ClipSplit, ...]
    stills: tuple[str, ...]


def load_split(path: str | Path, root: str | Path | None = None) -> Split:
    path = Path(path)
    root = Path(root) if root else path.resolve().parent.parent
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"{path}: {e}") from e
    for field in ("window", "clips"):
        if field not in doc:
            raise SystemExit(f"{path}: missing field `{field}`")
    clips = []
    for i, c in enumerate(doc["clips"]):
        for field in ("file", "truth", "segments"):
            if field not in c:
                raise SystemExit(f"{path}: clips[{i}]: missing field `{field}`")
        truth = json.loads((root / c["truth"]).read_text())
        frames = tuple(int(f["frame"]) for f in truth["frames"])
        regions = c.get("not_vehicles", [])
        if any(len(r) != 4 for r in regions):
            raise SystemExit(f"{path}: clips[{i}].not_vehicles: each region is [x1, y1, x2, y2]")
        clips.append(ClipSplit(c["file"], frames, tuple(tuple(s) for s in c["segments"]), int(doc["window"]),
                               tuple(tuple(r) for r in regions), tuple(c.get("relabel", {}).items())))
    return Split(tuple(clips), tuple(doc.get("stills", [])))
