"""The Raspberry Pi camera through picamera2 (libcamera).

picamera2 is imported when the source is opened, never when this module is imported,
so robovision runs where it is not installed.

Buffer ownership: ``request.make_array(stream)`` returns an array made from a copy of the
camera's buffer (picamera2 copies in ``make_buffer``), so the request is released at
once and the camera buffer goes straight back to libcamera. Should a picamera2 version
hand back a view of camera memory instead, the adapter copies it before the release
(``_owned``). Frames therefore own their images.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import logging
import time
from types import ModuleType
from typing import Any, Optional

import numpy as np

from robovision.errors import (
    CameraBusyError,
    CameraPermissionError,
    ConfigError,
    SourceError,
    SourceLostError,
    SourceNotFoundError,
)
from robovision.frame import Frame, PixelLayout
from robovision.sources.base import FrameSource

log = logging.getLogger(__name__)

# picamera2's format names describe the pixel from the most significant byte; in
# memory the order is reversed ("RGB888" is B, G, R bytes), see PixelLayout.
MAIN_FORMATS = {
    "RGB888": PixelLayout.BGR,
    "BGR888": PixelLayout.RGB,
    "XRGB8888": PixelLayout.XRGB8888,
    "XBGR8888": PixelLayout.XBGR8888,
}

NO_CAMERA_HINT = (
    "check the ribbon cable (seated at both ends, contacts the right way round) and run "
    "`rpicam-hello --list-cameras`; on Raspberry Pi OS keep camera_auto_detect=1 in "
    "/boot/firmware/config.txt; a USB camera is opened as /dev/videoN instead"
)
BUSY_HINT = (
    "only one process can use the camera: find the one holding it with "
    "`sudo fuser -v /dev/media* /dev/video*` (often another robovision, rpicam-* or a "
    "Python script using picamera2) and stop it"
)
PERMISSION_HINT = (
    "add the user to the 'video' group with `sudo usermod -aG video $USER` and log in again "
    "(a systemd service needs SupplementaryGroups=video)"
)


def _error_text(err: BaseException) -> str:
    """The messages of ``err`` and the errors it was raised from, lower-cased."""
    texts: list[str] = []
    seen: Optional[BaseException] = err
    while seen is not None and len(texts) < 8:
        texts.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    return " | ".join(texts).lower()


def _owned(array: np.ndarray) -> bool:
    """True when ``array``'s memory was allocated by numpy (a copy), not mapped camera memory."""
    root = array
    while isinstance(root.base, np.ndarray):
        root = root.base
    return root.base is None


