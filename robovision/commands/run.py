"""``robovision run``: the detection service (what the systemd unit starts)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from robovision.backend_names import BACKEND_CHOICES
from robovision.config import CAMERA_HFOV_DEG, DEFAULT_CONFIG_PATH

log = logging.getLogger(__name__)


def _size_wh(text: str) -> list[int]:
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}")
    return [int(width), int(height)]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the detection service: camera to model to the detection socket",
        description=(
            "Capture frames, run the model on the newest one and publish one JSON line per frame "
            f"on a Unix socket. Settings come from the config file (default {DEFAULT_CONFIG_PATH}, "
            "used when it exists); the options below override it. SIGTERM or SIGINT stop the "
            "service, SIGHUP reloads the thresholds and field of view from the config file."
        ),
    )
    parser.add_argument("--config", type=Path, help=f"TOML config (default {DEFAULT_CONFIG_PATH})")
    parser.add_argument("--source", help="source spec: picamera2:0, replay:FOLDER, /dev/video0, ...")
    parser.add_argument("--model", type=Path, help="TFLite model with its card beside it")
    parser.add_argument("--backend", choices=BACKEND_CHOICES)
    parser.add_argument(
        "--threads", type=int, help="interpreter threads: 1 to 64, or 0 for the interpreter's default"
    )
    parser.add_argument(
        "--socket", type=Path, help="Unix socket path for subscribers (its folder must exist)"
    )
    parser.add_argument("--fps", type=float, help="frames per second asked of the source")
    parser.add_argument("--size", type=_size_wh, metavar="WxH", help="frame size asked of the source")
    parser.add_argument("--no-loop", action="store_true", help="replay: stop at the end instead of looping")
    parser.add_argument(
        "--camera-module", choices=tuple(CAMERA_HFOV_DEG), help="Pi camera module (sets the field of view)"
    )
    parser.add_argument(
        "--hfov", type=float, help="horizontal field of view in degrees, 1 to 179; 0 = from --camera-module"
    )
    parser.add_argument("--score-threshold", type=float, help="minimum detection score (0..1)")
    parser.add_argument("--max-detections", type=int, help="at most this many detections per frame")
    parser.add_argument("--status-interval", type=float, help="seconds between status messages")
    parser.add_argument(
        "--allow-python-source",
        action="store_true",
        help="accept a python:module:Class source spec (runs that module's code)",
    )
    parser.set_defaults(func=run, default_verbosity=1)


OPTION_OF_KEY = {
    "source.spec": "--source",
    "model.path": "--model",
    "model.backend": "--backend",
    "model.num_threads": "--threads",
    "socket.path": "--socket",
    "source.fps": "--fps",
    "source.size_wh": "--size",
    "source.loop": "--no-loop",
    "camera.module": "--camera-module",
    "camera.hfov_deg": "--hfov",
    "model.score_threshold": "--score-threshold",
    "model.max_detections": "--max-detections",
    "service.status_interval_s": "--status-interval",
    "source.allow_python": "--allow-python-source",
}
"""The option that sets each config key, for error messages."""


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The ``section.key`` overrides given on the command line, each checked against its key's range.

    A value out of range is a ``ConfigError`` naming the option and the values it takes.
    """
    from robovision.config import check_option

    pairs = {
        "source.spec": args.source,
        "model.path": str(args.model) if args.model else None,
        "model.backend": args.backend,
        "model.num_threads": args.threads,
        "socket.path": str(args.socket) if args.socket else None,
        "source.fps": args.fps,
        "source.size_wh": args.size,
        "source.loop": False if args.no_loop else None,
        "camera.module": args.camera_module,
        "camera.hfov_deg": args.hfov,
        "model.score_threshold": args.score_threshold,
        "model.max_detections": args.max_detections,
        "service.status_interval_s": args.status_interval,
        "source.allow_python": True if args.allow_python_source else None,
    }
    given = {key: value for key, value in pairs.items() if value is not None}
    for key, value in given.items():
        check_option(key, value, OPTION_OF_KEY[key])
    return given


def run(args: argparse.Namespace) -> int:
    from robovision.config import apply_overrides, load_config
    from robovision.service.runner import run_service

    overrides = overrides_from_args(args)

    def current_config() -> Any:
        return apply_overrides(load_config(args.config), overrides, origin="command line")

    config = current_config()
    if args.verbose == 0:
        logging.getLogger().setLevel(config.service.log_level.upper())
    if config.file is not None:
        log.info("config read from %s", config.file)
    reload_config = current_config if config.file is not None else None
    return run_service(config, reload_config=reload_config)
