"""Box helpers: the all-at-once IoU matrix and suppression agree exactly with the row-by-row forms."""

from __future__ import annotations

import numpy as np
import pytest

from robovision.boxes import iou_matrix_xyxy, iou_xyxy, nms_xyxy


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, max_keep: int | None) -> list[int]:
    """Suppression one kept box at a time, each against the boxes still left."""
    order = list(np.argsort(-scores, kind="stable"))
    keep: list[int] = []
    while order and (max_keep is None or len(keep) < max_keep):
        best = int(order.pop(0))
        keep.append(best)
        order = [j for j in order if iou_xyxy(boxes[best], boxes[[j]])[0] <= threshold]
    return keep


def random_case(rng: np.random.Generator, n: int, coarse: bool) -> tuple[np.ndarray, np.ndarray]:
    xy = rng.uniform(0, 1, (n, 2))
    wh = rng.uniform(-0.05, 0.4, (n, 2))  # a few inverted boxes too
    scores = rng.uniform(0, 1, n)
    if coarse:  # equal scores and touching, identical boxes
        xy, wh, scores = np.round(xy, 1), np.round(wh, 1), np.round(scores, 1)
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32), scores.astype(np.float32)


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("threshold", [0.0, 0.45, 1.0])
@pytest.mark.parametrize("max_keep", [None, 0, 1, 3])
def test_nms_keeps_what_one_box_at_a_time_keeps(seed: int, threshold: float, max_keep: int | None) -> None:
    rng = np.random.default_rng(seed)
    boxes, scores = random_case(rng, int(rng.integers(0, 40)), coarse=seed % 3 == 0)
    kept = nms_xyxy(boxes, scores, threshold, max_keep)
    assert kept.dtype == np.int64
    assert kept.tolist() == greedy_nms(boxes, scores, threshold, max_keep)


def test_nms_of_overlapping_pair_keeps_the_better_box_and_many_boxes_take_the_long_path() -> None:
    pair = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float32)
    assert nms_xyxy(pair, np.array([0.5, 0.9, 0.1]), 0.5).tolist() == [1, 2]
    assert nms_xyxy(pair, np.array([0.5, 0.9, 0.1]), 0.9).tolist() == [1, 0, 2]

    rng = np.random.default_rng(7)
    boxes, scores = random_case(rng, 300, coarse=False)
    assert nms_xyxy(boxes, scores, 0.3, 20).tolist() == greedy_nms(boxes, scores, 0.3, 20)


def test_iou_matrix_rows_equal_iou_of_each_box() -> None:
    rng = np.random.default_rng(3)
    a, _ = random_case(rng, 25, coarse=True)
    b, _ = random_case(rng, 17, coarse=False)
    a[4] = np.nan
    matrix = iou_matrix_xyxy(a, b)
    assert matrix.shape == (25, 17) and matrix.dtype == np.float32
    expected = np.stack([iou_xyxy(box, b) for box in a])
    assert np.array_equal(matrix, expected, equal_nan=True)
    assert iou_matrix_xyxy(a[:0], b).shape == (0, 17)
