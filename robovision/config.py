"""The service configuration: one TOML file, validated at start, overridable from the command line.

Every key is documented in ``deploy/config.example.toml``. Loading checks each key's
type and range and refuses unknown keys with a close-match suggestion; every error is a
``ConfigError`` naming the file, the key and the fix. Relative paths in the file resolve
against the file's folder (not the working directory); relative paths given on the
command line resolve against the working directory.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from robovision.backend_names import BACKEND_CHOICES
from robovision.errors import ConfigError
from robovision.paths import shipped_model_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

DEFAULT_CONFIG_PATH = Path("/etc/robovision/config.toml")
SOCKET_NAME = "detections.sock"
SYSTEM_SOCKET_PATH = Path("/run/robovision") / SOCKET_NAME

CAMERA_HFOV_DEG: dict[str, float | None] = {
    "v1": 53.5,  # OV5647, 3.60 mm lens
    "v2": 62.2,  # IMX219, 3.04 mm lens
    "v3": 66.0,  # IMX708
    "v3-wide": 102.0,  # IMX708 wide
    "hq": None,  # IMX477: depends on the lens, camera.hfov_deg is required
    "other": None,
}
"""Horizontal field of view of the full sensor width for each Raspberry Pi camera module."""

PATH_SOURCE_SCHEMES = ("replay", "file", "video", "folder", "dir")
"""Source spec schemes whose remainder is a filesystem path (resolved like other paths)."""

DEFAULT_SEND_BUFFER_BYTES = 4096
"""SO_SNDBUF asked for each subscriber connection. Linux doubles it; 8 KiB of kernel buffer
holds about four detection messages of 0.5-1.5 kB (each takes about 2 kB of it), so a reader
that stalls finds at most a few old lines before its ``gap`` message, where the system default
(208 KiB) held about 90."""

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class SourceConfig:
    spec: str = "picamera2:0"
    size_wh: tuple[int, int] = (640, 480)
    fps: float = 30.0
    loop: bool = True
    read_timeout_s: float = 2.0
    retry_initial_s: float = 0.5
    retry_max_s: float = 10.0
    allow_python: bool = False


@dataclass(frozen=True)
class CameraConfig:
    module: str = "v3"
    hfov_deg: float | None = None

    @property
    def resolved_hfov_deg(self) -> float:
        """The configured field of view, else the module's figure (validated to exist at load)."""
        if self.hfov_deg is not None:
            return self.hfov_deg
        figure = CAMERA_HFOV_DEG.get(self.module)
        if figure is None:
            raise ConfigError(
                f"camera.module = {self.module!r} has no known field of view; "
                "set camera.hfov_deg to the lens's horizontal field of view in degrees"
            )
        return figure


@dataclass(frozen=True)
class ModelConfig:
    path: Path = field(default_factory=shipped_model_path)
    backend: str = "auto"
    num_threads: int | None = None
    score_threshold: float | None = None
    max_detections: int | None = None
    class_filter: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SocketConfig:
    path: Path | None = None
    group: str | None = None
    max_subscribers: int = 8
    queue_messages: int = 32
    send_buffer_bytes: int = DEFAULT_SEND_BUFFER_BYTES
    max_inbound_bytes_per_s: int = 65536
    tcp_port: int = 0
    tcp_host: str = "127.0.0.1"

    @property
    def resolved_path(self) -> Path:
        return self.path if self.path is not None else default_socket_path()


@dataclass(frozen=True)
class ServiceConfig:
    status_interval_s: float = 1.0
    log_level: str = "info"
    log_every_s: float = 10.0


