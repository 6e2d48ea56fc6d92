"""``robovision info`` on the reference models."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest

from robovision.commands import info
from robovision.errors import ConfigError, ModelNotFoundError
from robovision.interpreter import backend_status

pytestmark = pytest.mark.backend

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "models" / "reference"
SSD = REFERENCE / "ssd_mobilenet_v1_1_metadata_1.tflite"
MOBILENET_I8 = REFERENCE / "mobilenet_v1_0.25_128_quant_int8.tflite"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="robovision")
    info.add_parser(parser.add_subparsers())
    return parser.parse_args(["info", *argv])


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    args = parse(*argv, "--json")
    assert args.func(args) == 0
    return json.loads(capsys.readouterr().out)


def test_json_describes_the_ssd_tensors_card_and_timing(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, str(SSD), "--runs", "3", "--threads", "1")

    (tensor_in,) = report["inputs"]
    assert tensor_in["shape"] == [1, 300, 300, 3] and tensor_in["dtype"] == "uint8"
    assert tensor_in["quantization"] == {"scale": 0.0078125, "zero_point": 128}
    assert [t["shape"] for t in report["outputs"]] == [[1, 10, 4], [1, 10], [1, 10], [1]]
    assert all(t["quantization"] is None for t in report["outputs"])
    assert report["backend"]["threads"] == 1
    assert report["backend"]["name"] in ("litert", "tflite-runtime")
    assert report["graph"]["custom_ops"] == ["TFLite_Detection_PostProcess"]
    assert report["graph"]["embedded_files"] == ["labelmap.txt"]
    card = report["card"]
    assert (card["decoder"], card["decoder_guessed"], card["label_count"]) == ("ssd", False, 90)
    assert card["options_in_effect"]["output_roles"] == {"boxes": 0, "classes": 1, "scores": 2, "count": 3}
    timing = report["timing"]
    assert timing["runs"] == 3
    assert 0 < timing["min_ms"] <= timing["median_ms"] <= timing["max_ms"]


def test_text_names_backend_tensors_and_card(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(str(MOBILENET_I8), "--runs", "2")
    assert args.func(args) == 0
    text = capsys.readouterr().out

    assert "[0] input  1x128x128x3 int8  scale 0.00784314 zero point -1" in text
    assert "MobilenetV1/Predictions/Reshape_1  1x1001 float32  not quantized" in text
    assert "  decoder classification\n" in text
    assert "1001 after offset 0" in text
    assert "timing    invoke median" in text and "over 2 runs" in text


def test_runs_zero_skips_timing(capsys: pytest.CaptureFixture[str]) -> None:
    assert "timing" not in run_json(capsys, str(MOBILENET_I8), "--runs", "0")


@pytest.mark.parametrize("backend", ["litert", "tflite-runtime"])
def test_backend_choice_is_reported(capsys: pytest.CaptureFixture[str], backend: str) -> None:
    status = backend_status()[backend]
    if not status.startswith("ok"):
        pytest.skip(f"backend {backend} cannot run in this environment: {status}")

    report = run_json(capsys, str(MOBILENET_I8), "--backend", backend, "--runs", "1", "--no-xnnpack")

    assert report["backend"]["name"] == backend
    assert report["backend"]["xnnpack"] is False


def test_bad_arguments_and_missing_models_raise(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--runs"):
        info.run(parse(str(SSD), "--runs", "-1"))
    with pytest.raises(ConfigError, match="threads must be 1 or more"):
        info.run(parse(str(SSD), "--threads", "0"))
    with pytest.raises(ModelNotFoundError):
        info.run(parse(str(tmp_path / "none.tflite")))


def test_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    from robovision.cli import COMMANDS, main

    missing = [name for name in COMMANDS if importlib.util.find_spec(f"robovision.commands.{name}") is None]
    if missing:
        pytest.skip(f"the CLI cannot be built yet: no module for {', '.join(missing)}")

    assert main(["info", str(MOBILENET_I8), "--json", "--runs", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["card"]["decoder"] == "classification"
    assert main(["info", str(SSD.with_suffix(".missing"))]) == 5
