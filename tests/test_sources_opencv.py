from __future__ import annotations

import errno
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from robovision.errors import (
    CameraBusyError,
    CameraPermissionError,
    ConfigError,
    SourceError,
    SourceLostError,
    SourceNotFoundError,
)
from robovision.sources import OpenCVSource, open_source
from robovision.sources.opencv import redact_url
from robovision.sources.v4l2 import error_for_errno, probe_capture_node

ROOT = Path(__file__).resolve().parents[1]
TOYCARS = ROOT / "data" / "toycars" / "images"


# --------------------------------------------------------------------------- V4L2 cameras


@pytest.mark.parametrize("spec", ["/dev/video99", 99, "99"])
def test_camera_node_that_does_not_exist_names_the_checks(spec: object) -> None:
    with pytest.raises(SourceNotFoundError) as raised:
        open_source(spec).open()  # type: ignore[arg-type]
    message = str(raised.value)
    assert "/dev/video99" in message
    assert "ls /dev/video*" in message
    assert "cable" in message
    assert "rpicam-hello --list-cameras" in message


def test_device_that_is_not_a_camera_is_refused_by_the_kernel_check() -> None:
    # /dev/null opens fine but answers VIDIOC_QUERYCAP with ENOTTY
    with pytest.raises(SourceNotFoundError, match="not a V4L2 video device"):
        probe_capture_node("/dev/null")


@pytest.mark.parametrize(
    ("code", "error_class", "fix"),
    [
        (errno.ENOENT, SourceNotFoundError, "ls /dev/video*"),
        (errno.ENODEV, SourceNotFoundError, "ls /dev/video*"),
        (errno.EACCES, CameraPermissionError, "sudo usermod -aG video $USER"),
        (errno.EPERM, CameraPermissionError, "sudo usermod -aG video $USER"),
        (errno.EBUSY, CameraBusyError, "fuser /dev/video0"),
        (errno.EIO, SourceError, "Input/output error"),
    ],
)
def test_kernel_errors_map_to_errors_that_name_the_fix(code: int, error_class: type, fix: str) -> None:
    error = error_for_errno("/dev/video0", OSError(code, __import__("os").strerror(code)))
    assert type(error) is error_class
    assert fix in str(error)


def test_busy_camera_error_exits_with_its_own_code() -> None:
    busy = error_for_errno("/dev/video0", OSError(errno.EBUSY, "Device or resource busy"))
    lost = error_for_errno("/dev/video0", OSError(errno.ENOENT, "No such file or directory"))
    assert busy.exit_code != lost.exit_code


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "video", "size_wh": (640, 480)}, "V4L2 cameras only"),
        ({"kind": "url", "loop": True}, "video files only"),
        ({"kind": "v4l2", "fourcc": "MJPEG"}, "four characters"),
        ({"kind": "v4l2", "read_timeout_s": 0}, "positive"),
        ({"kind": "webcam"}, "video, v4l2, url"),
    ],
)
def test_opencv_options_are_checked(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        OpenCVSource("/dev/video0", **kwargs)


# --------------------------------------------------------------------------- network streams


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://admin:hunter2@192.0.2.7:554/stream1", "rtsp://admin:***@192.0.2.7:554/stream1"),
        ("http://192.0.2.7/video.mjpg", "http://192.0.2.7/video.mjpg"),
        ("rtsp://viewer@192.0.2.7/live", "rtsp://viewer@192.0.2.7/live"),
    ],
)
def test_stream_names_never_show_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert open_source(url).name == f"url:{shown}"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served_folder(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """An HTTP server on a free loopback port serving ``tmp_path``; yields (folder, base URL)."""
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_http_stream_delivers_frames_then_reports_the_end_as_lost(served_folder: tuple[Path, str]) -> None:
    folder, base_url = served_folder
    photos = sorted(TOYCARS.glob("*.jpg"))[:5]
    size_wh = (320, 240)
    writer = cv2.VideoWriter(str(folder / "clip.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, size_wh)
    originals = [cv2.resize(cv2.imread(str(p)), size_wh, interpolation=cv2.INTER_AREA) for p in photos]
    for image in originals:
        writer.write(image)
    writer.release()

    with open_source(f"{base_url}/clip.avi", read_timeout_s=5.0) as source:
        assert isinstance(source, OpenCVSource) and source.kind == "url"
        first = source.read(timeout_s=5.0)
        assert first is not None
        assert first.image.shape == (240, 320, 3)
        closest = min(np.abs(first.image.astype(int) - o).mean() for o in originals)
        assert closest < 6
        # a live source keeps only the newest frame; at the end of the clip it is "lost"
        with pytest.raises(SourceLostError, match="stopped"):
            for _ in range(len(photos) + 1):
                source.read(timeout_s=5.0)


def test_stream_that_cannot_be_opened_names_the_checks(served_folder: tuple[Path, str]) -> None:
    _, base_url = served_folder
    with pytest.raises(SourceNotFoundError, match="check the address") as raised:
        open_source(f"{base_url}/nothing_here.avi", open_timeout_s=3.0).open()
    assert "ffprobe" in str(raised.value)
