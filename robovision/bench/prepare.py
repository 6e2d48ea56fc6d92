"""Model inputs made ahead of time (for the ceiling) and preprocessing timed on its own."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from robovision.frame import PixelLayout
from robovision.model import Model
from robovision.preprocess import Preprocessor, ResizeMode


def model_preprocessor(model: Model) -> Preprocessor:
    """A new preprocessor with the model card's settings (the one ``Model.detect`` uses)."""
    card = model.card
    return Preprocessor(
        model.input_spec,
        resize=ResizeMode(card.resize),
        channel_order=card.channel_order,
        mean=card.mean,
        std=card.std,
    )


def prepared_tensors(model: Model, frames_bgr: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each BGR frame preprocessed into a new array of the model's input shape and dtype (owned here)."""
    pre = model_preprocessor(model)
    return [pre(frame, PixelLayout.BGR)[0].copy() for frame in frames_bgr]


def time_preprocess(model: Model, frames_bgr: Sequence[np.ndarray], count: int) -> list[float]:
    """Milliseconds of each of ``count`` preprocessing calls, cycling through the frames.

    One untimed call per frame size first, so buffer allocation is left out as in the service.
    """
    pre = model_preprocessor(model)
    pre(frames_bgr[0], PixelLayout.BGR)
    times_ms = []
    for i in range(count):
        frame = frames_bgr[i % len(frames_bgr)]
        t0 = time.perf_counter()
        pre(frame, PixelLayout.BGR)
        times_ms.append((time.perf_counter() - t0) * 1000.0)
    return times_ms
