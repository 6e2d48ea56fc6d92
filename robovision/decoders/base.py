"""What every decoder receives, and the signature it implements.

A decoder is a module in ``robovision.decoders`` named after the card's ``decoder`` value,
exposing ``decode(outputs, specs, transform, params) -> list[Detection]``:

- ``outputs``: the model's output tensors as the interpreter returned them (raw dtype,
  still quantized, copies the decoder may keep), in interpreter output order;
- ``specs``: the matching ``TensorSpec`` for each output (name, shape, quantization);
- ``transform``: the frame-to-input map of the tensor that produced them;
- ``params``: thresholds and labels from the model card.

It returns detections with boxes in frame pixels, best score first, after the score
threshold, class filter and ``max_detections`` are applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from robovision.detection import Detection
from robovision.tensor_spec import TensorSpec
from robovision.transform import Transform


@dataclass(frozen=True)
class DecodeParams:
    labels: tuple[str, ...] = ()
    score_threshold: float = 0.5
    iou_threshold: float = 0.5
    max_detections: int = 20
    class_filter: frozenset[str] | None = None
    """Keep only these labels; ``None`` keeps all."""
    options: dict[str, object] = field(default_factory=dict)
    """Decoder-specific settings from the card's ``[decoder_options]`` table."""

    def label_for(self, class_id: int) -> str:
        if 0 <= class_id < len(self.labels):
            return self.labels[class_id]
        return str(class_id)

    def wanted(self, label: str) -> bool:
        return self.class_filter is None or label in self.class_filter


class DecodeFn(Protocol):
    def __call__(
        self,
        outputs: Sequence[np.ndarray],
        specs: Sequence[TensorSpec],
        transform: Transform,
        params: DecodeParams,
    ) -> list[Detection]: ...
