"""Video files, USB/V4L2 cameras and network streams, read through OpenCV."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Optional, Union
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from robovision.errors import ConfigError, SourceError, SourceLostError, SourceNotFoundError
from robovision.frame import Frame, PixelLayout
from robovision.sources import v4l2
from robovision.sources.base import FrameSource

log = logging.getLogger(__name__)

URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
KINDS = ("video", "v4l2", "url")


def redact_url(url: str) -> str:
    """``url`` without its password, fit for logs and frame names."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class _LatestFrameReader:
    """Reads a live capture on its own thread and keeps only the newest frame.

    A camera or stream read slowly would otherwise hand out frames that waited in the
    driver's or the network buffer; this keeps latency at one frame and lets ``take``
    wait with a timeout. Each decoded frame is a new array, never written afterwards.
    """

    def __init__(self, capture: cv2.VideoCapture, name: str) -> None:
        self._capture = capture
        self._cond = threading.Condition()
        self._latest: Optional[tuple[np.ndarray, float, float]] = None
        self._produced = 0
        self._taken = 0
        self._failure: Optional[str] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture {name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ok, image = self._capture.read()
            except cv2.error as err:
                ok, image, detail = False, None, f"OpenCV error: {err}"
            else:
                detail = "the stream ended or the device stopped delivering"
            t_mono, t_wall = time.monotonic(), time.time()
            with self._cond:
                if not ok or image is None:
                    self._failure = detail
                    self._cond.notify_all()
                    return
                self._latest = (image, t_mono, t_wall)
                self._produced += 1
                self._cond.notify_all()

    def take(self, timeout_s: float) -> Optional[tuple[np.ndarray, float, float]]:
        """The newest frame not yet taken; None if none came within ``timeout_s``.

        A frame that arrived before a failure is still handed out; after that the
        failure raises ``SourceLostError``.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._produced > self._taken or self._failure is not None, timeout_s)
            if self._produced > self._taken and self._latest is not None:
                self._taken = self._produced
                return self._latest
            if self._failure is not None:
                raise SourceLostError(self._failure)
            return None

    def stop(self, join_timeout_s: float) -> bool:
        """Ask the thread to stop; True when it has ended within ``join_timeout_s``."""
        self._stop.set()
        self._thread.join(join_timeout_s)
        return not self._thread.is_alive()


class OpenCVSource(FrameSource):
    """A video file, a V4L2 camera or a network stream opened with ``cv2.VideoCapture``.

    ``kind`` is "video" (a file; ``read()`` returns every frame in order, then None, or
    starts again with ``loop=True``), "v4l2" (``/dev/videoN``; ``size_wh``, ``fps`` and
    ``fourcc`` are requested from the driver) or "url" (rtsp://, http(s)://, ...).

    Live kinds (v4l2, url) are read on a background thread that keeps only the newest
    frame, so a slow consumer gets fresh frames, not a backlog. ``read(timeout_s)`` waits
    at most ``timeout_s`` (default ``read_timeout_s``) and raises ``SourceLostError`` when
    nothing arrives or the stream ends. For url sources OpenCV's FFmpeg backend also gets
    ``open_timeout_s`` and ``read_timeout_s`` so a dead server cannot block it forever.
    Video files are decoded in the caller's thread and ignore ``timeout_s``.
    Frames are BGR; each frame's image is a new array.
    """

    def __init__(
        self,
        target: Union[str, int, Path],
        kind: str,
        *,
        loop: bool = False,
        size_wh: Optional[tuple[int, int]] = None,
        fps: Optional[float] = None,
        fourcc: Optional[str] = None,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 5.0,
    ) -> None:
        if kind not in KINDS:
            raise ConfigError(f"OpenCV source kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if kind != "video" and loop:
            raise ConfigError("loop applies to video files only")
        if kind != "v4l2" and (size_wh is not None or fps is not None or fourcc is not None):
            raise ConfigError("size_wh, fps and fourcc apply to V4L2 cameras only")
        if fourcc is not None and len(fourcc) != 4:
            raise ConfigError(f"fourcc must be four characters such as 'MJPG' or 'YUYV', got {fourcc!r}")
        if open_timeout_s <= 0 or read_timeout_s <= 0:
            raise ConfigError("open_timeout_s and read_timeout_s must be positive")
        self.kind = kind
        self.target: Union[str, int] = int(target) if isinstance(target, int) else str(target)
        self.loop = bool(loop)
        self.size_wh = size_wh
        self.fps = fps
        self.fourcc = fourcc
        self.open_timeout_s = float(open_timeout_s)
        self.read_timeout_s = float(read_timeout_s)
        super().__init__(self._describe())
        self._capture: Optional[cv2.VideoCapture] = None
        self._reader: Optional[_LatestFrameReader] = None
        self._pending: Optional[tuple[np.ndarray, float, float]] = None
        self._frames_read = 0

    def _describe(self) -> str:
        if self.kind == "video":
            return f"video:{Path(str(self.target)).name}"
        if self.kind == "v4l2":
            return f"v4l2:{self.device_path}"
        return f"url:{redact_url(str(self.target))}"

    @property
    def device_path(self) -> str:
        """The V4L2 node (``/dev/videoN``) for a v4l2 source."""
        return v4l2.node_path(self.target) if isinstance(self.target, int) else str(self.target)

    # -- open

    def _open(self) -> None:
        opener = {"video": self._open_video, "v4l2": self._open_v4l2, "url": self._open_url}[self.kind]
        capture = opener()
        self._frames_read = 0
        self._capture = capture
        if self.kind != "video":
            try:
                self._start_reader(capture)
            except SourceError:
                self._close()
                raise

    def _open_video(self) -> cv2.VideoCapture:
        path = Path(str(self.target))
        if not path.is_file():
            raise SourceNotFoundError(f"no video file at {path}: check the path")
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"OpenCV cannot open {path} as a video; check the file with `ffprobe {path}`")
        log.info(
            "video %s: %dx%d, %.1f fps, %d frames",
            path,
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            capture.get(cv2.CAP_PROP_FPS),
            int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
        )
        return capture

    def _open_v4l2(self) -> cv2.VideoCapture:
        path = self.device_path
        card = v4l2.probe_capture_node(path)
        capture = cv2.VideoCapture(path, cv2.CAP_V4L2)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"OpenCV could not open {path} ({card}); {v4l2.busy_message(path)}")
        if self.fourcc is not None:
            capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*self.fourcc))
        if self.size_wh is not None:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, int(self.size_wh[0]))
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, int(self.size_wh[1]))
        if self.fps is not None:
            capture.set(cv2.CAP_PROP_FPS, float(self.fps))
        log.info(
            "camera %s (%s): %dx%d at %.1f fps",
            path,
            card,
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            capture.get(cv2.CAP_PROP_FPS),
        )
        return capture

    def _open_url(self) -> cv2.VideoCapture:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(self.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(self.read_timeout_s * 1000),
        ]
        capture = cv2.VideoCapture(str(self.target), cv2.CAP_FFMPEG, params)
        if not capture.isOpened():
            capture.release()
            shown = redact_url(str(self.target))
            raise SourceNotFoundError(
                f"cannot open stream {shown}: check the address, the credentials and that the camera or "
                f"server is up (try `ffprobe '{shown}'` from this machine)"
            )
        return capture

    def _start_reader(self, capture: cv2.VideoCapture) -> None:
        """Start the reader thread and wait for the first frame, so a dead source fails at open.

        On failure the error is raised as it is; the caller closes.
        """
        reader = _LatestFrameReader(capture, self.name)
        reader.start()
        self._reader = reader
        try:
            first = reader.take(self.open_timeout_s)
        except SourceLostError as err:
            raise SourceError(
                f"{self.name} opened but gave no frame ({err}); {self._no_frame_hint()}"
            ) from None
        if first is None:
            raise SourceError(
                f"{self.name} opened but gave no frame within {self.open_timeout_s:g} s; "
                f"{self._no_frame_hint()}"
            )
        self._pending = first

    def _no_frame_hint(self) -> str:
        if self.kind == "v4l2":
            return f"{v4l2.busy_message(self.device_path)}; or try fourcc='MJPG' or a smaller size_wh"
        return "check that the stream is live and its codec is supported by FFmpeg"

    # -- read

    def _read(self, timeout_s: Optional[float]) -> Optional[Frame]:
        if self._reader is not None:
            return self._read_live(self.read_timeout_s if timeout_s is None else timeout_s)
        return self._read_video()

    def _read_live(self, timeout_s: float) -> Frame:
        assert self._reader is not None  # set in _open for live kinds
        taken = self._pending
        self._pending = None
        if taken is None:
            try:
                taken = self._reader.take(timeout_s)
            except SourceLostError as err:
                raise SourceLostError(f"{self.name} stopped: {err}; {self._lost_hint()}") from None
        if taken is None:
            raise SourceLostError(f"no frame from {self.name} within {timeout_s:g} s; {self._lost_hint()}")
        image, t_mono, t_wall = taken
        self._frames_read += 1
        return self._make_frame(image, PixelLayout.BGR, t_mono, t_wall)

    def _lost_hint(self) -> str:
        if self.kind == "v4l2":
            return "check the USB cable and `dmesg | tail` for the camera being reset or unplugged"
        return "check the network and that the camera or server is still streaming"

    def _read_video(self) -> Optional[Frame]:
        assert self._capture is not None  # set in _open
        ok, image = self._capture.read()
        if not ok and self.loop and self._frames_read > 0:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._capture.read()
        if not ok or image is None:
            if self._frames_read == 0:
                raise SourceError(f"{self.name}: no frame could be decoded; check the file with `ffprobe`")
            return None
        self._frames_read += 1
        return self._make_frame(image, PixelLayout.BGR)

    # -- close

    def _stop_reader(self) -> bool:
        reader, self._reader = self._reader, None
        if reader is None:
            return True
        stopped = reader.stop(self.read_timeout_s + 1.0)
        if not stopped:
            log.warning(
                "%s: capture thread still blocked after %.1f s; the device is freed when the process exits",
                self.name,
                self.read_timeout_s + 1.0,
            )
        return stopped

    def _close(self) -> None:
        stopped = self._stop_reader()
        self._pending = None
        capture, self._capture = self._capture, None
        if capture is not None and stopped:
            capture.release()
