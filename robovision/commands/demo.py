"""``robovision demo``: the service on the bundled photographs, watched by a subscriber.

Starts ``robovision run`` as a real subprocess on a replay of ``data/toycars/images`` with
the shipped model (the toy-car model, or the SSD reference model while it is missing),
on a socket in a fresh temporary folder, with a config file written there (so no file in
/etc is read). It then subscribes, prints one line per message, stops the service with
SIGTERM and reports how it ended. No camera is needed.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from robovision.client import DetectionMessage, StatusMessage, Subscriber, format_message
from robovision.errors import EXIT_OK, ConfigError, ServiceError
from robovision.paths import bundled_images_dir, reference_model_path, shipped_model_path

_CONNECT_TIMEOUT_S = 60.0


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the service on the bundled photographs and print what a subscriber receives",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--count", type=int, default=12, help="detection messages to show (default 12)")
    parser.add_argument("--fps", type=float, default=8.0, help="replay rate (default 8)")
    parser.add_argument("--images", type=Path, default=None, help="folder of photographs to replay")
    parser.add_argument("--model", type=Path, default=None, help="model (default: the shipped one)")
    parser.add_argument("--raw", action="store_true", help="print the JSON lines instead of summaries")
    parser.set_defaults(func=run, default_verbosity=0)


def demo_model() -> Path:
    """The toy-car model when it is there, else the SSD reference model."""
    toycar = shipped_model_path()
    return toycar if toycar.exists() else reference_model_path()


def write_demo_config(folder: Path, images: Path, model: Path, fps: float) -> Path:
    config = folder / "config.toml"
    config.write_text(
        "# Written by robovision demo; see deploy/config.example.toml for every key.\n"
        "[source]\n"
        f'spec = "replay:{images}"\n'
        f"fps = {fps}\n"
        "size_wh = [640, 480]\n"
        "loop = true\n\n"
        "[model]\n"
        f'path = "{model}"\n\n'
        "[socket]\n"
        'path = "detections.sock"\n\n'
        "[service]\n"
        "status_interval_s = 1.0\n"
    )
    return config


def run(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise ConfigError(f"--count must be 1 or more, got {args.count}")
    images = (args.images or bundled_images_dir()).resolve()
    model = (args.model or demo_model()).resolve()
    with tempfile.TemporaryDirectory(prefix="robovision-demo-") as tmp:
        folder = Path(tmp)
        config = write_demo_config(folder, images, model, args.fps)
        socket_path = folder / "detections.sock"
        log_path = folder / "service.log"
        print(f"demo: model {model.name}, replaying {images} at {args.fps:g} fps", flush=True)
        print(f"demo: starting `robovision run --config {config}`", flush=True)
        with log_path.open("wb") as log_file:
            service = subprocess.Popen(
                [sys.executable, "-m", "robovision", "run", "--config", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
            try:
                _watch(service, socket_path, args)
            except BaseException:
                service.kill()
                service.wait()
                _print_log(log_path)
                raise
            code = _stop(service)
        if code != 0 or socket_path.exists():
            _print_log(log_path)
            raise ServiceError(f"the service ended with exit code {code}; its log is above")
    print("demo: service stopped cleanly (exit 0, socket removed)", flush=True)
    return EXIT_OK


def _watch(service: subprocess.Popen[bytes], socket_path: Path, args: argparse.Namespace) -> None:
    """Print messages until ``args.count`` detection messages and one status message came."""
    deadline = time.monotonic() + _CONNECT_TIMEOUT_S
    while not socket_path.exists():
        if service.poll() is not None:
            raise ServiceError(f"the service exited with code {service.returncode} before opening its socket")
        if time.monotonic() > deadline:
            raise ServiceError(f"the service did not open {socket_path} within {_CONNECT_TIMEOUT_S:g} s")
        time.sleep(0.05)
    print(f"demo: subscribed to {socket_path}", flush=True)
    detections = statuses = 0
    with Subscriber(socket_path, reconnect=False, timeout_s=30.0) as subscriber:
        for message in subscriber:
            if args.raw:
                print(json.dumps(dict(message.raw), separators=(",", ":")), flush=True)
            else:
                print(format_message(message), flush=True)
            detections += isinstance(message, DetectionMessage)
            statuses += isinstance(message, StatusMessage)
            if detections >= args.count and statuses >= 1:
                return
    raise ServiceError("the service closed the connection early")


def _stop(service: subprocess.Popen[bytes]) -> int:
    t_stop = time.monotonic()
    service.send_signal(signal.SIGTERM)
    try:
        code = service.wait(timeout=10.0)
    except subprocess.TimeoutExpired:
        service.kill()
        service.wait()
        raise ServiceError("the service did not stop within 10 s of SIGTERM") from None
    took_s = time.monotonic() - t_stop
    print(f"demo: SIGTERM sent; service exited with code {code} in {took_s:.2f} s", flush=True)
    return code


def _print_log(log_path: Path) -> None:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    print("demo: service log:\n" + "\n".join(text.splitlines()[-40:]), file=sys.stderr)
