"""Start, run and stop the detection service: the body of ``robovision run``.

Order of start-up: the model is loaded first (a model that cannot load stops the service
with ``EXIT_MODEL`` before anything else happens), then the socket is bound (a live
service on the same socket stops this one with ``EXIT_ALREADY_RUNNING``; a stale socket
file left by a crash is removed), then the capture thread starts and the frame loop runs
in the main thread until SIGTERM or SIGINT. SIGHUP reloads the thresholds.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import re
import signal
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, Callable

from robovision.config import Config, SourceConfig
from robovision.errors import ConfigError, SourceError
from robovision.service.capture import Capture, FrameSourceLike, Mailbox, SourceFactory
from robovision.service.loop import FrameLoop
from robovision.service.notify import Notifier
from robovision.service.publisher import Publisher

log = logging.getLogger(__name__)

PYTHON_SOURCE_PREFIX = "python:"
_CAMERA_OR_STREAM = re.compile(r"^(\d+|picamera2(:\d+)?|/dev/.*|[A-Za-z][A-Za-z0-9+.-]*://.*)$")
_PATH_PREFIXES = ("replay:", "file:")


def load_python_source_class(spec: str) -> Callable[..., FrameSourceLike]:
    """The class named by ``python:package.module:ClassName``.

    This runs code from the named module, so the service accepts it only with
    ``[source] allow_python = true`` (or ``--allow-python-source``). It exists for
    custom frame sources (a test rig, an unusual camera); the class must offer the
    ``FrameSource`` methods (``open``, ``read(timeout_s)``, ``close``, ``name``) and take the
    source options (``fps``, ``size_wh``, ``loop``) as keyword arguments.
    """
    target = spec[len(PYTHON_SOURCE_PREFIX) :]
    module_name, _, class_name = target.rpartition(":")
    if not module_name or not class_name:
        raise ConfigError(f"source {spec!r}: write it as python:package.module:ClassName")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"source {spec!r}: cannot import {module_name} ({exc}); check PYTHONPATH") from None
    cls = getattr(module, class_name, None)
    if cls is None or not callable(cls):
        raise ConfigError(f"source {spec!r}: {module_name} has no class {class_name}")
    return cls


def source_options(source: SourceConfig, accepted: Iterable[str]) -> dict[str, Any]:
    """The config's source settings that a source class taking ``accepted`` keywords understands.

    Not every source takes every setting: a folder takes only ``loop``, a stream none. A
    source that takes ``controls`` but no ``fps`` gets the rate as the ``FrameRate`` control.
    """
    names = set(accepted)
    wanted: dict[str, Any] = {"fps": source.fps, "size_wh": source.size_wh, "loop": source.loop}
    options = {key: value for key, value in wanted.items() if key in names}
    if "controls" in names and "fps" not in names:
        options["controls"] = {"FrameRate": source.fps}
    if "read_timeout_s" in names:
        options["read_timeout_s"] = source.read_timeout_s
    return options


def _keyword_parameters(cls: Any) -> list[str]:
    return [
        name
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]


def _accepted_options(probe: Any) -> list[str]:
    """The keywords a built source takes; OpenCV sources take some only for some kinds."""
    kind = getattr(probe, "kind", None)
    if kind == "url":
        return ["read_timeout_s"]
    if kind == "video":
        return ["loop"]
    accepted = _keyword_parameters(type(probe))
    return [name for name in accepted if not (kind == "v4l2" and name == "loop")]


def source_factory(source: SourceConfig) -> SourceFactory:
    """A callable that makes a fresh, unopened source from the config (called on every reopen)."""
    if source.spec.startswith(PYTHON_SOURCE_PREFIX):
        if not source.allow_python:
            raise ConfigError(
                f"source {source.spec!r} loads Python code; set [source] allow_python = true to allow it"
            )
        cls = load_python_source_class(source.spec)
        options = source_options(source, _keyword_parameters(cls))
        return lambda: cls(**options)

    from robovision.sources import open_source

    def make() -> FrameSourceLike:
        # Built once bare to learn which source the spec picks (construction opens nothing).
        probe = open_source(source.spec)
        return open_source(source.spec, **source_options(source, _accepted_options(probe)))

    return make


def source_path(spec: str) -> Path | None:
    """The file or folder a source spec reads (``replay:PATH``, ``file:PATH``, a bare path).

    None for what may appear later by itself: a camera (``picamera2``, ``/dev/...``, a
    number), a stream URL, or a ``python:`` source class.
    """
    text = spec.strip()
    if text.startswith(PYTHON_SOURCE_PREFIX) or _CAMERA_OR_STREAM.match(text):
        return None
    for prefix in _PATH_PREFIXES:
        if text.startswith(prefix):
            return Path(text[len(prefix) :]).expanduser()
    return Path(text).expanduser()


def check_source_path(config: Config) -> None:
    """``ConfigError`` when the source is a replay, file or folder that does not exist.

    A missing camera is waited for (it may be plugged in or freed later); a missing file is
    a mistake in the config, so the service refuses to start instead of retrying forever.
    """
    path = source_path(config.source.spec)
    if path is None or path.exists():
        return
    origin = f"{config.file}: " if config.file is not None else ""
    raise ConfigError(
        f"{origin}[source] spec {config.source.spec!r}: {path} does not exist; fix the path "
        "(relative paths in a config file start from the file's folder)"
    )


def source_name(factory: SourceFactory, spec: str) -> str:
    """The name the configured source gives its frames, or ``spec`` while it cannot be built.

    Messages use it for ``source`` (``hello``, ``detections`` and ``status`` alike).
    """
    try:
        return str(factory().name)  # constructing a source opens nothing
    except (SourceError, ConfigError):
        return spec


def delivers_on_request(factory: SourceFactory) -> bool:
    """Whether the configured source hands out a frame at once whenever asked (a file, a folder).

    Such a source is read only when the loop asks (``Mailbox(on_demand=True)``), so its frames
    are processed in order instead of being decoded and dropped as fast as the disk allows.
    Cameras, streams and paced replays deliver at their own rate and are read continuously.
    """
    from robovision.sources import FolderSource, ImageSource, OpenCVSource, ReplaySource

    try:
        source = factory()  # constructing a source opens nothing
    except (SourceError, ConfigError):
        return False  # the capture thread reports it and retries
    if isinstance(source, (FolderSource, ImageSource)):
        return True
    if isinstance(source, OpenCVSource):
        return source.kind == "video"
    return isinstance(source, ReplaySource) and source.fps == 0


def load_model(config: Config) -> Any:
    """The model named by the config, with the config's thresholds as card overrides."""
    from robovision.model import Model

    overrides: dict[str, Any] = {}
    if config.model.score_threshold is not None:
        overrides["score_threshold"] = config.model.score_threshold
    if config.model.max_detections is not None:
        overrides["max_detections"] = config.model.max_detections
    if config.model.class_filter is not None:
        overrides["class_filter"] = config.model.class_filter
    return Model.load(
        config.model.path,
        backend=config.model.backend,
        num_threads=config.model.num_threads,
        **overrides,
    )


