"""Frame in, vehicles and plates out: the one code path of the service and the command line.

Plates are attached to the vehicle that contains them because track votes a plate over a
vehicle's track; a plate the plate detector missed on a motorbike (it was trained on Chinese
car plates) is looked for again with the text detector, on that vehicle's crop only, since
the text detector over a whole frame costs a third of a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.detect.ocr import TextDetector, TextRecognizer
from services.detect.plate_formats import Expected
from services.detect.plates import PlateDetector, PlateRead, PlateReader, box_of
from services.detect.regions import DetectionPlan, check_classes
from services.detect.riders import TWO_WHEELERS, RiderRules, fuse_riders
from services.detect.settings import Settings
from services.detect.vehicles import VehicleDetector, read_class_names
from services.detect.sessions import ModelError

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Vehicle:
    class_name: str
    score: float
    box: Box
    riders: int = 0  # people fused into a two-wheeler (riders.py)


@dataclass(frozen=True)
class FoundPlate:
    read: PlateRead
    vehicle_index: int | None


@dataclass(frozen=True)
class FrameResult:
    vehicles: tuple[Vehicle, ...]
    plates: tuple[FoundPlate, ...]


def containing_vehicle(plate_box: Box, vehicles: tuple[Vehicle, ...]) -> int | None:
    """The vehicle whose box holds the plate's centre: vehicles before riders, then the tightest box."""
    cx, cy = (plate_box[0] + plate_box[2]) / 2, (plate_box[1] + plate_box[3]) / 2
    best, best_key = None, None
    for i, v in enumerate(vehicles):
        x1, y1, x2, y2 = v.box
        if x1 <= cx <= x2 and y1 <= cy <= y2:
            key = (v.class_name == "person", (x2 - x1) * (y2 - y1))
            if best_key is None or key < best_key:
                best, best_key = i, key
    return best


def _holds(vehicle: Box, plate: Box) -> bool:
    cx, cy = (plate[0] + plate[2]) / 2, (plate[1] + plate[3]) / 2
    return vehicle[0] <= cx <= vehicle[2] and vehicle[1] <= cy <= vehicle[3]


