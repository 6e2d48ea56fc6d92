"""Description of one model input or output tensor, independent of the backend."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape, dtype and quantization of one tensor.

    ``scale`` and ``zero_point`` are the per-tensor affine quantization
    (``real = scale * (q - zero_point)``); ``scale == 0.0`` means not quantized.
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        """Real values as float32 (a new array); unquantized input is returned as float32."""
        if not self.quantized:
            return values.astype(np.float32, copy=False)
        return (values.astype(np.float32) - np.float32(self.zero_point)) * np.float32(self.scale)
