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
    """Pairwise IoU of (n, 4) against (m, 4). float32 (n, m)."""
    a = np.asarray(boxes_a_xyxy, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(boxes_b_xyxy, dtype=np.float32).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    return np.stack([iou_xyxy(box, b) for box in a])


def nms_xyxy(
    boxes_xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int | None = None
) -> np.ndarray:
    """Greedy non-maximum suppression. Indices (int64) of kept boxes, best score first."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float32), kind="stable")
    keep: list[int] = []
    while order.size and (max_keep is None or len(keep) < max_keep):
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        order = rest[iou_xyxy(boxes[best], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)
