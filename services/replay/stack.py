"""The services' own code, assembled as ingest, detect and track assemble it, minus the bus.

Every call into another service's modules goes through this file (`build_detector`, `detect`,
`build_tracker`, `track`, `finish`, `CrossingWatch`, `Sampled`), so that when detect or track
change their public functions only this glue has to follow:

- ingest: `read_av` decodes the file, `FpsSampler` keeps one frame per 1/fps slot of
  presentation time, `Decoded.jpeg` encodes what would be published (same encoder, same quality);
- detect: `decode_frame` → `Pipeline.process` → `detection_event`, as the detect worker does;
- track: `CameraTracker.process` with the settings the track service reads, and the lamps read
  off the half-size decoded JPEG as the track worker does (`evidence.decode(half=True)`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from proto.v1.detection import DetectionMade
from proto.v1.telemetry import VehiclesCounted
from proto.v1.frame import frame_headers, new_frame_meta
from services.detect.handler import decode_frame, detection_event
from services.detect import regions
from services.detect.pipeline import Pipeline
from services.detect.settings import Settings as DetectSettings
from services.ingest.cameras import Camera, Location, Motion
from services.ingest.sampler import FpsSampler
from services.ingest.sources import Counters, ReaderOptions, SourceError, read_av  # noqa: F401 - SourceError: for callers
from services.runtime.settings import parse
from services.track import evidence
from services.track.camera import CameraTracker, Step, ViolationDraft
from services.track.incidents import IncidentDraft
from services.track.rules import Observation
from services.track.scenes import Scene
from services.track.settings import Settings as TrackSettings
from services.track.riders import LoneRiderParams
from services.track.tracker import TrackerParams

JPEG_QUALITY = 80  # ingest's default `jpeg_quality`
# Capture time of a replayed clip's first frame, unless the caller gives one (a whole second, so
# that sampling slots counted from it are those counted from the clip's start).
DEFAULT_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


def detect_settings(environ: Mapping[str, str] | None = None, **overrides: str) -> DetectSettings:
    """The detect service's settings from the same environment variables (MODELS_DIR included);
    raises SettingError."""
    env = dict(os.environ if environ is None else environ)
    env.update(overrides)
    return parse(DetectSettings, env)


def track_settings(environ: Mapping[str, str] | None = None) -> TrackSettings:
    return parse(TrackSettings, dict(os.environ if environ is None else environ))


@dataclass
class Detector:
    """detect's pipeline with what the detect service gives it for this camera."""

    pipeline: Pipeline
    # The camera's detection plan from its scene, when detect has plans (a `detection:` block:
    # region of interest, slices). None: the whole frame, as detect does for a camera without one.
    plan: object | None = None

    @property
    def model_name(self) -> str:
        return self.pipeline.model_name

    def process(self, image: np.ndarray):
        """As detect's worker: the pipeline on the image (with the camera's plan, when there is one)."""
        return self.pipeline.process(image, self.plan)  # type: ignore[arg-type]


# Whether detect plans a camera's detection from its scene (and build_detector passes the plan).
DETECTION_PLANS = True


def build_detector(settings: DetectSettings, scene: Scene, *, use_plan: bool = True) -> Detector:
    """As detect's main(): raises ModelError (and RegionError for a bad `detection:` block).
    `use_plan`: the scene's detection plan, as the service reads it from SCENES_DIR; without
    it (or without a `detection:` block) the whole frame."""
    pipeline = Pipeline.from_settings(settings)
    plan = regions.load_plan(scene.path, camera=scene.camera) if use_plan else None
    if plan is not None:
        pipeline.check_plan(plan)
    return Detector(pipeline, plan)


