"""Detection metrics: matching at an IoU, precision/recall/F1, AP50, centre hits, false alarms.

Pure functions on arrays; reading images and running models is the caller's business.

Definitions used everywhere in robovision:

- Matching: per image, detections are taken best score first; each one matches the
  still-unmatched true box it overlaps most, if that IoU is at least ``iou_threshold``
  (0.5) — a true positive; otherwise it is a false positive. Unmatched true boxes are
  misses. Because matching goes in score order, the outcome of a detection does not
  depend on any lower-scored one, so one matching at a low score floor serves every
  higher threshold.
- AP50: all-point interpolated average precision at IoU 0.5 (as PASCAL VOC since 2010 and
  COCO's per-threshold AP before its 101-point sampling): detections of all images are
  ranked by score, precision is made non-increasing from the right, and AP is the sum
  over each recall step of (recall step) x (interpolated precision). Detections below
  the score floor never count, so AP is a lower bound when the floor cuts the tail.
- Centre hit: a detection whose box centre lies inside some true box of its image.
- False detections per car-free image: over images with no true box, detections at the
  threshold divided by the number of such images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from robovision.boxes import iou_xyxy


@dataclass(frozen=True)
class ImageDetections:
    """True boxes and scored detections of one image, all float32 xyxy in the same pixels.

    ``true_xyxy`` (m, 4); ``boxes_xyxy`` (n, 4) with ``scores`` (n,).
    """

    name: str
    true_xyxy: np.ndarray
    boxes_xyxy: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class Matched:
    """Detections of one image in score order, with their outcome at the matching IoU.

    ``scores`` (n,) descending; ``true_positive`` (n,) bool; ``centre_hit`` (n,) bool;
    ``true_count`` the number of true boxes.
    """

    scores: np.ndarray
    true_positive: np.ndarray
    centre_hit: np.ndarray
    true_count: int


@dataclass(frozen=True)
class Summary:
    """Figures at one score threshold over a set of images (IoU 0.5 unless stated)."""

    score_threshold: float
    iou_threshold: float
    images: int
    cars: int
    detections: int
    true_positives: int
    false_positives: int
    misses: int
    precision: float
    recall: float
    f1: float
    ap50: float
    centre_hit_rate: float
    """Share of detections (at the threshold) whose centre lies inside a true box."""
    carfree_images: int
    false_per_carfree_image: float
    """Detections per car-free image at the threshold (NaN when there is none)."""


def match_image(image: ImageDetections, iou_threshold: float = 0.5) -> Matched:
    """Greedy best-score-first matching of one image's detections (see module docstring)."""
    order = np.argsort(-np.asarray(image.scores, dtype=np.float32), kind="stable")
    boxes = np.asarray(image.boxes_xyxy, dtype=np.float32).reshape(-1, 4)[order]
    truth = np.asarray(image.true_xyxy, dtype=np.float32).reshape(-1, 4)
    taken = np.zeros(len(truth), dtype=bool)
    true_positive = np.zeros(len(boxes), dtype=bool)
    for i, box in enumerate(boxes):
        if not len(truth):
            break
        overlaps = np.where(taken, -1.0, iou_xyxy(box, truth))
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou_threshold:
            taken[best] = True
            true_positive[i] = True
    return Matched(
        scores=np.asarray(image.scores, dtype=np.float32)[order],
        true_positive=true_positive,
        centre_hit=centre_hits(boxes, truth),
        true_count=len(truth),
    )


