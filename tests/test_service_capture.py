"""The capture thread and its one-slot mailbox, with small real frame sources."""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

import numpy as np
import pytest

from robovision.errors import SourceLostError
from robovision.frame import Frame, PixelLayout
from robovision.service.capture import CameraState, Capture, Captured, Mailbox
from robovision.sources.base import FrameSource


def _captured(frame_id: int) -> Captured:
    image = np.zeros((4, 4, 3), np.uint8)
    frame = Frame(image, PixelLayout.BGR, frame_id, time.monotonic(), time.time(), "t")
    return Captured(frame, 0.1)


def _wait(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_mailbox_keeps_only_the_newest_frame_and_counts_the_rest() -> None:
    box = Mailbox()
    for i in range(5):
        box.put(_captured(i))
    taken = box.take(0.1)
    assert taken is not None and taken.frame.frame_id == 4
    assert box.dropped == 4
    assert box.take(0.01) is None


def test_on_demand_mailbox_tells_the_capture_side_when_the_loop_asks() -> None:
    box = Mailbox(on_demand=True)
    assert not box.wait_for_demand(0.01)
    result: list[Optional[Captured]] = []
    taker = threading.Thread(target=lambda: result.append(box.take(5.0)))
    taker.start()
    assert box.wait_for_demand(5.0)
    box.put(_captured(7))
    taker.join(5)
    assert result[0] is not None and result[0].frame.frame_id == 7
    assert not box.wait_for_demand(0.01)  # satisfied until asked again


class Faults:
    """Switches the test flips while the capture thread runs."""

    def __init__(self) -> None:
        self.read_error: Optional[BaseException] = None
        self.release = threading.Event()


class Scripted(FrameSource):
    """Tiny frames about every 10 ms, failing or hanging as ``faults`` say."""

    def __init__(self, faults: Faults, hang: bool) -> None:
        super().__init__("scripted")
        self.faults = faults
        self.hang = hang

    def _open(self) -> None:
        pass

    def _read(self, timeout_s: Optional[float]) -> Optional[Frame]:
        time.sleep(0.01)
        if self.hang:
            self.faults.release.wait(30)  # ignores timeout_s, as a stuck driver does
        if self.faults.read_error is not None:
            raise self.faults.read_error
        return self._make_frame(np.zeros((4, 4, 3), np.uint8), PixelLayout.BGR)

    def _close(self) -> None:
        pass


@pytest.mark.parametrize("error", [SourceLostError("unplugged"), RuntimeError("driver bug")])
def test_a_failing_read_is_a_lost_camera_that_comes_back(error: BaseException) -> None:
    faults = Faults()
    built: list[Scripted] = []

    def factory() -> Scripted:
        built.append(Scripted(faults, hang=False))
        return built[-1]

    capture = Capture(factory, Mailbox(), read_timeout_s=1.0, retry_initial_s=0.02, retry_max_s=0.05)
    capture.start()
    try:
        _wait(lambda: capture.state is CameraState.OK)
        faults.read_error = error
        _wait(lambda: capture.losses == 1)
        _wait(lambda: capture.state is CameraState.RECONNECTING)
        assert str(error) in (capture.error or "")
        assert len(built) >= 2  # reopened with a fresh source
        faults.read_error = None
        _wait(lambda: capture.state is CameraState.OK)
        assert capture.losses == 1
        assert capture.error is None
    finally:
        faults.read_error = None
        capture.stop()


def test_a_hung_read_is_abandoned_and_a_new_source_opened() -> None:
    faults = Faults()
    built: list[Scripted] = []

    def factory() -> Scripted:
        built.append(Scripted(faults, hang=not built))  # only the first source hangs
        return built[-1]

    box = Mailbox()
    capture = Capture(factory, box, read_timeout_s=0.2, retry_initial_s=0.02)
    capture.start()
    try:
        _wait(lambda: capture.check_hung(time.monotonic()))
        assert capture.hangs == 1
        assert capture.losses == 0  # it never delivered a frame, so no outage is counted
        assert "hung" in (capture.error or "")
        _wait(lambda: capture.state is CameraState.OK)
        assert len(built) == 2
        taken = box.take(1.0)
        assert taken is not None and taken.frame.source == "scripted"
    finally:
        faults.release.set()
        capture.stop()
