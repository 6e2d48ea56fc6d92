"""`robovision capture` as a user runs it: a real subprocess, real models, real photographs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from robovision.errors import EXIT_CAMERA_BUSY, EXIT_NO_SOURCE, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE

ROOT = Path(__file__).resolve().parent.parent
FAKES = Path(__file__).resolve().parent / "fakes"
SSD = ROOT / "models" / "reference" / "ssd_mobilenet_v1_1_metadata_1.tflite"
PHOTO = ROOT / "data" / "toycars" / "images" / "cf5f6825-IMG_0447.jpg"
IMAGES = ROOT / "data" / "toycars" / "images"


def run_cli(*args: str, python_code: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "robovision", *args]
    if python_code is not None:
        command = [sys.executable, "-c", python_code, *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)


def test_capture_prints_one_detection_message_and_draws_its_boxes(tmp_path: Path) -> None:
    annotated = tmp_path / "out.png"

    result = run_cli(
        "capture", "--source", str(PHOTO), "--model", str(SSD), "--hfov", "66", "--annotate", str(annotated)
    )

    assert result.returncode == EXIT_OK, result.stderr
    message = json.loads(result.stdout)
    assert (message["v"], message["type"], message["image_wh"]) == (1, "detections", [640, 480])
    cars = [d for d in message["detections"] if d["label"] == "car"]
    assert cars, message["detections"]
    for det in message["detections"]:
        x0, y0, x1, y1 = det["box_xyxy"]
        assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480
        assert det["box_xyxy_norm"] == pytest.approx([x0 / 640, y0 / 480, x1 / 640, y1 / 480], abs=1e-3)
        # right of the image centre is a positive bearing, left a negative one
        assert (det["bearing_deg"] > 0) == ((x0 + x1) / 2 > 320)

    drawn = cv2.imread(str(annotated))
    original = cv2.imread(str(PHOTO))
    assert drawn.shape == original.shape
    changed = np.any(drawn != original, axis=2)
    for det in message["detections"]:
        x0, y0, x1, y1 = (round(v) for v in det["box_xyxy"])
        # the box's left edge is drawn: most of its pixels changed, top to bottom
        edge = changed[y0 + 20 : y1 - 5, max(x0 - 1, 0) : x0 + 2].any(axis=1)
        assert edge.mean() > 0.9, det
    # far from every box nothing changed
    mask = np.zeros_like(changed)
    for det in message["detections"]:
        x0, y0, x1, y1 = (round(v) for v in det["box_xyxy"])
        mask[max(y0 - 30, 0) : y1 + 5, max(x0 - 5, 0) : x1 + 5] = True
    assert not changed[~mask].any()


def test_json_lines_prints_one_valid_line_per_frame_in_folder_order() -> None:
    result = run_cli(
        "capture", "--source", str(IMAGES), "--model", str(SSD), "--json-lines", "--limit", "5"
    )

    assert result.returncode == EXIT_OK, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [m["seq"] for m in lines] == [0, 1, 2, 3, 4]
    # each line belongs to the photograph at that place in sorted order
    from robovision.frame import PixelLayout
    from robovision.model import Model

    model = Model.load(SSD)
    for message, photo in zip(lines, sorted(IMAGES.glob("*.jpg"))[:5]):
        expected = model.detect_image(cv2.imread(str(photo)), PixelLayout.BGR).detections
        assert [d["label"] for d in message["detections"]] == [d.label for d in expected]
        got_boxes = np.array([d["box_xyxy"] for d in message["detections"]]).reshape(-1, 4)
        expected_boxes = np.array([d.box_xyxy for d in expected]).reshape(-1, 4)
        np.testing.assert_allclose(got_boxes, expected_boxes, atol=0.2)


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--source", "no/such/photo.jpg"], EXIT_NO_SOURCE, "no/such/photo.jpg"),
        (["--source", "/dev/video99"], EXIT_NO_SOURCE, "/dev/video99"),
        (["--source", str(PHOTO), "--threads", "0"], EXIT_USAGE, "--threads"),
        (["--source", str(PHOTO), "--score-threshold", "1.5"], EXIT_USAGE, "--score-threshold"),
        (["--source", str(PHOTO), "--annotate", "out.gif"], EXIT_USAGE, ".jpg or .png"),
        (["--source", str(PHOTO), "--annotate", "no/such/folder/out.png"], EXIT_USAGE, "does not exist"),
        (["--source", str(IMAGES), "--json-lines", "--limit", "0"], EXIT_USAGE, "--limit must be 1"),
        (["--source", str(PHOTO), "--hfov", "180"], EXIT_USAGE, "--hfov"),
        (["--model", str(SSD)], EXIT_USAGE, "--source"),
    ],
)
def test_bad_input_exits_with_its_documented_code(args: list[str], code: int, text: str) -> None:
    model_args = [] if "--model" in args else ["--model", str(SSD)]

    result = run_cli("capture", *args, *model_args)

    assert result.returncode == code, result.stderr
    assert text in result.stderr
    assert result.stdout == ""


def test_busy_camera_exits_with_the_camera_busy_code() -> None:
    # The Pi camera is the one part this machine lacks: the picamera2 stand-in plays it,
    # with camera 0 already held by another process.
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(FAKES)!r})\n"
        "from picamera2 import _standin\n"
        "_standin.acquire(0)\n"
        "from robovision.cli import main\n"
        "raise SystemExit(main(['capture', *sys.argv[1:]]))\n"
    )

    result = run_cli("--source", "picamera2", "--model", str(SSD), python_code=code)

    assert result.returncode == EXIT_CAMERA_BUSY, result.stderr
    assert "busy" in result.stderr.lower()


def test_a_reader_that_closes_the_pipe_ends_capture_quietly() -> None:
    # `robovision capture --json-lines ... | head -1`: the reader leaves after one line
    process = subprocess.Popen(
        [sys.executable, "-m", "robovision", "capture", "--source", str(IMAGES), "--model", str(SSD),
         "--json-lines"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read().decode()
    code = process.wait(timeout=120)

    assert json.loads(first)["seq"] == 0
    assert code == 141
    assert "Traceback" not in stderr


def test_verbose_flag_works_after_the_subcommand() -> None:
    result = run_cli("capture", "-v", "--source", str(PHOTO), "--model", str(SSD))

    assert result.returncode == EXIT_OK, result.stderr
    assert "INFO robovision.model" in result.stderr


def _numpy2_beside_tflite_runtime() -> bool:
    import importlib.metadata
    import importlib.util

    if importlib.util.find_spec("tflite_runtime") is None:
        return False
    return int(importlib.metadata.version("numpy").split(".")[0]) >= 2


@pytest.mark.skipif(
    not _numpy2_beside_tflite_runtime(), reason="needs tflite-runtime installed beside numpy 2 (.venv)"
)
def test_tflite_runtime_beside_numpy_2_exits_with_the_runtime_code() -> None:
    result = run_cli("capture", "--source", str(PHOTO), "--model", str(SSD), "--backend", "tflite-runtime")

    assert result.returncode == EXIT_RUNTIME, result.stderr
    assert "numpy" in result.stderr and "pip install ai-edge-litert" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_interpreter_installed_exits_with_the_runtime_code() -> None:
    code = (
        "import sys\n"
        "sys.modules['ai_edge_litert'] = None\n"
        "sys.modules['tflite_runtime'] = None\n"
        "from robovision.cli import main\n"
        "raise SystemExit(main(['capture', *sys.argv[1:]]))\n"
    )

    result = run_cli("--source", str(PHOTO), "--model", str(SSD), python_code=code)

    assert result.returncode == EXIT_RUNTIME, result.stderr
    assert "ai-edge-litert" in result.stderr and "tflite-runtime" in result.stderr
