"""State and test hooks of the picamera2 stand-in (not part of picamera2's API).

Tests choose the attached cameras, the photographs the cameras "see", the frame
interval, and can make a camera stop delivering frames (a loose ribbon cable).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

IMAGES_DIR = Path(__file__).resolve().parents[3] / "data" / "toycars" / "images"

SENSORS = {
    "imx708": (4608, 2592),
    "imx219": (3280, 2464),
    "ov5647": (2592, 1944),
}


@dataclass(frozen=True)
class FakeCamera:
    model: str
    id: str
    sensor_resolution: tuple[int, int]
    location: int = 2
    rotation: int = 180


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cameras: list[FakeCamera] = []
        self.images: list[Path] = []
        self.frame_interval_s = 1 / 30
        self.acquired: set[int] = set()
        self.stalled: set[int] = set()
        self.frames_cache: dict[tuple[int, tuple[int, int]], np.ndarray] = {}


state = _State()


def reset(
    cameras: Sequence[str] = ("imx708",),
    images: Optional[Sequence[Path]] = None,
    frame_interval_s: float = 1 / 30,
) -> None:
    """Attach ``cameras`` (sensor model names; empty for none) seeing ``images`` in turn."""
    with state.lock:
        state.cameras = [
            FakeCamera(
                model, f"/base/axi/pcie@120000/rp1/i2c@{0x88000 + 0x4000 * i:x}/{model}@1a", SENSORS[model]
            )
            for i, model in enumerate(cameras)
        ]
        state.images = list(images) if images is not None else sorted(IMAGES_DIR.glob("*.jpg"))
        state.frame_interval_s = frame_interval_s
        state.acquired.clear()
        state.stalled.clear()
        state.frames_cache.clear()


def stall(camera_num: int = 0) -> None:
    """The camera stops completing frames (as with a loose cable); captures then time out."""
    with state.lock:
        state.stalled.add(camera_num)


def resume(camera_num: int = 0) -> None:
    with state.lock:
        state.stalled.discard(camera_num)


def is_stalled(camera_num: int) -> bool:
    with state.lock:
        return camera_num in state.stalled


def acquire(camera_num: int) -> None:
    with state.lock:
        if camera_num in state.acquired:
            raise RuntimeError("Failed to acquire camera: Device or resource busy")
        state.acquired.add(camera_num)


def release(camera_num: int) -> None:
    with state.lock:
        state.acquired.discard(camera_num)


def frame_bgr(index: int, size_wh: tuple[int, int]) -> np.ndarray:
    """What the camera sees in frame ``index``: photograph ``index % n`` at ``size_wh``, BGR."""
    with state.lock:
        images = list(state.images)
    if not images:
        raise RuntimeError("the stand-in has no photographs to show; pass images= to reset()")
    key = (index % len(images), (int(size_wh[0]), int(size_wh[1])))
    cached = state.frames_cache.get(key)
    if cached is None:
        photo = cv2.imread(str(images[key[0]]))
        if photo is None:
            raise RuntimeError(f"cannot read {images[key[0]]}")
        cached = cv2.resize(photo, key[1], interpolation=cv2.INTER_AREA)
        cached.setflags(write=False)
        state.frames_cache[key] = cached
    return cached


def now_ns() -> int:
    return time.monotonic_ns()


reset()