def compact_i420(array: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """A (h * 3/2, w) I420 image from picamera2's YUV420 array of shape (h * 3/2, stride).

    picamera2 keeps the row padding: Y rows are ``stride`` bytes apart and the U and V
    rows ``stride / 2``, so every row of the array's lower third holds two chroma rows.
    Returns ``array`` itself when there is no padding, else a new compact array.
    """
    w, h = size_wh
    stride = array.shape[1]
    if stride == w:
        return array
    flat = np.ascontiguousarray(array).reshape(-1)
    cw, ch, chroma_stride = w // 2, h // 2, stride // 2
    out = np.empty((h * 3 // 2, w), np.uint8)
    out_flat = out.reshape(-1)
    out[:h] = flat[: stride * h].reshape(h, stride)[:, :w]
    for plane in range(2):
        start = stride * h + plane * chroma_stride * ch
        rows = flat[start : start + chroma_stride * ch].reshape(ch, chroma_stride)[:, :cw]
        out_flat[w * h + plane * cw * ch : w * h + (plane + 1) * cw * ch].reshape(ch, cw)[...] = rows
    return out


class PiCameraSource(FrameSource):
    """Frames from a Raspberry Pi camera (``picamera2`` or ``picamera2:N``).

    The main stream is ``size_wh`` in ``pixel_format`` ("RGB888" gives BGR frames, the
    default; "XRGB8888"/"XBGR8888" save the ISP a conversion on some Pis). With
    ``lores_size_wh`` a second, YUV420 stream of that size is configured (no larger than
    the main stream) and frames come from it: size it for the model and preprocessing
    gets cheap. The preview configuration is used, whose colour space (sYCC, full range)
    matches how robovision reads YUV420.

    ``read(timeout_s)`` returns the newest frame the camera completed that was not handed
    out yet, waiting at most ``timeout_s`` (default ``read_timeout_s``); a camera that
    stops delivering raises ``SourceLostError``. ``controls`` are passed to picamera2 as
    they are (e.g. ``{"AwbMode": 0}``); ``fps`` sets the "FrameRate" control.
    """

    def __init__(
        self,
        camera_num: int = 0,
        *,
        size_wh: tuple[int, int] = (640, 480),
        fps: Optional[float] = None,
        pixel_format: str = "RGB888",
        lores_size_wh: Optional[tuple[int, int]] = None,
        buffer_count: int = 4,
        controls: Optional[dict[str, Any]] = None,
        read_timeout_s: float = 5.0,
    ) -> None:
        if pixel_format not in MAIN_FORMATS:
            raise ConfigError(f"pixel_format must be one of {', '.join(MAIN_FORMATS)}, got {pixel_format!r}")
        self.size_wh = _even_size(size_wh, "size_wh")
        self.lores_size_wh = None if lores_size_wh is None else _even_size(lores_size_wh, "lores_size_wh")
        if self.lores_size_wh is not None and (
            self.lores_size_wh[0] > self.size_wh[0] or self.lores_size_wh[1] > self.size_wh[1]
        ):
            raise ConfigError(f"lores_size_wh {self.lores_size_wh} may not exceed size_wh {self.size_wh}")
        if buffer_count < 2:
            raise ConfigError(
                "buffer_count must be at least 2 so the camera keeps running while a frame is read"
            )
        if read_timeout_s <= 0:
            raise ConfigError("read_timeout_s must be positive")
        self.camera_num = int(camera_num)
        self.pixel_format = pixel_format
        self.buffer_count = int(buffer_count)
        self.controls = dict(controls or {})
        if fps is not None:
            if fps <= 0:
                raise ConfigError(f"fps must be positive, got {fps}")
            self.controls.setdefault("FrameRate", float(fps))
        self.read_timeout_s = float(read_timeout_s)
        super().__init__(f"picamera2:{self.camera_num}")
        self._camera: Any = None
        self._stream = "main"
        self._layout = MAIN_FORMATS[pixel_format]
        self._stream_size_wh = self.size_wh

    # -- open

    def _open(self) -> None:
        picamera2 = _import_picamera2()
        camera = self._acquire(picamera2.Picamera2)
        try:
            self._configure(camera)
            camera.start()
        except BaseException:
            _close_quietly(camera, self.name)
            raise
        self._camera = camera

    def _acquire(self, picamera2_class: Any) -> Any:
        cameras = picamera2_class.global_camera_info()
        if not cameras:
            raise SourceNotFoundError(f"libcamera finds no camera: {NO_CAMERA_HINT}")
        if self.camera_num >= len(cameras):
            models = ", ".join(f"{i}: {c.get('Model', '?')}" for i, c in enumerate(cameras))
            raise SourceNotFoundError(
                f"{self.name} asked for camera {self.camera_num} but libcamera lists "
                f"{len(cameras)} ({models}); "
                f"use one of those numbers, or {NO_CAMERA_HINT}"
            )
        try:
            return picamera2_class(self.camera_num)
        except IndexError:
            raise SourceNotFoundError(
                f"camera {self.camera_num} went away while opening: {NO_CAMERA_HINT}"
            ) from None
        except RuntimeError as err:
            raise self._acquire_error(err) from err

    def _acquire_error(self, err: RuntimeError) -> SourceError:
        text = _error_text(err)
        if "permission denied" in text:
            return CameraPermissionError(
                f"{self.name}: permission denied opening the camera; {PERMISSION_HINT}"
            )
        if "busy" in text or "in use" in text:
            return CameraBusyError(f"{self.name} is busy ({err}); {BUSY_HINT}")
        if "did not complete" in text:
            return CameraBusyError(
                f"{self.name} could not be started ({err}); most often another process holds it: {BUSY_HINT}"
            )
        return SourceError(f"{self.name} could not be opened: {err}; {NO_CAMERA_HINT}")

    def _configure(self, camera: Any) -> None:
        main = {"size": self.size_wh, "format": self.pixel_format}
        lores = None if self.lores_size_wh is None else {"size": self.lores_size_wh, "format": "YUV420"}
        try:
            config = camera.create_preview_configuration(
                main=main, lores=lores, buffer_count=self.buffer_count, controls=self.controls
            )
            camera.configure(config)
        except (RuntimeError, ValueError) as err:
            raise ConfigError(
                f"picamera2 refused main={main} lores={lores} controls={self.controls}: {err}"
            ) from err
        actual = camera.camera_configuration()
        self._stream = "main" if lores is None else "lores"
        self._layout = MAIN_FORMATS[self.pixel_format] if lores is None else PixelLayout.YUV420
        self._stream_size_wh = tuple(actual[self._stream]["size"])
        log.info(
            "%s (%s) configured: main %s %s, frames from %s %dx%d",
            self.name,
            camera.camera_properties.get("Model", "camera"),
            actual["main"]["size"],
            actual["main"]["format"],
            self._stream,
            *self._stream_size_wh,
        )

    # -- read

    def _read(self, timeout_s: Optional[float]) -> Optional[Frame]:
        timeout = self.read_timeout_s if timeout_s is None else timeout_s
        camera = self._camera
        try:
            request = camera.capture_request(wait=timeout)
        except (TimeoutError, concurrent.futures.TimeoutError):
            camera.cancel_all_and_flush()
            raise SourceLostError(
                f"no frame from {self.name} within {timeout:g} s: the camera stopped delivering; check the "
                "ribbon cable and `dmesg | tail` for camera or ISP errors, then restart"
            ) from None
        except RuntimeError as err:
            raise SourceLostError(f"{self.name} failed while capturing: {err}") from err
        t_mono, t_wall = time.monotonic(), time.time()
        try:
            image = request.make_array(self._stream)
            if not _owned(image):
                image = image.copy()
        finally:
            request.release()
        if self._layout is PixelLayout.YUV420:
            image = compact_i420(image, self._stream_size_wh)
        return self._make_frame(image, self._layout, t_mono, t_wall)

    # -- close

    def _close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            _close_quietly(camera, self.name)


def _import_picamera2() -> ModuleType:
    try:
        return importlib.import_module("picamera2")
    except ImportError as err:
        raise SourceError(
            f"picamera2 cannot be imported ({err}): on Raspberry Pi OS install it with "
            "`sudo apt install python3-picamera2` and create the virtual environment with "
            "`python3 -m venv --system-site-packages` so it is visible"
        ) from err


def _close_quietly(camera: Any, name: str) -> None:
    """Stop and close, logging (not raising) what fails: closing must not hide the first error."""
    for step in ("stop", "close"):
        try:
            getattr(camera, step)()
        except Exception as err:  # picamera2 raises RuntimeError and libcamera errors here
            log.warning("%s: camera %s failed: %s", name, step, err)


def _even_size(size_wh: tuple[int, int], name: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in size_wh)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be (width, height), got {size_wh!r}") from None
    if w <= 0 or h <= 0 or w % 2 or h % 2:
        raise ConfigError(f"{name} must be positive and even (libcamera needs even sizes), got {size_wh!r}")
    return w, h
