"""Rate-limited logging for anomalies seen inside per-frame loops."""

from __future__ import annotations

import logging
import time


class Throttle:
    """Let one log record per key through every ``interval_s`` seconds, counting the rest.

    The next record let through for a key reports how many were held back since the
    previous one, so nothing is lost silently. Not thread-safe: use one per thread.
    """

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._last_mono: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def log(self, key: str, level: int, msg: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last_mono.get(key)
        if last is not None and now - last < self._interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return
        self._last_mono[key] = now
        held = self._held.pop(key, 0)
        if held:
            self._logger.log(level, msg + " (%d similar messages held back)", *args, held)
        else:
            self._logger.log(level, msg, *args)
