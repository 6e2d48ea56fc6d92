"""How the service turns its config into a source, for every kind of source spec."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from service_support import IMAGES

from robovision.config import Config, SourceConfig
from robovision.errors import ConfigError, SourceNotFoundError
from robovision.service.runner import check_source_path, delivers_on_request, source_factory, source_path

SETTINGS = SourceConfig(spec="", size_wh=(320, 240), fps=12.0, loop=True, read_timeout_s=1.5)


def _video(tmp_path: Path) -> Path:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), i * 40, np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize(
    ("spec", "expected", "on_request"),
    [
        ("picamera2:0", {"size_wh": (320, 240), "read_timeout_s": 1.5}, False),
        (f"replay:{IMAGES}", {"fps": 12.0, "size_wh": (320, 240), "loop": True}, False),
        (str(IMAGES), {"loop": True}, True),
        (str(next(IMAGES.glob("*.jpg"))), {"loop": True}, True),
        ("rtsp://127.0.0.1:9/none", {"read_timeout_s": 1.5, "size_wh": None, "loop": False}, False),
        ("VIDEO", {"loop": True, "size_wh": None}, True),
    ],
)
def test_each_source_gets_the_settings_it_takes(
    tmp_path: Path, spec: str, expected: dict[str, object], on_request: bool
) -> None:
    if spec == "VIDEO":
        spec = str(_video(tmp_path))
    factory = source_factory(SourceConfig(**{**SETTINGS.__dict__, "spec": spec}))
    source = factory()  # built, not opened
    for name, value in expected.items():
        assert getattr(source, name) == value, name
    assert delivers_on_request(factory) is on_request


def test_pi_camera_gets_the_frame_rate() -> None:
    camera = source_factory(SourceConfig(**{**SETTINGS.__dict__, "spec": "picamera2"}))()
    assert camera.controls["FrameRate"] == 12.0  # type: ignore[attr-defined]


def test_a_missing_camera_node_is_a_source_error_the_capture_thread_retries() -> None:
    factory = source_factory(SourceConfig(**{**SETTINGS.__dict__, "spec": "/dev/video99"}))
    with pytest.raises(SourceNotFoundError):
        factory()
    assert delivers_on_request(factory) is False


def test_python_sources_need_permission_and_an_importable_class() -> None:
    with pytest.raises(ConfigError, match="allow_python"):
        source_factory(SourceConfig(spec="python:fault_sources:FaultyReplay"))
    with pytest.raises(ConfigError, match="has no class Nope"):
        source_factory(SourceConfig(spec="python:fault_sources:Nope", allow_python=True))
    assert Config().source.allow_python is False


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ("picamera2", None),
        ("picamera2:1", None),
        ("/dev/video99", None),
        ("/dev/v4l/by-id/usb-cam-video-index0", None),
        ("0", None),
        ("rtsp://127.0.0.1:8554/cam", None),
        ("python:fault_sources:FaultyReplay", None),
        ("replay:/data/photos", Path("/data/photos")),
        ("file:/data/clip.mp4", Path("/data/clip.mp4")),
        ("/data/photos", Path("/data/photos")),
    ],
)
def test_only_replays_files_and_folders_name_a_path_that_must_exist(spec: str, path: Path | None) -> None:
    assert source_path(spec) == path


def test_a_missing_replay_path_is_a_config_error_and_a_missing_camera_is_not(tmp_path: Path) -> None:
    missing = tmp_path / "photos"
    with pytest.raises(ConfigError, match=f"{missing} does not exist"):
        check_source_path(Config(source=SourceConfig(spec=f"replay:{missing}")))
    with pytest.raises(ConfigError, match=f"{missing} does not exist"):
        check_source_path(Config(source=SourceConfig(spec=str(missing))))
    check_source_path(Config(source=SourceConfig(spec="/dev/video99")))  # waited for, not refused
    check_source_path(Config(source=SourceConfig(spec=f"replay:{IMAGES}")))
