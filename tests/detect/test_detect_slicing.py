"""Sliced detection: the merge rules on drawn boxes, then tiles over the road on real frames,
judged against the person-checked vehicle boxes of ../shared/data/video."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from services.detect import slicing
from services.detect.pipeline import Pipeline
from services.detect.regions import load_plan

NAMES = ["person", "bicycle", "car", "motorcycle", "bus", "truck"]
PERSON, BICYCLE, CAR, MOTORCYCLE, BUS, TRUCK = range(6)
REPO = Path(__file__).resolve().parents[2]
FRAME = (1000, 700)


def found(window, *objects):
    boxes = np.array([b for _, b, _ in objects], dtype=np.float32).reshape(-1, 4)
    return slicing.Found(boxes, np.array([s for _, _, s in objects], dtype=np.float32),
                         np.array([c for c, _, _ in objects], dtype=np.int64), window)


def merged(*parts):
    boxes, scores, classes = slicing.merge(list(parts), FRAME, 0.45, NAMES)
    return sorted((NAMES[c], [round(float(v)) for v in b]) for b, c in zip(boxes, classes))


def test_a_fragment_cut_by_a_tile_edge_goes_when_the_whole_frame_saw_the_vehicle():
    whole = found((0, 0, 1000, 700), (CAR, [300, 400, 500, 520], 0.5))
    tile = found((0, 0, 416, 416), (CAR, [300, 402, 416, 416], 0.9))  # cut by the tile's right and bottom edges
    assert merged(whole, tile) == [("car", [300, 400, 500, 520])]


def test_the_same_vehicle_at_two_scales_is_one_box():
    """The tile's box takes in the bike's shadow, the whole frame's the rider: IoU 0.39 only."""
    whole = found((0, 0, 1000, 700), (MOTORCYCLE, [128, 225, 175, 301], 0.52))
    tile = found((0, 25, 416, 441), (MOTORCYCLE, [128, 255, 215, 302], 0.6))
    assert len(merged(whole, tile)) == 1


def test_halves_of_a_vehicle_too_big_for_either_tile_are_joined():
    left = found((0, 0, 416, 416), (BUS, [250, 100, 416, 300], 0.6))
    right = found((333, 0, 749, 416), (BUS, [333, 102, 520, 298], 0.7))
    assert merged(left, right) == [("bus", [250, 100, 520, 300])]


def test_one_vehicle_named_car_and_truck_is_one_box_but_neighbours_stay():
    whole = found((0, 0, 1000, 700), (CAR, [100, 100, 200, 180], 0.7), (MOTORCYCLE, [205, 120, 240, 190], 0.5))
    tile = found((0, 0, 416, 416), (TRUCK, [102, 101, 201, 182], 0.4), (MOTORCYCLE, [240, 118, 275, 188], 0.6))
    assert merged(whole, tile) == [("car", [100, 100, 200, 180]), ("motorcycle", [205, 120, 240, 190]),
                                   ("motorcycle", [240, 118, 275, 188])]


def test_a_person_on_a_bike_is_not_merged_away_by_the_vehicle_rules():
    whole = found((0, 0, 1000, 700), (PERSON, [128, 225, 173, 299], 0.6), (MOTORCYCLE, [128, 225, 175, 301], 0.5))
    assert len(merged(whole)) == 2  # rider fusion, not the merge, decides about those two


# --- real frames ---------------------------------------------------------------------------------
def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


VEHICLES = {"bicycle", "car", "motorcycle", "bus", "truck"}


def matched(truth_boxes, vehicles, threshold=0.3) -> int:
    """Greedy one-to-one matches of truth boxes with vehicle detections (class-agnostic)."""
    pairs = sorted(((iou(t, v.box), i, j) for i, t in enumerate(truth_boxes) for j, v in enumerate(vehicles)
                    if v.class_name in VEHICLES), reverse=True)
    used_t, used_v, n = set(), set(), 0
    for value, i, j in pairs:
        if value >= threshold and i not in used_t and j not in used_v:
            used_t.add(i), used_v.add(j)
            n += 1
    return n


@pytest.fixture(scope="module")
def partial_truth(shared_dir: Path) -> dict:
    return json.loads((shared_dir / "data" / "video" / "dev_vehicle_truth_partial.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("clip, scene", [("vn_haiphong_intersection.mp4", "demo-haiphong"),
                                         ("vn_saigon_intersection.mp4", "demo-saigon")])
def test_slices_find_more_truth_vehicles_than_the_whole_frame(pipeline: Pipeline, video_frame, partial_truth, clip, scene):
    """Over the clip's person-checked frames, tiles over the scene's roi plus the whole frame
    match more of the checked vehicle boxes than the whole frame alone, and keep the big near
    vehicles the whole frame finds."""
    plan = load_plan(REPO / "deploy" / "local" / "scenes" / f"{scene}.yaml")
    assert plan is not None
    whole_total = sliced_total = checked = 0
    for frame in (f for f in partial_truth["frames"] if f["clip"] == clip):
        image = video_frame(clip, frame["frame"])
        truth = [b["box"] for b in frame["boxed"]]
        whole, sliced = pipeline.find_vehicles(image), pipeline.find_vehicles(image, plan)
        whole_total += matched(truth, whole)
        sliced_total += matched(truth, sliced)
        checked += len(truth)
        big = [t for t in truth if t[3] - t[1] > 120]
        assert matched(big, sliced) >= matched(big, whole), frame["frame"]
    assert sliced_total >= whole_total + 0.05 * checked, (whole_total, sliced_total, checked)


def test_detections_off_the_road_are_dropped(pipeline: Pipeline, video_frame):
    plan = load_plan(REPO / "deploy" / "local" / "scenes" / "demo-haiphong.yaml")
    left_half = dataclasses.replace(plan, roi=((0.0, 0.0), (500.0, 0.0), (500.0, 720.0), (0.0, 720.0)))
    image = video_frame("vn_haiphong_intersection.mp4", 11)
    everywhere, left = pipeline.find_vehicles(image, plan), pipeline.find_vehicles(image, left_half)
    assert all((v.box[0] + v.box[2]) / 2 <= 500 for v in left)
    assert any((v.box[0] + v.box[2]) / 2 > 520 for v in everywhere)  # the right half has vehicles
    assert len(left) >= 8
