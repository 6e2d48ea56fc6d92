"""``robovision subscribe``: print what the detection socket publishes."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from robovision.errors import EXIT_OK, ConfigError, ServiceUnavailableError

if TYPE_CHECKING:
    from robovision.client import ConnectionEvent

NOTICE_EVERY_S = 10.0
NOTICE_BURST = 3
"""Outages told on stderr: up to NOTICE_BURST in a row, then one per NOTICE_EVERY_S seconds."""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "subscribe",
        help="print the messages of a running detection service",
        description=(
            "Connect to the detection socket and print each message: a readable line by "
            "default, the JSON line itself with --raw. Waits for the service when it is not "
            "running and reconnects when it restarts (saying so on stderr). With --no-reconnect "
            "a missing service, or a refusal, ends it with exit code 3."
        ),
    )
    parser.add_argument(
        "--socket",
        type=Path,
        default=None,
        help="socket path (default: /run/robovision/detections.sock if it exists, else this user's)",
    )
    parser.add_argument("--count", type=int, default=None, help="stop after N detection messages")
    parser.add_argument("--raw", action="store_true", help="print the JSON lines as received")
    parser.add_argument(
        "--no-reconnect",
        action="store_true",
        help="do not wait for the service; exit when the connection ends",
    )
    parser.set_defaults(func=run)


class Notices:
    """Tells the person at the terminal when the service is away and when it is back.

    One "waiting" line per outage and one "connected"/"reconnected" line when it ends.
    Rate-limited: up to ``burst`` outages are told in a row, then one per ``every_s``
    seconds; the outages not told are counted, and the count comes with the next line.
    """

    def __init__(self, stream: TextIO, every_s: float = NOTICE_EVERY_S, burst: int = NOTICE_BURST) -> None:
        self.stream = stream
        self.every_s = every_s
        self.burst = burst
        self._tokens = float(burst)
        self._refilled_mono = time.monotonic()
        self._announced = False
        self._held = 0

    def __call__(self, event: ConnectionEvent) -> None:
        if event.kind == "waiting":
            self._announced = self._take_token()
            if not self._announced:
                self._held += 1
                return
            self._say(
                f"waiting for the service at {event.path} ({event.reason}); start it with "
                f"`robovision run` or `sudo systemctl start robovision`{self._held_note()}"
            )
        elif event.kind == "connected" and self._announced:
            self._announced = False
            again = "reconnected" if event.reconnect else "connected"
            self._say(f"{again} to {event.path} after {event.down_s:.1f} s")

    def _take_token(self) -> bool:
        now = time.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._refilled_mono) / self.every_s)
        self._refilled_mono = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _held_note(self) -> str:
        held, self._held = self._held, 0
        return f" ({held} earlier outage(s) not shown)" if held else ""

    def _say(self, text: str) -> None:
        print(f"robovision subscribe: {text}", file=self.stream, flush=True)


def run(args: argparse.Namespace) -> int:
    from robovision.client import DetectionMessage, ErrorMessage, Subscriber, format_message

    if args.count is not None and args.count < 1:
        raise ConfigError(f"--count must be 1 or more, got {args.count}")
    seen = 0
    with Subscriber(
        args.socket, reconnect=not args.no_reconnect, raw=args.raw, on_connection=Notices(sys.stderr)
    ) as subscriber:
        for message in subscriber:
            if args.raw:
                print(json.dumps(message, separators=(",", ":")), flush=True)
                kind = message.get("type")
                refusal = message.get("message") if kind == "error" else None
            else:
                print(format_message(message), flush=True)
                kind = message.type
                refusal = message.message if isinstance(message, ErrorMessage) else None
            if refusal is not None:
                raise ServiceUnavailableError(
                    f"the service at {subscriber.path} refused this subscriber: {refusal}"
                )
            seen += int(kind == DetectionMessage.type)
            if args.count is not None and seen >= args.count:
                break
    return EXIT_OK
