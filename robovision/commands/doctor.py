"""``robovision doctor``: check what the service needs on this machine and name each fix.

Checks, for the user the service runs as (``--user``, default: the current user): the
config file, the source it names (picamera2 importable for a Pi camera, the path for a
replay), the camera device nodes and their permissions, membership of the ``video``
group, the interpreter packages and numpy, the model file and its card, and the socket
folder. Python packages are checked in the interpreter running this command: run the
service's own (``/opt/robovision/venv/bin/robovision doctor``). Exit code 1 when any
check fails. A config that does not load skips the checks that depend on it.
"""

from __future__ import annotations

import argparse
import grp
import importlib
import os
import pwd
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robovision.config import DEFAULT_CONFIG_PATH, SYSTEM_SOCKET_PATH, Config, load_config
from robovision.errors import EXIT_INTERNAL, EXIT_OK, RobovisionError
from robovision.paths import shipped_model_path

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
PICAMERA2_FIX = (
    "sudo apt install python3-picamera2, and make the service's venv with --system-site-packages "
    "(python3 -m venv --system-site-packages VENV) so it sees that package; deploy/install.sh does both"
)
TRAIN_COMMAND = "robovision train --config models/toycar.train.toml --out models/"
CAMERA_SCHEMES = ("picamera2", "camera", "v4l2", "/dev/video")
PICAMERA_SPEC = re.compile(r"^picamera2(:\d+)?$")
CAMERA_GROUP = "video"


@dataclass(frozen=True)
class Check:
    name: str
    outcome: str
    detail: str
    fix: str = ""

    def lines(self) -> list[str]:
        out = [f"[{self.outcome:^4}] {self.name}: {self.detail}"]
        if self.fix:
            out.append(f"       fix: {self.fix}")
        return out