@contextlib.contextmanager
def _signals(loop: FrameLoop) -> Iterator[None]:
    """SIGTERM/SIGINT stop the loop, SIGHUP asks for a reload; previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        log.info("not in the main thread: signals are left to the caller")
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("%s received; stopping", signal.Signals(signum).name)
        loop.stop_event.set()

    def reload(signum: int, frame: FrameType | None) -> None:
        loop.reload_event.set()

    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, stop),
        signal.SIGINT: signal.signal(signal.SIGINT, stop),
        signal.SIGHUP: signal.signal(signal.SIGHUP, reload),
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_service(
    config: Config,
    *,
    reload_config: Callable[[], Config] | None = None,
    notifier: Notifier | None = None,
    stop_event: threading.Event | None = None,
) -> int:
    """Run until stopped. Returns the exit code; raises ``RobovisionError`` subclasses on failure.

    In the main thread SIGTERM/SIGINT stop it and SIGHUP reloads; from another thread, set
    ``stop_event`` to stop it.
    """
    with _sighup_ignored():
        return _run(config, reload_config, notifier or Notifier(), stop_event)


@contextlib.contextmanager
def _sighup_ignored() -> Iterator[None]:
    """A reload asked for while the model loads must not kill the process (SIGHUP's default)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


def _run(
    config: Config,
    reload_config: Callable[[], Config] | None,
    notifier: Notifier,
    stop_event: threading.Event | None,
) -> int:
    check_source_path(config)
    factory = source_factory(config.source)
    model = load_model(config)
    mailbox = Mailbox(on_demand=delivers_on_request(factory))
    capture = Capture(
        factory,
        mailbox,
        read_timeout_s=config.source.read_timeout_s,
        retry_initial_s=config.source.retry_initial_s,
        retry_max_s=config.source.retry_max_s,
        log_every_s=config.service.log_every_s,
    )
    sock = config.socket
    publisher = Publisher(
        sock.resolved_path,
        group=sock.group,
        max_subscribers=sock.max_subscribers,
        queue_messages=sock.queue_messages,
        send_buffer_bytes=sock.send_buffer_bytes,
        max_inbound_bytes_per_s=sock.max_inbound_bytes_per_s,
        tcp_host=sock.tcp_host,
        tcp_port=sock.tcp_port,
        log_every_s=config.service.log_every_s,
        create_folder=sock.path is None,
    )
    loop = FrameLoop(
        config,
        model,
        capture=capture,
        mailbox=mailbox,
        publisher=publisher,
        notifier=notifier,
        reload_config=reload_config,
        source_name=source_name(factory, config.source.spec),
    )
    publisher.hello = loop.hello_line
    if stop_event is not None:
        loop.stop_event = stop_event
    publisher.start()
    log.info(
        "service started: source %s, model %s (%s), hfov %.1f deg, socket %s",
        loop.source_name,
        model.name,
        model.interpreter.backend_name,
        loop.thresholds.hfov_deg,
        publisher.path,
    )
    try:
        with _signals(loop):
            capture.start()
            return loop.run()
    finally:
        notifier.stopping()
        capture.stop(timeout_s=0.8)
        publisher.stop(timeout_s=0.5)
        notifier.close()
        log.info("service stopped after %d frames", loop.stats.frames)
