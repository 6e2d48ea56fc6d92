"""Decoders: raw model outputs to detections, one module per model head.

A model card's ``decoder = "<kind>"`` selects ``robovision.decoders.<kind>``, which
implements ``decode`` (see ``robovision.decoders.base``). A decoder module may also
define ``prepare(specs, params, model_file) -> DecodeParams``: it is called once when the
model loads, to check the outputs and settle options from the model graph, so that a
mismatch fails at load time rather than on the first frame.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from types import ModuleType
from typing import TypeVar, cast

import numpy as np

from robovision.decoders.base import DecodeParams
from robovision.detection import Detection
from robovision.errors import ConfigError

_NOT_DECODERS = frozenset({"base"})
T = TypeVar("T")


def decoder_names() -> tuple[str, ...]:
    """The decoder kinds available in this installation, sorted."""
    return tuple(
        sorted(
            info.name
            for info in pkgutil.iter_modules(__path__)
            if info.name not in _NOT_DECODERS and not info.name.startswith("_")
        )
    )


def load_decoder(kind: str) -> ModuleType:
    """The module implementing decoder ``kind``; ``ConfigError`` listing the known kinds if none."""
    known = decoder_names()
    if kind not in known:
        raise ConfigError(f"unknown decoder {kind!r}; known decoders: {', '.join(known)}")
    module = importlib.import_module(f"{__name__}.{kind}")
    if not callable(getattr(module, "decode", None)):
        raise ConfigError(f"decoder module {module.__name__} has no decode() function")
    return module


def make_detections(
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    frame_wh: tuple[int, int],
    params: DecodeParams,
) -> list[Detection]:
    """Detections from candidate arrays, with the card's filters applied.

    ``boxes_xyxy`` (n, 4) float in frame pixels, ``scores`` (n,) float, ``class_ids`` (n,) int.
    Keeps scores at or above ``params.score_threshold`` whose label passes the class filter,
    best score first (ties keep input order), at most ``params.max_detections``.
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
    score_arr = np.asarray(scores, dtype=np.float32).reshape(-1)
    ids = np.asarray(class_ids).reshape(-1).astype(np.int64)
    frame_w, frame_h = float(frame_wh[0]), float(frame_wh[1])
    out: list[Detection] = []
    for i in np.argsort(-score_arr, kind="stable"):
        score = float(score_arr[i])
        if score < params.score_threshold or len(out) >= params.max_detections:
            break
        label = params.label_for(int(ids[i]))
        if not params.wanted(label):
            continue
        x0, y0, x1, y1 = (float(v) for v in boxes[i])
        out.append(
            Detection(
                label=label,
                class_id=int(ids[i]),
                score=score,
                box_xyxy=(x0, y0, x1, y1),
                box_xyxy_norm=(x0 / frame_w, y0 / frame_h, x1 / frame_w, y1 / frame_h),
            )
        )
    return out


def option(params: DecodeParams, name: str, default: T, kinds: type | tuple[type, ...]) -> T:
    """``params.options[name]`` checked against ``kinds`` (bool is not taken as int), else ``default``."""
    if name not in params.options:
        return default
    value = params.options[name]
    bad_bool = isinstance(value, bool) and not _accepts_bool(kinds)
    if bad_bool or not isinstance(value, kinds):
        names = kinds.__name__ if isinstance(kinds, type) else " or ".join(k.__name__ for k in kinds)
        raise ConfigError(f"decoder_options.{name} must be {names}, got {value!r}")
    return cast(T, value)


def _accepts_bool(kinds: type | tuple[type, ...]) -> bool:
    return bool in (kinds if isinstance(kinds, tuple) else (kinds,))


def single_output(outputs: Sequence[np.ndarray], kind: str) -> np.ndarray:
    """The only output; ``ConfigError`` naming the decoder when the model has several."""
    if len(outputs) != 1:
        raise ConfigError(
            f"the {kind} decoder reads a model with one output, this one has {len(outputs)}; "
            f"set `decoder` in the model card to the decoder made for this model"
        )
    return outputs[0]
