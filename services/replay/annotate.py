"""`roadwatch replay --annotate OUT.mp4`: the frames replay processed, with what the services saw.

Drawn: the scene (lanes, stop lines, no-stopping zones, speed-trap lines, signal-head regions in
the colour read), every detection (thin, class and score), every live track (thick, id and
class; grey when lost this frame) with its recent path, and the frame's time. This is the check
a person drawing a new scene makes before the camera goes live.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from services.replay import stack
from services.track.camera import CameraTracker
from services.track.scenes import Scene

PHASE_COLOURS = {"red": (0, 0, 255), "amber": (0, 190, 255), "green": (0, 200, 0), "off": (90, 90, 90)}
TRACK_COLOUR = (255, 200, 0)
LOST_COLOUR = (160, 160, 160)
LANE_COLOUR = (255, 255, 255)
STOP_COLOUR = (0, 0, 255)
ZONE_COLOUR = (255, 0, 255)
TRAP_COLOUR = (0, 255, 255)


def _pts(points, sx: float, sy: float) -> np.ndarray:
    return np.array([[int(x * sx), int(y * sy)] for x, y in points], dtype=np.int32)


class Annotator:
    def __init__(self, path: str | Path, scene: Scene, fps: float) -> None:
        self.path = Path(path)
        self.scene = scene
        self.fps = fps
        self.container = None
        self.stream = None
        self.paths: dict[int, deque[tuple[int, int]]] = {}
        self.frames = 0

    def __call__(self, frame: stack.VideoFrame, image: np.ndarray, engine: CameraTracker, event) -> None:
        picture = self.draw(frame, image, engine, event)
        if self.container is None:
            self._open(picture.shape[1], picture.shape[0])
        video = av.VideoFrame.from_ndarray(picture, format="bgr24")
        video.pts = self.frames
        self.frames += 1
        for packet in self.stream.encode(video):
            self.container.mux(packet)

    def _open(self, width: int, height: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.path), mode="w")
        rate = Fraction(self.fps).limit_denominator(1000)
        self.stream = self.container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=rate)
        self.stream.width = width - width % 2
        self.stream.height = height - height % 2
        self.stream.pix_fmt = "yuv420p"
        self.stream.time_base = 1 / rate
        self.stream.options = {"crf": "26", "preset": "veryfast"}

    def close(self) -> None:
        if self.container is None:
            return
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        self.container = None

    def draw(self, frame: stack.VideoFrame, image: np.ndarray, engine: CameraTracker, event) -> np.ndarray:
        out = image.copy()
        height, width = out.shape[:2]
        out = out[: height - height % 2, : width - width % 2]
        scene = self.scene
        sx, sy = width / scene.frame_size[0], height / scene.frame_size[1]
        for lane in scene.lanes:
            cv2.polylines(out, [_pts(lane.polygon, sx, sy)], True, LANE_COLOUR, 1, cv2.LINE_AA)
            cx = sum(p[0] for p in lane.polygon) / len(lane.polygon) * sx
            cy = sum(p[1] for p in lane.polygon) / len(lane.polygon) * sy
            tip = (int(cx + lane.direction[0] * 30), int(cy + lane.direction[1] * 30))
            cv2.arrowedLine(out, (int(cx), int(cy)), tip, LANE_COLOUR, 1, cv2.LINE_AA, tipLength=0.3)
            cv2.putText(out, lane.id, (int(cx) + 4, int(cy)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, LANE_COLOUR, 1, cv2.LINE_AA)
        for stop in scene.stop_lines:
            a, b = _pts(stop.line, sx, sy)
            cv2.line(out, tuple(a), tuple(b), STOP_COLOUR, 2, cv2.LINE_AA)
            cv2.putText(out, stop.id, (int(a[0]) + 4, int(a[1]) - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, STOP_COLOUR, 1,
                        cv2.LINE_AA)
        for zone in scene.no_stopping:
            cv2.polylines(out, [_pts(zone.polygon, sx, sy)], True, ZONE_COLOUR, 1, cv2.LINE_AA)
        for trap in scene.speed_traps:
            for line in (trap.entry, trap.exit):
                a, b = _pts(line, sx, sy)
                cv2.line(out, tuple(a), tuple(b), TRAP_COLOUR, 1, cv2.LINE_AA)
        t = frame.pts
        if scene.signal is not None:
            for head in scene.signal.heads:
                phase = engine.signals.at(head.id, engine_time(engine, t))
                state = phase.phase if phase is not None else "?"
                colour = PHASE_COLOURS.get(state, (255, 255, 255))
                if head.region is not None:
                    x1, y1, x2, y2 = head.region
                    cv2.rectangle(out, (int(x1 * sx), int(y1 * sy)), (int(x2 * sx), int(y2 * sy)), colour, 2)
        label = f"frame {frame.index}  t {t:.2f} s"
        if scene.signal is not None:
            label += "  " + "  ".join(f"{head.id}: {self._state(engine, head.id, t)}" for head in scene.signal.heads)
        cv2.rectangle(out, (0, 0), (min(out.shape[1], 14 + 9 * len(label)), 24), (0, 0, 0), -1)
        cv2.putText(out, label, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        fx, fy = width / event.frame.width, height / event.frame.height
        for obj in event.objects:
            b = obj.box
            p1, p2 = (int(b.x1 * fx), int(b.y1 * fy)), (int(b.x2 * fx), int(b.y2 * fy))
            cv2.rectangle(out, p1, p2, (0, 255, 0), 1)
            cv2.putText(out, f"{obj.class_name} {obj.score:.2f}", (p1[0], p2[1] + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        (0, 255, 0), 1, cv2.LINE_AA)
        live = set()
        for track_id, class_name, box, matched in stack.live_tracks(engine):
            live.add(track_id)
            colour = TRACK_COLOUR if matched else LOST_COLOUR
            x1, y1, x2, y2 = box
            p1, p2 = (int(x1 * sx), int(y1 * sy)), (int(x2 * sx), int(y2 * sy))
            cv2.rectangle(out, p1, p2, colour, 2)
            cv2.putText(out, f"#{track_id} {class_name}", (p1[0], max(10, p1[1] - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        colour, 1, cv2.LINE_AA)
            trail = self.paths.setdefault(track_id, deque(maxlen=25))
            if matched:
                trail.append((int((x1 + x2) / 2 * sx), int(y2 * sy)))
            if len(trail) > 1:
                cv2.polylines(out, [np.array(trail, dtype=np.int32)], False, colour, 1, cv2.LINE_AA)
        for gone in set(self.paths) - live:
            del self.paths[gone]
        return out

    @staticmethod
    def _state(engine: CameraTracker, head: str, t: float) -> str:
        phase = engine.signals.at(head, engine_time(engine, t))
        return phase.phase if phase is not None else "unknown"


def engine_time(engine: CameraTracker, pts: float) -> float:
    """Capture time of the frame being drawn: the tracker's clock (epoch + pts)."""
    return engine.tracker.last_t if engine.tracker.last_t is not None else pts
