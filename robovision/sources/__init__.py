"""Frame sources: cameras, streams and files behind one interface.

``open_source(spec, **options)`` picks the source from ``spec``:

==============================  ==========================================  ===========================
spec                            source                                      options
==============================  ==========================================  ===========================
``picamera2``, ``picamera2:N``  Raspberry Pi camera N (libcamera)           size_wh, fps, pixel_format,
                                                                            lores_size_wh, buffer_count,
                                                                            controls, read_timeout_s
``/dev/videoN``, ``N`` (int)    USB / V4L2 camera through OpenCV            size_wh, fps, fourcc,
                                                                            open_timeout_s, read_timeout_s
``rtsp://``, ``http(s)://`` ..  network stream through OpenCV (FFmpeg)      open_timeout_s, read_timeout_s
``replay:PATH``                 a folder or video played from memory        fps, size_wh, loop, drop_late,
                                at a camera's pace                          memory_budget_mb
a folder                        its images in name order                    loop
an image file                   that image (EXIF orientation applied)       loop
another file                    a video file through OpenCV                 loop
==============================  ==========================================  ===========================

A prefix ``file:`` forces a path to be read as a file or folder. The returned source is
not open yet: use ``with open_source(spec) as source:``.

The common options ``fps``, ``size_wh`` and ``loop`` may be given for any source (a
service config sets them once for whatever source it names); a source they do not
apply to ignores them (a camera never ends, so it has nothing to loop; a folder's
images keep their size). Options given as None count as not given. Any other option
the chosen source does not take is refused with ``ConfigError``.
"""

from __future__ import annotations

import inspect
import logging
import re
from pathlib import Path
from typing import Any, Optional, Union

from robovision.errors import ConfigError, SourceNotFoundError
from robovision.sources.base import FrameSource
from robovision.sources.folder import FolderSource
from robovision.sources.image import ImageSource, is_image_path
from robovision.sources.opencv import URL_SCHEMES, OpenCVSource
from robovision.sources.picamera import PiCameraSource
from robovision.sources.replay import ReplaySource
from robovision.sources.v4l2 import VIDEO_NODE, not_found_message

__all__ = [
    "FolderSource",
    "FrameSource",
    "ImageSource",
    "OpenCVSource",
    "PiCameraSource",
    "ReplaySource",
    "open_source",
]

log = logging.getLogger(__name__)

COMMON_OPTIONS = ("fps", "size_wh", "loop")
# What OpenCVSource takes for each kind of target.
_OPENCV_OPTIONS = {
    "video": ("loop", "open_timeout_s", "read_timeout_s"),  # timeouts unused: a file does not hang
    "v4l2": ("size_wh", "fps", "fourcc", "open_timeout_s", "read_timeout_s"),
    "url": ("open_timeout_s", "read_timeout_s"),
}

_PICAMERA = re.compile(r"^picamera2(?::(\d+))?$")
_URL = re.compile(rf"^({'|'.join(URL_SCHEMES)})://", re.IGNORECASE)


def open_source(spec: Union[str, int, Path], **options: Any) -> FrameSource:
    """The source for ``spec`` (see the module docstring), configured but not yet opened.

    Raises ``SourceNotFoundError`` for a path or camera node that does not exist and
    ``ConfigError`` for an option the chosen source does not take.
    """
    if isinstance(spec, bool):
        raise ConfigError(f"not a source: {spec!r}")
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        return _build(
            OpenCVSource, f"/dev/video{int(spec)}", "v4l2", options=options, takes=_OPENCV_OPTIONS["v4l2"]
        )
    text = str(spec).strip()
    if not text:
        raise ConfigError("empty source; give a camera ('picamera2', '/dev/video0'), a URL or a path")
    match = _PICAMERA.match(text)
    if match:
        return _build(PiCameraSource, int(match.group(1) or 0), options=options)
    if text.startswith("replay:"):
        return _build(ReplaySource, text[len("replay:") :], options=options)
    if _URL.match(text):
        return _build(OpenCVSource, text, "url", options=options, takes=_OPENCV_OPTIONS["url"])
    if VIDEO_NODE.match(text):
        if not Path(text).exists():
            raise SourceNotFoundError(not_found_message(text))
        return _build(OpenCVSource, text, "v4l2", options=options, takes=_OPENCV_OPTIONS["v4l2"])
    return _file_source(Path(text[len("file:") :] if text.startswith("file:") else text), options)


def _file_source(path: Path, options: dict[str, Any]) -> FrameSource:
    if not path.exists():
        raise SourceNotFoundError(
            f"no such file or folder: {path}; a camera is 'picamera2' or /dev/videoN, a stream a URL"
        )
    if path.is_dir():
        return _build(FolderSource, path, options=options)
    if is_image_path(path):
        return _build(ImageSource, path, options=options)
    return _build(OpenCVSource, path, "video", options=options, takes=_OPENCV_OPTIONS["video"])


def _build(
    cls: type[FrameSource], *args: Any, options: dict[str, Any], takes: Optional[tuple[str, ...]] = None
) -> FrameSource:
    """``cls(*args, **options)`` with the options it ``takes`` (default: its keyword-only parameters).

    Common options that do not apply are dropped; any other unknown option is refused,
    naming the ones accepted.
    """
    if takes is None:
        takes = tuple(
            name
            for name, parameter in inspect.signature(cls.__init__).parameters.items()
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY
        )
    given = {name: value for name, value in options.items() if value is not None}
    ignored = sorted(name for name in given if name in COMMON_OPTIONS and name not in takes)
    if ignored:
        log.debug("%s ignores %s (not applicable to it)", cls.__name__, ", ".join(ignored))
    unknown = sorted(name for name in given if name not in takes and name not in COMMON_OPTIONS)
    if unknown:
        raise ConfigError(
            f"{cls.__name__} does not take {', '.join(unknown)}; "
            f"its options are: {', '.join(takes) or 'none'}"
        )
    return cls(*args, **{name: value for name, value in given.items() if name in takes})
