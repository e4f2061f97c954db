"""Prometheus metrics of the detect service (prefix roadwatch_detect_)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FRAMES = Counter(
    "roadwatch_detect_frames_total",
    "Frames taken from the stream, by result: detected, stale (older than MAX_FRAME_AGE_S, skipped), "
    "superseded (dropped under overload: newer frames of the camera were waiting), "
    "failed (the models raised; dead-lettered).",
    ["result"],
)
CAMERA_FRAMES = Counter(
    "roadwatch_detect_camera_frames_total",
    "Frames of each camera taken from the stream, by result: detected, stale, superseded. Under overload "
    "every camera loses about the same share (fair admission); the alert DetectDroppingFrames reads it.",
    ["camera", "result"],
)
FRAME_SECONDS = Histogram(
    "roadwatch_detect_frame_seconds",
    "Time to run the models on one frame (vehicles, plates, fallback), in a worker.",
    buckets=(0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5),
)
FRAME_AGE_SECONDS = Histogram(
    "roadwatch_detect_frame_age_seconds",
    "Capture-to-publish delay of each detection (what track and the operators see).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)
BATCH_SIZE = Histogram(
    "roadwatch_detect_batch_frames",
    "Frames per micro-batch.",
    buckets=(1, 2, 4, 8, 16, 32),
)
OBJECTS = Counter("roadwatch_detect_objects_total", "Objects found, by class.", ["class_name"])
PLATES = Counter(
    "roadwatch_detect_plates_total",
    "Plates read, by where they were found and whether they fit an expected plate format.",
    ["source", "format_valid"],
)

# --- models from the bucket (docs/ARCHITECTURE.md "Models as versioned artefacts") -----------------
MODEL_INFO = Gauge(
    "roadwatch_detect_model_info",
    "The vehicle model in service: 1 on its name, version (file: the MODELS_DIR file, nothing promoted) and SHA-256.",
    ["model", "version", "sha256"],
)
MODEL_SWAPS = Counter(
    "roadwatch_detect_model_swaps_total",
    "Model changes asked for (a model.promoted event, a shadow candidate), by what and result: swapped/loaded, "
    "or refused (the model did not load or fit; the running one stays).",
    ["model", "kind", "result"],
)
SHADOW_FRAMES = Counter(
    "roadwatch_detect_shadow_frames_total",
    "Frames the shadow candidate ran on beside the live model (1 in every SHADOW `every`).",
    ["model", "candidate", "live"],
)
SHADOW_VEHICLES = Counter(
    "roadwatch_detect_shadow_vehicles_total",
    "Vehicles (not persons) found on shadow frames, by side: live or candidate.",
    ["model", "candidate", "live", "side"],
)
SHADOW_MATCHED = Counter(
    "roadwatch_detect_shadow_matched_total",
    "Vehicles the live model and the candidate both found on shadow frames (one-to-one at IoU >= 0.5). "
    "Agreement = matched / (live + candidate - matched).",
    ["model", "candidate", "live"],
)
SHADOW_OBJECTS = Counter(
    "roadwatch_detect_shadow_objects_total",
    "Objects per class on shadow frames, by side (live, candidate): their difference is the per-class count difference.",
    ["model", "candidate", "live", "side", "class_name"],
)