def build_tracker(scene: Scene, settings: TrackSettings) -> CameraTracker:
    """As track's build_workers()."""
    return CameraTracker(scene, classes=frozenset(settings.track_classes),
                         params=TrackerParams(max_lost_s=settings.max_lost_s),
                         before_s=settings.evidence_before_s, after_s=settings.evidence_after_s,
                         count_window_s=settings.count_window_s,
                         riders=LoneRiderParams(min_frames=settings.lone_rider_frames,
                                                min_speed_heights_s=settings.lone_rider_speed))


def bare_detector(settings: DetectSettings):
    """The vehicle model alone, whole frame, no slices, no fusion: the baseline of `make eval-video`.
    Returns a function image -> [(class, score, box)]."""
    from services.detect.vehicles import VehicleDetector, read_class_names  # noqa: PLC0415

    names = read_class_names(settings.model_path(settings.vehicle_classes_file))
    model = VehicleDetector(settings.model_path(settings.vehicle_model), settings.vehicle_format, names,
                            conf=settings.vehicle_conf, iou=settings.vehicle_iou or None,
                            intra_op_threads=settings.intra_op_threads,
                            input_size=(settings.vehicle_input_size, settings.vehicle_input_size), tiles=0)

    def detect(image: np.ndarray) -> list[tuple[str, float, tuple[float, float, float, float]]]:
        found = model.detect(image)
        return [(names[c], float(s), tuple(float(v) for v in b))  # type: ignore[misc]
                for b, s, c in zip(found.boxes, found.scores, found.classes)]

    return detect


# --- ingest ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoFrame:
    index: int  # decode order, from 0
    pts: float  # presentation time, seconds from the first frame
    jpeg: bytes  # what ingest would publish
    width: int
    height: int


def file_camera(path: str, fps: float, camera_id: str) -> Camera:
    return Camera(id=camera_id, name=camera_id, url=path, kind="file", fps=fps, jpeg_quality=JPEG_QUALITY,
                  location=Location(0.0, 0.0), scene="", motion=Motion(enabled=False), loop=False, realtime=False)


class Sampled:
    """Frames of a video file as ingest samples them: one per 1/fps slot of `origin + pts`.

    `origin` is 0 (slots counted from the clip's start) unless the frames must be the ones a
    running ingest picked: it counts slots from the epoch, on capture time = its start + pts.
    """

    def __init__(self, path: str, fps: float, *, camera_id: str = "replay", origin: float = 0.0) -> None:
        self.path = path
        self.camera = file_camera(path, fps, camera_id)
        self.origin = origin
        self.read = 0
        self.kept = 0
        self.counters = Counters()

    def __iter__(self) -> Iterator[VideoFrame]:
        """Raises SourceError (file missing, not a video, undecodable)."""
        sampler = FpsSampler(self.camera.fps)
        stop = threading.Event()
        for decoded in read_av(self.camera, ReaderOptions(), stop, self.counters):
            index = self.read
            self.read += 1
            pts = decoded.pts or 0.0
            if not sampler.take(self.origin + pts):
                continue
            jpeg, width, height = decoded.jpeg(self.camera.jpeg_quality, self.camera.max_width)
            self.kept += 1
            yield VideoFrame(index, pts, jpeg, width, height)


def frames_at(path: str, indexes: set[int]) -> Iterator[VideoFrame]:
    """The frames of these decode indexes, encoded as ingest would (for per-frame evaluation)."""
    counters = Counters()
    camera = file_camera(path, 30.0, "eval")
    for index, decoded in enumerate(read_av(camera, ReaderOptions(), threading.Event(), counters)):
        if index in indexes:
            jpeg, width, height = decoded.jpeg(camera.jpeg_quality, camera.max_width)
            yield VideoFrame(index, decoded.pts or 0.0, jpeg, width, height)
        if index >= max(indexes, default=-1):
            return


def decode_jpeg(frame: VideoFrame) -> np.ndarray:
    """The image detect sees: the published JPEG decoded as detect decodes it."""
    return decode_frame(frame.jpeg, frame_headers(new_frame_meta(
        camera_id="eval", frame_seq=frame.index, captured_at=DEFAULT_EPOCH, width=frame.width, height=frame.height)),
        1, now=DEFAULT_EPOCH, max_age_s=1e9).image  # type: ignore[return-value]


