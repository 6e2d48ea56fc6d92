"""Decoder for the toy-car centre grid (``models/toycar.tflite``).

One output tensor (1, gh, gw, 5), int8 (dequantized here) or float32. Per cell, after a
sigmoid (applied inside the model unless ``apply_sigmoid`` says otherwise):

- channel 0: centre score, the chance that a car's box centre lies in this cell;
- channels 1, 2: box centre x, y in cells: ``col + 0.5 + (v - 0.5) * offset_span_cells``
  (and the same with ``row``);
- channels 3, 4: box width, height as a fraction of the input width, height.

A car is a cell whose score is the maximum of its 3x3 neighbourhood and at least the
score threshold. Two neighbouring cells with the same (quantized) score both pass that
test, so the boxes then go through non-maximum suppression: one car, one detection.

``decoder_options`` (all optional):

- ``offset_span_cells``: as above, default 4.0 (must match training);
- ``apply_sigmoid``: true for a float export whose outputs are logits, default false;
- ``max_candidates``: best peaks kept before suppression, default 100.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from robovision.boxes import nms_xyxy
from robovision.decoders import make_detections, option, single_output
from robovision.decoders.base import DecodeParams
from robovision.detection import Detection
from robovision.errors import ConfigError, ModelFormatError
from robovision.model_file import ModelFile
from robovision.tensor_spec import TensorSpec
from robovision.transform import Transform

CHANNELS = 5
DEFAULT_OFFSET_SPAN_CELLS = 4.0
DEFAULT_MAX_CANDIDATES = 100


def prepare(specs: Sequence[TensorSpec], params: DecodeParams, model_file: ModelFile) -> DecodeParams:
    """Check the output shape and the options once, when the model loads."""
    if len(specs) != 1:
        raise ModelFormatError(
            f"{model_file.path} has {len(specs)} outputs; the toycar decoder reads one grid "
            f"(1, gh, gw, {CHANNELS}). Set `decoder` in the card to the one made for this model."
        )
    _check_shape(specs[0].shape)
    span = _offset_span(params)
    option(params, "apply_sigmoid", False, bool)
    _max_candidates(params)
    return replace(params, options={**params.options, "offset_span_cells": span})


def decode(
    outputs: Sequence[np.ndarray],
    specs: Sequence[TensorSpec],
    transform: Transform,
    params: DecodeParams,
) -> list[Detection]:
    """Detections in frame pixels, best first; see the module docstring for the grid."""
    raw = single_output(outputs, "toycar")
    _check_shape(tuple(raw.shape))
    if not params.wanted(params.label_for(0)):
        return []
    grid = specs[0].dequantize(np.asarray(raw))[0]
    if option(params, "apply_sigmoid", False, bool):
        grid = 1.0 / (1.0 + np.exp(-grid))

    rows, cols = _peaks(grid[:, :, 0], params.score_threshold)
    if rows.size == 0:
        return []
    scores = grid[rows, cols, 0]
    limit = _max_candidates(params)
    if rows.size > limit:
        best = np.argsort(-scores, kind="stable")[:limit]
        rows, cols, scores = rows[best], cols[best], scores[best]

    boxes_norm = _boxes_norm(grid[rows, cols, 1:], rows, cols, grid.shape[:2], _offset_span(params))
    kept = nms_xyxy(boxes_norm, scores, params.iou_threshold, params.max_detections)
    frame_boxes = transform.norm_input_to_frame_xyxy(boxes_norm[kept])
    class_ids = np.zeros(kept.size, dtype=np.int64)
    return make_detections(frame_boxes, scores[kept], class_ids, transform.frame_wh, params)


def _peaks(score: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices (int64) of cells that are 3x3 local maxima at or above ``threshold``."""
    h, w = score.shape
    padded = np.full((h + 2, w + 2), -np.inf, dtype=np.float32)
    padded[1:-1, 1:-1] = score
    neighbourhood = padded[0:h, 0:w].copy()
    for dy in range(3):
        for dx in range(3):
            np.maximum(neighbourhood, padded[dy : dy + h, dx : dx + w], out=neighbourhood)
    rows, cols = np.nonzero((score >= neighbourhood) & (score >= threshold))
    return rows.astype(np.int64), cols.astype(np.int64)


def _boxes_norm(
    values: np.ndarray, rows: np.ndarray, cols: np.ndarray, grid_hw: tuple[int, int], span: float
) -> np.ndarray:
    """Boxes (n, 4) xyxy normalized to the input, from per-peak channel values (n, 4)."""
    gh, gw = grid_hw
    cx = (cols + 0.5 + (values[:, 0] - 0.5) * span) / gw
    cy = (rows + 0.5 + (values[:, 1] - 0.5) * span) / gh
    half_w, half_h = values[:, 2] / 2.0, values[:, 3] / 2.0
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1).astype(np.float32)


def _check_shape(shape: tuple[int, ...]) -> None:
    if len(shape) != 4 or shape[0] != 1 or shape[3] != CHANNELS:
        raise ModelFormatError(
            f"the toycar decoder reads an output of shape (1, gh, gw, {CHANNELS}), got {shape}; "
            f"set `decoder` in the card to the one made for this model"
        )


def _offset_span(params: DecodeParams) -> float:
    span = float(option(params, "offset_span_cells", DEFAULT_OFFSET_SPAN_CELLS, (int, float)))
    if span <= 0:
        raise ConfigError(f"decoder_options.offset_span_cells must be positive, got {span}")
    return span


def _max_candidates(params: DecodeParams) -> int:
    limit = option(params, "max_candidates", DEFAULT_MAX_CANDIDATES, int)
    if limit < 1:
        raise ConfigError(f"decoder_options.max_candidates must be 1 or more, got {limit}")
    return limit