@dataclass(frozen=True)
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    socket: SocketConfig = field(default_factory=SocketConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    file: Path | None = None
    """The file this came from; ``None`` for built-in defaults."""


# ---------------------------------------------------------------------------------------
# Key table: section -> key -> (converter, what is expected). A converter takes the raw
# TOML value and the folder relative paths resolve against; it returns the typed value or
# raises ValueError with the expectation.

Converter = Callable[[Any, Path], Any]


def _number(low: float | None = None, high: float | None = None, low_open: bool = False) -> Converter:
    lowest = f"above {low:g}" if low_open else f"from {low:g}"
    if low is not None and high is not None:
        expected = f"a number {lowest} {'and up ' if low_open else ''}to {high:g}"
    elif low is not None:
        expected = f"a number {'>' if low_open else '>='} {low:g}"
    else:
        expected = f"a number <= {high:g}" if high is not None else "a number"

    def convert(value: Any, base: Path) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(expected)
        number = float(value)
        if low is not None and (number < low or (low_open and number == low)):
            raise ValueError(expected)
        if high is not None and number > high:
            raise ValueError(expected)
        return number

    return convert


def _integer(low: int, high: int | None = None) -> Converter:
    expected = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"

    def convert(value: Any, base: Path) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(expected)
        if value < low or (high is not None and value > high):
            raise ValueError(expected)
        return int(value)

    return convert


def _optional(inner: Converter, meaning: str) -> Converter:
    """``inner``, except that 0 stands for "not set" (``None``), which means ``meaning``."""

    def convert(value: Any, base: Path) -> Any:
        if not isinstance(value, bool) and value == 0:
            return None
        try:
            return inner(value, base)
        except ValueError as exc:
            raise ValueError(f"0 ({meaning}) or {exc}") from None

    return convert


def _boolean(value: Any, base: Path) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false")
    return value


def _string(value: Any, base: Path) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("a non-empty string")
    return value


def _choice(*choices: str) -> Converter:
    def convert(value: Any, base: Path) -> str:
        if value not in choices:
            raise ValueError("one of " + ", ".join(repr(c) for c in choices))
        return str(value)

    return convert


def _path(value: Any, base: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise ValueError("a path string")
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)


def _optional_path(value: Any, base: Path) -> Path | None:
    return None if value == "" else _path(value, base)


def _size_wh(value: Any, base: Path) -> tuple[int, int]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and 16 <= v <= 8192 for v in value)
    ):
        raise ValueError("[width, height] in pixels, each from 16 to 8192")
    return int(value[0]), int(value[1])


def _source_spec(value: Any, base: Path) -> str:
    spec = _string(value, base)
    scheme, sep, rest = spec.partition(":")
    if sep and scheme in PATH_SOURCE_SCHEMES and rest and not Path(rest).expanduser().is_absolute():
        return f"{scheme}:{base / rest}"
    return spec


def _class_filter(value: Any, base: Path) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("a list of label strings (an empty list keeps every class)")
    return tuple(value) or None


def _group(value: Any, base: Path) -> str | None:
    if not isinstance(value, str):
        raise ValueError("a group name string")
    return value or None


def _loopback_host(value: Any, base: Path) -> str:
    host = _string(value, base)
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError("a loopback address such as '127.0.0.1' or '::1' (the TCP listener is local only)")
    return host


KEYS: dict[str, dict[str, Converter]] = {
    "source": {
        "spec": _source_spec,
        "size_wh": _size_wh,
        "fps": _number(0.0, 240.0, low_open=True),
        "loop": _boolean,
        "read_timeout_s": _number(0.1, 60.0),
        "retry_initial_s": _number(0.01, 60.0),
        "retry_max_s": _number(0.01, 600.0),
        "allow_python": _boolean,
    },
    "camera": {
        "module": _choice(*CAMERA_HFOV_DEG),
        "hfov_deg": _optional(_number(1.0, 179.0), "take it from camera.module"),
    },
    "model": {
        "path": _path,
        "backend": _choice(*BACKEND_CHOICES),
        "num_threads": _optional(_integer(1, 64), "the interpreter's default"),
        "score_threshold": _number(0.0, 1.0),
        "max_detections": _integer(1, 1000),
        "class_filter": _class_filter,
    },
    "socket": {
        "path": _optional_path,
        "group": _group,
        "max_subscribers": _integer(1, 1024),
        "queue_messages": _integer(1, 100_000),
        "send_buffer_bytes": _integer(0, 64 * 1024 * 1024),
        "max_inbound_bytes_per_s": _integer(64, 64 * 1024 * 1024),
        "tcp_port": _integer(0, 65535),
        "tcp_host": _loopback_host,
    },
    "service": {
        "status_interval_s": _number(0.05, 3600.0),
        "log_level": _choice(*LOG_LEVELS),
        "log_every_s": _number(0.0, 3600.0),
    },
}

RELOADABLE_KEYS = frozenset(
    {
        "model.score_threshold",
        "model.max_detections",
        "model.class_filter",
        "camera.module",
        "camera.hfov_deg",
    }
)
"""Keys a running service applies on SIGHUP; a change to any other key needs a restart."""

