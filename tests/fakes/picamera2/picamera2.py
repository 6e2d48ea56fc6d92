"""Picamera2: the camera object, mirroring picamera2's public API for robovision's tests.

Behaviour copied from picamera2 (checked against its source):

- ``Picamera2(camera_num)`` indexes ``global_camera_info()``, so with no camera (or a
  number past the last) it raises ``IndexError: list index out of range``.
- A camera another ``Picamera2`` holds fails to open: libcamera's
  ``RuntimeError("Failed to acquire camera: Device or resource busy")`` is logged and
  replaced by ``RuntimeError("Camera __init__ sequence did not complete.")``.
- ``create_*_configuration`` fill in defaults (preview: XBGR8888 640x480, 4 buffers;
  video: XBGR8888 1280x720, 6 buffers; still: BGR888 at sensor resolution, 1 buffer),
  reject unknown stream keys with ``ValueError`` and round sizes down to even numbers.
- ``configure`` checks formats and sizes (``RuntimeError``), then fills in ``stride`` and
  ``framesize``; lores must be YUV and no larger than main (as on a Pi 4 and earlier).
- ``capture_request(wait=seconds)`` returns the newest completed frame not yet handed
  out, or waits for the next; when no frame comes in time it raises
  ``concurrent.futures.TimeoutError`` (a job waiting on a future), and the job stays
  queued until ``cancel_all_and_flush()``.

Frames show the photographs chosen in ``_standin`` in turn, at the stream's size and
format. The stand-in renders only RGB888, BGR888, XRGB8888, XBGR8888 and YUV420.
"""

from __future__ import annotations

import concurrent.futures
import enum
import logging
import math
import time
from typing import Any, Optional

from . import _standin, formats
from .request import CompletedRequest, make_array

_log = logging.getLogger(__name__)


class Preview(enum.Enum):
    NULL = 0
    DRM = 1
    QT = 2
    QTGL = 3


class ColorSpace:
    """Stands in for libcamera.ColorSpace: only whether YCbCr is full or limited range matters."""

    def __init__(self, name: str, full_range: bool) -> None:
        self.name = name
        self.full_range = full_range

    def __repr__(self) -> str:
        return f"<libcamera.ColorSpace '{self.name}'>"

    @staticmethod
    def Sycc() -> ColorSpace:  # noqa: N802 - libcamera's spelling
        return ColorSpace("sYCC", True)

    @staticmethod
    def Smpte170m() -> ColorSpace:  # noqa: N802
        return ColorSpace("SMPTE170M", False)

    @staticmethod
    def Rec709() -> ColorSpace:  # noqa: N802
        return ColorSpace("Rec709", False)


class Transform:
    def __init__(self, hflip: int = 0, vflip: int = 0) -> None:
        self.hflip, self.vflip = hflip, vflip


