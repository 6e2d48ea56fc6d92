"""The service on a Pi camera, through the picamera2 stand-in (tests/fakes): a camera held by
another program at boot, then one that stops delivering frames, both recovered without a restart.

The service runs in this process (in a thread) so the test can drive the stand-in's camera.
"""

from __future__ import annotations

import importlib
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from service_support import IMAGES, REFERENCE_MODEL, Collector

from robovision.config import Config, apply_overrides
from robovision.service.runner import run_service

FAKES = Path(__file__).resolve().parent / "fakes"


def _forget_picamera2() -> None:
    for name in [n for n in sys.modules if n == "picamera2" or n.startswith("picamera2.")]:
        del sys.modules[name]


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    _forget_picamera2()
    monkeypatch.syspath_prepend(str(FAKES))
    module = importlib.import_module("picamera2._standin")
    module.reset(cameras=("imx708",), images=sorted(IMAGES.glob("*.jpg"))[:4], frame_interval_s=0.05)
    try:
        yield module
    finally:
        module.reset()
        _forget_picamera2()


def _status(reader: Collector) -> dict:
    return reader.of_type("status")[-1]


def test_busy_camera_at_boot_and_a_stalled_camera_recover_by_themselves(
    tmp_path: Path, standin: ModuleType
) -> None:
    sock = tmp_path / "detections.sock"
    config = apply_overrides(
        Config(),
        {
            "source.spec": "picamera2:0",
            "source.size_wh": [320, 240],
            "source.fps": 20.0,
            "source.read_timeout_s": 0.5,
            "source.retry_initial_s": 0.1,
            "source.retry_max_s": 0.4,
            "model.path": str(REFERENCE_MODEL),
            "model.num_threads": 1,
            "socket.path": str(sock),
            "service.status_interval_s": 0.2,
        },
    )
    standin.acquire(0)  # another program holds the camera
    stop = threading.Event()
    codes: list[int] = []
    service = threading.Thread(target=lambda: codes.append(run_service(config, stop_event=stop)))
    service.start()
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert time.monotonic() < deadline and service.is_alive(), "the service did not start"
            time.sleep(0.02)
        reader = Collector(sock)
        reader.wait_for(lambda c: bool(c.of_type("status")) and _status(c)["camera"]["error"], what="status")
        status = _status(reader)
        assert status["camera"]["state"] == "absent"
        assert "busy" in status["camera"]["error"].lower()
        assert not reader.of_type("detections")

        standin.release(0)  # the other program lets go
        reader.wait_for(lambda c: len(c.of_type("detections")) >= 3, what="detections from the camera")
        assert reader.of_type("detections")[0]["source"] == "picamera2:0"

        standin.stall(0)  # frames stop: a loose ribbon cable
        reader.wait_for(lambda c: _status(c)["camera"]["losses"] >= 1, what="the loss reported")
        reader.wait_for(lambda c: _status(c)["camera"]["state"] == "reconnecting", what="reconnecting")
        mark = len(reader.of_type("detections"))
        time.sleep(1.0)
        assert len(reader.of_type("detections")) == mark  # nothing while it is stalled

        standin.resume(0)
        reader.wait_for(lambda c: len(c.of_type("detections")) >= mark + 3, what="detections after resume")
        reader.wait_for(lambda c: _status(c)["camera"]["state"] == "ok", what="camera ok")
        assert _status(reader)["camera"]["losses"] == 1  # one outage, however many retries
        reader.stop()
    finally:
        stop.set()
        service.join(10)
    assert codes == [0]
    assert not sock.exists()
    with pytest.raises(OSError):
        socket.socket(socket.AF_UNIX).connect(str(sock))
