"""How the service turns its config into a source, for every kind of source spec."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from service_support import IMAGES

from robovision.config import Config, SourceConfig
from robovision.errors import ConfigError, SourceNotFoundError
from robovision.service.runner import delivers_on_request, source_factory

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
