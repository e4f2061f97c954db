"""Detect service settings, read from the environment once at start.

Model files are settings, never downloads: an agency drops in its own detector by pointing
VEHICLE_MODEL / VEHICLE_FORMAT / VEHICLE_CLASSES_FILE at it. Names are resolved against
MODELS_DIR unless they are absolute paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

from proto.subjects import check_token
from services.detect.riders import RiderRules
from services.detect.plate_formats import SHIPPED as SHIPPED_FORMATS, Expected, FormatsError, load as load_formats
from services.runtime.cpus import available_cores
from services.runtime.settings import ServiceSettings, SettingError, above, at_least, between, check_choice

FORMATS = ("yolox", "nanodet", "yolov5", "yolov8")
DEFAULT_CLASSES = ["person", "bicycle", "car", "motorcycle", "bus", "truck"]
_RIDERS = RiderRules()
# a score or IoU threshold: strictly between 0 and 1
Threshold = Annotated[float, msgspec.Meta(gt=0, lt=1)]


class Settings(ServiceSettings, frozen=True, kw_only=True):
    http_port: int = 8082

    # folder the model file names below are resolved against (absolute paths are used as they are)
    models_dir: str = "models"
    vehicle_model: str = "yolox_nano.onnx"  # vehicle detector (ONNX)
    vehicle_format: str = "yolox"  # its output format: yolox, nanodet, yolov5, yolov8
    vehicle_classes_file: str = "coco.names"  # class names, one per line, in model index order
    # input size for a model with a dynamic input (fixed inputs are read from the model)
    vehicle_input_size: Annotated[int, at_least(32)] = 640
    vehicle_conf: Threshold = 0.3  # vehicle score threshold
    # NMS IoU; 0: the format's own (YOLOX/YOLOv5/v8 0.45, NanoDet 0.6)
    vehicle_iou: Annotated[float, msgspec.Meta(ge=0, lt=1)] = 0.0
    # 0: whole frame only; N = 2-8: also N overlapping vertical strips (small vehicles, ~N+1x time)
    vehicle_tiles: int = 0
    vehicle_model_sha256: str = ""  # when set, the model file must have this SHA-256 (a mismatch stops the service)
    # classes published (riders seen from above often come out as person)
    vehicle_keep_classes: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_CLASSES))
    # The slot in the `models` bucket whose promoted version replaces VEHICLE_MODEL (swapped on each
    # model.promoted event, candidates run in shadow); empty: the MODELS_DIR file only.
    model_name: str = "vehicle"

    # `<camera_id>.yaml` scene files; their `detection:` block (roi, slices) is the camera's
    # detection plan. Empty: every camera gets the whole-frame path.
    scenes_dir: str = ""

    # A person on a motorcycle/bicycle box becomes that two-wheeler's rider (riders.py); the
    # RIDER_* thresholds below decide who sits on what; their defaults are RiderRules' own.
    rider_fusion: bool = True
    # share of the narrower box's width the person and the bike must share
    rider_min_x_overlap: Annotated[float, between(0.0, 1.0)] = _RIDERS.min_x_overlap
    # the person's feet at least this share of the bike's height below the bike's top
    rider_min_foot_depth: Annotated[float, between(0.0, 1.0)] = _RIDERS.min_foot_depth
    # ... and at most this share below its bottom
    rider_max_foot_below: Annotated[float, between(0.0, 2.0)] = _RIDERS.max_foot_below
    # the person's head above this share of the bike's height
    rider_max_head_depth: Annotated[float, between(0.0, 1.0)] = _RIDERS.max_head_depth
    # a person more than this many times wider than the bike does not ride it
    rider_max_width_ratio: Annotated[float, between(0.5, 10.0)] = _RIDERS.max_width_ratio
    rider_max_per_vehicle: Annotated[int, at_least(1)] = _RIDERS.max_riders  # riders per two-wheeler at most
    # a two-wheeler box this weak is kept only with a rider on it (VEHICLE_CONF or above: off)
    rider_weak_bike_score: Annotated[float, msgspec.Meta(gt=0, le=1)] = _RIDERS.weak_bike_score

    plate_model: str = "y5fu_640x_sim.onnx"  # plate detector with 4 corners, run on the whole frame
    plate_conf: Threshold = 0.3  # plate objectness and score threshold
    plate_iou: Threshold = 0.5  # plate NMS IoU
    plate_model_sha256: str = ""  # pinned SHA-256 of PLATE_MODEL
    ocr_rec_model: str = "ch_PP-OCRv4_rec_infer.onnx"  # text-line recogniser (character list from its metadata)
    ocr_det_model: str = "ch_PP-OCRv4_det_infer.onnx"  # text detector for the motorbike fallback; empty: none
    ocr_rec_model_sha256: str = ""  # pinned SHA-256 of OCR_REC_MODEL
    ocr_det_model_sha256: str = ""  # pinned SHA-256 of OCR_DET_MODEL
    plate_crop_model: str = "y5fu_320x_sim.onnx"  # plate detector for a second look on a vehicle's crop; empty: none
    plate_crop_model_sha256: str = ""  # pinned SHA-256 of PLATE_CROP_MODEL
    # vehicles that get a second look when no plate was found on them
    fallback_classes: list[str] = msgspec.field(default_factory=lambda: ["motorcycle", "car", "bus", "truck"])
    # of those, the ones the text detector also tries
    text_fallback_classes: list[str] = msgspec.field(default_factory=lambda: ["motorcycle"])
    # only vehicles at least this tall (px) get a second look (smaller plates are unreadable)
    fallback_min_height: Annotated[int, at_least(0)] = 160
    # at most this many second looks per frame, biggest vehicles first
    fallback_max_per_frame: Annotated[int, at_least(0)] = 2
    plate_formats_file: str = ""  # plate formats per country (YAML); empty: the shipped plate_formats.yaml
    # countries whose plates the cameras expect, e.g. vn or vn,la,kh (a scene may say otherwise)
    plate_countries: list[str] = msgspec.field(default_factory=lambda: ["vn"])

    batch_size: Annotated[int, at_least(1)] = 4  # frames per micro-batch
    # once a first frame is in, wait at most this long for the batch to fill
    batch_wait_ms: Annotated[int, at_least(0)] = 50
    max_frame_age_s: Annotated[float, above(0)] = 30.0  # older frames are acked without detection and counted (stale)
    max_frame_bytes: Annotated[int, at_least(1)] = 8 * 1024 * 1024  # bigger payloads go to the dead letters
    # Overload (docs/ARCHITECTURE.md): with more than BATCH_SIZE frames waiting, each camera gets
    # at most its newest FRAMES_PER_CAMERA detected per round; its older ones are dropped as superseded.
    frames_per_camera: Annotated[int, at_least(1)] = 2
    # dropped frames: one WARNING per interval, counts per camera
    drop_log_interval_s: Annotated[float, above(0)] = 60.0
    # One model thread per core the process may use (cgroup quota, then affinity), each session
    # single-threaded (docs/BENCHMARKS.md: on two cores WORKERS=2 carried 19.4 frames/s where
    # WORKERS=1 carried 9.2).
    workers: Annotated[int, at_least(1)] = msgspec.field(default_factory=available_cores)
    intra_op_threads: Annotated[int, at_least(1)] = 1  # onnxruntime intra-op threads per session

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("VEHICLE_FORMAT", self.vehicle_format, FORMATS)
        if self.model_name:
            try:
                check_token(self.model_name, "model name")
            except ValueError as exc:
                raise SettingError("MODEL_NAME", str(exc)) from None
        if self.vehicle_tiles == 1 or not 0 <= self.vehicle_tiles <= 8:
            raise SettingError("VEHICLE_TILES", f"must be 0 (off) or 2-8, got {self.vehicle_tiles}")
        for name in ("vehicle_model_sha256", "plate_model_sha256", "plate_crop_model_sha256", "ocr_rec_model_sha256",
                     "ocr_det_model_sha256"):
            value = getattr(self, name)
            if value and (len(value) != 64 or any(c not in "0123456789abcdefABCDEF" for c in value)):
                raise SettingError(name.upper(), f"must be 64 hex digits, got {value!r}")
        if not self.vehicle_keep_classes:
            raise SettingError("VEHICLE_KEEP_CLASSES", "must name at least one class")
        self.plate_expectation()

    def rider_rules(self) -> RiderRules | None:
        if not self.rider_fusion:
            return None
        return RiderRules(min_x_overlap=self.rider_min_x_overlap, min_foot_depth=self.rider_min_foot_depth,
                          max_foot_below=self.rider_max_foot_below, max_head_depth=self.rider_max_head_depth,
                          max_width_ratio=self.rider_max_width_ratio, max_riders=self.rider_max_per_vehicle,
                          weak_bike_score=self.rider_weak_bike_score)

    def plate_expectation(self) -> Expected:
        """The formats of PLATE_COUNTRIES from PLATE_FORMATS_FILE, checked (SettingError otherwise)."""
        try:
            formats = load_formats(self.plate_formats_file or SHIPPED_FORMATS)
        except FormatsError as exc:
            raise SettingError("PLATE_FORMATS_FILE", str(exc)) from None
        try:
            return formats.expect(self.plate_countries)
        except FormatsError as exc:
            raise SettingError("PLATE_COUNTRIES", exc.reason) from None

    def model_path(self, name: str) -> Path:
        path = Path(name)
        return path if path.is_absolute() else Path(self.models_dir) / path
