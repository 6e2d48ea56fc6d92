"""Play photographs or a video from memory as if a camera were delivering them."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from robovision.errors import ConfigError, SourceError, SourceLostError, SourceNotFoundError
from robovision.frame import Frame, PixelLayout
from robovision.sources.base import FrameSource
from robovision.sources.folder import list_images
from robovision.sources.image import read_image_bgr

log = logging.getLogger(__name__)

MB = 1024 * 1024


class ReplaySource(FrameSource):
    """A folder of photographs or a video file, decoded into memory at ``open()``.

    Frames are resized to ``size_wh`` when given (all frames then share one size) and
    handed out as BGR. Pacing is a camera's: frame k is ready ``k / fps`` seconds after
    the first ``read()``; ``read()`` waits for the next ready frame and, when the caller
    fell behind, skips to the newest one (``drop_late=True``, as a camera's "newest
    frame" capture does) or hands out every frame in turn (``drop_late=False``).
    ``fps=0`` hands out every frame as fast as asked. With ``loop=True`` it starts
    again after the last frame; otherwise ``read()`` returns None there.

    Each frame gets a fresh ``frame_id`` and capture times. Its image is the stored
    array itself, marked read-only, not a copy; keep it as long as you like.
    ``read(timeout_s)`` raises ``SourceLostError`` if the next frame is due later than
    ``timeout_s`` (possible only at an fps slower than 1 / timeout_s).

    Memory: all frames stay decoded; a source needing more than ``memory_budget_mb``
    is refused at open with ``ConfigError``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fps: float = 30.0,
        size_wh: Optional[tuple[int, int]] = None,
        loop: bool = False,
        drop_late: bool = True,
        memory_budget_mb: float = 512.0,
    ) -> None:
        if fps < 0 or not math.isfinite(fps):
            raise ConfigError(f"fps must be 0 (as fast as asked) or positive, got {fps}")
        if size_wh is not None and (len(size_wh) != 2 or min(int(v) for v in size_wh) <= 0):
            raise ConfigError(f"size_wh must be (width, height) in pixels, got {size_wh!r}")
        if memory_budget_mb <= 0:
            raise ConfigError(f"memory_budget_mb must be positive, got {memory_budget_mb}")
        self.path = Path(path)
        super().__init__(f"replay:{self.path.name}")
        self.fps = float(fps)
        self.size_wh = None if size_wh is None else (int(size_wh[0]), int(size_wh[1]))
        self.loop = bool(loop)
        self.drop_late = bool(drop_late)
        self.memory_budget_mb = float(memory_budget_mb)
        self.frames: tuple[np.ndarray, ...] = ()
        self._t_start: Optional[float] = None
        self._next_index = 0

    @property
    def nbytes(self) -> int:
        """Memory held by the decoded frames."""
        return sum(frame.nbytes for frame in self.frames)

    # -- open

    def _open(self) -> None:
        if not self.path.exists():
            raise SourceNotFoundError(
                f"nothing to replay at {self.path}: give a folder of images or a video file"
            )
        frames = self._decode_folder() if self.path.is_dir() else self._decode_video()
        for frame in frames:
            frame.setflags(write=False)
        self.frames = tuple(frames)
        self._t_start = None
        self._next_index = 0
        log.info(
            "replay %s: %d frames, %.1f MB, %s fps%s",
            self.path,
            len(frames),
            self.nbytes / MB,
            f"{self.fps:g}" if self.fps else "unpaced",
            ", looping" if self.loop else "",
        )

    def _budget_error(self, frames: int, frame_bytes: int) -> ConfigError:
        needed_mb = frames * frame_bytes / MB
        return ConfigError(
            f"replay of {self.path} needs about {needed_mb:.0f} MB for {frames} frames, over the "
            f"{self.memory_budget_mb:g} MB budget: pass a smaller size_wh (e.g. (640, 480)), replay fewer "
            "frames, or raise memory_budget_mb"
        )

    def _fit(self, image: np.ndarray) -> np.ndarray:
        if self.size_wh is None or (image.shape[1], image.shape[0]) == self.size_wh:
            return image
        return cv2.resize(image, self.size_wh, interpolation=cv2.INTER_AREA)

    def _decode_folder(self) -> list[np.ndarray]:
        paths = list_images(self.path)
        budget = self.memory_budget_mb * MB
        frames: list[np.ndarray] = []
        used = 0
        for path in paths:
            frame = self._fit(read_image_bgr(path))
            used += frame.nbytes
            if used > budget:
                raise self._budget_error(len(paths), used // (len(frames) + 1))
            frames.append(frame)
        return frames

    def _decode_video(self) -> list[np.ndarray]:
        capture = cv2.VideoCapture(str(self.path))
        try:
            if not capture.isOpened():
                raise SourceError(
                    f"OpenCV cannot open {self.path} as a video; check it with `ffprobe {self.path}`"
                )
            return self._read_all(capture)
        finally:
            capture.release()

    def _read_all(self, capture: cv2.VideoCapture) -> list[np.ndarray]:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        w, h = self.size_wh or (
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
        budget = self.memory_budget_mb * MB
        if count > 0 and count * w * h * 3 > budget:
            raise self._budget_error(count, w * h * 3)
        frames: list[np.ndarray] = []
        used = 0
        while True:
            ok, image = capture.read()
            if not ok or image is None:
                break
            frame = self._fit(image)
            used += frame.nbytes
            if used > budget:
                raise self._budget_error(max(count, len(frames) + 1), frame.nbytes)
            frames.append(frame)
        if not frames:
            raise SourceError(
                f"no frame could be decoded from {self.path}; check it with `ffprobe {self.path}`"
            )
        return frames

    # -- read

    def _read(self, timeout_s: Optional[float]) -> Optional[Frame]:
        index = self._next_index
        if self.fps > 0:
            now = time.monotonic()
            if self._t_start is None:
                self._t_start = now
            index = self._wait_for_frame(index, now, timeout_s)
        if index >= len(self.frames) and not self.loop:
            return None
        self._next_index = index + 1
        return self._make_frame(self.frames[index % len(self.frames)], PixelLayout.BGR)

    def _wait_for_frame(self, index: int, now: float, timeout_s: Optional[float]) -> int:
        """Sleep until frame ``index`` is due; return the index to hand out (later if dropping)."""
        assert self._t_start is not None  # set by _read before the first wait
        ready = int((now - self._t_start) * self.fps)  # the newest frame the "camera" has completed
        if ready >= index:
            return ready if self.drop_late else index
        due = self._t_start + index / self.fps
        if timeout_s is not None and due - now > timeout_s:
            time.sleep(timeout_s)
            raise SourceLostError(
                f"{self.name}: next frame due in {due - now:.2f} s, after the {timeout_s:g} s timeout; "
                "raise the timeout or the replay fps"
            )
        time.sleep(max(0.0, due - time.monotonic()))
        return index

    def _close(self) -> None:
        self.frames = ()
