"""The ceiling: the interpreter's own speed, ``invoke()`` alone on prepared input tensors."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from robovision.interpreter import Interpreter

WARMUP_INVOCATIONS = 3


def time_invocations(
    interpreter: Interpreter,
    tensors: Sequence[np.ndarray],
    count: int,
    budget_s: float,
    warmup: int = WARMUP_INVOCATIONS,
) -> list[float]:
    """Milliseconds of each ``invoke()``, cycling through ``tensors`` (each set untimed before its call).

    ``warmup`` untimed calls come first (a backend may pack weights or start threads on its
    first calls). Stops after ``count`` timed calls or once ``budget_s`` seconds of
    invocation have been timed, whichever comes first (at least one call).
    """
    for i in range(warmup):
        interpreter.set_input(tensors[i % len(tensors)])
        interpreter.invoke()
    times_ms: list[float] = []
    spent_s = 0.0
    for i in range(count):
        interpreter.set_input(tensors[i % len(tensors)])
        t0 = time.perf_counter()
        interpreter.invoke()
        elapsed = time.perf_counter() - t0
        times_ms.append(elapsed * 1000.0)
        spent_s += elapsed
        if spent_s >= budget_s:
            break
    return times_ms


def typical_fps(times_ms: Sequence[float]) -> float:
    """Invocations per second of a typical call: 1000 / the median of ``times_ms``."""
    typical_ms = float(np.median(times_ms))
    return 1000.0 / typical_ms if typical_ms > 0 else 0.0


def rate_fps(times_ms: Sequence[float]) -> float:
    """Invocations per second over the summed time of ``times_ms``."""
    total_ms = float(np.sum(times_ms))
    return len(times_ms) * 1000.0 / total_ms if total_ms > 0 else 0.0
