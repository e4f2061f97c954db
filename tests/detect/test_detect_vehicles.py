"""Vehicles found on real camera images; every expected box below was checked by eye on the
image with the detections drawn over it (YOLOX-Nano calls many riders seen from above
`person` and some SUVs `truck`/`bus`, hence the sets of accepted classes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.detect.pipeline import Pipeline
from services.detect.sessions import ModelError
from services.detect.vehicles import VehicleDetector, decode_yolov5, decode_yolov8, read_class_names

CAR = {"car"}
BIG = {"car", "truck", "bus"}
BIKE = {"motorcycle", "person"}


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def assert_found(vehicles, expected):
    for box, classes in expected:
        matches = [v for v in vehicles if v.class_name in classes and iou(v.box, box) >= 0.6]
        assert matches, f"no {sorted(classes)} at {box}; found {[(v.class_name, v.box) for v in vehicles]}"


HAIPHONG_0 = [
    ((441, 406, 644, 596), CAR),  # white sedan from behind, centre
    ((53, 331, 222, 475), CAR),  # white MPV, left
    ((248, 655, 521, 717), CAR),  # red car cut by the bottom edge
    ((914, 558, 1002, 693), BIKE),  # motorbike, bottom right
    ((763, 176, 845, 244), {"motorcycle"}),  # blue scooter crossing, top right
]
SAIGON_40 = [
    ((124, 106, 295, 189), CAR),  # white SUV crossing, top left
    ((412, 317, 561, 509), BIG),  # black SUV in the centre lane
    ((361, 502, 577, 712), BIG),  # dark SUV at the bottom
    ((678, 363, 803, 531), BIG),  # silver hatchback with a yellow plate
    ((851, 501, 916, 645), BIKE),  # rider on the right
]
STREET_117 = [
    ((300, 345, 559, 633), BIG),  # ambulance
    ((667, 400, 783, 571), {"motorcycle"}),  # white scooter
    ((1007, 404, 1137, 539), {"motorcycle"}),  # motorbike with two riders
    ((829, 344, 933, 479), {"motorcycle"}),  # motorbike
    ((1177, 435, 1279, 587), CAR),  # green taxi cut by the right edge
]


def test_haiphong_clip_frame(pipeline: Pipeline, video_frame):
    assert_found(pipeline.find_vehicles(video_frame("vn_haiphong_intersection.mp4", 0)), HAIPHONG_0)


def test_saigon_clip_frame(pipeline: Pipeline, video_frame):
    assert_found(pipeline.find_vehicles(video_frame("vn_saigon_intersection.mp4", 40)), SAIGON_40)


def test_vietnamese_street_camera(pipeline: Pipeline, street):
    assert_found(pipeline.find_vehicles(street("vn_cam_video1_117.jpg")), STREET_117)


def test_dense_highway_against_annotated_dots(pipeline: Pipeline, street, shared_dir: Path):
    """36 cars are annotated as dots; the nano model finds the nearer ones (measured 17 boxes)."""
    dots = np.loadtxt(shared_dir / "data" / "street" / "trancos_image-1-000001.dots.txt")
    vehicles = pipeline.find_vehicles(street("trancos_image-1-000001.jpg"))
    covered = sum(any(v.box[0] <= x <= v.box[2] and v.box[1] <= y <= v.box[3] for v in vehicles) for x, y in dots)
    assert len(vehicles) >= 14
    assert covered >= 14, f"only {covered} of {len(dots)} annotated vehicles inside a box"


def test_nanodet_format_finds_the_same_cars(models_dir: Path, video_frame):
    names = read_class_names(models_dir / "coco.names")
    detector = VehicleDetector(models_dir / "nanodet_m_416.onnx", "nanodet", names, conf=0.35)
    found = detector.detect(video_frame("vn_haiphong_intersection.mp4", 0))
    boxes = [(names[c], tuple(b)) for b, c in zip(found.boxes.tolist(), found.classes.tolist())]
    for box in ((441, 406, 644, 596), (53, 331, 222, 475)):
        assert any(name == "car" and iou(b, box) >= 0.6 for name, b in boxes), boxes


def test_plate_is_read_on_the_vehicle_crop_and_attached_to_its_vehicle(pipeline: Pipeline, street):
    """The ambulance's front plate 68H-5984 is too small for the plate detector on the whole
    frame at 640; the second look with the plate detector on the vehicle's crop finds it."""
    result = pipeline.process(street("vn_cam_video1_117.jpg"))
    plates = [p for p in result.plates if p.read.plate.text == "68H-5984"]
    assert len(plates) == 1, [p.read.plate for p in result.plates]  # once, though two boxes cover the van
    (plate,) = plates
    assert plate.read.source == "vehicle_crop" and plate.read.plate.format_valid
    ambulance = result.vehicles[plate.vehicle_index]
    assert iou(ambulance.box, (300, 345, 559, 633)) >= 0.6 and ambulance.class_name == "car"


