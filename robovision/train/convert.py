"""Full-integer int8 conversion of the trained network, and a check of its op versions.

The converter of TensorFlow 2.21 may emit op versions newer than older interpreters know.
The toy-car graph was checked to load and run in tflite-runtime 2.14 (and ai-edge-litert
2.3) with the op versions in ``VERIFIED_OP_VERSIONS``; a conversion that needs a newer
version of any op, or another op, is refused so the incompatibility shows at training
time, not on the robot.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from robovision.errors import ModelFormatError

log = logging.getLogger(__name__)

VERIFIED_OP_VERSIONS = {
    "CONV_2D": 3,
    "DEPTHWISE_CONV_2D": 3,
    "MAX_POOL_2D": 2,
    "RESIZE_NEAREST_NEIGHBOR": 3,
    "CONCATENATION": 2,
    "LOGISTIC": 2,
}
"""Highest version of each builtin op known to run in tflite-runtime 2.14 for this graph."""


def convert_int8(model: Any, representative: Iterable[np.ndarray]) -> bytes:
    """TFLite flatbuffer of a Keras ``model`` with int8 weights, activations, input and output.

    ``representative`` yields float32 (1, h, w, 3) inputs (0..1) for calibration.
    """
    import tensorflow as tf

    def feed() -> Iterator[list[np.ndarray]]:
        for tensor in representative:
            yield [np.asarray(tensor, dtype=np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = feed
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    flatbuffer: bytes = converter.convert()
    log.info("converted to int8: %d bytes", len(flatbuffer))
    return flatbuffer


def op_versions(flatbuffer: bytes) -> dict[str, int]:
    """Builtin op name -> highest version used in the model."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    names = {value: key for key, value in vars(schema.BuiltinOperator).items() if not key.startswith("_")}
    out: dict[str, int] = {}
    for code in model.operatorCodes:
        name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), f"CUSTOM:{code.customCode}")
        out[name] = max(out.get(name, 0), int(code.version))
    return out


def check_op_versions(versions: dict[str, int]) -> None:
    """``ModelFormatError`` if an op or op version is outside ``VERIFIED_OP_VERSIONS``."""
    bad = {
        name: version
        for name, version in versions.items()
        if name not in VERIFIED_OP_VERSIONS or version > VERIFIED_OP_VERSIONS[name]
    }
    if bad:
        raise ModelFormatError(
            f"the converted model uses ops {bad} beyond those verified on tflite-runtime 2.14 "
            f"{VERIFIED_OP_VERSIONS}; change the layers that produce them, then check the result loads "
            f"in tflite-runtime 2.14 before adding the version to VERIFIED_OP_VERSIONS"
        )
