"""``robovision subscribe``: print what the detection socket publishes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from robovision.errors import EXIT_OK, ConfigError


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "subscribe",
        help="print the messages of a running detection service",
        description=(
            "Connect to the detection socket and print each message: a readable line by "
            "default, the JSON line itself with --raw. Reconnects when the service restarts."
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
    parser.add_argument("--no-reconnect", action="store_true", help="exit when the connection ends")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robovision.client import DetectionMessage, ErrorMessage, Subscriber, format_message

    if args.count is not None and args.count < 1:
        raise ConfigError(f"--count must be 1 or more, got {args.count}")
    seen = 0
    with Subscriber(args.socket, reconnect=not args.no_reconnect, raw=args.raw) as subscriber:
        for message in subscriber:
            if args.raw:
                print(json.dumps(message, separators=(",", ":")), flush=True)
                is_detection = message.get("type") == "detections"
                if message.get("type") == "error":
                    return 1
            else:
                print(format_message(message), flush=True)
                is_detection = isinstance(message, DetectionMessage)
                if isinstance(message, ErrorMessage):
                    print(f"robovision subscribe: refused: {message.message}", file=sys.stderr)
                    return 1
            seen += int(is_detection)
            if args.count is not None and seen >= args.count:
                break
    return EXIT_OK
