"""Decoder for image classifiers: one output of class scores, shape (1, N).

Scores are dequantized (uint8, int8 or float32 outputs). The ``top_k`` best classes
(``decoder_options.top_k``, default 1) at or above the score threshold become detections
whose box is the whole frame. ``decoder_options.softmax = true`` turns logits into
probabilities first, for models exported without their final softmax.

Class ids are output positions; the card's ``labels`` and ``label_offset`` name them (an
ImageNet list with "background" at line 0 lines up with 1001-class outputs at offset 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robovision.decoders import make_detections, option, single_output
from robovision.decoders.base import DecodeParams
from robovision.detection import Detection
from robovision.errors import ConfigError, ModelFormatError
from robovision.model_file import ModelFile
from robovision.tensor_spec import TensorSpec
from robovision.transform import Transform


def prepare(specs: Sequence[TensorSpec], params: DecodeParams, model_file: ModelFile) -> DecodeParams:
    """Check the model has one (1, N) output and the options are valid."""
    if len(specs) != 1 or len(specs[0].shape) != 2 or specs[0].shape[0] != 1:
        shapes = [spec.shape for spec in specs]
        raise ModelFormatError(
            f"{model_file.path} outputs {shapes}; the classification decoder needs one output of shape "
            f"(1, N). Set `decoder` in the model card to the decoder made for this model."
        )
    _top_k(params)
    _softmax(params)
    return params


def decode(
    outputs: Sequence[np.ndarray],
    specs: Sequence[TensorSpec],
    transform: Transform,
    params: DecodeParams,
) -> list[Detection]:
    """The best classes as whole-frame detections, best first."""
    raw = single_output(outputs, "classification")
    scores = specs[0].dequantize(np.asarray(raw)).reshape(-1)
    if _softmax(params):
        shifted = np.exp(scores - scores.max())
        scores = shifted / shifted.sum()

    top_k = min(_top_k(params), scores.size)
    best = np.argsort(-scores, kind="stable")[:top_k]
    frame_w, frame_h = transform.frame_wh
    whole_frame = np.tile(np.array([0.0, 0.0, frame_w, frame_h], dtype=np.float32), (top_k, 1))
    return make_detections(whole_frame, scores[best], best, transform.frame_wh, params)


def _top_k(params: DecodeParams) -> int:
    top_k = option(params, "top_k", 1, int)
    if top_k < 1:
        raise ConfigError(f"decoder_options.top_k must be 1 or more, got {top_k}")
    return top_k


def _softmax(params: DecodeParams) -> bool:
    return option(params, "softmax", False, bool)
