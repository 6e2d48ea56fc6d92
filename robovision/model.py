"""A model ready to run: the TFLite file, its card, an interpreter, a preprocessor and a decoder.

``Model.load`` reads the card beside the model (see ``robovision.model_card``), opens the
interpreter, picks the decoder (from the card, else guessed from the outputs) and checks
them against each other, so a mismatch fails at load time. ``Model.detect`` then runs
preprocess, inference and decode on one frame and times each stage.

A ``Model`` may be shared between threads: each thread gets its own preprocessor (whose
buffer is reused between that thread's calls), and inference is serialized by the
interpreter's lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np

from robovision.decoders import load_decoder
from robovision.decoders.base import DecodeParams
from robovision.detection import Detection, FrameResult
from robovision.errors import ConfigError, ModelFormatError
from robovision.frame import Frame, PixelLayout
from robovision.interpreter import Interpreter, open_interpreter
from robovision.model_card import ModelCard
from robovision.model_file import ModelFile, check_model_path, read_model_file
from robovision.preprocess import Preprocessor, ResizeMode
from robovision.tensor_spec import TensorSpec
from robovision.transform import Transform

log = logging.getLogger(__name__)

__all__ = ["Model", "ModelCard", "guess_decoder"]

DecodeCallable = Callable[
    [Sequence[np.ndarray], Sequence[TensorSpec], Transform, DecodeParams], list[Detection]
]
POSTPROCESS_OP = "TFLite_Detection_PostProcess"


class Model:
    """A loaded model. Build it with ``Model.load``."""

    def __init__(
        self,
        *,
        path: Path,
        card: ModelCard,
        interpreter: Interpreter,
        model_file: ModelFile,
        decoder: str,
        decode: DecodeCallable,
        params: DecodeParams,
    ) -> None:
        self.path = path
        self.card = card
        self.interpreter = interpreter
        self.model_file = model_file
        self.decoder = decoder
        self.params = params
        self.name = card.name or path.stem
        self._decode = decode
        self._local = threading.local()
        self.input_spec = _image_input(interpreter, path)

    def __repr__(self) -> str:
        return f"Model({self.name!r}, decoder={self.decoder}, backend={self.interpreter.backend_name})"

    @classmethod
    def load(
        cls,
        path: str | Path,
        backend: str = "auto",
        num_threads: int | None = None,
        xnnpack: bool = True,
        **card_overrides: Any,
    ) -> Model:
        """Load the model at ``path`` with its card; ``card_overrides`` replace card keys.

        ``backend``, ``num_threads`` and ``xnnpack`` go to ``open_interpreter``.

        Raises ``ModelNotFoundError``, ``ModelFormatError``, ``UnsupportedOpError``,
        ``ConfigError`` (card), ``RuntimeMissingError`` or ``RuntimeIncompatibleError``.
        """
        model_path = check_model_path(path)
        model_file = read_model_file(model_path)
        card = ModelCard.for_model(model_path).with_overrides(**card_overrides)
        interpreter = open_interpreter(model_path, backend=backend, num_threads=num_threads, xnnpack=xnnpack)

        decoder = card.decoder or guess_decoder(model_file, interpreter.outputs)
        try:
            module = load_decoder(decoder)
        except ConfigError as exc:
            raise ConfigError(f"{_where(card)}: {exc}") from exc
        labels = card.read_labels(model_file)
        card.check_class_filter(labels)
        params = DecodeParams(
            labels=labels,
            score_threshold=card.score_threshold,
            iou_threshold=card.iou_threshold,
            max_detections=card.max_detections,
            class_filter=frozenset(card.class_filter) if card.class_filter is not None else None,
            options=dict(card.decoder_options),
        )
        prepare = getattr(module, "prepare", None)
        if prepare is not None:
            params = prepare(interpreter.outputs, params, model_file)

        model = cls(
            path=model_path,
            card=card,
            interpreter=interpreter,
            model_file=model_file,
            decoder=decoder,
            decode=module.decode,
            params=params,
        )
        model._preprocessor()  # a bad input or card setting fails here, not on the first frame
        log.info(
            "model %s ready: decoder %s, %d labels, resize %s, channel order %s, score >= %.2f",
            model.name,
            decoder,
            len(labels),
            card.resize,
            card.channel_order,
            card.score_threshold,
        )
        return model

    def detect(self, frame: Frame) -> FrameResult:
        """Run the model on ``frame`` (any layout); see ``detect_image``."""
        return self.detect_image(frame.image, frame.layout)

    def detect_image(self, image: np.ndarray, layout: PixelLayout) -> FrameResult:
        """Detections in ``image`` (stored in ``layout``) with the time of each stage in ms.

        ``image`` is only read. ``inference_ms`` includes waiting for another thread's
        inference on the same model to finish.
        """
        t_start = time.perf_counter()
        tensor, transform = self._preprocessor()(image, layout)
        t_preprocessed = time.perf_counter()
        outputs = self.interpreter.run(tensor.reshape(self.input_spec.shape))
        t_inferred = time.perf_counter()
        detections = self._decode(outputs, self.interpreter.outputs, transform, self.params)
        t_decoded = time.perf_counter()
        return FrameResult(
            detections=tuple(detections),
            preprocess_ms=(t_preprocessed - t_start) * 1000.0,
            inference_ms=(t_inferred - t_preprocessed) * 1000.0,
            decode_ms=(t_decoded - t_inferred) * 1000.0,
        )

    def _preprocessor(self) -> Preprocessor:
        pre: Preprocessor | None = getattr(self._local, "preprocessor", None)
        if pre is None:
            pre = _make_preprocessor(self.input_spec, self.card)
            self._local.preprocessor = pre
        return pre


def guess_decoder(model_file: ModelFile, outputs: Sequence[TensorSpec]) -> str:
    """The decoder for a model without ``decoder`` in its card, from its graph and outputs.

    A ``TFLite_Detection_PostProcess`` op means ``ssd``; one (1, N) output means
    ``classification``. Anything else needs the card to say.
    """
    if model_file.has_custom_op(POSTPROCESS_OP):
        return "ssd"
    if len(outputs) == 1 and len(outputs[0].shape) == 2 and outputs[0].shape[0] == 1:
        return "classification"
    shapes = ", ".join(str(spec.shape) for spec in outputs)
    raise ConfigError(
        f"cannot tell which decoder reads {model_file.path} (outputs {shapes}). Write a model card "
        f"{model_file.path.with_suffix('.toml')} with decoder = \"ssd\", \"classification\", \"yolo\" "
        f"or \"toycar\"."
    )


def _image_input(interpreter: Interpreter, path: Path) -> TensorSpec:
    if len(interpreter.inputs) != 1:
        raise ModelFormatError(
            f"{path} has {len(interpreter.inputs)} inputs; robovision runs models with one image input"
        )
    spec = interpreter.inputs[0]
    if len(spec.shape) != 4 or spec.shape[0] != 1 or spec.shape[3] != 3:
        raise ModelFormatError(
            f"{path} takes input of shape {spec.shape}; robovision feeds one colour image, shape "
            f"(1, height, width, 3). Re-export the model with an NHWC RGB input."
        )
    return spec


def _make_preprocessor(input_spec: TensorSpec, card: ModelCard) -> Preprocessor:
    try:
        return Preprocessor(
            input_spec,
            resize=ResizeMode(card.resize),
            channel_order=card.channel_order,
            mean=card.mean,
            std=card.std,
        )
    except ConfigError as exc:
        raise ConfigError(f"{_where(card)}: {exc}") from exc


def _where(card: ModelCard) -> str:
    return f"model card {card.path}" if card.path else "model settings"
