"""Scoring what replay found against a clip's truth (eval/truth/<clip>.json). Pure functions.

Vehicles: class-agnostic one-to-one matching by IoU (greedy, best pair first) per labelled
frame; detections inside an `ignore` region that match nothing are neither right nor wrong;
`difficult` vehicles are scored apart (a miss there is reported, not counted in recall, and a
hit there is not a false detection). Crossings and violations: same line (type), |Δt| <= 0.5 s,
|Δx| <= 60 px, one-to-one, nearest pairs first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Box = Sequence[float]

MAX_DT_S = 0.5
MAX_DX_PX = 60.0


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def inside_share(box: Box, region: Box) -> float:
    """Share of `box`'s area inside `region`."""
    ix = max(0.0, min(box[2], region[2]) - max(box[0], region[0]))
    iy = max(0.0, min(box[3], region[3]) - max(box[1], region[1]))
    area = (box[2] - box[0]) * (box[3] - box[1])
    return ix * iy / area if area > 0 else 0.0


def greedy_pairs(scores: list[list[float]], accept: Callable[[float], bool], *, higher_better: bool = True) -> list[tuple[int, int]]:
    """One-to-one pairs (row, column), best score first, among the acceptable ones."""
    candidates = [(s, r, c) for r, row in enumerate(scores) for c, s in enumerate(row) if accept(s)]
    candidates.sort(key=lambda x: (-x[0] if higher_better else x[0], x[1], x[2]))
    rows, cols, pairs = set(), set(), []
    for _, r, c in candidates:
        if r not in rows and c not in cols:
            rows.add(r)
            cols.add(c)
            pairs.append((r, c))
    return pairs


@dataclass
class FrameScore:
    truth: int = 0  # vehicles, not difficult
    found: int = 0
    difficult: int = 0
    difficult_found: int = 0
    detections: int = 0  # vehicle detections outside ignore regions (or matched)
    correct: int = 0  # detections matched to a truth vehicle (difficult ones included)
    riders: int = 0
    riders_found: int = 0

    def add(self, other: "FrameScore") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def recall(self) -> float | None:
        return self.found / self.truth if self.truth else None

    @property
    def precision(self) -> float | None:
        return self.correct / self.detections if self.detections else None


def score_frame(truth_vehicles: list[dict], ignore: list[Box], detections: list[Box], threshold: float) -> FrameScore:
    """One labelled frame: truth vehicles vs the vehicle-class detection boxes, at an IoU threshold."""
    score = FrameScore()
    ious = [[iou(t["box"], d) for d in detections] for t in truth_vehicles]
    pairs = greedy_pairs(ious, lambda s: s >= threshold)
    matched_truth = {r for r, _ in pairs}
    matched_detections = {c for _, c in pairs}
    for i, vehicle in enumerate(truth_vehicles):
        riders = int(vehicle.get("riders") or 0)
        if vehicle.get("difficult"):
            score.difficult += 1
            score.difficult_found += i in matched_truth
        else:
            score.truth += 1
            score.found += i in matched_truth
        score.riders += riders
        score.riders_found += riders if i in matched_truth else 0
    for j, box in enumerate(detections):
        if j not in matched_detections and any(inside_share(box, region) >= 0.5 for region in ignore):
            continue
        score.detections += 1
        score.correct += j in matched_detections
    return score


@dataclass
class EventScore:
    truth: int = 0
    found: int = 0
    false: int = 0
    duplicate: int = 0
    pairs: list[tuple[dict, dict]] = field(default_factory=list)

    @property
    def missed(self) -> int:
        return self.truth - self.found


def _close(truth: dict, found: dict, key: str) -> bool:
    return (truth.get(key) == found.get(key) and abs(float(truth["t"]) - float(found["t"])) <= MAX_DT_S
            and (truth.get("x") is None or found.get("x") is None
                 or abs(float(truth["x"]) - float(found["x"])) <= MAX_DX_PX))


def score_events(truth: list[dict], found: list[dict], key: str) -> EventScore:
    """Crossings (key "line") or violations (key "type") against the truth's."""
    def distance(t: dict, f: dict) -> float:
        dx = abs(float(t["x"]) - float(f["x"])) / MAX_DX_PX if t.get("x") is not None and f.get("x") is not None else 0.0
        return abs(float(t["t"]) - float(f["t"])) / MAX_DT_S + dx

    table = [[distance(t, f) if _close(t, f, key) else float("inf") for f in found] for t in truth]
    pairs = greedy_pairs(table, lambda s: s != float("inf"), higher_better=False)
    used = {c for _, c in pairs}
    score = EventScore(truth=len(truth), found=len(pairs), pairs=[(truth[r], found[c]) for r, c in pairs])
    for j, event in enumerate(found):
        if j in used:
            continue
        if any(_close(t, event, key) for t in truth):
            score.duplicate += 1  # a second report of something already found
        else:
            score.false += 1
    return score


def interpolate_box(track: list[dict], frame: int) -> Box | None:
    """A truth track's box at `frame`, linear between its keyframes; None outside its span."""
    steps = sorted(track, key=lambda s: s["frame"])
    for a, b in zip(steps, steps[1:]):
        if a["frame"] <= frame <= b["frame"]:
            share = (frame - a["frame"]) / ((b["frame"] - a["frame"]) or 1)
            return [p + share * (q - p) for p, q in zip(a["box"], b["box"])]
    if len(steps) == 1 and steps[0]["frame"] == frame:
        return steps[0]["box"]
    return None


