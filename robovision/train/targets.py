"""Training targets for the centre grid, and the grid's channel layout.

The network predicts, for every cell of a (grid, grid) map over the input, five values
after a sigmoid (the card's ``[decoder_options]`` repeats this):

- channel 0: centre score, the chance that a car's box centre lies in this cell;
- channels 1, 2: box centre x, y as ``cell + 0.5 + (v - 0.5) * offset_span_cells``, in cells;
- channels 3, 4: box width, height as a fraction of the input width, height.

Targets are one float32 array (grid, grid, 7) per sample:
``heat, cx_cells, cy_cells, w_cells, h_cells, box_weight, heat_mask``. ``heat`` is a
Gaussian bump per car with exactly 1.0 at the cell holding the centre; the box is
regressed in the 3x3 cells around it with ``box_weight`` = the bump's value; ``heat_mask``
is 0 over ignore regions (cut-off cars) so they teach neither "car" nor "not a car".
"""

from __future__ import annotations

import numpy as np

CHANNELS = 5
TARGET_CHANNELS = 7


def encode_targets(boxes_norm: np.ndarray, ignore_norm: np.ndarray, grid: int) -> np.ndarray:
    """float32 (grid, grid, 7) targets for boxes (n, 4) and ignore regions (m, 4), xyxy in 0..1."""
    target = np.zeros((grid, grid, TARGET_CHANNELS), dtype=np.float32)
    target[..., 6] = 1.0
    cells = np.arange(grid, dtype=np.float32) + 0.5
    for box in np.asarray(ignore_norm, dtype=np.float32).reshape(-1, 4) * grid:
        x0, y0, x1, y1 = np.floor(box[:2]).astype(int).tolist() + np.ceil(box[2:]).astype(int).tolist()
        target[max(y0, 0) : min(y1, grid), max(x0, 0) : min(x1, grid), 6] = 0.0
    boxes = np.asarray(boxes_norm, dtype=np.float32).reshape(-1, 4) * grid
    # Smaller cars last, so where two bumps overlap the nearer, smaller car owns the cell.
    order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable")
    for box in boxes[order]:
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        w, h = box[2] - box[0], box[3] - box[1]
        col, row = min(int(cx), grid - 1), min(int(cy), grid - 1)
        sx, sy = max(0.5, 0.15 * w), max(0.5, 0.15 * h)
        bump = np.exp(-((cells[None, :] - (col + 0.5)) ** 2) / (2 * sx * sx)) * np.exp(
            -((cells[:, None] - (row + 0.5)) ** 2) / (2 * sy * sy)
        )
        bump[bump < 0.01] = 0.0
        np.maximum(target[..., 0], bump, out=target[..., 0])
        target[np.maximum(bump, 0) > 0, 6] = 1.0
        r0, r1, c0, c1 = max(row - 1, 0), min(row + 2, grid), max(col - 1, 0), min(col + 2, grid)
        near = bump[r0:r1, c0:c1]
        owned = near >= target[r0:r1, c0:c1, 5]
        block = target[r0:r1, c0:c1]
        block[owned, 1:5] = (cx, cy, w, h)
        block[owned, 5] = near[owned]
    return target
