"""Small statistics and process-memory helpers for the benchmark."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from pathlib import Path

_STATUS_PATH = Path("/proc/self/status")
_KB_FIELD = r"^{}:\s+(\d+)\s+kB"


def percentiles(values: Sequence[float], qs: Sequence[int] = (50, 95)) -> dict[str, float]:
    """``{"p50": ..., "p95": ...}`` of ``values`` (linear interpolation); empty for no values."""
    if not values:
        return {}
    ordered = sorted(values)
    out = {}
    for q in qs:
        rank = (len(ordered) - 1) * q / 100.0
        low = math.floor(rank)
        high = min(low + 1, len(ordered) - 1)
        out[f"p{q}"] = ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
    return out


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else math.nan


def rounded(value: object, digits: int = 3) -> object:
    """``value`` with every float rounded to ``digits``, through dicts and lists; NaN becomes None."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def memory_mb(status_path: Path = _STATUS_PATH) -> dict[str, float]:
    """This process's resident memory now (``rss_mb``) and at its peak (``peak_rss_mb``), in MiB.

    Read from ``/proc/self/status`` (``VmRSS``, ``VmHWM``); Linux only.
    """
    text = status_path.read_text()
    out = {}
    for key, name in (("VmRSS", "rss_mb"), ("VmHWM", "peak_rss_mb")):
        match = re.search(_KB_FIELD.format(key), text, re.MULTILINE)
        if match is None:
            raise OSError(f"{status_path} has no {key} line")
        out[name] = int(match.group(1)) / 1024.0
    return out
