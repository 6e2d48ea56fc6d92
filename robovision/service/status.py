"""Running statistics for the status message: frame rate and latency percentiles per stage."""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable
from dataclasses import dataclass

STAGES = ("capture", "preprocess", "inference", "decode", "publish")
"""Stages timed for every frame, in pipeline order."""


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation between ranks; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class Window:
    """The last ``size`` samples of one quantity (e.g. milliseconds)."""

    def __init__(self, size: int) -> None:
        self._values: collections.deque[float] = collections.deque(maxlen=size)

    def add(self, value: float) -> None:
        self._values.append(value)

    def __len__(self) -> int:
        return len(self._values)

    def percentiles(self) -> dict[str, float]:
        """``{"p50": ..., "p95": ...}``; empty when there are no samples (JSON has no NaN)."""
        if not self._values:
            return {}
        return {"p50": percentile(self._values, 50.0), "p95": percentile(self._values, 95.0)}


class RateMeter:
    """Events per second over the timestamps of the last ``size`` events (monotonic seconds)."""

    def __init__(self, size: int) -> None:
        self._stamps: collections.deque[float] = collections.deque(maxlen=size)

    def tick(self, t_mono: float) -> None:
        self._stamps.append(t_mono)

    def rate(self, now_mono: float, stale_after_s: float = 2.0) -> float:
        """Frames per second; 0 when fewer than two events or none in the last ``stale_after_s``."""
        if len(self._stamps) < 2 or now_mono - self._stamps[-1] > stale_after_s:
            return 0.0
        span = self._stamps[-1] - self._stamps[0]
        return (len(self._stamps) - 1) / span if span > 0 else 0.0


@dataclass(frozen=True)
class FrameTiming:
    """How long each stage took for one frame, and its capture-to-publish latency (all ms)."""

    capture_ms: float
    preprocess_ms: float
    inference_ms: float
    decode_ms: float
    publish_ms: float
    total_ms: float

    def stage_ms(self, stage: str) -> float:
        return float(getattr(self, f"{stage}_ms"))


class FrameStats:
    """Per-frame figures gathered by the inference loop (one thread; not locked)."""

    def __init__(self, window: int = 300) -> None:
        self.frames = 0
        self.rate = RateMeter(window)
        self.total = Window(window)
        self.stages = {stage: Window(window) for stage in STAGES}

    def add(self, timing: FrameTiming, t_mono: float) -> None:
        self.frames += 1
        self.rate.tick(t_mono)
        self.total.add(timing.total_ms)
        for stage, window in self.stages.items():
            window.add(timing.stage_ms(stage))

    def stage_percentiles(self) -> dict[str, dict[str, float]]:
        return {stage: window.percentiles() for stage, window in self.stages.items() if len(window)}
