"""Helpers for the service tests: a JSON Schema checker for the subset the message schema
uses, a line reader for raw sockets, and a real ``robovision run`` subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCHEMA_PATH = REPO / "robovision" / "schema" / "messages.schema.json"
IMAGES = REPO / "data" / "toycars" / "images"
REFERENCE_MODEL = REPO / "models" / "reference" / "ssd_mobilenet_v1_1_metadata_1.tflite"
TOYCAR_MODEL = REPO / "models" / "toycar.tflite"

_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


_KNOWN_KEYWORDS = frozenset(
    {
        "$schema", "$id", "$defs", "title", "description", "$ref", "oneOf", "type", "const", "enum",
        "required", "properties", "additionalProperties", "items", "minItems", "maxItems", "minimum",
        "maximum",
    }
)


def schema_errors(
    instance: Any, schema: dict[str, Any], root: dict[str, Any] | None = None, at: str = "$"
) -> list[str]:
    """Violations of ``schema`` by ``instance`` for the keywords the message schema uses.

    Supported: $ref (local), oneOf, type, const, enum, required, properties,
    additionalProperties (false), items, minItems, maxItems, minimum, maximum. Any other
    keyword in the schema is an error here, so the checker never silently skips a rule.
    """
    root = schema if root is None else root
    unknown = set(schema) - _KNOWN_KEYWORDS
    if unknown:
        return [f"{at}: schema keyword(s) {sorted(unknown)} not supported by this checker"]
    errors = _ref_and_one_of(instance, schema, root, at)
    if "type" in schema and not _type_ok(instance, schema["type"]):
        return [*errors, f"{at}: {instance!r} is not of type {schema['type']}"]
    errors += _value_errors(instance, schema, at)
    if isinstance(instance, dict):
        errors += _object_errors(instance, schema, root, at)
    if isinstance(instance, list):
        errors += _array_errors(instance, schema, root, at)
    return errors


def _ref_and_one_of(instance: Any, schema: dict[str, Any], root: dict[str, Any], at: str) -> list[str]:
    errors: list[str] = []
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        errors += schema_errors(instance, target, root, at)
    if "oneOf" in schema:
        results = [schema_errors(instance, option, root, at) for option in schema["oneOf"]]
        matches = sum(not r for r in results)
        if matches != 1:
            detail = "; ".join(r[0] for r in results if r)
            errors.append(f"{at}: matches {matches} of oneOf (need 1): {detail}")
    return errors


def _type_ok(instance: Any, type_spec: str | list[str]) -> bool:
    names = type_spec if isinstance(type_spec, list) else [type_spec]
    if isinstance(instance, bool):
        return "boolean" in names
    return any(isinstance(instance, _TYPES[name]) for name in names)


def _value_errors(instance: Any, schema: dict[str, Any], at: str) -> list[str]:
    errors = []
    if "const" in schema and instance != schema["const"]:
        errors.append(f"{at}: {instance!r} != const {schema['const']!r}")
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{at}: {instance!r} not in {schema['enum']}")
    if isinstance(instance, (int, float)) and not isinstance(instance, bool):
        if "minimum" in schema and instance < schema["minimum"]:
            errors.append(f"{at}: {instance} < minimum {schema['minimum']}")
        if "maximum" in schema and instance > schema["maximum"]:
            errors.append(f"{at}: {instance} > maximum {schema['maximum']}")
    return errors


def _object_errors(
    instance: dict[str, Any], schema: dict[str, Any], root: dict[str, Any], at: str
) -> list[str]:
    errors = [f"{at}: missing required {key!r}" for key in schema.get("required", []) if key not in instance]
    properties = schema.get("properties", {})
    for key, value in instance.items():
        if key in properties:
            errors += schema_errors(value, properties[key], root, f"{at}.{key}")
        elif schema.get("additionalProperties") is False:
            errors.append(f"{at}: unexpected property {key!r}")
    return errors


def _array_errors(instance: list[Any], schema: dict[str, Any], root: dict[str, Any], at: str) -> list[str]:
    errors = []
    if len(instance) < schema.get("minItems", 0):
        errors.append(f"{at}: {len(instance)} items < minItems {schema['minItems']}")
    if "maxItems" in schema and len(instance) > schema["maxItems"]:
        errors.append(f"{at}: {len(instance)} items > maxItems {schema['maxItems']}")
    for i, item in enumerate(instance):
        if "items" in schema:
            errors += schema_errors(item, schema["items"], root, f"{at}[{i}]")
    return errors


def connect(path: Path, *, rcvbuf: int | None = None, timeout_s: float = 10.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout_s)
    sock.connect(str(path))
    return sock


class LineReader:
    """Whole lines from a connected socket, each parsed as JSON (a broken line raises)."""

    def __init__(self, sock: socket.socket, chunk: int = 65536) -> None:
        self.sock = sock
        self.chunk = chunk
        self.buffer = bytearray()
        self.closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 1]
                yield json.loads(line)
                continue
            data = self.sock.recv(self.chunk)
            if not data:
                self.closed = True
                return
            self.buffer += data

    def next(self) -> dict[str, Any]:
        return next(iter(self))


def write_config(folder: Path, text: str) -> Path:
    path = folder / "config.toml"
    path.write_text(text)
    return path


def service_config(
    folder: Path,
    *,
    source: str | None = None,
    fps: float = 15.0,
    model: Path | None = None,
    extra: str = "",
    socket_extra: str = "",
    model_extra: str = "",
    source_extra: str = "",
    status_interval_s: float = 0.5,
) -> Path:
    """A config file for a test service in ``folder`` with its socket there too."""
    spec = source if source is not None else f"replay:{IMAGES}"
    return write_config(
        folder,
        f"""