class Pipeline:
    def __init__(
        self,
        vehicles: VehicleDetector,
        reader: PlateReader,
        keep_classes: list[str],
        fallback_classes: list[str] = ("motorcycle", "car", "bus", "truck"),
        fallback_min_height: int = 160,
        fallback_max_per_frame: int = 2,
        crop_detector: PlateDetector | None = None,
        text_fallback_classes: list[str] = ("motorcycle",),
        riders: RiderRules | None = RiderRules(),
    ) -> None:
        unknown = sorted(set(keep_classes) - set(vehicles.class_names))
        if unknown:
            raise ModelError(f"VEHICLE_KEEP_CLASSES names classes the model does not have: {', '.join(unknown)}")
        self.vehicles = vehicles
        self.reader = reader
        self.keep = np.array([name in set(keep_classes) for name in vehicles.class_names])
        self.fallback_classes = set(fallback_classes)
        self.fallback_min_height = fallback_min_height
        self.fallback_max_per_frame = fallback_max_per_frame
        self.crop_detector = crop_detector
        self.text_fallback_classes = set(text_fallback_classes)
        self.riders = riders  # None: persons and bikes are published as the detector saw them
        # Published with every detection, so that evidence says which models produced it.
        self.model_name = vehicles.fmt

    @classmethod
    def from_settings(cls, s: Settings) -> "Pipeline":
        """Load every model; raises ModelError with the reason when one is missing or does not fit."""
        relative = [n for n in (s.vehicle_model, s.vehicle_classes_file, s.plate_model, s.plate_crop_model,
                                s.ocr_rec_model, s.ocr_det_model)
                    if n and not Path(n).is_absolute()]
        if relative and not Path(s.models_dir).is_dir():
            raise ModelError(f"MODELS_DIR={s.models_dir} is not a directory (needed for {', '.join(relative)})")
        names = read_class_names(s.model_path(s.vehicle_classes_file))
        detector = VehicleDetector(
            s.model_path(s.vehicle_model), s.vehicle_format, names, conf=s.vehicle_conf, iou=s.vehicle_iou or None,
            intra_op_threads=s.intra_op_threads, input_size=(s.vehicle_input_size, s.vehicle_input_size),
            sha256=s.vehicle_model_sha256, tiles=s.vehicle_tiles,
        )
        plate_detector = PlateDetector(s.model_path(s.plate_model), conf=s.plate_conf, iou=s.plate_iou,
                                       intra_op_threads=s.intra_op_threads, sha256=s.plate_model_sha256)
        recognizer = TextRecognizer(s.model_path(s.ocr_rec_model), intra_op_threads=s.intra_op_threads,
                                    sha256=s.ocr_rec_model_sha256)
        text_detector = (TextDetector(s.model_path(s.ocr_det_model), intra_op_threads=s.intra_op_threads,
                                      sha256=s.ocr_det_model_sha256)
                         if s.ocr_det_model else None)
        crop_detector = (PlateDetector(s.model_path(s.plate_crop_model), conf=s.plate_conf, iou=s.plate_iou,
                                       intra_op_threads=s.intra_op_threads, sha256=s.plate_crop_model_sha256)
                         if s.plate_crop_model else None)
        pipeline = cls(detector, PlateReader(recognizer, plate_detector, text_detector, s.plate_expectation()), s.vehicle_keep_classes,
                       s.fallback_classes, s.fallback_min_height, s.fallback_max_per_frame,
                       crop_detector, s.text_fallback_classes, s.rider_rules())
        pipeline.model_name = "+".join(Path(n).name for n in (s.vehicle_model, s.plate_model, s.ocr_rec_model))
        return pipeline

    def with_vehicles(self, detector: VehicleDetector, keep_classes: list[str], model_name: str) -> "Pipeline":
        """The same plate models and rules with another vehicle detector (a model swap): the
        classes kept are those of `keep_classes` the new model has (ModelError when none)."""
        keep = [name for name in keep_classes if name in detector.class_names]
        if not keep:
            raise ModelError(f"the model has none of the classes VEHICLE_KEEP_CLASSES names ({', '.join(keep_classes)}); "
                             f"it has {', '.join(detector.class_names)}")
        other = Pipeline(detector, self.reader, keep, sorted(self.fallback_classes), self.fallback_min_height,
                         self.fallback_max_per_frame, self.crop_detector, sorted(self.text_fallback_classes), self.riders)
        other.model_name = model_name
        return other

    def check_plan(self, plan: DetectionPlan) -> None:
        """A plan naming a class the model does not have is refused (RegionError)."""
        check_classes(plan, self.vehicles.class_names)

    def find_vehicles(self, image: np.ndarray, plan: DetectionPlan | None = None) -> tuple[Vehicle, ...]:
        """The camera's plan (tiles over its road) when it has one, else the whole frame (and
        VEHICLE_TILES); then riders fused into their two-wheelers. With fusion on, two-wheeler
        boxes are decoded down to the rules' weak score and kept only if they carry a rider."""
        names = self.vehicles.class_names
        strong = self.vehicles.thresholds(plan)
        decode = strong.copy()
        if self.riders is not None:
            bikes = np.array([name in TWO_WHEELERS for name in names])
            decode[bikes] = np.minimum(decode[bikes], self.riders.weak_bike_score)
        found = (self.vehicles.detect(image, decode, strong if self.riders is not None else None) if plan is None
                 else self.vehicles.detect_plan(image, plan, decode, strong))
        boxes, scores, classes = found.boxes, found.scores, found.classes
        riders = np.zeros(len(scores), dtype=np.int64)
        if self.riders is not None:
            fused = fuse_riders(boxes, scores, classes, names, self.riders)
            boxes, scores, classes, riders = fused.boxes, fused.scores, fused.classes, fused.riders
        sure = (scores >= strong[classes]) | (riders > 0)
        return tuple(
            Vehicle(names[c], round(float(s), 4), tuple(round(float(v), 1) for v in b), int(r))  # type: ignore[arg-type]
            for b, s, c, r, ok in zip(boxes, scores, classes, riders, sure)
            if self.keep[c] and ok
        )

    def process(self, image: np.ndarray, plan: DetectionPlan | None = None) -> FrameResult:
        vehicles = self.find_vehicles(image, plan)
        plates: list[FoundPlate] = []
        assert self.reader.detector is not None
        for found in self.reader.detector.detect(image):
            text = self.reader.read_quad(image, found.corners)
            if not text.text:
                continue
            box = tuple(round(float(v), 1) for v in found.box)
            read = PlateRead(box, tuple((float(x), float(y)) for x, y in found.corners), text, found.score, "plate_detector")  # type: ignore[arg-type]
            plates.append(FoundPlate(read, containing_vehicle(box, vehicles)))  # type: ignore[arg-type]
        plates += self._fallback(image, vehicles, [p.read.box for p in plates])
        return FrameResult(vehicles, tuple(plates))

    def _fallback(self, image: np.ndarray, vehicles: tuple[Vehicle, ...], found: list[Box]) -> list[FoundPlate]:
        """A second look at the biggest vehicles left without a plate: the plate detector on the
        vehicle's crop (the plate is then several times bigger in the model's input than in the
        whole frame), then, for motorbikes, the text detector."""
        if self.fallback_max_per_frame == 0:
            return []
        candidates = [
            (i, v) for i, v in enumerate(vehicles)
            if v.class_name in self.fallback_classes and v.box[3] - v.box[1] >= self.fallback_min_height
        ]
        candidates.sort(key=lambda iv: -(iv[1].box[3] - iv[1].box[1]))  # nearest (biggest) first
        out: list[FoundPlate] = []
        looked = 0
        for i, v in candidates:
            # A vehicle that already holds a plate (or a second box on the same vehicle, e.g.
            # car and truck on one van) needs no second look.
            if looked == self.fallback_max_per_frame or any(_holds(v.box, box) for box in found):
                continue
            looked += 1
            read = self._crop_plate(image, v)
            if read is None and v.class_name in self.text_fallback_classes:
                read = self._text_plate(image, v)
            if read is not None:
                holder = containing_vehicle(read.box, vehicles)  # the tightest of overlapping boxes
                out.append(FoundPlate(read, i if holder is None else holder))
                found.append(read.box)
        return out

    def _crop_plate(self, image: np.ndarray, vehicle: Vehicle) -> PlateRead | None:
        if self.crop_detector is None:
            return None
        x1, y1, x2, y2 = (int(c) for c in vehicle.box)
        found = self.crop_detector.detect(image[y1:y2, x1:x2])
        if not found:
            return None
        best = max(found, key=lambda f: f.score)
        corners = best.corners + np.array([x1, y1], dtype=np.float32)
        text = self.reader.read_quad(image, corners)
        if not text.text:
            return None
        return PlateRead(box_of(corners), tuple((float(x), float(y)) for x, y in corners), text, best.score, "vehicle_crop")

    def _text_plate(self, image: np.ndarray, vehicle: Vehicle) -> PlateRead | None:
        if self.reader.text_detector is None:
            return None
        found = self.reader.read_text_lines(image, np.array(vehicle.box))
        if found is None:
            return None
        text, corners = found
        return PlateRead(box_of(corners), tuple((float(x), float(y)) for x, y in corners), text, 0.0, "text_detector")

    def read_plate_image(self, image: np.ndarray, expected: Expected | None = None) -> PlateRead:
        """`roadwatch plate`: the image is a plate crop; if it reads as no plate of the expected
        formats (`expected`, default PLATE_COUNTRIES) and is really a wider shot, the plate is
        looked for inside it: the best of the plate detector's candidates (plate_choice), then
        text lines."""
        expected = expected or self.reader.expected
        h, w = image.shape[:2]
        whole = (0.0, 0.0, float(w), float(h))
        corners = ((0.0, 0.0), (float(w), 0.0), (float(w), float(h)), (0.0, float(h)))
        text = self.reader.read_crop(image, expected)
        crop = PlateRead(whole, corners, text, 1.0, "crop")
        if (text.format_valid and text.edits == 0) or self.reader.detector is None:
            return crop
        # Valid only after a repair, or not at all: a plate read as it is inside a wider shot wins.
        reads = self.reader.read_all(image, None, expected)
        for read in reads:
            if read.plate.format_valid and (read.plate.edits == 0 or not text.format_valid):
                return read
        if text.format_valid:
            return crop
        if reads and reads[0].plate.foreign:
            return reads[0]  # a plate of a country not expected, kept as read
        lines = self.reader.read_text_lines(image, np.array(whole), expected)
        if lines is not None:
            inner, quad = lines
            return PlateRead(box_of(quad), tuple((float(x), float(y)) for x, y in quad), inner, 0.0, "text_detector")
        return crop
