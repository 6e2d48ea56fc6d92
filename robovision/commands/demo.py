"""``robovision demo``: the service on the bundled photographs, watched by a subscriber.

Starts ``robovision run`` as a real subprocess on a replay of ``data/toycars/images`` with
the shipped toy-car model (``models/toycar.tflite``), on a socket in a fresh temporary
folder, with a config file written there (so no file in /etc is read). It then
subscribes and prints one line per message: --count detection messages, then the first
status message if none came yet (detection messages meanwhile are not printed). Then it
stops the service with SIGTERM and reports how it ended. No camera is needed.

Ctrl-C or SIGTERM stop the service and remove the temporary folder before the demo exits.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from robovision.client import DetectionMessage, Message, StatusMessage, Subscriber, format_message
from robovision.config import check_option
from robovision.errors import EXIT_OK, ConfigError, RobovisionError, ServiceError
from robovision.paths import bundled_images_dir, shipped_model_path

_CONNECT_TIMEOUT_S = 60.0
_QUIET_LIMIT_S = 30.0
"""The demo gives up when no detection message came for this long."""
_HALT_TIMEOUT_S = 5.0


class _Terminated(BaseException):
    """SIGTERM arrived: unwind as Ctrl-C does, so the service and the temporary folder go too."""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the service on the bundled photographs and print what a subscriber receives",
        description=(__doc__ or "").replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--count",
        type=int,
        default=12,
        help="detection messages to print (default 12); then the demo waits for one status message",
    )
    parser.add_argument(
        "--fps", type=float, default=8.0, help="replay rate, above 0 and up to 240 (default 8)"
    )
    parser.add_argument(
        "--images", type=Path, default=None, help="folder of photographs (or a video file) to replay"
    )
    parser.add_argument("--model", type=Path, default=None, help="model (default: models/toycar.tflite)")
    parser.add_argument("--raw", action="store_true", help="print the JSON lines instead of summaries")
    parser.set_defaults(func=run, default_verbosity=0)


def demo_model() -> Path:
    """The shipped toy-car model."""
    return shipped_model_path()


def checked_inputs(args: argparse.Namespace) -> tuple[Path, Path]:
    """The images and model to use, after checking every option; ``ConfigError`` names the option."""
    from robovision.sources.folder import list_images

    if args.count < 1:
        raise ConfigError(f"--count must be 1 or more, got {args.count}")
    check_option("source.fps", args.fps, "--fps")
    images = (args.images or bundled_images_dir()).resolve()
    if not images.exists():
        raise ConfigError(f"--images {images}: no such folder or file; give a folder of photographs")
    if images.is_dir():
        try:
            list_images(images)
        except RobovisionError as exc:
            raise ConfigError(f"--images {images}: {exc}") from None
    model = (args.model or demo_model()).resolve()
    if args.model is None and not model.is_file():
        raise ConfigError(
            f"the shipped model {model} is missing; train it with `robovision train --config "
            "models/toycar.train.toml --out models/`, or pass --model"
        )
    if not model.is_file():
        raise ConfigError(f"--model {model}: no such file; give a .tflite model with its card beside it")
    return images, model


def write_demo_config(folder: Path, images: Path, model: Path, fps: float) -> Path:
    config = folder / "config.toml"
    config.write_text(
        "# Written by robovision demo; see deploy/config.example.toml for every key.\n"
        "[source]\n"
        f"spec = {json.dumps(f'replay:{images}')}\n"
        f"fps = {fps}\n"
        "size_wh = [640, 480]\n"
        "loop = true\n\n"
        "[model]\n"
        f"path = {json.dumps(str(model))}\n\n"
        "[socket]\n"
        'path = "detections.sock"\n\n'
        "[service]\n"
        "status_interval_s = 1.0\n"
    )
    return config


def run(args: argparse.Namespace) -> int:
    images, model = checked_inputs(args)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    try:
        return _demo(args, images, model)
    except _Terminated:
        print("demo: SIGTERM received; service stopped, temporary folder removed", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminated()


def _demo(args: argparse.Namespace, images: Path, model: Path) -> int:
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
                try:
                    _watch(service, socket_path, args)
                except (KeyboardInterrupt, _Terminated):
                    raise
                except BaseException:
                    _halt(service)
                    _print_log(log_path)
                    raise
                code = _stop(service)
            finally:
                _halt(service)
        if code != 0 or socket_path.exists():
            _print_log(log_path)
            raise ServiceError(f"the service ended with exit code {code}; its log is above")
    print("demo: service stopped cleanly (exit 0, socket removed)", flush=True)
    return EXIT_OK


def _watch(service: subprocess.Popen[bytes], socket_path: Path, args: argparse.Namespace) -> None:
    """Print ``args.count`` detection messages, and messages of other kinds, until a status came."""
    deadline = time.monotonic() + _CONNECT_TIMEOUT_S
    while not socket_path.exists():
        if service.poll() is not None:
            raise ServiceError(f"the service exited with code {service.returncode} before opening its socket")
        if time.monotonic() > deadline:
            raise ServiceError(f"the service did not open {socket_path} within {_CONNECT_TIMEOUT_S:g} s")
        time.sleep(0.05)
    print(f"demo: subscribed to {socket_path}", flush=True)
    detections = statuses = 0
    last_detection_mono = time.monotonic()
    with Subscriber(socket_path, reconnect=False, timeout_s=_QUIET_LIMIT_S) as subscriber:
        for message in subscriber:
            if isinstance(message, DetectionMessage):
                last_detection_mono = time.monotonic()
                if detections >= args.count:
                    continue  # the count is printed; only a status message is awaited now
                detections += 1
            elif isinstance(message, StatusMessage):
                statuses += 1
                if message.camera_error:
                    raise ServiceError(f"the service cannot read the photographs: {message.camera_error}")
            _print(message, args.raw)
            if detections >= args.count and statuses >= 1:
                return
            if time.monotonic() - last_detection_mono > _QUIET_LIMIT_S:
                raise ServiceError(f"no detection message for {_QUIET_LIMIT_S:g} s")
    raise ServiceError("the service closed the connection early")


def _print(message: Message, raw: bool) -> None:
    if raw:
        print(json.dumps(dict(message.raw), separators=(",", ":")), flush=True)
    else:
        print(format_message(message), flush=True)


def _stop(service: subprocess.Popen[bytes]) -> int:
    t_stop = time.monotonic()
    service.send_signal(signal.SIGTERM)
    try:
        code = service.wait(timeout=10.0)
    except subprocess.TimeoutExpired:
        raise ServiceError("the service did not stop within 10 s of SIGTERM") from None
    took_s = time.monotonic() - t_stop
    print(f"demo: SIGTERM sent; service exited with code {code} in {took_s:.2f} s", flush=True)
    return code


def _halt(service: subprocess.Popen[bytes]) -> None:
    """Make sure the service is gone: SIGTERM, then SIGKILL if it does not stop in time."""
    if service.poll() is not None:
        return
    service.send_signal(signal.SIGTERM)
    try:
        service.wait(timeout=_HALT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        service.kill()
        service.wait()


def _print_log(log_path: Path) -> None:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    print("demo: service log:\n" + "\n".join(text.splitlines()[-40:]), file=sys.stderr)
