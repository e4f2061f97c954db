"""Which vehicle model detect runs, and the candidate it runs beside it in shadow.

A model from the bucket is loaded off the event loop and checked like a model file at start
(SHA-256 against its card, outputs against its format and classes, every camera's detection
plan against its classes) before it replaces anything: a model that fails is refused with the
reason and the running one stays. The swap itself is one reference assignment; a batch takes
the pipeline once when it starts, so frames in flight finish on the model they started with.

Shadow: on 1 frame in `every`, the candidate finds vehicles in the same image with the same
plan, after the live detections are published; the two box sets are compared (shadow.py) and
only counted in metrics. Nothing of the candidate is ever published.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

from services.detect.model_store import ModelCard, sha256_hex
from services.detect.pipeline import Pipeline
from services.detect.regions import PlanBook, RegionError
from services.detect.sessions import ModelError
from services.detect.settings import Settings
from services.detect.vehicles import VehicleDetector

FILE_VERSION = "file"  # the live model came from MODELS_DIR (nothing promoted)


@dataclass(frozen=True)
class Live:
    pipeline: Pipeline
    version: str  # "3", or FILE_VERSION
    sha256: str


@dataclass(frozen=True)
class Candidate:
    pipeline: Pipeline
    card: ModelCard
    every: int


def detector_from_card(card: ModelCard, data: bytes, settings: Settings) -> VehicleDetector:
    """The ONNX bytes as a VehicleDetector, checked as a file at start is (ModelError)."""
    if sha256_hex(data) != card.sha256:
        raise ModelError(f"{card.label}: the file has SHA-256 {sha256_hex(data)}, its card says {card.sha256}")
    with tempfile.NamedTemporaryFile(prefix=f"roadwatch-{card.name}-{card.version}-", suffix=".onnx") as fh:
        fh.write(data)
        fh.flush()
        return VehicleDetector(fh.name, card.format, list(card.classes), conf=settings.vehicle_conf,
                               iou=settings.vehicle_iou or None, intra_op_threads=settings.intra_op_threads,
                               input_size=tuple(card.input_size), sha256=card.sha256,  # type: ignore[arg-type]
                               tiles=settings.vehicle_tiles)


def model_label(card: ModelCard, base: Pipeline) -> str:
    """DetectionMade.model: the vehicle model's name@version, then the plate models as before."""
    plates = base.model_name.split("+")[1:]
    return "+".join([card.label, *plates])


def load(card: ModelCard, data: bytes, base: Pipeline, plans: PlanBook, settings: Settings) -> Pipeline:
    """The pipeline with this model as its vehicle detector; ModelError names what is wrong."""
    detector = detector_from_card(card, data, settings)
    pipeline = base.with_vehicles(detector, settings.vehicle_keep_classes, model_label(card, base))
    for camera, plan in plans.plans.items():
        if plan is None:
            continue
        try:
            pipeline.check_plan(plan)
        except RegionError as exc:
            raise ModelError(f"{card.label} does not fit camera {camera}'s detection plan: {exc}") from None
    return pipeline
