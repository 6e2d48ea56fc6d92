"""A frame source with switchable faults, for the service's fault tests.

The service loads it through the ``python:fault_sources:FaultyReplay`` source spec, which
it accepts only with ``allow_python = true``. Faults are switched by files in the folder
named by ``$ROBOVISION_TEST_FAULTS``, so a test can unplug and replug the "camera" of a
service running in another process:

- ``lost``: open() fails as with no camera, and read() fails as with an unplugged one;
- ``hang``: read() blocks, ignoring its timeout, as a stuck driver does, until removed.

Frames come from the real replay of the bundled photographs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

from robovision.errors import SourceLostError, SourceNotFoundError
from robovision.frame import Frame
from robovision.sources.base import FrameSource
from robovision.sources.replay import ReplaySource

IMAGES = Path(__file__).resolve().parent.parent / "data" / "toycars" / "images"


class FaultyReplay(FrameSource):
    def __init__(
        self, *, fps: float = 10.0, size_wh: Optional[tuple[int, int]] = None, loop: bool = True
    ) -> None:
        super().__init__("faulty-replay")
        self.control = Path(os.environ["ROBOVISION_TEST_FAULTS"])
        self.replay = ReplaySource(IMAGES, fps=fps, size_wh=size_wh, loop=loop)

    def _fault(self, name: str) -> bool:
        return (self.control / name).exists()

    def _open(self) -> None:
        if self._fault("lost"):
            raise SourceNotFoundError("no camera connected (test fault 'lost')")
        self.replay.open()

    def _read(self, timeout_s: Optional[float]) -> Optional[Frame]:
        if self._fault("lost"):
            raise SourceLostError("camera unplugged (test fault 'lost')")
        while self._fault("hang"):
            time.sleep(0.02)
        return self.replay.read(timeout_s)

    def _close(self) -> None:
        self.replay.close()