[source]
spec = "{spec}"
fps = {fps}
size_wh = [320, 240]
loop = true
{source_extra}

[model]
path = "{model or REFERENCE_MODEL}"
num_threads = 1
{model_extra}

[socket]
path = "detections.sock"
{socket_extra}

[service]
status_interval_s = {status_interval_s}
log_level = "info"
{extra}
""",
    )


def robovision_command() -> list[str]:
    """How to start the CLI: this interpreter running the package."""
    return [sys.executable, "-m", "robovision"]


class Collector(threading.Thread):
    """A subscriber in a thread: every parsed message with the monotonic time it arrived."""

    def __init__(self, path: Path, *, rcvbuf: int | None = None, chunk: int = 65536) -> None:
        super().__init__(daemon=True)
        self.sock = connect(path, rcvbuf=rcvbuf, timeout_s=30.0)
        self.reader = LineReader(self.sock, chunk=chunk)
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self.start()

    def run(self) -> None:
        try:
            for message in self.reader:
                with self._lock:
                    self.messages.append((time.monotonic(), message))
        except OSError:
            pass  # closed by stop()
        except BaseException as exc:  # a broken line: the test reports it
            self.error = exc

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m for _, m in self.messages if m["type"] == kind]

    def wait_for(self, predicate: Any, timeout_s: float = 30.0, what: str = "messages") -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate(self):
            if self.error is not None:
                raise AssertionError(f"subscriber failed: {self.error!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.02)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.join(5)
        self.sock.close()


class ServiceProcess:
    """``python -m robovision run --config CONFIG`` as a real subprocess; stderr goes to a file."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.socket_path = config.parent / "detections.sock"
        self.log_path = config.parent / f"service-{time.monotonic_ns()}.log"
        full_env = dict(os.environ)
        full_env.pop("NOTIFY_SOCKET", None)
        full_env.update(env or {})
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [*robovision_command(), "run", "--config", str(config), *args],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env=full_env,
            cwd=str(config.parent),
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until the socket accepts a connection (raises with the log if the process dies)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"service exited with {self.proc.returncode}:\n{self.log()}")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(self.socket_path))
                return
            except OSError:
                time.sleep(0.05)
            finally:
                probe.close()
        raise AssertionError(f"no socket after {timeout_s} s:\n{self.log()}")

    def terminate(self, timeout_s: float = 10.0, signum: int = signal.SIGTERM) -> tuple[int, float]:
        """Send ``signum`` (SIGTERM); returns (exit code, seconds it took to exit)."""
        t0 = time.monotonic()
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout=timeout_s)
        return code, time.monotonic() - t0

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
