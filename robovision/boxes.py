"""Pure box helpers. Boxes are float arrays of shape (n, 4) in (x_min, y_min, x_max, y_max)."""

from __future__ import annotations

import numpy as np


def iou_xyxy(box_xyxy: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
    """IoU of one box (4,) against many boxes (n, 4). float32 (n,)."""
    box = np.asarray(box_xyxy, dtype=np.float32)
    boxes = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
    inter_w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    inter_h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = inter_w * inter_h
    area = max(float((box[2] - box[0]) * (box[3] - box[1])), 0.0)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def iou_matrix_xyxy(boxes_a_xyxy: np.ndarray, boxes_b_xyxy: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (n, 4) against (m, 4). float32 (n, m); row i equals ``iou_xyxy(a[i], b)`` exactly."""
    a = np.asarray(boxes_a_xyxy, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(boxes_b_xyxy, dtype=np.float32).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    inter_w = np.clip(np.minimum(a[:, 2:3], b[:, 2]) - np.maximum(a[:, 0:1], b[:, 0]), 0, None)
    inter_h = np.clip(np.minimum(a[:, 3:4], b[:, 3]) - np.maximum(a[:, 1:2], b[:, 1]), 0, None)
    inter = inter_w * inter_h
    # As in iou_xyxy: the first box's area is its unclipped extent product, floored at 0.
    area_a = np.maximum((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), np.float32(0.0))
    areas_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + areas_b - inter
    iou = np.where(union > 0, inter / np.maximum(union, np.float32(1e-12)), np.float32(0.0))
    return iou.astype(np.float32)


_NMS_MATRIX_MAX = 256
"""Up to this many candidates, suppression computes every IoU at once ((n, n) float32)."""


def nms_xyxy(
    boxes_xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int | None = None
) -> np.ndarray:
    """Greedy non-maximum suppression. Indices (int64) of kept boxes, best score first."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float32), kind="stable")
    if order.size <= _NMS_MATRIX_MAX:
        return _nms_matrix(boxes, order, iou_threshold, max_keep)
    keep: list[int] = []
    while order.size and (max_keep is None or len(keep) < max_keep):
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        order = rest[iou_xyxy(boxes[best], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def _nms_matrix(
    boxes: np.ndarray, order: np.ndarray, iou_threshold: float, max_keep: int | None
) -> np.ndarray:
    """``nms_xyxy`` for a few candidates: one IoU matrix instead of one IoU row per kept box."""
    ranked = boxes[order]
    # not (iou <= threshold), as the row-by-row loop keeps a box only when that holds
    suppresses = ~(iou_matrix_xyxy(ranked, ranked) <= iou_threshold)
    alive = np.ones(order.size, dtype=bool)
    keep: list[int] = []
    for i in range(order.size):
        if max_keep is not None and len(keep) >= max_keep:
            break
        if alive[i]:
            keep.append(int(order[i]))
            alive &= ~suppresses[i]
    return np.asarray(keep, dtype=np.int64)
