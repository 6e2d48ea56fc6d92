"""A subscriber process for the benchmark: ``python -m robovision.bench.subscriber SOCKET``.

Connects to the detection socket, reads every line until the service closes it, and
prints one JSON object: ``received`` (detection messages), ``latencies_ms``, the
capture-to-receive time of each (this process's ``time.monotonic()`` at receipt minus the
message's ``t_capture_mono``; both read the system-wide monotonic clock), and
``latency_ms``, their p50/p95/p99.
The first ``--skip`` detection messages (the warm-up) are counted but not timed.
Only the standard library is imported, so it starts in a few tens of milliseconds.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from collections.abc import Sequence

from robovision.bench.stats import percentiles

_CONNECT_TIMEOUT_S = 10.0
_CHUNK = 1 << 16


def _connect(path: str, timeout_s: float) -> socket.socket:
    deadline = time.monotonic() + timeout_s
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.002)


def listen(sock: socket.socket, skip: int) -> dict[str, object]:
    """Read until the socket closes; the report printed by ``main``."""
    latencies_ms: list[float] = []
    received = 0
    pending = b""
    while True:
        data = sock.recv(_CHUNK)
        if not data:
            break
        now = time.monotonic()
        lines = (pending + data).split(b"\n")
        pending = lines.pop()
        for line in lines:
            message = json.loads(line)
            if message.get("type") != "detections":
                continue
            received += 1
            if received > skip:
                latencies_ms.append((now - float(message["t_capture_mono"])) * 1000.0)
    return {
        "received": received,
        "latency_ms": percentiles(latencies_ms, (50, 95, 99)),
        "latencies_ms": [round(value, 3) for value in latencies_ms],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robovision.bench.subscriber")
    parser.add_argument("socket", help="the detection socket's path")
    parser.add_argument("--skip", type=int, default=0, help="detection messages to leave out of the timing")
    args = parser.parse_args(argv)
    with _connect(args.socket, _CONNECT_TIMEOUT_S) as sock:
        report = listen(sock, args.skip)
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
