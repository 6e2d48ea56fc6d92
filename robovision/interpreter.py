"""One narrow interface over the TFLite interpreter packages.

Two backends, chosen by name:

- ``litert``: the ``ai-edge-litert`` package (module ``ai_edge_litert.interpreter``), preferred;
- ``tflite-runtime``: the older ``tflite-runtime`` package (module ``tflite_runtime.interpreter``).
  Its last release, 2.14, is built against numpy 1 and cannot load beside numpy 2.

``auto`` takes the first of these that is installed and usable. Each package is imported
only when chosen, so the other may be missing or broken.

Both apply the XNNPACK delegate by default where it supports the model (ai-edge-litert
also for uint8/int8 models, tflite-runtime 2.14 for float ones only). XNNPACK's quantized
kernels round differently from the builtin ones, so the same uint8 model can give outputs a
few quantization steps apart on the two backends (7 steps of 1/256 measured on the
reference MobileNet). ``xnnpack=False`` runs the builtin kernels only: slower, and
bit-identical across the two backends.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robovision.backend_names import BACKEND_CHOICES, BACKENDS
from robovision.errors import (
    ConfigError,
    ModelFormatError,
    RuntimeIncompatibleError,
    RuntimeMissingError,
    UnsupportedOpError,
)
from robovision.model_file import check_identifier, check_model_path
from robovision.tensor_spec import TensorSpec

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class _BackendInfo:
    name: str
    module: str
    distribution: str


_INFO = {
    "litert": _BackendInfo("litert", "ai_edge_litert.interpreter", "ai-edge-litert"),
    "tflite-runtime": _BackendInfo("tflite-runtime", "tflite_runtime.interpreter", "tflite-runtime"),
}

_INSTALL_HINT = (
    "Install one: `pip install ai-edge-litert` (preferred), or "
    "`pip install 'tflite-runtime==2.14.*' 'numpy<2' 'opencv-python-headless<4.12'` on Python <= 3.11."
)
_MISSING_OP = re.compile(r"Didn't find op for builtin opcode '(?P<op>[^']+)' version '(?P<version>\d+)'")
_MISSING_CUSTOM_OP = re.compile(r"(?:unresolved custom op|custom op for name): ?'?(?P<op>[\w./-]+)")


class Interpreter:
    """A loaded model with its tensors allocated once.

    ``run`` is safe to call from several threads at once: calls are serialized by a lock,
    and each returns its own copies of the outputs. ``set_input``, ``invoke`` and
    ``get_outputs`` are the same steps taken apart, for timing ``invoke`` alone; each takes
    the lock, but a sequence of them is atomic only if one thread drives the interpreter.
    """

    def __init__(
        self,
        raw: Any,
        *,
        model_path: Path,
        backend_name: str,
        backend_version: str,
        num_threads: int | None,
        xnnpack: bool = True,
    ) -> None:
        self._raw = raw
        self._lock = threading.Lock()
        self.model_path = model_path
        self.backend_name = backend_name
        self.backend_version = backend_version
        self.num_threads = num_threads
        self.xnnpack = xnnpack
        self.inputs: tuple[TensorSpec, ...] = tuple(_spec(d) for d in raw.get_input_details())
        self.outputs: tuple[TensorSpec, ...] = tuple(_spec(d) for d in raw.get_output_details())

    def __repr__(self) -> str:
        return f"Interpreter({str(self.model_path)!r}, backend={self.backend_name} {self.backend_version})"

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Set ``inputs`` (one array per model input, its shape and dtype), invoke, return outputs.

        The inputs are copied into the interpreter; the returned arrays are new copies in
        interpreter output order, owned by the caller.
        """
        with self._lock:
            self._set_inputs(inputs)
            self._raw.invoke()
            return self._read_outputs()

    def set_input(self, *inputs: np.ndarray) -> None:
        """Copy ``inputs`` into the model's input tensors (see ``run``)."""
        with self._lock:
            self._set_inputs(inputs)

    def invoke(self) -> None:
        """Run the model on the inputs last set."""
        with self._lock:
            self._raw.invoke()

    def get_outputs(self) -> list[np.ndarray]:
        """Copies of the output tensors of the last ``invoke``, in interpreter output order."""
        with self._lock:
            return self._read_outputs()

    def op_details(self) -> list[dict[str, Any]]:
        """The backend's op list after delegation: dicts with ``index``, ``op_name``, ``inputs``, ``outputs``.

        Ops taken over by a delegate (XNNPACK) appear as one ``DELEGATE`` op; read the model
        file (``robovision.model_file``) for the graph as exported.
        """
        with self._lock:
            return list(self._raw._get_ops_details())

    def _set_inputs(self, inputs: Sequence[np.ndarray]) -> None:
        if len(inputs) != len(self.inputs):
            raise ValueError(f"model takes {len(self.inputs)} input(s), got {len(inputs)}")
        for spec, tensor in zip(self.inputs, inputs):
            if tuple(tensor.shape) != spec.shape or tensor.dtype != spec.dtype:
                raise ValueError(
                    f"input {spec.name!r} expects {spec.shape} {spec.dtype}, "
                    f"got {tuple(tensor.shape)} {tensor.dtype}"
                )
            self._raw.set_tensor(spec.index, tensor)

    def _read_outputs(self) -> list[np.ndarray]:
        # get_tensor already returns a copy; np.array(copy=True) keeps that a guarantee here
        # rather than a property of the backend version.
        return [np.array(self._raw.get_tensor(spec.index), copy=True) for spec in self.outputs]


