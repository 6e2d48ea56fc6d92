"""Subscribe to the detection socket from Python: typed messages, reconnecting on its own.

Example::

    from robovision.client import DetectionMessage, Subscriber

    with Subscriber() as sub:
        for message in sub:
            if isinstance(message, DetectionMessage):
                for det in message.detections:
                    print(det.label, det.score, det.bearing_deg)

Only the standard library is used, so a robot's control code can import this module
without numpy or an interpreter installed.

A robot that must not run blind can bound the wait for the service: with
``connect_timeout_s`` set, a subscriber that cannot reach the service for that long raises
``ServiceUnavailableError`` (a ``ConnectionError``) instead of retrying for ever.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, ClassVar, Union

from robovision.config import client_socket_path
from robovision.errors import ServiceUnavailableError

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 16 * 1024 * 1024
"""A line longer than this is refused as corrupt (a detection message is a few kB)."""


@dataclass(frozen=True)
class DetectionInfo:
    label: str
    class_id: int
    score: float
    box_xyxy: tuple[float, float, float, float]
    """Frame pixels (x_min, y_min, x_max, y_max)."""
    box_xyxy_norm: tuple[float, float, float, float]
    """The box divided by the frame width and height (0..1)."""
    center_xy: tuple[float, float]
    bearing_deg: float | None
    """Horizontal angle of the box centre from the camera axis, right positive."""


@dataclass(frozen=True)
class DetectionMessage:
    type: ClassVar[str] = "detections"
    seq: int
    frame_id: int
    t_capture_wall: float
    t_capture_mono: float
    t_publish_wall: float
    latency_ms: Mapping[str, float]
    source: str
    model: str
    image_wh: tuple[int, int]
    hfov_deg: float | None
    detections: tuple[DetectionInfo, ...]
    raw: Mapping[str, Any]


@dataclass(frozen=True)
class StatusMessage:
    type: ClassVar[str] = "status"
    t_wall: float
    uptime_s: float
    fps: float
    frames: int
    latency_ms: Mapping[str, float]
    dropped_capture: int
    dropped_subscribers: int
    subscribers: int
    camera_state: str
    camera_error: str | None
    camera_losses: int
    backend: str
    model: str
    thresholds: Mapping[str, Any]
    raw: Mapping[str, Any]


@dataclass(frozen=True)
class HelloMessage:
    type: ClassVar[str] = "hello"
    version: str
    model: str
    source: str
    hfov_deg: float | None
    subscriber_id: int
    raw: Mapping[str, Any]


@dataclass(frozen=True)
class GapMessage:
    """This subscriber fell behind: ``dropped`` messages were discarded before the next one."""

    type: ClassVar[str] = "gap"
    dropped: int
    dropped_detections: int
    raw: Mapping[str, Any]


@dataclass(frozen=True)
class ErrorMessage:
    """The service refused or dropped this connection (``code``: ``too_many_subscribers``,
    ``too_much_input``); it closes next."""

    type: ClassVar[str] = "error"
    code: str
    message: str
    raw: Mapping[str, Any]


@dataclass(frozen=True)
class UnknownMessage:
    """A message type this client does not know (from a newer service)."""

    type: str
    raw: Mapping[str, Any]


Message = Union[DetectionMessage, StatusMessage, HelloMessage, GapMessage, ErrorMessage, UnknownMessage]


def _detection(raw: Mapping[str, Any]) -> DetectionInfo:
    box = raw["box_xyxy"]
    norm = raw["box_xyxy_norm"]
    center = raw["center_xy"]
    return DetectionInfo(
        label=raw["label"],
        class_id=int(raw["class_id"]),
        score=float(raw["score"]),
        box_xyxy=(box[0], box[1], box[2], box[3]),
        box_xyxy_norm=(norm[0], norm[1], norm[2], norm[3]),
        center_xy=(center[0], center[1]),
        bearing_deg=raw.get("bearing_deg"),
    )


def parse_message(raw: Mapping[str, Any]) -> Message:
    """The typed form of one decoded JSON message. ``ValueError`` if it is malformed."""
    if raw.get("v") != 1:
        raise ValueError(f"unsupported message version {raw.get('v')!r}; this client reads version 1")
    kind = raw.get("type")
    try:
        if kind == "detections":
            return DetectionMessage(
                seq=int(raw["seq"]),
                frame_id=int(raw["frame_id"]),
                t_capture_wall=float(raw["t_capture_wall"]),
                t_capture_mono=float(raw["t_capture_mono"]),
                t_publish_wall=float(raw["t_publish_wall"]),
                latency_ms=dict(raw["latency_ms"]),
                source=raw["source"],
                model=raw["model"],
                image_wh=(int(raw["image_wh"][0]), int(raw["image_wh"][1])),
                hfov_deg=raw.get("hfov_deg"),
                detections=tuple(_detection(d) for d in raw["detections"]),
                raw=raw,
            )
        if kind == "status":
            return StatusMessage(
                t_wall=float(raw["t_wall"]),
                uptime_s=float(raw["uptime_s"]),
                fps=float(raw["fps"]),
                frames=int(raw["frames"]),
                latency_ms=dict(raw["latency_ms"]),
                dropped_capture=int(raw["dropped"]["capture"]),
                dropped_subscribers=int(raw["dropped"]["subscribers"]),
                subscribers=int(raw["subscribers"]),
                camera_state=raw["camera"]["state"],
                camera_error=raw["camera"].get("error"),
                camera_losses=int(raw["camera"].get("losses", 0)),
                backend=raw["backend"],
                model=raw["model"],
                thresholds=dict(raw["thresholds"]),
                raw=raw,
            )
        if kind == "hello":
            return HelloMessage(
                version=raw["version"],
                model=raw["model"],
                source=raw["source"],
                hfov_deg=raw.get("hfov_deg"),
                subscriber_id=int(raw["subscriber_id"]),
                raw=raw,
            )
        if kind == "gap":
            return GapMessage(int(raw["dropped"]), int(raw["dropped_detections"]), raw)
        if kind == "error":
            return ErrorMessage(raw["code"], raw["message"], raw)
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"malformed {kind} message: missing or wrong field {exc}") from None
    return UnknownMessage(str(kind), raw)


@dataclass(frozen=True)
class ConnectionEvent:
    """A change in a :class:`Subscriber`'s connection, told to its ``on_connection`` callback.

    ``kind`` is ``"waiting"`` (no service: the first failed attempt, or the connection was
    lost; ``reason`` says which) or ``"connected"`` (connected after waiting; ``reconnect``
    is True when an earlier connection had been served, ``down_s`` how long it took).
    """

    kind: str
    path: Path
    reason: str = ""
    reconnect: bool = False
    down_s: float = 0.0


class Subscriber:
    """Connects to the detection socket and yields messages, reconnecting with backoff.

    Iterating yields typed messages (``raw=False``) or the decoded dicts (``raw=True``).
    When the service is missing or goes away, the subscriber waits ``backoff_initial_s``,
    then twice as long each time up to ``backoff_max_s``, and connects again; with
    ``reconnect=False`` iteration ends when a connection ends, and a service missing at
    the start raises ``ServiceUnavailableError`` at once.

    ``connect_timeout_s`` bounds how long one stretch without a connection may last (at the
    start, and after each loss when reconnecting): past it, ``ServiceUnavailableError``
    names the socket, the cause and how to start the service. None (the default) retries
    for ever when reconnecting. ``timeout_s`` bounds each wait for data once connected
    (``TimeoutError``). ``on_connection`` is called with a :class:`ConnectionEvent` when the
    service is found missing or comes back (from the iterating thread; keep it short).
    ``close()`` may be called from another thread to end iteration.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        reconnect: bool = True,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
        timeout_s: float | None = None,
        connect_timeout_s: float | None = None,
        raw: bool = False,
        on_connection: Callable[[ConnectionEvent], None] | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else client_socket_path()
        self.reconnect = reconnect
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.raw = raw
        self.on_connection = on_connection
        self.connections = 0
        self._sock: socket.socket | None = None
        self._closed = threading.Event()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError as exc:
                log.debug("shutdown of a closed connection: %s", exc)

    def __iter__(self) -> Iterator[Any]:
        backoff_s = self.backoff_initial_s
        down_since = time.monotonic()
        waiting = False  # a "waiting" event was told for the current stretch without a connection
        served_before = False
        while not self._closed.is_set():
            try:
                sock = self._connect()
            except OSError as exc:
                reason, error = self._unavailable(exc)
                waited_s = time.monotonic() - down_since
                if self.connect_timeout_s is None and not self.reconnect:
                    raise error from None
                if self.connect_timeout_s is not None and waited_s >= self.connect_timeout_s:
                    raise ServiceUnavailableError(
                        f"{error} (no connection for {self.connect_timeout_s:g} s)"
                    ) from None
                if not waiting:
                    waiting = True
                    self._tell(ConnectionEvent("waiting", self.path, reason=reason))
                log.debug("connect to %s failed (%s); retrying in %.2f s", self.path, exc, backoff_s)
                if self.connect_timeout_s is not None:
                    backoff_s = min(backoff_s, max(0.0, self.connect_timeout_s - waited_s))
                backoff_s = self._back_off(backoff_s)
                continue
            if waiting:
                down_s = time.monotonic() - down_since
                self._tell(ConnectionEvent("connected", self.path, reconnect=served_before, down_s=down_s))
            waiting = False
            served = False
            try:
                for message in self._lines(sock):
                    kind = message.get("type") if self.raw else getattr(message, "raw", {}).get("type")
                    served = served or kind != "error"
                    yield message
            finally:
                sock.close()
                self._sock = None
            if not self.reconnect or self._closed.is_set():
                return
            down_since = time.monotonic()
            if served:
                served_before = True
                backoff_s = self.backoff_initial_s
                log.info("connection to %s lost; reconnecting", self.path)
                waiting = True
                self._tell(ConnectionEvent("waiting", self.path, reason="connection lost"))
            else:
                # Refused (too many subscribers) or closed at once: do not hammer the service.
                backoff_s = self._back_off(backoff_s)

    def _unavailable(self, exc: OSError) -> tuple[str, ServiceUnavailableError]:
        """A short reason and the error to raise for a failed connect, with the fix for its cause."""
        start = "start it (`robovision run`, or `sudo systemctl start robovision` on the robot)"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "no socket", ServiceUnavailableError(
                f"no robovision service at {self.path}: the socket does not exist; {start}, "
                "or connect to the socket path the service uses (--socket)"
            )
        if exc.errno == errno.ECONNREFUSED:
            return "nothing answers", ServiceUnavailableError(
                f"nothing answers at {self.path}: the service that made it has stopped; {start}"
            )
        if exc.errno in (errno.EACCES, errno.EPERM):
            return "permission denied", ServiceUnavailableError(
                f"may not connect to {self.path}: permission denied; join the socket's group "
                "(sudo usermod -aG robovision $USER, then log in again)"
            )
        return exc.strerror or str(exc), ServiceUnavailableError(
            f"cannot connect to {self.path}: {exc.strerror or exc}; is robovision running? {start}"
        )

    def _tell(self, event: ConnectionEvent) -> None:
        if self.on_connection is not None:
            self.on_connection(event)

    def _back_off(self, backoff_s: float) -> float:
        """Wait ``backoff_s`` (or until closed); the next wait, doubled up to the cap."""
        self._closed.wait(backoff_s)
        return min(max(backoff_s, self.backoff_initial_s) * 2.0, self.backoff_max_s)

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # A service that stopped accepting (its backlog full) would hold a blocking connect.
        sock.settimeout(self.connect_timeout_s if self.connect_timeout_s is not None else self.timeout_s)
        try:
            sock.connect(str(self.path))
        except OSError:
            sock.close()
            raise
        sock.settimeout(self.timeout_s)
        self._sock = sock
        self.connections += 1
        return sock

    def _lines(self, sock: socket.socket) -> Iterator[Any]:
        buffer = bytearray()
        while not self._closed.is_set():
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                raise TimeoutError(f"no data from {self.path} for {self.timeout_s} s") from None
            except (ConnectionResetError, BrokenPipeError):
                return
            if not chunk:
                return
            buffer += chunk
            while True:
                end = buffer.find(b"\n")
                if end < 0:
                    break
                line = bytes(buffer[:end])
                del buffer[: end + 1]
                decoded = json.loads(line)
                yield decoded if self.raw else parse_message(decoded)
            if len(buffer) > MAX_LINE_BYTES:
                raise ValueError(f"a line from {self.path} exceeds {MAX_LINE_BYTES} bytes; is it robovision?")