_SECTION_TYPES = {
    "source": SourceConfig,
    "camera": CameraConfig,
    "model": ModelConfig,
    "socket": SocketConfig,
    "service": ServiceConfig,
}


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else "; known: " + ", ".join(sorted(choices))


def _convert(origin: str, section: str, key: str, value: Any, base: Path) -> Any:
    converter = KEYS[section][key]
    try:
        return converter(value, base)
    except ValueError as exc:
        raise ConfigError(
            f"{origin}: [{section}] {key} = {value!r} is not valid; expected {exc}. "
            f"Fix the value (see deploy/config.example.toml for every key)"
        ) from None


def _apply(config: Config, origin: str, values: Mapping[str, Any], base: Path) -> Config:
    """A copy of ``config`` with ``values`` (``{"section": {"key": value}}``) checked and applied."""
    sections: dict[str, Any] = {name: getattr(config, name) for name in _SECTION_TYPES}
    for section, table in values.items():
        if section not in KEYS:
            raise ConfigError(f"{origin}: unknown section [{section}]{_suggest(section, list(KEYS))}")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{origin}: {section} must be a table: write it as [{section}] with keys below")
        changes = {}
        for key, value in table.items():
            if key not in KEYS[section]:
                raise ConfigError(
                    f"{origin}: unknown key [{section}] {key}{_suggest(key, list(KEYS[section]))}"
                )
            changes[key] = _convert(origin, section, key, value, base)
        sections[section] = replace(sections[section], **changes)
    checked = replace(config, **sections)
    _check_consistency(checked, origin)
    return checked


def _check_consistency(config: Config, origin: str) -> None:
    if config.camera.hfov_deg is None and CAMERA_HFOV_DEG[config.camera.module] is None:
        raise ConfigError(
            f"{origin}: [camera] module = {config.camera.module!r} needs hfov_deg: set it to the "
            "horizontal field of view of your lens in degrees"
        )
    if config.source.retry_max_s < config.source.retry_initial_s:
        raise ConfigError(
            f"{origin}: [source] retry_max_s ({config.source.retry_max_s:g}) is below retry_initial_s "
            f"({config.source.retry_initial_s:g}); raise retry_max_s"
        )
    if config.source.spec.startswith("python:") and not config.source.allow_python:
        raise ConfigError(
            f"{origin}: [source] spec {config.source.spec!r} loads Python code; it is refused unless "
            "[source] allow_python = true (or --allow-python-source) is set"
        )


def load_config(path: Path | str | None = None, *, required: bool = False) -> Config:
    """Read and validate a config file.

    ``path=None`` reads ``DEFAULT_CONFIG_PATH`` when it exists and falls back to the
    built-in defaults otherwise; an explicit path (or ``required=True``) must exist.
    """
    explicit = path is not None
    file = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    if not file.exists():
        if explicit or required:
            raise ConfigError(
                f"config file {file} does not exist; copy deploy/config.example.toml there or pass --config"
            )
        return Config()
    try:
        with file.open("rb") as handle:
            raw = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML ({exc}); fix the syntax at that line") from None
    except OSError as exc:
        raise ConfigError(
            f"{file}: cannot be read ({exc.strerror}); make it readable by the service user"
        ) from None
    config = _apply(Config(file=file.resolve()), str(file), raw, file.resolve().parent)
    return config


def apply_overrides(config: Config, overrides: Mapping[str, Any], origin: str = "command line") -> Config:
    """Apply ``{"section.key": value}`` overrides (relative paths resolve against the working directory)."""
    nested: dict[str, dict[str, Any]] = {}
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        nested.setdefault(section, {})[key] = value
    return _apply(config, origin, nested, Path.cwd())


def check_option(dotted: str, value: Any, option: str) -> Any:
    """``value`` of command-line ``option`` checked as config key ``dotted`` (``"section.key"``).

    The ``ConfigError`` names the option rather than the key, with the values it takes.
    """
    section, _, key = dotted.partition(".")
    try:
        return KEYS[section][key](value, Path.cwd())
    except ValueError as exc:
        if isinstance(value, (list, tuple)):
            shown = "x".join(str(v) for v in value)
        else:
            shown = str(value) if isinstance(value, (int, float)) else repr(value)
        raise ConfigError(f"{option} {shown} is not valid; expected {exc}") from None