def open_interpreter(
    model_path: str | Path,
    backend: str = "auto",
    num_threads: int | None = None,
    xnnpack: bool = True,
) -> Interpreter:
    """Load ``model_path`` with ``backend`` ("auto", "litert" or "tflite-runtime").

    ``num_threads=None`` leaves the backend's default; ``xnnpack=False`` disables the default
    delegate (see the module docstring).

    Raises ``ModelNotFoundError``, ``ModelFormatError``, ``UnsupportedOpError``,
    ``RuntimeMissingError``, ``RuntimeIncompatibleError`` or ``ConfigError`` (bad argument).
    """
    if backend not in BACKEND_CHOICES:
        choices = ", ".join(BACKEND_CHOICES)
        raise ConfigError(f"unknown interpreter backend {backend!r}; choose one of {choices}")
    if num_threads is not None and num_threads < 1:
        raise ConfigError(f"threads must be 1 or more (or unset for the backend default), got {num_threads}")
    path = check_model_path(model_path)
    with path.open("rb") as handle:
        check_identifier(handle.read(8), path)

    module, info, version = _choose_backend(backend)
    raw = _create(module, info, version, path, num_threads=num_threads, xnnpack=xnnpack)
    interpreter = Interpreter(
        raw,
        model_path=path,
        backend_name=info.name,
        backend_version=version,
        num_threads=num_threads,
        xnnpack=xnnpack,
    )
    first = interpreter.inputs[0] if interpreter.inputs else None
    log.info(
        "loaded model %s with %s %s (threads: %s, xnnpack: %s); input %s %s",
        path,
        info.distribution,
        version,
        "default" if num_threads is None else num_threads,
        "default" if xnnpack else "off",
        first.shape if first else "-",
        first.dtype if first else "-",
    )
    return interpreter


def backend_status() -> dict[str, str]:
    """For each backend, "ok <version>" or why it cannot be used, without importing it."""
    status = {}
    for name in BACKENDS:
        info = _INFO[name]
        try:
            status[name] = f"ok {_check_usable(info)}"
        except (RuntimeMissingError, RuntimeIncompatibleError) as exc:
            status[name] = str(exc)
    return status


def _choose_backend(backend: str) -> tuple[Any, _BackendInfo, str]:
    if backend != "auto":
        info = _INFO[backend]
        version = _check_usable(info)
        return _import(info), info, version

    problems: list[RuntimeMissingError | RuntimeIncompatibleError] = []
    for name in BACKENDS:
        info = _INFO[name]
        try:
            version = _check_usable(info)
            module = _import(info)
        except (RuntimeMissingError, RuntimeIncompatibleError) as exc:
            problems.append(exc)
            continue
        for skipped in problems:
            log.info("skipped an interpreter backend: %s", skipped)
        return module, info, version
    if all(isinstance(p, RuntimeMissingError) for p in problems):
        raise RuntimeMissingError(
            "no TFLite interpreter is installed (looked for the ai-edge-litert and tflite-runtime "
            f"packages). {_INSTALL_HINT}"
        )
    raise RuntimeIncompatibleError(
        "no usable TFLite interpreter: " + " | ".join(str(p) for p in problems)
    )


