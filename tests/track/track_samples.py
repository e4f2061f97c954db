"""Scripted scenes and trajectories for the rule tests: one straight road, four lanes' worth of
features, traffic moving up the image (decreasing y) at a chosen speed."""

from __future__ import annotations

from pathlib import Path

from services.track import scenes
from services.track.rules import Observation, RuleState, evaluate, resolve
from services.track.signals import SignalState

SCENE = """
camera: test-cam
name: "Ngã tư thử nghiệm"
location: {latitude: 21.0285, longitude: 105.8542, address: "Hà Nội"}
frame_size: [1000, 1000]
lanes:
  - id: main
    polygon: [[0, 1000], [500, 1000], [500, 0], [0, 0]]
    direction: [0, -1]
    allowed: [car, motorcycle]
  - id: bus-lane
    polygon: [[500, 1000], [1000, 1000], [1000, 0], [500, 0]]
    direction: [0, -1]
    allowed: [bus]
stop_lines:
  - id: stop
    line: [[0, 500], [1000, 500]]
no_stopping:
  - id: kerb
    polygon: [[0, 800], [500, 800], [500, 900], [0, 900]]
    max_dwell_s: 10
speed_traps:
  - id: trap
    entry: [[0, 400], [1000, 400]]
    exit: [[0, 200], [1000, 200]]
    distance_m: 20
    limit_kmh: 50
    tolerance_kmh: 5
signal:
  source: controller
  intersection: test-junction
  heads:
    - id: main
    - id: bus
movements:
  - id: straight
    lanes: [main]
    head: main
  - id: bus
    lanes: [bus-lane]
    head: bus
rules:
  wrong_way_frames: 4
  wrong_lane_frames: 3
"""


def write_scene(tmp_path: Path, text: str = SCENE, name: str = "test-cam.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_scene(tmp_path: Path, text: str = SCENE) -> scenes.Scene:
    return scenes.load(write_scene(tmp_path, text))


def trajectory(points: list[tuple[float, float, float]], size: float = 40.0) -> list[Observation]:
    """(t, x, y) of the bottom centre -> observations; velocity from the neighbouring points."""
    out = []
    for i, (t, x, y) in enumerate(points):
        j = i - 1 if i > 0 else min(i + 1, len(points) - 1)
        t2, x2, y2 = points[j]
        dt = t - t2
        v = ((x - x2) / dt, (y - y2) / dt) if dt else (0.0, 0.0)
        out.append(Observation(t=t, stream_seq=100 + i, frame_seq=i, box=(x - size / 2, y - size, x + size / 2, y),
                               velocity=v))
    return out


def straight(x: float, y0: float, y1: float, speed_px_s: float, fps: float = 10.0, t0: float = 1000.0):
    """From y0 to y1 at a constant speed."""
    steps = max(1, int(abs(y1 - y0) / speed_px_s * fps))
    return [(t0 + i / fps, x, y0 + (y1 - y0) * i / steps) for i in range(steps + 1)]


def run(scene: scenes.Scene, observations: list[Observation], vehicle_class: str = "car",
        signals: SignalState | None = None, end: bool = True):
    state = RuleState()
    signals = signals or SignalState()
    findings = []
    previous = None
    for obs in observations:
        findings += evaluate(scene, state, previous, obs, vehicle_class, signals.at)
        previous = obs
    if end:
        findings += resolve(scene, state, signals.at, previous)
    return findings
