"""CompletedRequest: one finished camera frame, all its streams, held until released."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from . import _standin, formats


class CompletedRequest:
    """Like picamera2's: ``make_buffer`` copies a stream's buffer, ``make_array`` shapes that
    copy (padding removed for RGB formats, kept for YUV420), ``release`` hands the buffers
    back. A request is "used" once; ``acquire`` adds uses, each needing a ``release``.
    """

    def __init__(self, picam2: Any, frame_index: int, timestamp_ns: int) -> None:
        self.picam2 = picam2
        self.frame_index = frame_index
        self.ref_count = 1
        self.lock = threading.Lock()
        self.config = dict(picam2.camera_config)
        self.stream_map = {name: name for name in ("main", "lores") if self.config.get(name) is not None}
        self._timestamp_ns = timestamp_ns
        self._released = False

    def acquire(self) -> None:
        with self.lock:
            if self.ref_count == 0:
                raise RuntimeError("CompletedRequest: acquiring lock with ref_count 0")
            self.ref_count += 1

    def release(self) -> None:
        with self.lock:
            self.ref_count -= 1
            if self.ref_count < 0:
                raise RuntimeError("CompletedRequest: lock now has negative ref_count")
            if self.ref_count == 0:
                self._released = True
                self.picam2._request_released(self)

    def make_buffer(self, name: str) -> np.ndarray:
        if self.stream_map.get(name) is None:
            raise RuntimeError(f"Stream {name!r} is not defined")
        if self._released:
            raise RuntimeError("CompletedRequest: buffer used after release()")
        stream = self.config[name]
        full_range = getattr(self.config.get("colour_space"), "full_range", True)
        picture = _standin.frame_bgr(self.frame_index, stream["size"])
        return formats.render_buffer(picture, stream["format"], full_range)

    def make_array(self, name: str) -> np.ndarray:
        return make_array(self.make_buffer(name), self.config[name])

    def get_metadata(self) -> dict[str, Any]:
        interval_us = int(self.picam2.frame_interval_s * 1e6)
        return {
            "SensorTimestamp": self._timestamp_ns,
            "FrameDuration": interval_us,
            "ExposureTime": min(interval_us, 20000),
            "AnalogueGain": 2.0,
            "DigitalGain": 1.0,
            "ColourGains": (1.9, 1.6),
            "ColourTemperature": 4800,
            "Lux": 350.0,
            "SensorBlackLevels": (4096, 4096, 4096, 4096),
        }


def make_array(buffer: np.ndarray, config: dict[str, Any]) -> np.ndarray:
    """Shape a flat stream buffer as picamera2's helpers do."""
    fmt = config["format"]
    w, h = config["size"]
    stride = config["stride"]
    if fmt in ("RGB888", "BGR888", "XRGB8888", "XBGR8888"):
        channels = formats.BYTES_PER_PIXEL[fmt]
        array = buffer
        if stride != w * channels:
            array = np.asarray(buffer.reshape(h, stride)[:, : w * channels], order="C")
        return array.reshape(h, w, channels)
    if fmt == "YUV420":
        return buffer.reshape(h * 3 // 2, stride)
    raise RuntimeError("Format " + fmt + " not supported")