@dataclass(frozen=True)
class UserInfo:
    """Who the checks are for: a name, uid, and the names and ids of every group it belongs to."""

    name: str
    uid: int
    gids: frozenset[int]
    groups: frozenset[str]

    @classmethod
    def lookup(cls, name: str | None = None) -> UserInfo:
        """From the system's user and group databases (``None``: the user running this)."""
        entry = pwd.getpwuid(os.getuid()) if name is None else pwd.getpwnam(name)
        gids = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if entry.pw_name in g.gr_mem}
        if name is None:
            gids |= set(os.getgroups())
        names = set()
        for gid in gids:
            try:
                names.add(grp.getgrgid(gid).gr_name)
            except KeyError:
                names.add(str(gid))
        return cls(entry.pw_name, entry.pw_uid, frozenset(gids), frozenset(names))


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check camera, permissions, interpreter, model and socket; name each fix",
        description=(__doc__ or "").replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, help=f"config to check (default {DEFAULT_CONFIG_PATH})")
    parser.add_argument("--user", default=None, help="check for this user, e.g. robovision (default: you)")
    parser.add_argument("--dev", type=Path, default=Path("/dev"), help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        user = UserInfo.lookup(args.user)
    except KeyError:
        print(f"[FAIL] user: no user {args.user!r} on this system")
        print("       fix: create it (deploy/install.sh does) or pass --user with an existing name")
        return EXIT_INTERNAL
    checks = run_checks(args.config, user, args.dev)
    for check in checks:
        print("\n".join(check.lines()))
    failed = [c for c in checks if c.outcome == FAIL]
    print(f"{len(checks)} checks for user {user.name}: {len(failed)} failed")
    return EXIT_INTERNAL if failed else EXIT_OK


def run_checks(config_path: Path | None, user: UserInfo, dev_dir: Path = Path("/dev")) -> list[Check]:
    checks: list[Check] = []
    config, config_check = check_config(config_path)
    checks.append(config_check)
    uses_camera = config is not None and config.source.spec.startswith(CAMERA_SCHEMES)
    if config is not None:
        checks.append(check_source(config))
    checks.append(check_video_group(user, required=uses_camera))
    if config is None:
        skipped = "not checked: the config above does not load, so its values are unknown"
        checks.append(Check("camera nodes", SKIP, skipped))
        checks.extend(check_interpreter("auto"))
        checks.append(Check("model", SKIP, skipped))
        checks.append(Check("socket folder", SKIP, skipped))
        return checks
    checks.extend(check_camera_nodes(dev_dir, user, required=uses_camera))
    checks.extend(check_interpreter(config.model.backend))
    checks.append(check_model(config))
    checks.append(check_socket_folder(config, user))
    return checks


def check_config(path: Path | None) -> tuple[Config | None, Check]:
    """The loaded config (None when it does not load) and the check's outcome."""
    try:
        config = load_config(path)
    except RobovisionError as exc:
        return None, Check("config", FAIL, str(exc), "edit the file as the message says")
    if config.file is None:
        return config, Check(
            "config", WARN, f"no {DEFAULT_CONFIG_PATH}; built-in defaults apply",
            "copy deploy/config.example.toml there to set the camera, model and socket",
        )
    return config, Check("config", OK, f"{config.file} is valid (source {config.source.spec})")


def check_source(config: Config) -> Check:
    """A Pi camera needs picamera2 importable; a replay, file or folder must exist."""
    from robovision.service.runner import source_path

    spec = config.source.spec
    if PICAMERA_SPEC.match(spec):
        return check_picamera2()
    path = source_path(spec)
    if path is None:
        return Check("source", OK, f"{spec}: a camera or stream, opened (and retried) by the service")
    if not path.exists():
        return Check(
            "source", FAIL, f"{spec} does not exist, so the service refuses to start (exit 2)",
            "fix [source] spec (relative paths start from the config file's folder)",
        )
    return Check("source", OK, f"{spec} exists")


def check_picamera2() -> Check:
    """Whether ``picamera2`` imports in this interpreter (the Pi camera's library, from apt)."""
    try:
        module = importlib.import_module("picamera2")
    except Exception as exc:  # an ImportError, or a broken libcamera binding failing on import
        return Check("source", FAIL, f"picamera2 cannot be imported ({exc})", PICAMERA2_FIX)
    version = getattr(module, "__version__", "")
    where = Path(getattr(module, "__file__", "") or "?").parent
    return Check("source", OK, f"picamera2 {version} importable from {where}".replace("  ", " "))


def check_video_group(user: UserInfo, *, required: bool) -> Check:
    if CAMERA_GROUP in user.groups:
        return Check("video group", OK, f"{user.name} is in the {CAMERA_GROUP} group")
    if user.uid == 0:
        return Check(
            "video group", OK,
            "root opens every device; the service user needs the group (check it with --user robovision)",
        )
    outcome = FAIL if required else WARN
    return Check(
        "video group",
        outcome,
        f"{user.name} is not in the {CAMERA_GROUP} group, so it cannot open the camera devices",
        f"sudo usermod -aG {CAMERA_GROUP} {user.name}, then log in again (or restart the service)",
    )


def _camera_nodes(dev_dir: Path) -> list[Path]:
    patterns = ("video*", "media*", "v4l-subdev*", "dma_heap/*")
    return sorted(p for pattern in patterns for p in dev_dir.glob(pattern))


def can_read_write(path: Path, user: UserInfo) -> bool:
    """Whether ``user`` may open ``path`` for reading and writing, from its mode bits and owners."""
    info = path.stat()
    if user.uid == 0:
        return True
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid == user.uid:
        return mode & 0o600 == 0o600
    if info.st_gid in user.gids:
        return mode & 0o060 == 0o060
    return mode & 0o006 == 0o006


def check_camera_nodes(dev_dir: Path, user: UserInfo, *, required: bool) -> Iterable[Check]:
    nodes = _camera_nodes(dev_dir)
    video = [n for n in nodes if n.name.startswith("video")]
    media = [n for n in nodes if n.name.startswith("media")]
    if not video or not media:
        missing = "/dev/video*" if not video else "/dev/media*"
        yield Check(
            "camera nodes",
            FAIL if required else WARN,
            f"no {missing} device nodes{'' if required else ' (the configured source needs no camera)'}",
            "connect the camera ribbon with the power off, keep camera_auto_detect=1 in "
            "/boot/firmware/config.txt, reboot, then check `rpicam-hello --list-cameras`",
        )
        return
    blocked = [str(n) for n in nodes if not can_read_write(n, user)]
    if blocked:
        yield Check(
            "camera permissions",
            FAIL if required else WARN,
            f"{user.name} cannot open {', '.join(blocked[:6])}{' ...' if len(blocked) > 6 else ''}",
            f"sudo usermod -aG {CAMERA_GROUP} {user.name} (the nodes belong to group {CAMERA_GROUP} on "
            "Raspberry Pi OS); log in again",
        )
        return
    detail = f"{len(video)} video and {len(media)} media nodes, all usable by {user.name}"
    yield Check("camera nodes", OK, detail)


def check_interpreter(backend: str) -> Iterable[Check]:
    from importlib.metadata import PackageNotFoundError, version

    from robovision.interpreter import backend_status

    try:
        numpy_version = version("numpy")
    except PackageNotFoundError:
        yield Check("numpy", FAIL, "numpy is not installed", "pip install robovision (it pulls numpy)")
        return
    yield Check("numpy", OK, f"numpy {numpy_version}")
    status = backend_status()
    usable = {name for name, text in status.items() if text.startswith("ok")}
    for name, text in status.items():
        outcome = OK if name in usable else (FAIL if backend == name else WARN)
        detail = text.removeprefix("ok ").strip() if name in usable else text
        yield Check(f"interpreter {name}", outcome, detail, "" if outcome == OK else "see the message above")
    if backend == "auto" and not usable:
        yield Check("interpreter", FAIL, "no usable TFLite interpreter", "pip install ai-edge-litert")


def check_model(config: Config) -> Check:
    from robovision.service.runner import load_model

    path = config.model.path
    card = path.with_suffix(".toml")
    try:
        model = load_model(config)
    except RobovisionError as exc:
        fix = f"point [model] path at a .tflite file with its card {card.name}"
        if not path.exists():
            fix = (
                f"point [model] path at the shipped model ({shipped_model_path()}), or rebuild it from "
                f"the checkout: {TRAIN_COMMAND}"
            )
        return Check("model", FAIL, str(exc), fix)
    card_note = f"card {card}" if card.exists() else "no card (defaults and a guessed decoder)"
    backend = model.interpreter.backend_name
    return Check("model", OK, f"{path} loads with {backend}: {model.name}, {card_note}")


def check_socket_folder(config: Config, user: UserInfo) -> Check:
    socket_path = config.socket.resolved_path
    if config.socket.path is None and user.uid != os.getuid():
        socket_path = SYSTEM_SOCKET_PATH  # another user's checks are for the systemd service
    folder = socket_path.parent
    if socket_path.is_dir():
        return Check(
            "socket folder", FAIL, f"socket path {socket_path} is a folder",
            f"give the socket file's path, e.g. {socket_path / 'detections.sock'}",
        )
    if not folder.exists():
        return _missing_socket_folder(folder, explicit=config.socket.path is not None)
    info = folder.stat()
    writable = user.uid == 0 or (info.st_uid == user.uid and info.st_mode & 0o300 == 0o300) or (
        info.st_gid in user.gids and info.st_mode & 0o030 == 0o030) or info.st_mode & 0o003 == 0o003
    if not writable:
        return Check(
            "socket folder", FAIL, f"{folder} is not writable by {user.name}",
            f"chown {user.name} {folder}, or set [socket] path elsewhere",
        )
    return Check("socket folder", OK, f"{folder} is writable by {user.name}; socket {socket_path.name}")


def _missing_socket_folder(folder: Path, *, explicit: bool) -> Check:
    """The service makes only the default place's folder (systemd makes /run/robovision)."""
    if folder == SYSTEM_SOCKET_PATH.parent:
        return Check("socket folder", OK, f"{folder} is created by systemd (RuntimeDirectory=) at start")
    if explicit:
        return Check(
            "socket folder", FAIL, f"{folder}, the folder of [socket] path, does not exist",
            f"create it for the service user (mkdir -p {folder}) or choose a path in an existing folder",
        )
    if folder.parent.is_dir() and os.access(folder.parent, os.W_OK):
        return Check("socket folder", OK, f"{folder} will be created at start")
    return Check(
        "socket folder", FAIL, f"{folder} does not exist and cannot be created",
        "set [socket] path to a folder the service user can write",
    )