def reloadable_changes(old: Config, new: Config) -> tuple[list[str], list[str]]:
    """Keys that differ between two configs: (applied on reload, needing a restart)."""
    applied: list[str] = []
    restart: list[str] = []
    for section, keys in KEYS.items():
        for key in keys:
            if getattr(getattr(old, section), key) != getattr(getattr(new, section), key):
                dotted = f"{section}.{key}"
                (applied if dotted in RELOADABLE_KEYS else restart).append(dotted)
    return applied, restart


# ---------------------------------------------------------------------------------------
# The socket's default place.


def default_socket_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the service puts its socket when ``socket.path`` is not set.

    Under systemd (``$RUNTIME_DIRECTORY`` set by ``RuntimeDirectory=``) it is that folder;
    otherwise ``$XDG_RUNTIME_DIR/robovision``; otherwise a per-user folder in /tmp.
    """
    env = os.environ if environ is None else environ
    runtime = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        return Path(runtime) / SOCKET_NAME
    xdg = env.get("XDG_RUNTIME_DIR", "")
    if xdg:
        return Path(xdg) / "robovision" / SOCKET_NAME
    return Path("/tmp") / f"robovision-{os.getuid()}" / SOCKET_NAME


def client_socket_path(environ: Mapping[str, str] | None = None) -> Path:
    """The socket a subscriber connects to by default: the system service's, else this user's."""
    env = os.environ if environ is None else environ
    if "RUNTIME_DIRECTORY" not in env and SYSTEM_SOCKET_PATH.exists():
        return SYSTEM_SOCKET_PATH
    return default_socket_path(env)


def prepare_socket_folder(socket_path: Path, *, create: bool = True) -> None:
    """Check that a socket can be made at ``socket_path``; make its folder when ``create`` says so.

    ``create=True`` is for the default place: its one missing folder (``robovision`` in
    ``$XDG_RUNTIME_DIR``, or ``/tmp/robovision-UID``) is made with mode 0700, never its
    parents. The folder of an explicit ``socket.path`` must already exist. A per-user
    folder in /tmp must belong to this user and not be writable by others; anything else
    is refused, since another user could otherwise plant a socket there. Every refusal
    is a ``ConfigError`` naming the path and the fix.
    """
    try:
        _check_socket_place(socket_path, create=create)
    except PermissionError as exc:
        raise ConfigError(
            f"cannot look into {exc.filename or socket_path.parent}: permission denied for user "
            f"{_user_name()}; choose a socket path in a folder that user can enter"
        ) from None


def _check_socket_place(socket_path: Path, *, create: bool) -> None:
    if socket_path.is_dir():
        raise ConfigError(
            f"socket path {socket_path} is a folder; give the path of the socket file itself, "
            f"e.g. {socket_path / SOCKET_NAME}"
        )
    folder = socket_path.parent
    if not folder.is_dir():
        _make_socket_folder(socket_path, create=create)
    info = folder.stat()
    if folder.parent == Path("/tmp") and (info.st_uid != os.getuid() or info.st_mode & 0o022):
        raise ConfigError(
            f"socket folder {folder} belongs to another user or is writable by others; remove it "
            "or set socket.path to a private folder"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(
            f"socket folder {folder} is not writable by user {_user_name()}; give it to that user "
            f"(chown {_user_name()} {folder}) or choose a socket path in a folder it can write"
        )
    if folder.parent == Path("/tmp") and stat.S_IMODE(info.st_mode) != 0o700:
        folder.chmod(0o700)


def _make_socket_folder(socket_path: Path, *, create: bool) -> None:
    folder = socket_path.parent
    if folder.exists():
        raise ConfigError(
            f"the socket's folder {folder} is not a folder; choose a socket path inside a folder"
        )
    if not create:
        raise ConfigError(
            f"the folder of socket path {socket_path} does not exist; create it for the service user "
            f"(mkdir -p {folder}) or choose a socket path in an existing folder"
        )
    try:
        folder.mkdir(mode=0o700)
    except FileNotFoundError:
        raise ConfigError(
            f"cannot create the socket folder {folder}: {folder.parent} does not exist; "
            "set socket.path (--socket) to a path in an existing folder"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot create the socket folder {folder} ({exc.strerror}); create it for user "
            f"{_user_name()} or set socket.path (--socket) to a writable place"
        ) from None


def _user_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())