def test_text_detector_fallback_reads_the_same_plate(pipeline: Pipeline, street):
    """Without the crop detector, the PP-OCR text detector on the crop (the motorbike fallback,
    enabled here for cars) reads it too."""
    text_only = Pipeline(pipeline.vehicles, pipeline.reader, ["car", "truck", "motorcycle", "person"],
                         fallback_classes=["car", "truck"], text_fallback_classes=["car", "truck"])
    result = text_only.process(street("vn_cam_video1_117.jpg"))
    plates = {p.read.plate.text: p for p in result.plates}
    assert "68H-5984" in plates, [p.read.plate for p in result.plates]
    assert plates["68H-5984"].read.source == "text_detector"
    assert iou(result.vehicles[plates["68H-5984"].vehicle_index].box, (300, 345, 559, 633)) >= 0.6


# --- formats that do not fit the model stop the service at start --------------------------------
@pytest.mark.parametrize(
    "model, fmt",
    [("y5fu_640x_sim.onnx", "yolov5"), ("yolox_nano.onnx", "nanodet"), ("nanodet_m_416.onnx", "yolox"),
     ("yolox_nano.onnx", "yolov8")],
)
def test_model_that_does_not_fit_the_format_is_refused(models_dir: Path, model: str, fmt: str):
    names = read_class_names(models_dir / "coco.names")
    with pytest.raises(ModelError, match="does not fit|expected"):
        VehicleDetector(models_dir / model, fmt, names)


def test_wrong_class_count_is_refused(models_dir: Path, tmp_path: Path):
    names = tmp_path / "classes.names"
    names.write_text("car\nmotorcycle\n")
    with pytest.raises(ModelError, match="2 classes"):
        VehicleDetector(models_dir / "yolox_nano.onnx", "yolox", read_class_names(names))


def test_missing_model_file_is_refused(tmp_path: Path):
    with pytest.raises(ModelError, match="not found"):
        VehicleDetector(tmp_path / "nope.onnx", "yolox", ["car"])


def test_yolov5_and_yolov8_decoders_read_their_layouts():
    """Both layouts of one box (centre 100,50, size 40x20, class 1 at 0.9) decode alike."""
    v5 = np.zeros((1, 3, 5 + 2), np.float32)
    v5[0, 0] = [100, 50, 40, 20, 1.0, 0.1, 0.9]
    v5[0, 1] = [10, 10, 5, 5, 0.1, 0.5, 0.5]  # low objectness
    boxes, scores, classes = decode_yolov5([v5], (640, 640), 0.3)
    assert boxes.tolist() == [[80, 40, 120, 60]] and classes.tolist() == [1]
    assert scores.tolist() == pytest.approx([0.9])
    v8 = np.zeros((1, 4 + 2, 3), np.float32)
    v8[0, :, 0] = [100, 50, 40, 20, 0.1, 0.9]
    v8[0, :, 1] = [10, 10, 5, 5, 0.2, 0.1]
    boxes, scores, classes = decode_yolov8([v8], (640, 640), 0.3)
    assert boxes.tolist() == [[80, 40, 120, 60]] and classes.tolist() == [1]


def test_tiles_find_more_small_vehicles_and_keep_the_big_ones(pipeline: Pipeline, models_dir: Path, video_frame,
                                                              shared_dir: Path):
    """VEHICLE_TILES=2 (cameras without a scene) against the person-checked boxes of the clips."""
    import json

    truth = json.loads((shared_dir / "data" / "video" / "dev_vehicle_truth_partial.json").read_text())
    tiled = Pipeline(
        VehicleDetector(models_dir / "yolox_nano.onnx", "yolox", pipeline.vehicles.class_names, tiles=2),
        pipeline.reader, ["person", "bicycle", "car", "motorcycle", "bus", "truck"],
    )

    def found(vehicles, checked) -> int:
        return sum(any(v.class_name != "person" and iou(v.box, b["box"]) >= 0.3 for v in vehicles) for b in checked["boxed"])

    whole = strips = 0
    for checked in truth["frames"]:
        frame = video_frame(checked["clip"], checked["frame"])
        whole += found(pipeline.find_vehicles(frame), checked)
        strips += found(tiled.find_vehicles(frame), checked)
    assert strips >= whole + 20  # measured 131 -> 160 of the 185 boxed vehicles
    image = video_frame("vn_haiphong_intersection.mp4", 0)
    strips = tiled.find_vehicles(image)
    assert_found(strips, HAIPHONG_0)
    # the red car cut by a strip edge is one box, not a box plus a fragment
    assert sum(v.class_name == "car" and v.box[1] > 600 for v in strips) == 1


def test_model_sha256_is_checked(models_dir: Path):
    names = read_class_names(models_dir / "coco.names")
    right = "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"  # models README
    VehicleDetector(models_dir / "yolox_nano.onnx", "yolox", names, sha256=right)
    with pytest.raises(ModelError, match="expected 0000"):
        VehicleDetector(models_dir / "yolox_nano.onnx", "yolox", names, sha256="0" * 64)


def test_keep_classes_must_exist_in_the_model(pipeline: Pipeline):
    with pytest.raises(ModelError, match="tractor"):
        Pipeline(pipeline.vehicles, pipeline.reader, ["car", "tractor"])
