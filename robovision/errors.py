"""The exception hierarchy. Every message says what went wrong and names the fix.

Each class carries the process exit code the CLI and the service use for it, so a
shell script or systemd can tell the failures apart (see README, "Exit codes").
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_NO_SOURCE = 3
EXIT_CAMERA_BUSY = 4
EXIT_MODEL = 5
EXIT_RUNTIME = 6
EXIT_ALREADY_RUNNING = 7


class RobovisionError(Exception):
    """Base of every error robovision raises on purpose."""

    exit_code = EXIT_INTERNAL


class ConfigError(RobovisionError):
    """A bad argument, config key or value. The message names the key and the fix."""

    exit_code = EXIT_USAGE


class SourceError(RobovisionError):
    """A frame source could not be opened or read."""

    exit_code = EXIT_NO_SOURCE


class SourceNotFoundError(SourceError):
    """The file, folder, camera node or stream does not exist or cannot be reached."""


class CameraBusyError(SourceError):
    """The camera exists but another process holds it."""

    exit_code = EXIT_CAMERA_BUSY


class CameraPermissionError(SourceError):
    """The camera exists but this user may not open it."""


class SourceLostError(SourceError):
    """A source that was working stopped giving frames (unplugged, crashed, hung)."""


class ModelError(RobovisionError):
    """The model file or its card cannot be used."""

    exit_code = EXIT_MODEL


class ModelNotFoundError(ModelError):
    """No file at the model path."""


class ModelFormatError(ModelError):
    """The file is not a TFLite flatbuffer, or its card does not match it."""


class UnsupportedOpError(ModelError):
    """The model needs an op (or op version) the installed interpreter lacks."""


class RuntimeMissingError(RobovisionError):
    """No TFLite interpreter package is installed."""

    exit_code = EXIT_RUNTIME


class RuntimeIncompatibleError(RobovisionError):
    """An interpreter is installed but cannot work here (e.g. tflite-runtime 2.14 with numpy 2)."""

    exit_code = EXIT_RUNTIME


class ServiceError(RobovisionError):
    """The detection service cannot start or go on (socket, runtime folder)."""

    exit_code = EXIT_INTERNAL


class ServiceUnavailableError(RobovisionError, ConnectionError):
    """A subscriber found no detection service to read from: the socket is missing, nothing
    answers on it, it may not be opened, or the service refused the connection.

    For a subscriber the service is its source, hence ``EXIT_NO_SOURCE``. It is also a
    ``ConnectionError``, so code catching that keeps working.
    """

    exit_code = EXIT_NO_SOURCE


class SocketInUseError(ServiceError):
    """Another live service already answers on the detection socket."""

    exit_code = EXIT_ALREADY_RUNNING