def centre_hits(boxes_xyxy: np.ndarray, true_xyxy: np.ndarray) -> np.ndarray:
    """bool (n,): whether each box's centre lies inside (or on the edge of) any true box."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
    truth = np.asarray(true_xyxy, dtype=np.float32).reshape(-1, 4)
    if not len(boxes) or not len(truth):
        return np.zeros(len(boxes), dtype=bool)
    cx = ((boxes[:, 0] + boxes[:, 2]) / 2)[:, None]
    cy = ((boxes[:, 1] + boxes[:, 3]) / 2)[:, None]
    inside = (cx >= truth[:, 0]) & (cx <= truth[:, 2]) & (cy >= truth[:, 1]) & (cy <= truth[:, 3])
    return np.asarray(inside.any(axis=1))


def average_precision(scores: np.ndarray, true_positive: np.ndarray, true_count: int) -> float:
    """All-point interpolated AP of ranked detections (see module docstring); 0.0 without cars.

    ``scores`` (n,) and ``true_positive`` (n,) bool over all images; ties in score keep
    the given order.
    """
    if true_count <= 0:
        return 0.0
    precision, recall = precision_recall_curve(scores, true_positive, true_count)[:2]
    if not len(precision):
        return 0.0
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * envelope))


def precision_recall_curve(
    scores: np.ndarray, true_positive: np.ndarray, true_count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and score after each ranked detection: three float64 arrays (n,)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    hits = np.asarray(true_positive, dtype=bool)[order]
    tp = np.cumsum(hits)
    fp = np.cumsum(~hits)
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / max(true_count, 1)
    return precision.astype(np.float64), recall.astype(np.float64), np.asarray(scores, np.float64)[order]


def summarize(
    matched: Sequence[Matched], score_threshold: float, iou_threshold: float = 0.5
) -> Summary:
    """Figures at ``score_threshold`` from per-image matchings (made at a lower score floor)."""
    scores = _concat([m.scores for m in matched])
    hits = _concat([m.true_positive for m in matched], dtype=bool)
    centres = _concat([m.centre_hit for m in matched], dtype=bool)
    cars = sum(m.true_count for m in matched)
    above = scores >= score_threshold
    tp = int(np.sum(hits & above))
    fp = int(np.sum(~hits & above))
    detections = tp + fp
    precision = tp / detections if detections else 0.0
    recall = tp / cars if cars else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    carfree = [m for m in matched if m.true_count == 0]
    carfree_false = sum(int(np.sum(m.scores >= score_threshold)) for m in carfree)
    return Summary(
        score_threshold=float(score_threshold),
        iou_threshold=float(iou_threshold),
        images=len(matched),
        cars=cars,
        detections=detections,
        true_positives=tp,
        false_positives=fp,
        misses=cars - tp,
        precision=precision,
        recall=recall,
        f1=f1,
        ap50=average_precision(scores, hits, cars),
        centre_hit_rate=float(np.mean(centres[above])) if detections else 0.0,
        carfree_images=len(carfree),
        false_per_carfree_image=carfree_false / len(carfree) if carfree else float("nan"),
    )


def choose_threshold(
    labelled: Sequence[Matched],
    carfree: Sequence[Matched],
    max_false_per_carfree_image: float,
    floor: float,
) -> float:
    """The score threshold with the best F1 on ``labelled`` that keeps false detections on
    ``carfree`` images at or below the limit; ties go to the higher threshold.

    Candidates are the detection scores themselves (at or above ``floor``); the result is a
    value just below the chosen score, rounded to 3 decimals, so quantized scores on either
    side stay on their side. Returns ``floor`` when there are no detections.
    """
    scores = _concat([m.scores for m in labelled])
    hits = _concat([m.true_positive for m in labelled], dtype=bool)
    cars = sum(m.true_count for m in labelled)
    free_scores = _concat([m.scores for m in carfree])
    candidates = np.unique(scores[scores >= floor])[::-1]
    best, best_f1 = floor, -1.0
    for s in candidates:
        if carfree and np.sum(free_scores >= s) / len(carfree) > max_false_per_carfree_image:
            continue
        above = scores >= s
        tp = np.sum(hits & above)
        precision, recall = tp / max(int(np.sum(above)), 1), tp / max(cars, 1)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        if f1 > best_f1 + 1e-12:
            best, best_f1 = float(s), f1
    return max(floor, float(np.floor((best - 0.0005) * 1000) / 1000))


def _concat(parts: Sequence[np.ndarray], dtype: type = np.float32) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)
