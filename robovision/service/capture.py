"""The capture side of the service: a thread per source that keeps only the newest frame.

The capture thread reads frames as fast as the source gives them and puts each into a
one-slot :class:`Mailbox`, replacing a frame the inference loop has not taken yet (that
frame is counted as dropped). So the model always works on the newest frame, never on a
stale one while a newer one waits.

Faults leave the service running: an open that fails (camera absent, busy, not permitted)
or a read that fails (camera lost) is retried with exponential backoff up to a cap, and
the thread recovers by itself when the source comes back. A read that hangs past
``read_timeout_s`` (plus a short grace) is noticed by :meth:`Capture.check_hung`, called
from the inference loop: the hung thread is abandoned (it closes its source when the read
finally returns) and a new one reopens the source.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from robovision.errors import ConfigError, SourceError
from robovision.frame import Frame
from robovision.service.throttle import Throttle

log = logging.getLogger(__name__)

HANG_GRACE_S = 0.5
"""Extra time a read may take beyond ``read_timeout_s`` before it counts as hung."""
_DEMAND_WAIT_S = 0.1


class FrameSourceLike(Protocol):
    """What the service needs from a frame source (see ``robovision.sources``)."""

    name: str

    def open(self) -> Any: ...

    def read(self, timeout_s: float | None = None) -> Frame | None: ...

    def close(self) -> None: ...


SourceFactory = Callable[[], FrameSourceLike]


class CameraState(str, enum.Enum):
    OK = "ok"
    """Frames are coming in."""
    LOST = "lost"
    """The source was working and just failed (or hung); the first reopen is pending."""
    RECONNECTING = "reconnecting"
    """Reopening the source after it was lost, retrying with backoff until it answers."""
    ABSENT = "absent"
    """The source has not opened since the service started (no camera, busy, no permission)."""


@dataclass(frozen=True)
class Captured:
    """A frame and how long the source took to deliver it."""

    frame: Frame
    capture_ms: float


class Mailbox:
    """A one-slot, newest-wins hand-over between the capture thread and the inference loop.

    ``on_demand=True`` is for sources that hand out a frame at once whenever asked (a
    replay at full speed, a folder): the capture thread then reads only after the loop has
    asked for a frame, instead of spinning through frames nobody takes, and the frame is
    fresh when the loop gets it. Cameras, which deliver at their own pace, leave it False.
    """

    def __init__(self, *, on_demand: bool = False) -> None:
        self._cond = threading.Condition()
        self._item: Captured | None = None
        self._wanted = False
        self.on_demand = on_demand
        self.dropped = 0
        """Frames replaced before the loop took them."""

    def put(self, item: Captured) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._wanted = False
            self._cond.notify_all()

    def take(self, timeout_s: float) -> Captured | None:
        """The newest frame, waiting at most ``timeout_s``; None if none came."""
        with self._cond:
            if self._item is None:
                if self.on_demand and not self._wanted:
                    self._wanted = True
                    self._cond.notify_all()
                self._cond.wait(timeout_s)
            item, self._item = self._item, None
            return item

    def wait_for_demand(self, timeout_s: float) -> bool:
        """Capture side, ``on_demand`` only: wait up to ``timeout_s`` for the loop to ask; True if it has."""
        with self._cond:
            if not self._wanted:
                self._cond.wait(timeout_s)
            return self._wanted


class _Worker(threading.Thread):
    """One capture thread with its own source instance (one generation)."""

    def __init__(self, capture: Capture, generation: int) -> None:
        super().__init__(name=f"capture-{generation}", daemon=True)
        self.capture = capture
        self.generation = generation
        self.abandoned = threading.Event()
        self.read_started_mono: float | None = None
        self.backoff_s = capture.retry_initial_s

    def run(self) -> None:
        capture = self.capture
        source: FrameSourceLike | None = None
        self.backoff_s = capture.retry_initial_s
        try:
            while not self._should_stop():
                if source is None:
                    source = self._open()
                    if source is None:
                        self._back_off()
                        continue
                if not self._read_one(source):
                    self._close(source)
                    source = None
                    if capture.ended:
                        return
                    self._back_off()
        except ConfigError as exc:
            capture.fatal = exc
        finally:
            if source is not None:
                self._close(source)

    def _back_off(self) -> None:
        """Wait before the next attempt, doubling the wait each time up to the cap."""
        self.capture.stop_event.wait(self.backoff_s)
        self.backoff_s = min(self.backoff_s * 2.0, self.capture.retry_max_s)

    def _should_stop(self) -> bool:
        return self.capture.stop_event.is_set() or self.abandoned.is_set()

    def _open(self) -> FrameSourceLike | None:
        capture = self.capture
        if capture.ever_opened:
            capture.set_state(CameraState.RECONNECTING, capture.error)
        try:
            source = capture.factory()
            source.open()
        except ConfigError:
            raise
        except Exception as exc:  # a driver's unexpected error must not end capture for good
            state = CameraState.RECONNECTING if capture.ever_opened else CameraState.ABSENT
            capture.set_state(state, str(exc) or type(exc).__name__)
            level = logging.WARNING if isinstance(exc, SourceError) else logging.ERROR
            capture.throttle.log("open", level, "cannot open the source: %r (will retry)", exc)
            return None
        if self.abandoned.is_set():
            source.close()
            return None
        log.debug("source %s opened", source.name)
        capture.ever_opened = True
        return source

    def _read_one(self, source: FrameSourceLike) -> bool:
        """Read one frame into the mailbox. False when the source must be reopened or has ended."""
        capture = self.capture
        if capture.mailbox.on_demand and not capture.mailbox.wait_for_demand(_DEMAND_WAIT_S):
            return True  # not asked yet; come back after checking for a stop
        t_start = time.perf_counter()
        self.read_started_mono = time.monotonic()
        try:
            frame = source.read(timeout_s=capture.read_timeout_s)
        except Exception as exc:  # a driver's unexpected error counts as a lost camera
            if not self.abandoned.is_set():
                capture.lost(str(exc) or type(exc).__name__)
                level = logging.WARNING if isinstance(exc, SourceError) else logging.ERROR
                capture.throttle.log("read", level, "source %s lost: %r (will reopen)", source.name, exc)
            return False
        finally:
            self.read_started_mono = None
        if self.abandoned.is_set():
            return False
        if frame is None:
            log.info("source %s reached its end", source.name)
            capture.ended = True
            return False
        capture_ms = (time.perf_counter() - t_start) * 1000.0
        capture.last_frame_mono = time.monotonic()
        capture.set_state(CameraState.OK, None)
        self.backoff_s = capture.retry_initial_s
        capture.mailbox.put(Captured(frame, capture_ms))
        return True

    def _close(self, source: FrameSourceLike) -> None:
        try:
            source.close()
        except (SourceError, OSError) as exc:
            log.warning("closing source %s failed: %s", source.name, exc)


class Capture:
    """Runs the capture thread, reports the camera state and replaces a hung thread."""

    def __init__(
        self,
        factory: SourceFactory,
        mailbox: Mailbox,
        *,
        read_timeout_s: float = 2.0,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0,
        log_every_s: float = 10.0,
    ) -> None:
        self.factory = factory
        self.mailbox = mailbox
        self.read_timeout_s = read_timeout_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.throttle = Throttle(log, log_every_s)
        self.stop_event = threading.Event()
        self.ever_opened = False
        self.ended = False
        self.fatal: ConfigError | None = None
        self.last_frame_mono: float | None = None
        self.hangs = 0
        self.losses = 0
        """Times the source was lost or hung since the start."""
        self._lock = threading.Lock()
        self._state = CameraState.ABSENT
        self._error: str | None = None
        self._generation = 0
        self._worker: _Worker | None = None

    @property
    def state(self) -> CameraState:
        with self._lock:
            return self._state

    @property
    def error(self) -> str | None:
        with self._lock:
            return self._error

    def set_state(self, state: CameraState, error: str | None) -> None:
        with self._lock:
            changed = state is not self._state
            self._state, self._error = state, error
        if changed:
            log.info("camera state: %s%s", state.value, f" ({error})" if error else "")

    def lost(self, error: str) -> None:
        """The source stopped giving frames.

        A source that was delivering becomes ``lost`` and counts one more in ``losses``; a
        failure while it is being brought back keeps it ``reconnecting``, uncounted.
        """
        with self._lock:
            was_ok = self._state is CameraState.OK
            if was_ok:
                self.losses += 1
        self.set_state(CameraState.LOST if was_ok else CameraState.RECONNECTING, error)

    def start(self) -> None:
        self._generation += 1
        self._worker = _Worker(self, self._generation)
        self._worker.start()

    def check_hung(self, now_mono: float) -> bool:
        """Replace the capture thread if its read has run past the bound. True if it did."""
        worker = self._worker
        if worker is None:
            return False
        started = worker.read_started_mono
        if started is None or now_mono - started <= self.read_timeout_s + HANG_GRACE_S:
            return False
        self.hangs += 1
        worker.abandoned.set()
        self.lost(f"a read hung for more than {self.read_timeout_s:g} s")
        log.warning("capture hung for %.1f s; reopening the source", now_mono - started)
        self.start()
        return True

    def stop(self, timeout_s: float = 1.0) -> None:
        self.stop_event.set()
        worker = self._worker
        if worker is not None:
            worker.join(timeout_s)
            if worker.is_alive():
                log.warning("capture thread still in a read after %.1f s; leaving it behind", timeout_s)
