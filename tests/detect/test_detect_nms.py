import numpy as np

from services.detect.nms import batched_nms, nms


def test_overlapping_boxes_keep_the_best_and_distant_ones_survive():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 9]], dtype=np.float32)
    scores = np.array([0.6, 0.9, 0.5, 0.1], dtype=np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]


def test_lower_iou_threshold_suppresses_more():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], dtype=np.float32)  # IoU 1/3
    scores = np.array([0.9, 0.8], dtype=np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [0, 1]
    assert nms(boxes, scores, 0.3).tolist() == [0]


def test_classes_do_not_suppress_each_other():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7], dtype=np.float32)
    classes = np.array([0, 1, 0])
    assert sorted(batched_nms(boxes, scores, classes, 0.5).tolist()) == [0, 1]


def test_empty_input():
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).size == 0
