"""Each model and runtime failure raises its own error, with a message that names the fix."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from robovision.errors import (
    EXIT_MODEL,
    EXIT_RUNTIME,
    ModelFormatError,
    ModelNotFoundError,
    UnsupportedOpError,
)
from robovision.interpreter import BACKENDS, backend_status, open_interpreter
from robovision.model import Model
from robovision.model_file import read_model_file

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "models" / "reference"
MOBILENET_I8 = REFERENCE / "mobilenet_v1_0.25_128_quant_int8.tflite"
SSD = REFERENCE / "ssd_mobilenet_v1_1_metadata_1.tflite"
CAT = ROOT / "data" / "reference" / "cat.bmp"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter of this environment, from the project folder."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def require_backend(name: str) -> None:
    status = backend_status()[name]
    if not status.startswith("ok"):
        pytest.skip(f"backend {name} cannot run in this environment: {status}")


@pytest.fixture
def newer_op_model(tmp_path: Path) -> Path:
    """A copy of the int8 MobileNet whose CONV_2D operator code asks for version 99."""
    conv = next(code for code in read_model_file(MOBILENET_I8).operator_codes if code.builtin_code == 3)
    assert conv.version_offset is not None and conv.version == 3
    data = bytearray(MOBILENET_I8.read_bytes())
    struct.pack_into("<i", data, conv.version_offset, 99)
    path = tmp_path / "newer_conv.tflite"
    path.write_bytes(bytes(data))
    assert next(c for c in read_model_file(path).operator_codes if c.builtin_code == 3).version == 99
    return path


@pytest.fixture
def unknown_custom_op_model(tmp_path: Path) -> Path:
    """A copy of the SSD model whose post-process op is renamed to one no runtime registers."""
    code = next(c for c in read_model_file(SSD).operator_codes if c.custom_code)
    assert code.custom_code == "TFLite_Detection_PostProcess" and code.custom_code_offset is not None
    data = bytearray(SSD.read_bytes())
    last = code.custom_code_offset + len(code.custom_code) - 1
    data[last : last + 1] = b"X"
    path = tmp_path / "renamed_op.tflite"
    path.write_bytes(bytes(data))
    assert read_model_file(path).has_custom_op("TFLite_Detection_PostProcesX")
    return path


def test_missing_model_names_the_path_and_where_models_live(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "toycar.tflite"

    with pytest.raises(ModelNotFoundError) as caught:
        open_interpreter(missing)

    message = str(caught.value)
    assert str(missing) in message
    assert "robovision info" in message and "models/" in message
    assert caught.value.exit_code == EXIT_MODEL
    with pytest.raises(ModelNotFoundError):
        Model.load(missing)


def test_a_folder_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="is a directory"):
        Model.load(tmp_path)


@pytest.mark.parametrize(
    "content",
    [b"", b"not a model", CAT.read_bytes()[:4096], b"\x1c\x00\x00\x00TFL2" + b"\x00" * 64],
    ids=["empty", "text", "bitmap", "other-identifier"],
)
def test_a_file_that_is_not_tflite_is_refused_before_the_interpreter(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.tflite"
    path.write_bytes(content)

    with pytest.raises(ModelFormatError) as caught:
        open_interpreter(path)

    assert str(path) in str(caught.value)
    assert "TFL3" in str(caught.value)
    assert caught.value.exit_code == EXIT_MODEL


@pytest.mark.backend
def test_a_truncated_model_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.tflite"
    path.write_bytes(MOBILENET_I8.read_bytes()[:20_000])

    with pytest.raises(ModelFormatError, match=r"re-export|damaged"):
        open_interpreter(path)
    with pytest.raises(ModelFormatError):
        read_model_file(path)


@pytest.mark.backend
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_newer_op_version_names_op_runtime_and_fix(backend: str, newer_op_model: Path) -> None:
    require_backend(backend)
    distribution = {"litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime"}[backend]

    with pytest.raises(UnsupportedOpError) as caught:
        open_interpreter(newer_op_model, backend=backend)

    message = str(caught.value)
    assert "CONV_2D version 99" in message
    assert f"{distribution} {importlib.metadata.version(distribution)}" in message
    assert "pip install -U ai-edge-litert" in message and "re-export" in message
    assert caught.value.exit_code == EXIT_MODEL


@pytest.mark.backend
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_unknown_custom_op_is_named(backend: str, unknown_custom_op_model: Path) -> None:
    require_backend(backend)

    with pytest.raises(UnsupportedOpError, match="custom op TFLite_Detection_PostProcesX, which"):
        open_interpreter(unknown_custom_op_model, backend=backend)


def _numpy2_beside_tflite_runtime() -> bool:
    try:
        tflite = importlib.metadata.version("tflite-runtime")
    except importlib.metadata.PackageNotFoundError:
        return False
    return int(importlib.metadata.version("numpy").split(".")[0]) >= 2 and tflite.startswith("2.14")


needs_numpy2_with_tflite = pytest.mark.skipif(
    not _numpy2_beside_tflite_runtime(),
    reason="needs numpy 2 installed beside tflite-runtime 2.14 (the situation of the main .venv)",
)


@needs_numpy2_with_tflite
def test_tflite_runtime_with_numpy2_is_refused_before_import() -> None:
    result = run_python(
        f"""
        import json, sys
        from robovision.errors import RuntimeIncompatibleError
        from robovision.interpreter import open_interpreter
        try:
            open_interpreter({str(MOBILENET_I8)!r}, backend="tflite-runtime")
        except RuntimeIncompatibleError as exc:
            print(json.dumps({{"message": str(exc), "code": exc.exit_code,
                              "imported": "tflite_runtime" in sys.modules}}))
        """
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    assert report["imported"] is False
    assert report["code"] == EXIT_RUNTIME
    message = report["message"]
    assert f"tflite-runtime {importlib.metadata.version('tflite-runtime')}" in message
    assert f"numpy {importlib.metadata.version('numpy')}" in message
    assert "pip install ai-edge-litert" in message
    assert "numpy<2" in message and "opencv-python-headless<4.12" in message


@needs_numpy2_with_tflite
def test_auto_picks_litert_beside_the_broken_tflite_runtime() -> None:
    require_backend("litert")
    assert open_interpreter(MOBILENET_I8, backend="auto").backend_name == "litert"


def test_auto_without_litert_falls_back_to_tflite_runtime_or_says_why_not() -> None:
    result = run_python(
        f"""
        import sys
        sys.modules["ai_edge_litert"] = None
        from robovision.errors import RobovisionError
        from robovision.interpreter import open_interpreter
        try:
            print("backend", open_interpreter({str(MOBILENET_I8)!r}).backend_name)
        except RobovisionError as exc:
            print(type(exc).__name__, exc)
        """
    )
    assert result.returncode == 0, result.stderr

    if importlib.util.find_spec("tflite_runtime") is None:
        assert result.stdout.startswith("RuntimeMissingError")
    elif _numpy2_beside_tflite_runtime():
        assert result.stdout.startswith("RuntimeIncompatibleError")
        assert "pip install ai-edge-litert" in result.stdout
    else:
        assert result.stdout.strip() == "backend tflite-runtime"


def test_no_interpreter_installed_names_both_packages() -> None:
    result = run_python(
        f"""
        import sys
        sys.modules["ai_edge_litert"] = None
        sys.modules["tflite_runtime"] = None
        from robovision.errors import RuntimeMissingError
        from robovision.model import Model
        try:
            Model.load({str(MOBILENET_I8)!r})
        except RuntimeMissingError as exc:
            print(exc.exit_code, exc)
        """
    )
    assert result.returncode == 0, result.stderr

    code, message = result.stdout.split(" ", 1)
    assert int(code) == EXIT_RUNTIME
    assert "pip install ai-edge-litert" in message and "tflite-runtime" in message


def test_runtime_missing_error_for_a_named_backend() -> None:
    result = run_python(
        f"""
        import sys
        sys.modules["ai_edge_litert"] = None
        from robovision.errors import RuntimeMissingError
        from robovision.interpreter import open_interpreter
        try:
            open_interpreter({str(MOBILENET_I8)!r}, backend="litert")
        except RuntimeMissingError as exc:
            print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ai-edge-litert is not installed")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "robovision", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(("content", "text"), [(None, "does not exist"), (b"garbage" * 10, "TFL3")])
def test_capture_exits_with_the_model_code(tmp_path: Path, content: bytes | None, text: str) -> None:
    model = tmp_path / "model.tflite"
    if content is not None:
        model.write_bytes(content)

    result = run_cli("capture", "--source", str(CAT), "--model", str(model))

    assert result.returncode == EXIT_MODEL, result.stderr
    assert text in result.stderr


def test_info_exits_with_the_model_code_for_a_newer_op(newer_op_model: Path) -> None:
    result = run_cli("info", str(newer_op_model))

    assert result.returncode == EXIT_MODEL, result.stderr
    assert "CONV_2D version 99" in result.stderr
