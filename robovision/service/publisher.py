"""The detection socket: a Unix stream socket that fans newline-delimited JSON out to subscribers.

One thread owns every socket and waits on a ``selectors`` selector. The inference loop
hands it finished lines through :meth:`Publisher.publish`, which only appends to each
subscriber's bounded queue and wakes the thread: it never touches a socket, so a slow or
stuck subscriber cannot hold inference back.

Per subscriber:

- a queue of at most ``queue_messages`` lines; when full, the **oldest** line is dropped,
  counted, and a ``gap`` message telling how many were lost goes out before the next line;
- the unsent tail of the line being written is kept, so partial writes are completed and
  every line a subscriber receives is whole and in order;
- whatever it sends is read and thrown away; more than ``max_inbound_bytes_per_s`` in one
  second disconnects it, after a one-line ``error`` (``too_much_input``) sent if the socket
  takes it at once;
- a reset or broken pipe is a normal departure: it is dropped quietly.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import grp
import logging
import os
import selectors
import socket
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from robovision.config import DEFAULT_SEND_BUFFER_BYTES, prepare_socket_folder
from robovision.errors import ConfigError, RobovisionError, ServiceError, SocketInUseError
from robovision.messages import encode_line, error_message, gap_message
from robovision.service.throttle import Throttle

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660
_RECV_CHUNK = 4096
_SELECT_TIMEOUT_S = 0.25
_DEPARTURE_ERRNOS = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN, errno.ECONNABORTED)
_MAX_UNIX_PATH_BYTES = 107
"""The longest socket path Linux takes (``sun_path`` is 108 bytes with its terminating NUL)."""


@dataclass
class _Subscriber:
    sub_id: int
    sock: socket.socket
    peer: str
    queue: collections.deque[tuple[bytes, bool]]
    tail: memoryview | None = None
    reading: bool = True
    writing: bool = False
    pending_dropped: int = 0
    pending_dropped_detections: int = 0
    dropped_total: int = 0
    sent_lines: int = 0
    inbound_window_mono: float = field(default_factory=time.monotonic)
    inbound_bytes: int = 0


@dataclass(frozen=True)
class SubscriberStats:
    sub_id: int
    dropped: int
    queued: int

    def to_dict(self) -> dict[str, int]:
        return {"id": self.sub_id, "dropped": self.dropped, "queued": self.queued}


class Publisher:
    """Owns the listening socket(s) and every subscriber connection.

    Call :meth:`start`
    once (it binds, reclaiming a stale socket file and refusing when a live service already
    answers there), :meth:`publish` from the producing thread, and :meth:`stop` at the end.
    ``create_folder`` lets it make the socket's missing folder (only for the default place:
    see :func:`robovision.config.prepare_socket_folder`). ``send_buffer_bytes`` is asked as
    SO_SNDBUF of each connection (0: the system's default), which bounds the old lines the
    kernel holds for a reader that stalls.
    """

    def __init__(
        self,
        path: Path,
        *,
        hello: Callable[[int], bytes] | None = None,
        group: str | None = None,
        max_subscribers: int = 8,
        queue_messages: int = 32,
        send_buffer_bytes: int = DEFAULT_SEND_BUFFER_BYTES,
        max_inbound_bytes_per_s: int = 65536,
        tcp_host: str = "127.0.0.1",
        tcp_port: int = 0,
        log_every_s: float = 10.0,
        create_folder: bool = True,
    ) -> None:
        self.path = path
        self._create_folder = create_folder
        self.hello = hello
        """Builds the first line for a new subscriber from its id (None: no greeting)."""
        self._group = group
        self._max_subscribers = max_subscribers
        self._queue_messages = queue_messages
        self._send_buffer_bytes = send_buffer_bytes
        self._max_inbound = max_inbound_bytes_per_s
        self._tcp = (tcp_host, tcp_port) if tcp_port else None
        self._throttle = Throttle(log, log_every_s)

        self._lock = threading.Lock()
        self._subscribers: dict[int, _Subscriber] = {}
        self._next_id = 1
        self._departed_dropped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._selector = selectors.DefaultSelector()
        self._listeners: list[socket.socket] = []
        self._socket_identity: tuple[int, int] | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.heartbeat_mono = time.monotonic()
        self.tcp_address: tuple[str, int] | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Bind and listen, then start the publisher thread."""
        unix = self._bind_unix()
        self._listeners.append(unix)
        if self._tcp is not None:
            self._listeners.append(self._bind_tcp(*self._tcp))
        for listener in self._listeners:
            self._selector.register(listener, selectors.EVENT_READ, "listen")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop the thread, close every connection and remove the socket file if it is still ours."""
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("publisher thread did not stop within %.1f s", timeout_s)
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        self._remove_socket_file()
        with self._lock:
            subscribers = list(self._subscribers.values())
            self._subscribers.clear()
        for sub in subscribers:
            sub.sock.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
        log.info("socket %s closed", self.path)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the producing side -----------------------------------------------------------

    def publish(self, line: bytes, *, is_detection: bool) -> None:
        """Queue one complete JSON line for every subscriber. Never blocks on a socket.

        ``line`` must end with a newline; it is shared, not copied, between subscribers.
        """
        with self._lock:
            for sub in self._subscribers.values():
                if len(sub.queue) >= self._queue_messages:
                    _, dropped_detection = sub.queue.popleft()
                    sub.pending_dropped += 1
                    sub.pending_dropped_detections += int(dropped_detection)
                    sub.dropped_total += 1
                sub.queue.append((line, is_detection))
        self._wake()

    def subscriber_stats(self) -> list[SubscriberStats]:
        with self._lock:
            subscribers = list(self._subscribers.values())
            return [SubscriberStats(s.sub_id, s.dropped_total, len(s.queue)) for s in subscribers]

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def _wake(self) -> None:
        # BlockingIOError: a wake-up is already pending; OSError: the pair is closed during stop.
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    # -- binding ----------------------------------------------------------------------

    def _bind_unix(self) -> socket.socket:
        if len(os.fsencode(self.path)) > _MAX_UNIX_PATH_BYTES:
            raise ConfigError(
                f"socket path {self.path} is {len(os.fsencode(self.path))} bytes long; Unix sockets take "
                f"at most {_MAX_UNIX_PATH_BYTES}: choose a shorter socket.path (--socket)"
            )
        prepare_socket_folder(self.path, create=self._create_folder)
        self._reclaim_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
        except OSError as exc:
            sock.close()
            raise bind_error(self.path, exc) from None
        info = os.stat(self.path)
        self._socket_identity = (info.st_dev, info.st_ino)
        os.chmod(self.path, SOCKET_MODE)
        if self._group:
            self._chown_group(self._group)
        sock.listen(16)
        sock.setblocking(False)
        log.info("listening on %s (mode %o, group %s)", self.path, SOCKET_MODE, self._group or "default")
        return sock

    def _reclaim_stale(self) -> None:
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode):
            raise ConfigError(
                f"{self.path} exists and is not a socket; remove it or choose another socket.path (--socket)"
            )
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(self.path))
        except ConnectionRefusedError:
            log.info("removing stale socket %s left by a process that is gone", self.path)
            self.path.unlink(missing_ok=True)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ServiceError(
                f"cannot check the existing socket {self.path}: {exc.strerror}; remove it if no service runs"
            ) from None
        finally:
            probe.close()
        raise SocketInUseError(
            f"a robovision service is already running on {self.path}; stop it first "
            "(systemctl stop robovision) or give this one another socket.path"
        )

    def _chown_group(self, group: str) -> None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError(
                f"socket.group {group!r} does not exist; create it (groupadd {group}) "
                "or leave socket.group empty"
            ) from None
        try:
            os.chown(self.path, -1, gid)
        except PermissionError:
            raise ConfigError(
                f"cannot give {self.path} to group {group!r}: the service user must be a member of it "
                f"(usermod -aG {group} <service user>)"
            ) from None

    def _bind_tcp(self, host: str, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise ServiceError(
                f"cannot listen on TCP {host}:{port}: {exc.strerror}; choose another socket.tcp_port"
            ) from None
        sock.listen(16)
        sock.setblocking(False)
        self.tcp_address = sock.getsockname()[:2]
        log.info("also listening on TCP %s:%d (loopback only)", *self.tcp_address)
        return sock

    def _remove_socket_file(self) -> None:
        if self._socket_identity is None:
            return
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return
        if (info.st_dev, info.st_ino) == self._socket_identity:
            self.path.unlink(missing_ok=True)

    # -- the publisher thread ---------------------------------------------------------

    def _run(self) -> None:
        try:
            self._serve()
        except Exception:
            # The frame loop sees the thread gone and stops the service with an error.
            log.exception("publisher thread failed")

    def _serve(self) -> None:
        while not self._stop.is_set():
            self.heartbeat_mono = time.monotonic()
            for key, mask in self._selector.select(_SELECT_TIMEOUT_S):
                if key.data == "listen":
                    self._accept(key.fileobj)  # type: ignore[arg-type]
                elif key.data == "wake":
                    self._drain_wake()
                else:
                    self._service(key.data, mask)
            self._flush_all()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, address = listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                self._throttle.log("accept", logging.WARNING, "accept failed: %s", exc.strerror)
                return
            conn.setblocking(False)
            peer = address if isinstance(address, str) and address else str(address or "unix")
            if self.subscriber_count >= self._max_subscribers:
                self._refuse(conn)
                continue
            if self._send_buffer_bytes:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer_bytes)
            with self._lock:
                sub_id = self._next_id
                self._next_id += 1
                sub = _Subscriber(sub_id, conn, peer, collections.deque())
                if self.hello is not None:
                    sub.queue.append((self.hello(sub_id), False))
                self._subscribers[sub_id] = sub
            self._selector.register(conn, selectors.EVENT_READ, sub)
            log.info("subscriber %d connected (%d connected)", sub_id, self.subscriber_count)

    def _refuse(self, conn: socket.socket) -> None:
        line = encode_line(
            error_message(
                "too_many_subscribers",
                f"this service accepts at most {self._max_subscribers} subscribers; "
                "disconnect another one or raise socket.max_subscribers",
            )
        )
        try:
            conn.send(line)
        except OSError as exc:
            log.debug("could not tell a refused subscriber why: %s", exc)
        conn.close()
        self._throttle.log(
            "refuse", logging.WARNING, "refused a subscriber: %d already connected", self._max_subscribers
        )

    def _service(self, sub: _Subscriber, mask: int) -> None:
        if mask & selectors.EVENT_READ and not self._read(sub):
            return
        if mask & selectors.EVENT_WRITE:
            self._flush(sub)

    def _read(self, sub: _Subscriber) -> bool:
        """Read and discard what the subscriber sent. False if it was dropped."""
        for _ in range(16):
            try:
                data = sub.sock.recv(_RECV_CHUNK)
            except BlockingIOError:
                return True
            except OSError as exc:
                self._drop(sub, f"read failed ({exc.strerror})", quiet=exc.errno in _DEPARTURE_ERRNOS)
                return False
            if not data:
                # The peer closed its sending side; it may still read. A closed peer shows up
                # as a failed send within one status interval.
                sub.reading = False
                self._update_interest(sub)
                return True
            now = time.monotonic()
            if now - sub.inbound_window_mono >= 1.0:
                sub.inbound_window_mono = now
                sub.inbound_bytes = 0
            sub.inbound_bytes += len(data)
            if sub.inbound_bytes > self._max_inbound:
                self._part(
                    sub,
                    "too_much_input",
                    f"this connection sent more than {self._max_inbound} bytes in one second; subscribers "
                    "are expected to send nothing (the limit is socket.max_inbound_bytes_per_s)",
                )
                self._drop(sub, f"it sent more than {self._max_inbound} bytes in one second", quiet=False)
                return False
        return True

    def _part(self, sub: _Subscriber, code: str, text: str) -> None:
        """Best effort, never blocking: finish the line in flight, then one ``error`` line.

        Whatever the socket does not take at once is given up; the connection closes next.
        """
        parting = (bytes(sub.tail) if sub.tail is not None else b"") + encode_line(error_message(code, text))
        sub.tail = None
        try:
            sub.sock.send(parting)
        except OSError as exc:
            log.debug("could not tell subscriber %d why it is dropped: %s", sub.sub_id, exc)

    def _flush_all(self) -> None:
        with self._lock:
            pending = [s for s in self._subscribers.values() if s.queue or s.pending_dropped]
        for sub in pending:
            if not sub.writing:
                self._flush(sub)

    def _flush(self, sub: _Subscriber) -> None:
        """Send queued lines until the socket would block; keep the unsent tail of the current line."""
        while True:
            if sub.tail is None:
                line = self._next_line(sub)
                if line is None:
                    break
                sub.tail = memoryview(line)
            try:
                sent = sub.sock.send(sub.tail)
            except BlockingIOError:
                break
            except OSError as exc:
                self._drop(sub, f"send failed ({exc.strerror})", quiet=exc.errno in _DEPARTURE_ERRNOS)
                return
            sub.tail = sub.tail[sent:]
            if not len(sub.tail):
                sub.tail = None
                sub.sent_lines += 1
        self._update_interest(sub)

    def _next_line(self, sub: _Subscriber) -> bytes | None:
        with self._lock:
            if sub.pending_dropped:
                line = encode_line(gap_message(sub.pending_dropped, sub.pending_dropped_detections))
                sub.pending_dropped = 0
                sub.pending_dropped_detections = 0
                return line
            if sub.queue:
                return sub.queue.popleft()[0]
        return None

    def _update_interest(self, sub: _Subscriber) -> None:
        """Register the socket for reading while it may send, and for writing while lines wait."""
        if sub.sock.fileno() < 0:
            return
        with self._lock:
            want_write = sub.tail is not None or bool(sub.queue) or sub.pending_dropped > 0
        sub.writing = want_write
        events = (selectors.EVENT_READ if sub.reading else 0) | (selectors.EVENT_WRITE if want_write else 0)
        try:
            key = self._selector.get_key(sub.sock)
        except KeyError:
            if events:
                self._selector.register(sub.sock, events, sub)
            return
        if not events:
            self._selector.unregister(sub.sock)
        elif key.events != events:
            self._selector.modify(sub.sock, events, sub)

    def _drop(self, sub: _Subscriber, why: str, *, quiet: bool) -> None:
        with self._lock:
            if self._subscribers.pop(sub.sub_id, None) is None:
                return
            self._departed_dropped += sub.dropped_total
        with contextlib.suppress(KeyError):  # it may not be waiting on anything
            self._selector.unregister(sub.sock)
        sub.sock.close()
        if quiet:
            log.info("subscriber %d left (%d connected)", sub.sub_id, self.subscriber_count)
        else:
            log.warning("dropped subscriber %d: %s", sub.sub_id, why)


def bind_error(path: Path, exc: OSError) -> RobovisionError:
    """The error for a failed ``bind`` of the socket at ``path``, with the fix for its cause."""
    folder = path.parent
    if exc.errno == errno.EADDRINUSE:
        return SocketInUseError(
            f"another process bound {path} at the same moment; stop the other robovision "
            "service or set socket.path to another place"
        )
    if exc.errno in (errno.ENOENT, errno.EPERM):
        return ConfigError(
            f"cannot create the socket {path} ({exc.strerror}): {folder} takes no new files (a virtual "
            "filesystem such as /proc or /sys?); choose a socket path in an ordinary folder such as "
            "/run/robovision or /tmp"
        )
    if exc.errno == errno.EACCES:
        return ConfigError(
            f"cannot create the socket {path}: permission denied; give {folder} to the service user "
            f"(chown USER {folder}), or choose a socket path in a folder it can write"
        )
    if exc.errno == errno.EROFS:
        return ConfigError(
            f"cannot create the socket {path}: {folder} is on a read-only filesystem (under systemd, "
            "ProtectSystem=strict leaves only /run/robovision writable); leave socket.path empty "
            "for the default place"
        )
    return ServiceError(f"cannot bind {path}: {exc.strerror or exc}; check the folder's owner and mode")