@dataclass
class Identity:
    vehicles: int = 0  # truth tracks that overlapped replay's processed frames
    fragments: int = 0  # distinct track ids matched to them, summed
    switches: int = 0  # changes of matched id between consecutive matched frames

    @property
    def fragments_per_vehicle(self) -> float | None:
        return self.fragments / self.vehicles if self.vehicles else None


def identity(truth_tracks: list[list[dict]], frames: dict[int, list[tuple[int, Box]]], threshold: float = 0.3) -> Identity:
    """ID switches and fragmentation: each truth vehicle's box list against replay's track boxes
    (frame index -> [(track id, box)] of the tracks matched in that processed frame)."""
    out = Identity()
    for track in truth_tracks:
        ids: list[int] = []
        for index in sorted(frames):
            box = interpolate_box(track, index)
            if box is None:
                continue
            candidates = [(iou(box, b), tid) for tid, b in frames[index]]
            best = max(candidates, default=(0.0, None))
            if best[0] >= threshold:
                ids.append(best[1])  # type: ignore[arg-type]
        if not ids:
            continue
        out.vehicles += 1
        out.fragments += len(set(ids))
        out.switches += sum(1 for a, b in zip(ids, ids[1:]) if a != b)
    return out


def count_totals(events: list[dict]) -> dict[tuple[str | None, str, str | None], int]:
    """Replay's count events summed per (line, direction, class); `both` adds the two directions."""
    totals: dict[tuple[str | None, str, str | None], int] = {}
    for e in events:
        for direction in {e.get("direction", "both"), "both"}:
            key = (e.get("line"), direction, e.get("class"))
            totals[key] = totals.get(key, 0) + int(e["n"])
    return totals


# --- incidents ------------------------------------------------------------------------------------
INCIDENT_IOU = 0.2  # a reported incident's box and the truth's (taken at other frames of a still subject)


@dataclass
class IncidentScore:
    truth: int = 0
    found: int = 0
    missed: list[dict] = field(default_factory=list)
    false: list[dict] = field(default_factory=list)
    duplicate: int = 0
    at_red_queue: list[dict] = field(default_factory=list)  # false ones that are a vehicle waiting at a red light


def _same_incident(truth: dict, found: dict) -> bool:
    if truth["type"] != found["type"]:
        return False
    start = int(found.get("started_frame", found["frame"]))
    if start > int(truth["to_frame"]) or int(found["frame"]) < int(truth["from_frame"]):
        return False
    for key in ("lane", "zone"):
        if truth.get(key) and found.get(key) and truth[key] != found[key]:
            return False
    if truth.get("box") and found.get("box"):
        return iou(truth["box"], found["box"]) >= INCIDENT_IOU
    return True


def _on(box: Box, vehicle: Box) -> bool:
    """The reported box is that vehicle, or a part of it (its centre within the vehicle's box
    grown by a tenth: a mirror, a wheel boxed by the detector)."""
    if iou(box, vehicle) >= INCIDENT_IOU:
        return True
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    gx, gy = 0.1 * (vehicle[2] - vehicle[0]), 0.1 * (vehicle[3] - vehicle[1])
    return vehicle[0] - gx <= cx <= vehicle[2] + gx and vehicle[1] - gy <= cy <= vehicle[3] + gy


def _at_red_queue(found: dict, queues: list[dict]) -> bool:
    for queue in queues:
        if queue.get("what") != "red_light_queue":
            continue
        if int(found["frame"]) < int(queue["from_frame"]) or int(found.get("started_frame", found["frame"])) > int(queue["to_frame"]):
            continue
        if found["type"] == "congestion" and found.get("lane") == queue.get("lane"):
            return True
        if found.get("box") and any(_on(found["box"], v["box"]) for v in queue.get("vehicles", [])):
            return True
    return False


def score_incidents(truth: dict, found: list[dict]) -> IncidentScore:
    """Reported incidents (replay's `detected` events, with `frame`, `started_frame`, `box`, `lane`,
    `zone`) against a clip's incident truth: one-to-one by type, overlapping frames, same lane or
    zone and overlapping boxes where both say; a second report of a found incident is a duplicate;
    a false report on a vehicle of a red-light queue is also listed apart."""
    wanted = [i for i in truth["incidents"] if i["type"] in truth["types_checked"]]
    found = [f for f in found if f["type"] in truth["types_checked"]]
    table = [[1.0 if _same_incident(t, f) else 0.0 for f in found] for t in wanted]
    pairs = greedy_pairs(table, lambda s: s > 0)
    used = {c for _, c in pairs}
    score = IncidentScore(truth=len(wanted), found=len(pairs),
                          missed=[t for r, t in enumerate(wanted) if r not in {r for r, _ in pairs}])
    for j, event in enumerate(found):
        if j in used:
            continue
        if any(_same_incident(t, event) for t in wanted):
            score.duplicate += 1
        else:
            score.false.append(event)
            if _at_red_queue(event, truth.get("not_incidents", [])):
                score.at_red_queue.append(event)
    return score