# --- detect ------------------------------------------------------------------------------------------
def detect(detector: Detector, frame: VideoFrame, *, camera_id: str, captured_at: datetime,
           stream_seq: int, discontinuity: str | None = None) -> tuple[DetectionMade, np.ndarray]:
    """The detect worker's path for one frame: JPEG → image → pipeline → DetectionMade.
    `discontinuity`: the frame's Discontinuity header (the first frame after a break)."""
    meta = new_frame_meta(camera_id=camera_id, frame_seq=frame.index, captured_at=captured_at,
                          width=frame.width, height=frame.height, discontinuity=discontinuity)  # type: ignore[arg-type]
    decoded = decode_frame(frame.jpeg, frame_headers(meta), stream_seq, now=captured_at, max_age_s=1e9)
    result = detector.process(decoded.image)  # type: ignore[arg-type]
    return detection_event(decoded, result, model=detector.model_name, now=captured_at), decoded.image  # type: ignore[return-value]


# --- track -------------------------------------------------------------------------------------------
def track(engine: CameraTracker, event: DetectionMade, jpeg: bytes, t: float) -> tuple[Step, list[tuple[str, float, str]]]:
    """The track worker's step for one detection: the lamps read off the half-size frame (as
    `_read_signal` does, without the fetch), then the tracker. Returns the step and the signal
    changes as (head, since, phase)."""
    image = None
    if engine.reads_signal_from_image:
        try:
            image = evidence.decode(jpeg, half=True)
        except ValueError:
            image = None
    step = engine.process(event, image)
    return step, step.signal_changes


def finish(engine: CameraTracker) -> tuple[list[ViolationDraft], list[VehiclesCounted]]:
    """At the end of the clip, as the track worker at shutdown: pending violations and the open
    count windows."""
    return engine.finish(), engine.flush_counts()


def finish_incidents(engine: CameraTracker) -> list[IncidentDraft]:
    """At the end of the clip, as the track worker at shutdown: the open incidents, cleared."""
    return engine.finish_incidents()


@dataclass(frozen=True)
class Crossing:
    line: str
    t: float  # epoch seconds, interpolated between the two frames
    x: float  # where the ground point crossed the line
    track_id: int
    vehicle_class: str
    frame: int  # decode index of the first frame beyond the line


class CrossingWatch:
    """Stop lines crossed, in the lane's direction, by confirmed tracks: track's own crossings
    (`Step.crossings`, the ones the red-light rule judges), reported once per track and line."""

    def __init__(self) -> None:
        self.seen: set[tuple[int, str]] = set()

    def step(self, engine: CameraTracker, step: Step, t: float) -> list[Crossing]:
        out = []
        for track_id, vehicle_class, crossed in step.crossings:
            if (track_id, crossed.line) in self.seen:
                continue
            self.seen.add((track_id, crossed.line))
            info = engine.info.get(track_id)
            beyond = [o for o in info.observations if o.t >= crossed.t] if info is not None else []
            frame = beyond[0].frame_seq if beyond else crossed.observation.frame_seq  # first frame beyond the line
            out.append(Crossing(crossed.line, crossed.t, crossed.point[0], track_id, vehicle_class, frame))
        return out


def confirmed_tracks(engine: CameraTracker) -> set[int]:
    return {track.id for track in engine.tracker.tracks if track.hits >= engine.min_hits}


def live_tracks(engine: CameraTracker) -> list[tuple[int, str, tuple[float, float, float, float], bool]]:
    """(id, class, box in scene pixels, matched in this frame) of every live track."""
    return [(tr.id, tr.class_name, tr.box, tr.detection is not None) for tr in engine.tracker.tracks]


def at(epoch: datetime, seconds: float) -> datetime:
    return epoch + timedelta(seconds=seconds)