class Picamera2:
    """A camera that shows photographs. See the module docstring for what is mirrored."""

    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:
        with _standin.state.lock:
            cameras = [
                {
                    "Model": cam.model,
                    "Location": cam.location,
                    "Rotation": cam.rotation,
                    "Id": cam.id,
                    "Num": i,
                }
                for i, cam in enumerate(_standin.state.cameras)
            ]
        return sorted(cameras, key=lambda cam: ("/usb" not in cam["Id"], cam["Id"]), reverse=True)

    def __init__(
        self, camera_num: int = 0, verbose_console: Any = None, tuning: Any = None, allocator: Any = None
    ):
        self.is_open = False
        self.started = False
        self.camera_config: Optional[dict[str, Any]] = None
        self.controls: dict[str, Any] = {}
        camera_num = self.global_camera_info()[camera_num]["Num"]
        self.camera_idx = camera_num
        try:
            _standin.acquire(camera_num)
        except Exception:
            _log.error("Camera __init__ sequence did not complete.")
            raise RuntimeError("Camera __init__ sequence did not complete.")  # noqa: B904 - as picamera2 does
        self._camera = _standin.state.cameras[camera_num]
        self.sensor_resolution = self._camera.sensor_resolution
        self.camera_properties = {
            "Model": self._camera.model,
            "Location": self._camera.location,
            "Rotation": self._camera.rotation,
            "PixelArraySize": self._camera.sensor_resolution,
        }
        self.is_open = True
        self._t_start = 0.0
        self._last_index = -1
        self._outstanding = 0
        self._pending_jobs = 0
        _log.info("Camera now open.")

    def __enter__(self) -> Picamera2:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- configuration

    @staticmethod
    def _stream(defaults: dict[str, Any], updates: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        if updates is None:
            return None
        valid = ("format", "size", "stride", "preserve_ar")
        for key, value in updates.items():
            if key not in valid:
                raise ValueError(f"Bad key {key!r}: valid stream configuration keys are {valid}")
            defaults[key] = value
        w, h = defaults["size"]
        defaults["size"] = (w - w % 2, h - h % 2)
        return defaults

    def _config(
        self,
        *,
        use_case: str,
        main_defaults: dict[str, Any],
        main: Optional[dict[str, Any]],
        lores: Optional[dict[str, Any]],
        buffer_count: int,
        controls: dict[str, Any],
        colour_space: Any,
        display: Optional[str],
        encode: Optional[str],
    ) -> dict[str, Any]:
        if not self.is_open:
            raise RuntimeError("Camera not opened")
        main_cfg = self._stream(main_defaults, main if main is not None else {})
        assert main_cfg is not None
        lores_cfg = self._stream({"format": "YUV420", "size": main_cfg["size"], "preserve_ar": False}, lores)
        return {
            "use_case": use_case,
            "transform": Transform(),
            "colour_space": colour_space,
            "buffer_count": buffer_count,
            "queue": True,
            "main": main_cfg,
            "lores": lores_cfg,
            "raw": None,
            "controls": dict(controls),
            "sensor": {},
            "display": display,
            "encode": encode,
        }

    def create_preview_configuration(  # noqa: PLR0917 - picamera2's own signature
        self,
        main: Optional[dict[str, Any]] = None,
        lores: Optional[dict[str, Any]] = None,
        raw: Any = None,
        transform: Any = None,
        colour_space: Any = None,
        buffer_count: int = 4,
        controls: Optional[dict[str, Any]] = None,
        display: str = "main",
        encode: str = "main",
        **_: Any,
    ) -> dict[str, Any]:
        defaults = {"format": "XBGR8888", "size": (640, 480), "preserve_ar": True}
        return self._config(
            use_case="preview",
            main_defaults=defaults,
            main=main,
            lores=lores,
            buffer_count=buffer_count,
            controls=controls or {},
            colour_space=colour_space or ColorSpace.Sycc(),
            display=display,
            encode=encode,
        )

    def create_video_configuration(  # noqa: PLR0917 - picamera2's own signature
        self,
        main: Optional[dict[str, Any]] = None,
        lores: Optional[dict[str, Any]] = None,
        raw: Any = None,
        transform: Any = None,
        colour_space: Any = None,
        buffer_count: int = 6,
        controls: Optional[dict[str, Any]] = None,
        display: str = "main",
        encode: str = "main",
        **_: Any,
    ) -> dict[str, Any]:
        defaults = {"format": "XBGR8888", "size": (1280, 720), "preserve_ar": True}
        size = (main or {}).get("size", defaults["size"])
        if colour_space is None:
            small = size[0] < 1280 or size[1] < 720
            colour_space = ColorSpace.Smpte170m() if small else ColorSpace.Rec709()
        return self._config(
            use_case="video",
            main_defaults=defaults,
            main=main,
            lores=lores,
            buffer_count=buffer_count,
            controls=controls or {},
            colour_space=colour_space,
            display=display,
            encode=encode,
        )

    def create_still_configuration(  # noqa: PLR0917 - picamera2's own signature
        self,
        main: Optional[dict[str, Any]] = None,
        lores: Optional[dict[str, Any]] = None,
        raw: Any = None,
        transform: Any = None,
        colour_space: Any = None,
        buffer_count: int = 1,
        controls: Optional[dict[str, Any]] = None,
        display: Optional[str] = None,
        encode: Optional[str] = None,
        **_: Any,
    ) -> dict[str, Any]:
        defaults = {"format": "BGR888", "size": self.sensor_resolution, "preserve_ar": True}
        return self._config(
            use_case="still",
            main_defaults=defaults,
            main=main,
            lores=lores,
            buffer_count=buffer_count,
            controls=controls or {},
            colour_space=colour_space or ColorSpace.Sycc(),
            display=display,
            encode=encode,
        )

    @staticmethod
    def _check_stream(stream: Any, name: str) -> None:
        if type(stream) is not dict:
            raise RuntimeError(name + " stream should be a dictionary")
        for key in ("format", "size"):
            if key not in stream:
                raise RuntimeError(f"{key} not found in {name} stream")
        fmt = stream["format"]
        if not isinstance(fmt, str) or not (formats.is_RGB(fmt) or formats.is_YUV(fmt)):
            raise RuntimeError(f"Bad format {fmt} in stream {name}")
        size = stream["size"]
        if type(size) is not tuple or len(size) != 2:
            raise RuntimeError("size in " + name + " stream should be (width, height)")
        if size[0] % 2 or size[1] % 2:
            raise RuntimeError("width and height should be even")

    def configure(self, camera_config: Any = None) -> None:
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        if camera_config is None or isinstance(camera_config, str):
            use = camera_config or "preview"
            maker = {"preview": self.create_preview_configuration, "video": self.create_video_configuration}
            camera_config = maker.get(use, self.create_still_configuration)()
        config = dict(camera_config)
        self._check_stream(config["main"], "main")
        if config.get("lores") is not None:
            self._check_stream(config["lores"], "lores")
            (mw, mh), (lw, lh) = config["main"]["size"], config["lores"]["size"]
            if lw > mw or lh > mh:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            if not formats.is_YUV(config["lores"]["format"]):
                raise RuntimeError("lores stream must be YUV")
        for name in ("main", "lores"):
            stream = config.get(name)
            if stream is not None:
                stream = dict(stream)
                stream["stride"] = formats.stride_for(stream["format"], stream["size"][0])
                stream["framesize"] = formats.frame_size(stream["format"], stream["size"])
                config[name] = stream
        self.camera_config = config
        self.controls = dict(config.get("controls") or {})
        _log.info("Configuration successful!")

    def camera_configuration(self) -> Optional[dict[str, Any]]:
        return self.camera_config

    def stream_configuration(self, name: str = "main") -> dict[str, Any]:
        assert self.camera_config is not None
        return self.camera_config[name]

    def set_controls(self, controls: dict[str, Any]) -> None:
        self.controls.update(controls)

    @property
    def frame_interval_s(self) -> float:
        if "FrameRate" in self.controls:
            return 1.0 / float(self.controls["FrameRate"])
        return _standin.state.frame_interval_s

    # -- running

    def start(self, config: Any = None, show_preview: Any = False) -> None:
        if self.camera_config is None and config is None:
            config = "preview"
        if config is not None:
            self.configure(config)
        if self.started:
            return
        self._t_start = time.monotonic()
        self._last_index = -1
        self.started = True
        _log.info("Camera started")

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        _log.info("Camera stopped")

    def close(self) -> None:
        if not self.is_open:
            return
        self.stop()
        _standin.release(self.camera_idx)
        self.is_open = False
        self.camera_config = None
        _log.info("Camera closed successfully.")

    def cancel_all_and_flush(self) -> None:
        self._pending_jobs = 0

    def _next_frame(self, timeout_s: Optional[float]) -> tuple[int, int]:
        """Index and timestamp of the newest completed frame not yet handed out; wait if none."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            now = time.monotonic()
            if self.started and not _standin.is_stalled(self.camera_idx):
                interval = self.frame_interval_s
                newest = (
                    math.floor((now - self._t_start) / interval) - 1
                )  # frame k completes at (k + 1) * interval
                if newest > self._last_index:
                    self._last_index = newest
                    return newest, int((self._t_start + (newest + 1) * interval) * 1e9)
                wake = self._t_start + (self._last_index + 2) * interval
            else:
                wake = now + 0.01
            if deadline is not None:
                if now >= deadline:
                    self._pending_jobs += 1
                    raise concurrent.futures.TimeoutError()
                wake = min(wake, deadline)
            time.sleep(max(0.0, wake - now))

    def capture_request(
        self, wait: Any = None, signal_function: Any = None, flush: Any = None
    ) -> CompletedRequest:
        if wait is False or signal_function is not None:
            raise NotImplementedError("the stand-in only captures synchronously (wait=None, True or seconds)")
        index, timestamp_ns = self._next_frame(None if wait in (None, True) else float(wait))
        self._outstanding += 1
        return CompletedRequest(self, index, timestamp_ns)

    def _request_released(self, request: CompletedRequest) -> None:
        self._outstanding -= 1

    def capture_array(self, name: str = "main", wait: Any = None, signal_function: Any = None) -> Any:
        request = self.capture_request(wait=wait, signal_function=signal_function)
        try:
            return request.make_array(name)
        finally:
            request.release()

    def capture_metadata(self, wait: Any = None, signal_function: Any = None) -> dict[str, Any]:
        request = self.capture_request(wait=wait, signal_function=signal_function)
        try:
            return request.get_metadata()
        finally:
            request.release()

    @property
    def outstanding_requests(self) -> int:
        """Stand-in only: requests handed out and not yet released."""
        return self._outstanding


__all__ = ["ColorSpace", "CompletedRequest", "Picamera2", "Preview", "Transform", "make_array"]
