"""Reading the truth of the development clips: eval/truth/<clip stem>.json (docs/ACCURACY.md),
or, for a clip without one yet, the partial vehicle truth that came with the clips; and the
incidents seen on a clip, eval/truth/<clip stem>.incidents.json, beside it (eval/truth/README.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


class TruthError(Exception):
    pass


@dataclass
class ClipTruth:
    clip: str  # file name under the video directory
    path: str  # where the truth came from
    frames: list[dict]  # {"frame", "vehicles": [{"box", "class", "riders", "difficult"}], "ignore": [...]}
    scene: str | None = None
    crossings: list[dict] = field(default_factory=list)
    violations: list[dict] = field(default_factory=list)
    counts: list[dict] = field(default_factory=list)  # {"line", "direction": forward|backward|both, "class", "n"}
    cuts: list[int] = field(default_factory=list)  # decode indexes where the clip was spliced
    incidents: dict | None = None  # <stem>.incidents.json: incidents to find and queues not to report
    partial: bool = False  # boxes of only some vehicles: no precision, and recall counts the unboxed as missed
    unboxed: dict[int, int] = field(default_factory=dict)  # frame -> vehicles seen but not boxed (partial)

    @property
    def stem(self) -> str:
        return Path(self.clip).stem

    @property
    def tracks(self) -> list[list[dict]]:
        return [c["track"] for c in self.crossings if c.get("track")]


def load(path: Path) -> ClipTruth:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TruthError(f"{path}: {exc}") from None
    for key in ("clip", "frames"):
        if key not in data:
            raise TruthError(f"{path}: no {key!r}")
    return ClipTruth(clip=data["clip"], path=str(path), frames=data["frames"], scene=data.get("scene"),
                     crossings=data.get("crossings", []), violations=data.get("violations", []),
                     counts=data.get("counts", []), cuts=data.get("cuts", []),
                     incidents=load_incidents(path.with_name(f"{Path(data['clip']).stem}{INCIDENTS}")))


INCIDENTS = ".incidents.json"


def load_incidents(path: Path) -> dict | None:
    """A clip's incident truth, or None when nobody has looked at the clip for incidents yet."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TruthError(f"{path}: {exc}") from None
    for key in ("clip", "types_checked", "incidents", "not_incidents"):
        if key not in data:
            raise TruthError(f"{path}: no {key!r}")
    return data


def load_dir(directory: Path) -> list[ClipTruth]:
    return [load(path) for path in sorted(directory.glob("*.json")) if not path.name.endswith(INCIDENTS)]


def load_partial(path: Path, clip: str, scene: str | None = None) -> ClipTruth | None:
    """dev_vehicle_truth_partial.json: per frame the confirmed boxes and how many vehicles were seen."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    frames, unboxed = [], {}
    for item in data.get("frames", []):
        if item.get("clip") != clip:
            continue
        vehicles = [{"box": b["box"], "class": (b.get("labels") or ["?"])[0], "difficult": False}
                    for b in item.get("boxed", [])]
        frames.append({"frame": item["frame"], "vehicles": vehicles, "ignore": []})
        unboxed[item["frame"]] = max(0, int(item.get("vehicles_seen", len(vehicles))) - len(vehicles))
    if not frames:
        return None
    return ClipTruth(clip=clip, path=str(path), frames=frames, scene=scene, partial=True, unboxed=unboxed)
