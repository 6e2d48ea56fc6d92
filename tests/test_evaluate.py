"""Detection metrics on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robovision.evaluate import (
    ImageDetections,
    average_precision,
    centre_hits,
    choose_threshold,
    match_image,
    precision_recall_curve,
    summarize,
)

Boxes = list[list[float]]


def image(truth: Boxes, boxes: Boxes, scores: list[float], name: str = "a") -> ImageDetections:
    return ImageDetections(
        name,
        np.asarray(truth, dtype=np.float32).reshape(-1, 4),
        np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        np.asarray(scores, dtype=np.float32),
    )


def test_average_precision_of_a_ranked_list_uses_the_precision_envelope() -> None:
    # precision 1, 1/2, 2/3, 1/2, 3/5 at recall 1/4, 1/4, 2/4, 2/4, 3/4; envelope 1, 2/3, 2/3, 3/5, 3/5
    ap = average_precision(np.array([0.9, 0.8, 0.7, 0.6, 0.5]), np.array([1, 0, 1, 0, 1], bool), 4)
    assert ap == pytest.approx(0.25 * 1 + 0.25 * 2 / 3 + 0.25 * 3 / 5)


@pytest.mark.parametrize(
    ("hits", "cars", "expected"),
    [
        ([1, 1, 1], 3, 1.0),
        ([1, 1], 3, 2 / 3),
        ([0, 1], 1, 0.5),
        ([0, 0], 2, 0.0),
        ([], 2, 0.0),
        ([1], 0, 0.0),
    ],
)
def test_average_precision_small_cases(hits: list[int], cars: int, expected: float) -> None:
    scores = np.linspace(0.9, 0.5, len(hits)) if hits else np.zeros(0)
    assert average_precision(scores, np.asarray(hits, bool), cars) == pytest.approx(expected)


def test_average_precision_ranks_by_score_not_by_input_order() -> None:
    ap = average_precision(np.array([0.2, 0.9]), np.array([True, False]), 1)
    assert ap == pytest.approx(0.5)


def test_precision_recall_curve_steps() -> None:
    hits = np.array([0, 1, 1], bool)
    precision, recall, scores = precision_recall_curve(np.array([0.3, 0.8, 0.6]), hits, 4)
    np.testing.assert_allclose(scores, [0.8, 0.6, 0.3])
    np.testing.assert_allclose(precision, [1.0, 1.0, 2 / 3])
    np.testing.assert_allclose(recall, [0.25, 0.5, 0.5])


def test_match_counts_iou_of_exactly_one_half_as_a_hit_and_just_below_as_a_miss() -> None:
    truth = [[0, 0, 10, 10]]
    assert match_image(image(truth, [[0, 0, 10, 5]], [0.9])).true_positive.tolist() == [True]
    assert match_image(image(truth, [[0, 0, 10, 4.9]], [0.9])).true_positive.tolist() == [False]


def test_match_gives_a_car_to_the_best_scored_detection_only() -> None:
    m = match_image(image([[0, 0, 10, 10]], [[1, 1, 10, 10], [0, 0, 10, 10]], [0.6, 0.9]))
    np.testing.assert_allclose(m.scores, [0.9, 0.6])
    assert m.true_positive.tolist() == [True, False]
    assert m.true_count == 1


def test_match_takes_the_unmatched_car_a_detection_overlaps_most() -> None:
    truth = [[0, 0, 10, 10], [5, 0, 15, 10]]
    # The first detection sits exactly on car 0; the second overlaps car 0 most (0.67 vs 0.54)
    # but car 0 is taken, so it matches car 1.
    m = match_image(image(truth, [[0, 0, 10, 10], [2, 0, 12, 10]], [0.9, 0.8]))
    assert m.true_positive.tolist() == [True, True]


def test_centre_hits() -> None:
    truth = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    boxes = np.array([[2, 2, 6, 6], [8, 8, 22, 22], [-5, -5, 5, 5], [12, 0, 18, 4]], np.float32)
    # centres (4, 4) in, (15, 15) out, (0, 0) on the edge, (15, 2) out
    assert centre_hits(boxes, truth).tolist() == [True, False, True, False]
    assert centre_hits(boxes, np.zeros((0, 4))).tolist() == [False] * 4


def test_summarize_at_a_threshold_and_false_detections_per_carfree_image() -> None:
    two_cars = [[0, 0, 10, 10], [20, 0, 30, 10]]
    images = [
        image(two_cars, [[0, 0, 10, 10], [40, 40, 50, 50], [20, 0, 30, 10]], [0.9, 0.8, 0.3]),
        image([], [[0, 0, 5, 5], [10, 10, 20, 20]], [0.7, 0.2], name="free1"),
        image([], [[0, 0, 5, 5]], [0.6], name="free2"),
        image([], [], [], name="free3"),
    ]
    s = summarize([match_image(i) for i in images], score_threshold=0.5)
    # above 0.5: TP 0.9; FP 0.8, 0.7, 0.6. The 0.3 hit and the 0.2 false alarm are below.
    assert (s.true_positives, s.false_positives, s.misses, s.cars, s.images) == (1, 3, 1, 2, 4)
    assert s.precision == pytest.approx(0.25)
    assert s.recall == pytest.approx(0.5)
    assert s.f1 == pytest.approx(2 * 0.25 * 0.5 / 0.75)
    assert s.centre_hit_rate == pytest.approx(0.25)
    assert s.carfree_images == 3
    assert s.false_per_carfree_image == pytest.approx(2 / 3)
    # AP over all detections: ranks 0.9 T, 0.8 F, 0.7 F, 0.6 F, 0.3 T, 0.2 F -> 0.5*1 + 0.5*(2/5)
    assert s.ap50 == pytest.approx(0.5 + 0.5 * 0.4)


def test_summarize_without_carfree_images_reports_nan_false_rate() -> None:
    s = summarize([match_image(image([[0, 0, 10, 10]], [[0, 0, 10, 10]], [0.9]))], 0.5)
    assert math.isnan(s.false_per_carfree_image)
    assert (s.precision, s.recall, s.ap50) == (1.0, 1.0, 1.0)


def test_choose_threshold_maximizes_f1_under_the_false_alarm_cap() -> None:
    two_cars = [[0, 0, 10, 10], [20, 0, 30, 10]]
    boxes = [[0, 0, 10, 10], [40, 40, 50, 50], [20, 0, 30, 10]]
    labelled = [match_image(image(two_cars, boxes, [0.9, 0.6, 0.4]))]
    # Best F1 on the labelled image is at 0.4 (P 2/3, R 1: F1 0.8 vs 0.667 at 0.9).
    assert choose_threshold(labelled, [], 0.05, floor=0.05) == pytest.approx(0.399)
    # A car-free image with a false detection at 0.5 forbids thresholds at or below 0.5.
    carfree = [match_image(image([], [[0, 0, 5, 5]], [0.5], name="free"))]
    assert choose_threshold(labelled, carfree, 0.05, floor=0.05) == pytest.approx(0.899)
    # With a cap of one false detection per image, 0.4 is allowed again.
    assert choose_threshold(labelled, carfree, 1.0, floor=0.05) == pytest.approx(0.399)