def format_message(message: Message) -> str:
    """One readable line for a person (used by ``robovision subscribe`` and ``robovision demo``)."""
    if isinstance(message, DetectionMessage):
        found = ", ".join(
            f"{d.label} {d.score:.2f}" + (f" @ {d.bearing_deg:+.1f}°" if d.bearing_deg is not None else "")
            for d in message.detections
        )
        total = message.latency_ms.get("total")
        latency = f" {total:.0f} ms" if total is not None else ""
        return f"seq {message.seq:>5} frame {message.frame_id:>5}{latency}: {found or 'nothing'}"
    if isinstance(message, StatusMessage):
        p50 = message.latency_ms.get("p50")
        p95 = message.latency_ms.get("p95")
        latency = ""
        if p50 is not None and p95 is not None:
            latency = f", latency p50 {p50:.0f} ms p95 {p95:.0f} ms"
        return (
            f"status: {message.fps:.1f} fps{latency}, camera {message.camera_state}, "
            f"dropped {message.dropped_capture} capture / {message.dropped_subscribers} subscriber, "
            f"{message.subscribers} subscriber(s), {message.backend}, up {message.uptime_s:.0f} s"
        )
    if isinstance(message, HelloMessage):
        return f"hello: robovision {message.version}, model {message.model}, source {message.source}"
    if isinstance(message, GapMessage):
        return f"gap: {message.dropped} message(s) dropped ({message.dropped_detections} detection)"
    if isinstance(message, ErrorMessage):
        return f"error: {message.code}: {message.message}"
    return f"{message.type}: {json.dumps(dict(message.raw))}"
