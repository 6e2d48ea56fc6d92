"""Decoder for SSD models ending in the ``TFLite_Detection_PostProcess`` op.

The op writes four tensors: boxes (1, N, 4) float32 as (y_min, x_min, y_max, x_max)
normalized to the model input, classes (1, N) float32 class ids, scores (1, N) float32,
and count (1,) float32, the number of valid rows. Non-maximum suppression is already done
by the op.

Exporters list these outputs in different orders (TF1 export: boxes, classes, scores, count
named ``TFLite_Detection_PostProcess``, ``...:1``, ``...:2``, ``...:3``; TF2 export:
``StatefulPartitionedCall:N`` in another order), so outputs are matched to roles, never taken
by position:

1. ``decoder_options.output_roles`` from the card, ``{boxes = i, classes = j, scores = k, count = l}``
   with positions in interpreter output order;
2. otherwise, at load time, from the model graph: which output of the post-process op
   each model output is (``prepare``);
3. otherwise, per call, from shapes (boxes (1, N, 4), count of size 1) and values (class ids
   are whole numbers, scores are fractions in 0..1), falling back to TF1 names.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from robovision.decoders import make_detections
from robovision.decoders.base import DecodeParams
from robovision.detection import Detection
from robovision.errors import ConfigError, ModelFormatError
from robovision.model_file import ModelFile
from robovision.tensor_spec import TensorSpec
from robovision.transform import Transform

log = logging.getLogger(__name__)

POSTPROCESS_OP = "TFLite_Detection_PostProcess"
ROLES = ("boxes", "classes", "scores", "count")
"""Output roles in the order the post-process op writes them."""


def prepare(specs: Sequence[TensorSpec], params: DecodeParams, model_file: ModelFile) -> DecodeParams:
    """Settle ``output_roles`` once: from the card if given, else from the model graph."""
    roles: dict[str, int] | None
    if "output_roles" in params.options:
        roles = _checked_roles(params.options["output_roles"], len(specs))
    else:
        roles = roles_from_graph(specs, model_file)
    if roles is None:
        if len(specs) != len(ROLES):
            raise ModelFormatError(
                f"{model_file.path} has {len(specs)} outputs; the ssd decoder needs the four outputs of "
                f"{POSTPROCESS_OP}. Pick the decoder made for this model in its card."
            )
        log.info("%s: output roles not in the graph, matching them by shape and value", model_file.path.name)
        return params
    return replace(params, options={**params.options, "output_roles": roles})


def roles_from_graph(specs: Sequence[TensorSpec], model_file: ModelFile) -> dict[str, int] | None:
    """Output position for each role, found from which post-process output each tensor is."""
    roles: dict[str, int] = {}
    for position, spec in enumerate(specs):
        produced = model_file.producer_of(spec.index)
        if produced is None:
            continue
        op, slot = produced
        if op.opcode.custom_code == POSTPROCESS_OP and slot < len(ROLES):
            roles[ROLES[slot]] = position
    return roles if len(roles) == len(ROLES) else None


def decode(
    outputs: Sequence[np.ndarray],
    specs: Sequence[TensorSpec],
    transform: Transform,
    params: DecodeParams,
) -> list[Detection]:
    """Detections in frame pixels from the four post-process outputs (see module docstring)."""
    roles = params.options.get("output_roles")
    if isinstance(roles, Mapping):
        positions = {role: int(roles[role]) for role in ROLES}
    else:
        positions = roles_from_values(outputs, specs)

    boxes_yxyx = np.asarray(outputs[positions["boxes"]], dtype=np.float32).reshape(-1, 4)
    class_ids = np.asarray(outputs[positions["classes"]], dtype=np.float32).reshape(-1)
    scores = np.asarray(outputs[positions["scores"]], dtype=np.float32).reshape(-1)
    count = int(np.asarray(outputs[positions["count"]]).reshape(-1)[0])
    count = max(0, min(count, len(scores), len(boxes_yxyx)))

    boxes_norm_xyxy = np.clip(boxes_yxyx[:count][:, [1, 0, 3, 2]], 0.0, 1.0)
    boxes_xyxy = transform.norm_input_to_frame_xyxy(boxes_norm_xyxy)
    ids = np.rint(class_ids[:count]).astype(np.int64)
    return make_detections(boxes_xyxy, scores[:count], ids, transform.frame_wh, params)


def roles_from_values(outputs: Sequence[np.ndarray], specs: Sequence[TensorSpec]) -> dict[str, int]:
    """Output position per role from shapes and values, for models whose graph does not tell."""
    if len(outputs) != len(ROLES):
        raise ModelFormatError(f"the ssd decoder needs 4 outputs ({', '.join(ROLES)}), got {len(outputs)}")
    shapes = [tuple(np.asarray(o).shape) for o in outputs]
    boxes = [i for i, s in enumerate(shapes) if len(s) >= 2 and s[-1] == 4 and int(np.prod(s)) > 4]
    counts = [i for i, s in enumerate(shapes) if int(np.prod(s)) == 1]
    rest = [i for i in range(len(outputs)) if i not in boxes and i not in counts]
    if len(boxes) != 1 or len(counts) != 1 or len(rest) != 2:
        raise ModelFormatError(
            f"cannot tell the ssd outputs apart by shape {shapes}; set decoder_options.output_roles "
            f"in the model card, e.g. {{boxes = 0, classes = 1, scores = 2, count = 3}}"
        )
    first, second = rest
    classes, scores = _classes_then_scores(outputs[first], outputs[second], specs[first], specs[second])
    return {"boxes": boxes[0], "classes": rest[classes], "scores": rest[scores], "count": counts[0]}


def _classes_then_scores(
    a: np.ndarray, b: np.ndarray, spec_a: TensorSpec, spec_b: TensorSpec
) -> tuple[int, int]:
    """(0, 1) if ``a`` holds class ids and ``b`` scores, else (1, 0)."""
    a_whole = bool(np.all(np.equal(np.mod(a, 1.0), 0.0)))
    b_whole = bool(np.all(np.equal(np.mod(b, 1.0), 0.0)))
    if a_whole != b_whole:
        return (0, 1) if a_whole else (1, 0)
    a_big, b_big = bool(np.any(a > 1.0)), bool(np.any(b > 1.0))
    if a_big != b_big:
        return (0, 1) if a_big else (1, 0)
    # Values cannot tell (e.g. every class id 0 or 1 with scores exactly 0 or 1): TF1 names end
    # in ":1" for classes and ":2" for scores; otherwise keep output order.
    if spec_a.name.endswith(":2") and spec_b.name.endswith(":1"):
        return (1, 0)
    return (0, 1)


def _checked_roles(value: object, n_outputs: int) -> dict[str, int]:
    if not isinstance(value, Mapping) or set(value) != set(ROLES):
        raise ConfigError(
            f"decoder_options.output_roles must map each of {', '.join(ROLES)} to an output position, "
            f"got {value!r}"
        )
    positions = {str(k): v for k, v in value.items()}
    valid = all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v < n_outputs for v in positions.values()
    )
    if not valid or len(set(positions.values())) != len(ROLES):
        raise ConfigError(
            f"decoder_options.output_roles needs four different output positions in 0..{n_outputs - 1}, "
            f"got {value!r}"
        )
    return {role: int(positions[role]) for role in ROLES}