def _check_usable(info: _BackendInfo) -> str:
    """The installed version of ``info``'s package, or raise why it cannot be used (no import)."""
    top = info.module.split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise RuntimeMissingError(f"{info.distribution} is not installed. {_INSTALL_HINT}")
    version = _dist_version(info.distribution)
    if info.name == "tflite-runtime":
        _check_tflite_runtime_numpy(version)
    return version


def _check_tflite_runtime_numpy(tflite_version: str) -> None:
    """tflite-runtime up to 2.14 is compiled against numpy 1 and crashes on import with numpy 2."""
    numpy_version = _dist_version("numpy")
    if _major_minor(numpy_version) >= (2, 0) and _major_minor(tflite_version) <= (2, 14):
        raise RuntimeIncompatibleError(
            f"tflite-runtime {tflite_version} is built for numpy 1 but numpy {numpy_version} is installed, "
            f"so it cannot load. Fix: `pip install ai-edge-litert` (works with numpy 2) and use backend "
            f"'litert' or 'auto', or keep tflite-runtime with "
            f"`pip install 'numpy<2' 'opencv-python-headless<4.12'`."
        )


def _import(info: _BackendInfo) -> Any:
    try:
        return importlib.import_module(info.module)
    except ImportError as exc:
        raise RuntimeIncompatibleError(
            f"{info.distribution} is installed but `import {info.module}` failed: {exc}. "
            f"Reinstall it (`pip install --force-reinstall {info.distribution}`) or choose the other "
            f"backend. {_INSTALL_HINT}"
        ) from exc


def _create(
    module: Any, info: _BackendInfo, version: str, path: Path, *, num_threads: int | None, xnnpack: bool
) -> Any:
    options: dict[str, Any] = {"model_path": str(path), "num_threads": num_threads}
    if not xnnpack:
        options["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        raw = module.Interpreter(**options)
        raw.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise _load_error(exc, info, version, path) from exc
    return raw


def _load_error(exc: Exception, info: _BackendInfo, version: str, path: Path) -> Exception:
    text = str(exc)
    runtime = f"{info.distribution} {version}"
    match = _MISSING_OP.search(text)
    if match:
        converter = "an older converter"
        if info.name == "tflite-runtime":
            converter = f"TensorFlow {_major_minor_text(version)} or older (the runtime's own version)"
        return UnsupportedOpError(
            f"{path} needs op {match['op']} version {match['version']}, which the installed {runtime} "
            f"does not have. Fix: `pip install -U ai-edge-litert` and use backend 'litert', or re-export "
            f"the model with {converter}."
        )
    match = _MISSING_CUSTOM_OP.search(text)
    if match:
        return UnsupportedOpError(
            f"{path} needs custom op {match['op'].rstrip('.')}, which the installed {runtime} does not "
            f"provide. Fix: re-export the model with builtin ops only, or use a runtime that registers it."
        )
    first_line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ModelFormatError(
        f"{runtime} could not load {path}: {first_line}. The file may be damaged or made by an "
        f"incompatible converter; re-export it, or try the other backend with --backend."
    )


def _spec(detail: dict[str, Any]) -> TensorSpec:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorSpec(
        index=int(detail["index"]),
        name=str(detail["name"]),
        shape=tuple(int(v) for v in detail["shape"]),
        dtype=np.dtype(detail["dtype"]),
        scale=float(scale),
        zero_point=int(zero_point),
    )


def _dist_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _major_minor(version: str) -> tuple[int, int]:
    numbers = re.findall(r"\d+", version)
    if len(numbers) < 2:
        return (0, 0)
    return int(numbers[0]), int(numbers[1])


def _major_minor_text(version: str) -> str:
    major, minor = _major_minor(version)
    return f"{major}.{minor}"
