"""The interface every frame source implements."""

from __future__ import annotations

import abc
import logging
import time
from types import TracebackType
from typing import Optional

import numpy as np

from robovision.errors import ConfigError, SourceError
from robovision.frame import Frame, PixelLayout

log = logging.getLogger(__name__)


class FrameSource(abc.ABC):
    """A camera, stream or file that hands out ``Frame`` objects one at a time.

    Use it as a context manager (``with open_source(spec) as source:``), or call
    ``open()`` and ``close()`` yourself. ``read(timeout_s)`` returns the next frame, or
    None at the end of a finite source (a file, a folder, a replay without ``loop``).

    Every frame carries a ``frame_id`` that increases by one per frame handed out, and
    ``time.monotonic()`` / ``time.time()`` stamps taken when the frame was obtained.
    A source never writes into an array it has handed out, so frames may be kept or
    passed to other threads without copying. A source object is used from one thread.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._is_open = False
        self._next_frame_id = 0

    @property
    def is_open(self) -> bool:
        return self._is_open

    def open(self) -> None:
        """Acquire the device or file. Opening an open source does nothing."""
        if self._is_open:
            return
        self._open()
        self._is_open = True
        log.info("opened %s", self.name)

    def read(self, timeout_s: Optional[float] = None) -> Optional[Frame]:
        """The next frame, or None at the end of the stream.

        ``timeout_s`` bounds the wait where the backend allows it (each source documents
        how); a live source that gives nothing in that time raises ``SourceLostError``.
        """
        if not self._is_open:
            raise SourceError(f"{self.name}: read() before open(); use 'with open_source(...) as source:'")
        if timeout_s is not None and timeout_s <= 0:
            raise ConfigError(f"{self.name}: timeout_s must be positive, got {timeout_s}")
        return self._read(timeout_s)

    def close(self) -> None:
        """Release the device or file. Closing a closed source does nothing."""
        if not self._is_open:
            return
        try:
            self._close()
        finally:
            self._is_open = False
            log.info("closed %s", self.name)

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._is_open else "closed"
        return f"<{type(self).__name__} {self.name} {state}>"

    def _make_frame(
        self,
        image: np.ndarray,
        layout: PixelLayout,
        t_capture_mono: Optional[float] = None,
        t_capture_wall: Optional[float] = None,
    ) -> Frame:
        """Wrap ``image`` (now owned by the frame) with the next id and capture times."""
        frame = Frame(
            image=image,
            layout=layout,
            frame_id=self._next_frame_id,
            t_capture_mono=time.monotonic() if t_capture_mono is None else t_capture_mono,
            t_capture_wall=time.time() if t_capture_wall is None else t_capture_wall,
            source=self.name,
        )
        self._next_frame_id += 1
        return frame

    @abc.abstractmethod
    def _open(self) -> None: ...

    @abc.abstractmethod
    def _read(self, timeout_s: Optional[float]) -> Optional[Frame]: ...

    @abc.abstractmethod
    def _close(self) -> None: ...
