"""The benchmark's frames: a replay of photographs decoded once into memory."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from robovision.errors import ConfigError
from robovision.sources.replay import ReplaySource

log = logging.getLogger(__name__)

FRAME_SIZE_WH = (640, 480)
"""The size every benchmark frame is replayed at: the service's default camera size."""


def open_replay(folder: Path, size_wh: tuple[int, int] = FRAME_SIZE_WH) -> ReplaySource:
    """An open replay of ``folder`` at ``size_wh``, unpaced (``fps=0``) and looping.

    The decoded frames (``.frames``, (h, w, 3) uint8 BGR, read-only) are owned by the
    source; close it to free them.
    """
    source = ReplaySource(folder, fps=0.0, size_wh=size_wh, loop=True)
    source.open()
    return source


def write_frames(frames: tuple[np.ndarray, ...], path: Path) -> Path:
    """Save ``frames`` as one (n, h, w, 3) uint8 ``.npy`` array for another process to load."""
    if not frames:
        raise ConfigError("no frames to write")
    np.save(path, np.stack(frames), allow_pickle=False)
    return path
