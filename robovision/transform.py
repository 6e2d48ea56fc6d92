"""The geometric map between a frame and the model input made from it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Transform:
    """How frame pixels were placed into the model input.

    ``input_xy = frame_xy * scale_xy + offset_xy`` in pixels, for every resize mode:
    stretch (offset 0, scales differ per axis), letterbox (one scale, positive
    offset: the padding) and centre crop (one scale, negative offset: the part cut off).
    """

    frame_wh: tuple[int, int]
    input_wh: tuple[int, int]
    scale_xy: tuple[float, float]
    offset_xy: tuple[float, float]

    def input_to_frame_xyxy(self, boxes_xyxy_input_px: np.ndarray) -> np.ndarray:
        """Map boxes (n, 4) in input pixels to frame pixels, clipped to the frame. float32 (n, 4)."""
        boxes = np.asarray(boxes_xyxy_input_px, dtype=np.float32).reshape(-1, 4)
        sx, sy = self.scale_xy
        ox, oy = self.offset_xy
        out = np.empty_like(boxes)
        out[:, 0::2] = (boxes[:, 0::2] - ox) / sx
        out[:, 1::2] = (boxes[:, 1::2] - oy) / sy
        fw, fh = self.frame_wh
        np.clip(out[:, 0::2], 0.0, fw, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0.0, fh, out=out[:, 1::2])
        return out

    def norm_input_to_frame_xyxy(self, boxes_xyxy_norm_input: np.ndarray) -> np.ndarray:
        """Map boxes (n, 4) normalized to the input (0..1) to frame pixels. float32 (n, 4)."""
        boxes = np.asarray(boxes_xyxy_norm_input, dtype=np.float32).reshape(-1, 4)
        iw, ih = self.input_wh
        scaled = boxes * np.array([iw, ih, iw, ih], dtype=np.float32)
        return self.input_to_frame_xyxy(scaled)

    def frame_to_input_xyxy(self, boxes_xyxy_frame_px: np.ndarray) -> np.ndarray:
        """Map boxes (n, 4) in frame pixels to input pixels (not clipped). float32 (n, 4)."""
        boxes = np.asarray(boxes_xyxy_frame_px, dtype=np.float32).reshape(-1, 4)
        sx, sy = self.scale_xy
        ox, oy = self.offset_xy
        out = np.empty_like(boxes)
        out[:, 0::2] = boxes[:, 0::2] * sx + ox
        out[:, 1::2] = boxes[:, 1::2] * sy + oy
        return out
