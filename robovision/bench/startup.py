"""Start-up time: a real ``robovision run`` process, from spawn to its first detection message."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from robovision.errors import ServiceError

log = logging.getLogger(__name__)

_POLL_S = 0.002


def time_to_first_message(
    model_path: Path,
    frames_dir: Path,
    *,
    backend: str,
    threads: int,
    size_wh: tuple[int, int],
    timeout_s: float = 30.0,
) -> float:
    """Seconds from spawning ``robovision run`` on a replay of ``frames_dir`` to its first detection line.

    A subscriber connects as soon as the socket accepts and the clock stops when a whole
    ``"type": "detections"`` line has arrived. The service gets an empty config file of its
    own, so a system config does not change what is measured. Raises ``ServiceError`` if no
    message comes within ``timeout_s`` (with the end of the service's log).
    """
    with tempfile.TemporaryDirectory(prefix="robovision-bench-") as folder:
        tmp = Path(folder)
        config = tmp / "config.toml"
        config.write_text("# robovision bench: built-in defaults, overridden on the command line\n")
        socket_path = tmp / "run.sock"
        command = [
            sys.executable, "-m", "robovision", "run",
            "--config", str(config),
            "--source", f"replay:{frames_dir}",
            "--size", f"{size_wh[0]}x{size_wh[1]}",
            "--model", str(model_path),
            "--backend", backend,
            "--threads", str(threads),
            "--socket", str(socket_path),
        ]  # fmt: skip
        log_path = tmp / "run.log"
        with log_path.open("wb") as log_file:
            t_spawn = time.monotonic()
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log_file)
            try:
                elapsed = _wait_for_detection(process, socket_path, t_spawn, timeout_s)
            finally:
                _stop(process)
        if elapsed is None:
            tail = " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-3:])
            raise ServiceError(f"robovision run sent no detection within {timeout_s:g} s: {tail}")
        return elapsed


def _wait_for_detection(
    process: subprocess.Popen[bytes], socket_path: Path, t_spawn: float, timeout_s: float
) -> float | None:
    deadline = t_spawn + timeout_s
    sock = _connect(process, socket_path, deadline)
    if sock is None:
        return None
    with sock:
        pending = b""
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(1 << 16)
            except socket.timeout:
                return None
            if not data:
                return None
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            for line in lines:
                if json.loads(line).get("type") == "detections":
                    return time.monotonic() - t_spawn
    return None


def _connect(process: subprocess.Popen[bytes], socket_path: Path, deadline: float) -> socket.socket | None:
    while time.monotonic() < deadline and process.poll() is None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(socket_path))
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            time.sleep(_POLL_S)
    return None


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            log.warning("robovision run did not stop on SIGTERM within 5 s; killing it")
            process.kill()
            process.wait()
