import pytest

from services.detect.settings import Settings
from services.runtime.settings import SettingError, parse


def test_defaults_and_lists_from_the_environment():
    s = parse(Settings, {"MODELS_DIR": "/models", "VEHICLE_KEEP_CLASSES": "car, motorcycle", "BATCH_SIZE": "8"})
    assert s.vehicle_keep_classes == ["car", "motorcycle"] and s.batch_size == 8
    assert str(s.model_path("yolox_nano.onnx")) == "/models/yolox_nano.onnx"
    assert str(s.model_path("/elsewhere/m.onnx")) == "/elsewhere/m.onnx"
    assert (s.vehicle_format, s.intra_op_threads) == ("yolox", 1)


def test_workers_default_to_the_cores_available_and_can_be_set():
    from services.runtime.cpus import available_cores

    assert parse(Settings, {}).workers == available_cores()
    assert parse(Settings, {"WORKERS": "3"}).workers == 3
    with pytest.raises(SettingError, match="WORKERS"):
        parse(Settings, {"WORKERS": "0"})
    with pytest.raises(SettingError, match="FRAMES_PER_CAMERA"):
        parse(Settings, {"FRAMES_PER_CAMERA": "0"})


@pytest.mark.parametrize(
    "env, variable",
    [
        ({"VEHICLE_FORMAT": "yolo9"}, "VEHICLE_FORMAT"),
        ({"VEHICLE_CONF": "1.5"}, "VEHICLE_CONF"),
        ({"BATCH_SIZE": "0"}, "BATCH_SIZE"),
        ({"WORKERS": "many"}, "WORKERS"),
        ({"VEHICLE_TILES": "1"}, "VEHICLE_TILES"),
        ({"PLATE_MODEL_SHA256": "abc"}, "PLATE_MODEL_SHA256"),
        ({"MAX_FRAME_AGE_S": "0"}, "MAX_FRAME_AGE_S"),
        ({"VEHICLE_KEEP_CLASSES": ""}, "VEHICLE_KEEP_CLASSES"),
        ({"RIDER_FUSION": "maybe"}, "RIDER_FUSION"),
        ({"RIDER_MIN_X_OVERLAP": "1.5"}, "RIDER_MIN_X_OVERLAP"),
        ({"RIDER_MAX_PER_VEHICLE": "0"}, "RIDER_MAX_PER_VEHICLE"),
        ({"RIDER_MAX_WIDTH_RATIO": "0.1"}, "RIDER_MAX_WIDTH_RATIO"),
        ({"RIDER_WEAK_BIKE_SCORE": "0"}, "RIDER_WEAK_BIKE_SCORE"),
        ({"MODEL_NAME": "Vehicle.v2"}, "MODEL_NAME"),
    ],
)
def test_bad_values_name_their_variable(env, variable):
    with pytest.raises(SettingError) as caught:
        parse(Settings, env)
    assert caught.value.variable == variable


def test_rider_fusion_settings_become_the_rules():
    s = parse(Settings, {"RIDER_MIN_X_OVERLAP": "0.6", "RIDER_MAX_PER_VEHICLE": "2", "SCENES_DIR": "deploy/local/scenes",
                         "RIDER_WEAK_BIKE_SCORE": "0.1"})
    rules = s.rider_rules()
    assert rules is not None and (rules.min_x_overlap, rules.max_riders, rules.weak_bike_score) == (0.6, 2, 0.1)
    assert s.scenes_dir == "deploy/local/scenes"
    assert parse(Settings, {"RIDER_FUSION": "false"}).rider_rules() is None
    assert parse(Settings, {}).scenes_dir == ""  # no scenes: the whole-frame path for every camera
