"""Decoder for raw YOLO heads (no NMS inside the model).

Supported layouts, one output tensor of rank 3 (float32, or int8/uint8 with per-tensor
quantization, dequantized here):

- Ultralytics (YOLOv8 and later) style: (1, 4 + nc, N), or its transpose (1, N, 4 + nc);
  each candidate is (cx, cy, w, h, score_0 .. score_nc-1).
- YOLOv5 style: (1, N, 5 + nc); each candidate is (cx, cy, w, h, objectness,
  score_0 .. score_nc-1) and a class's score is objectness * class score.

Scores are taken as probabilities (after the sigmoid, as exporters emit them). Box
coordinates may be in input pixels or normalized to the input size (0..1). Each candidate
keeps its best class only. Then non-maximum suppression per class (or across classes with
``agnostic``) with ``robovision.boxes.nms_xyxy``.

``decoder_options`` (all optional):

- ``layout``: "channels_first" for (1, C, N), "channels_last" for (1, N, C); default: the
  smaller of the two dimensions is C.
- ``objectness``: true for the YOLOv5 style; default: decided from the label count
  (C - 4 or C - 5 labels), else false for channels-first output; a channels-last output
  without labels must say.
- ``normalized``: true if boxes are 0..1 of the input size; default: decided per frame, true
  when no candidate coordinate exceeds 2 (so boxes within 2 pixels of the corner in a
  pixel-unit model are misread: set it for such models).
- ``agnostic``: true for one NMS across classes; default false.
- ``max_candidates``: highest-scoring candidates kept before NMS, default 1000.
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

LAYOUTS = ("channels_first", "channels_last")
NORMALIZED_MAX = 2.0
"""Coordinates no larger than this are taken as normalized when ``normalized`` is not set."""


def prepare(specs: Sequence[TensorSpec], params: DecodeParams, model_file: ModelFile) -> DecodeParams:
    """Check the output and settle ``layout`` and ``objectness`` once, at load time."""
    if len(specs) != 1:
        raise ModelFormatError(
            f"{model_file.path} has {len(specs)} outputs; the yolo decoder reads one raw head "
            f"(1, 4 + nc, N) or (1, N, 4 + nc | 5 + nc). Set `decoder` in the card to the one for this model."
        )
    layout = _layout(specs[0].shape, params)
    channels = specs[0].shape[1] if layout == "channels_first" else specs[0].shape[2]
    objectness = _objectness(channels, layout, params)
    option(params, "normalized", False, bool)
    option(params, "agnostic", False, bool)
    _max_candidates(params)
    return replace(params, options={**params.options, "layout": layout, "objectness": objectness})


def decode(
    outputs: Sequence[np.ndarray],
    specs: Sequence[TensorSpec],
    transform: Transform,
    params: DecodeParams,
) -> list[Detection]:
    """Detections in frame pixels, best first (see module docstring for layouts and options)."""
    raw = single_output(outputs, "yolo")
    layout = _layout(tuple(raw.shape), params)
    rows = specs[0].dequantize(np.asarray(raw))[0]
    candidates = rows.T if layout == "channels_first" else rows
    objectness = _objectness(candidates.shape[1], layout, params)

    class_scores = candidates[:, 5:] * candidates[:, 4:5] if objectness else candidates[:, 4:]
    class_ids = np.argmax(class_scores, axis=1)
    scores = class_scores[np.arange(len(class_ids)), class_ids]
    picked = _pick(scores, class_ids, params)
    if picked.size == 0:
        return []

    boxes_xyxy = _cxcywh_to_xyxy_input_px(candidates[picked, :4], transform.input_wh, params)
    kept = _nms(boxes_xyxy, scores[picked], class_ids[picked], params)
    frame_boxes = transform.input_to_frame_xyxy(boxes_xyxy[kept])
    return make_detections(
        frame_boxes, scores[picked][kept], class_ids[picked][kept], transform.frame_wh, params
    )


def _pick(scores: np.ndarray, class_ids: np.ndarray, params: DecodeParams) -> np.ndarray:
    """Indices of candidates over the threshold and in the class filter, at most max_candidates."""
    keep = scores >= params.score_threshold
    if params.class_filter is not None:
        wanted = {int(c) for c in np.unique(class_ids[keep]) if params.wanted(params.label_for(int(c)))}
        keep &= np.isin(class_ids, list(wanted))
    picked = np.flatnonzero(keep)
    limit = _max_candidates(params)
    if picked.size > limit:
        picked = picked[np.argsort(-scores[picked], kind="stable")[:limit]]
    return picked


def _cxcywh_to_xyxy_input_px(
    boxes_cxcywh: np.ndarray, input_wh: tuple[int, int], params: DecodeParams
) -> np.ndarray:
    normalized: bool | None = option(params, "normalized", None, bool)
    if normalized is None:
        normalized = bool(np.abs(boxes_cxcywh).max() <= NORMALIZED_MAX)
    boxes = boxes_cxcywh.astype(np.float32)
    if normalized:
        boxes = boxes * np.array([input_wh[0], input_wh[1], input_wh[0], input_wh[1]], dtype=np.float32)
    half_wh = boxes[:, 2:4] / 2.0
    return np.concatenate([boxes[:, 0:2] - half_wh, boxes[:, 0:2] + half_wh], axis=1)


def _nms(
    boxes_xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, params: DecodeParams
) -> np.ndarray:
    if option(params, "agnostic", False, bool):
        return nms_xyxy(boxes_xyxy, scores, params.iou_threshold, params.max_detections)
    # Shift each class to its own region of the plane so one NMS pass never compares classes.
    span = float(np.abs(boxes_xyxy).max()) + 1.0
    shifted = boxes_xyxy + (class_ids.astype(np.float32) * span)[:, None]
    return nms_xyxy(shifted, scores, params.iou_threshold, params.max_detections)


def _layout(shape: tuple[int, ...], params: DecodeParams) -> str:
    if len(shape) != 3 or shape[0] != 1:
        raise ModelFormatError(
            f"the yolo decoder reads an output of shape (1, C, N) or (1, N, C), got {shape}"
        )
    layout = option(params, "layout", "auto", str)
    if layout == "auto":
        return "channels_first" if shape[1] < shape[2] else "channels_last"
    if layout not in LAYOUTS:
        raise ConfigError(f"decoder_options.layout must be one of auto, {', '.join(LAYOUTS)}, got {layout!r}")
    return layout


def _objectness(channels: int, layout: str, params: DecodeParams) -> bool:
    explicit: bool | None = option(params, "objectness", None, bool)
    if explicit is not None:
        needed = 6 if explicit else 5
        if channels < needed:
            raise ModelFormatError(
                f"a yolo output with objectness={explicit} needs at least {needed} values per box, "
                f"this one has {channels}"
            )
        return explicit
    n_labels = len(params.labels)
    if n_labels and channels - 4 == n_labels:
        return False
    if n_labels and channels - 5 == n_labels:
        return True
    if layout == "channels_first":
        return False
    raise ConfigError(
        f"cannot tell whether this yolo output ({channels} values per box) has an objectness column. "
        f"Set decoder_options.objectness = true (YOLOv5 style: x, y, w, h, obj, classes) or false "
        f"(Ultralytics style: x, y, w, h, classes), or give the card a labels file with one line per class."
    )


def _max_candidates(params: DecodeParams) -> int:
    limit = option(params, "max_candidates", 1000, int)
    if limit < 1:
        raise ConfigError(f"decoder_options.max_candidates must be 1 or more, got {limit}")
    return limit
