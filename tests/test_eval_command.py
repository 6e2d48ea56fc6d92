"""``robovision eval`` end to end on the bundled photographs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import pytest

from robovision.cli import main
from robovision.paths import project_root

ROOT = project_root()
SPLIT = ROOT / "data" / "toycars" / "val.txt"


def run_eval(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    data = str(ROOT / "data" / "toycars")
    code = main(["eval", "--data", data, "--split-file", str(SPLIT), "--json", *args])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def test_eval_json_figures_agree_with_each_other(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    plot = tmp_path / "pr.png"
    report = run_eval(capsys, "--carfree", str(ROOT / "data" / "carfree"), "--plot", str(plot))
    assert report["images"] == 18 and report["carfree_images"] == 25 and report["cars"] == 81
    tp, detections = report["true_positives"], report["detections"]
    assert report["precision"] == pytest.approx(tp / detections)
    assert report["recall"] == pytest.approx(tp / 81)
    assert report["misses"] == 81 - tp
    assert 0.0 <= report["ap50"] <= 1.0
    image = cv2.imread(str(plot))
    assert image is not None and image.shape == (470, 520, 3)


def test_eval_of_the_reference_ssd_with_a_label_filter(capsys: pytest.CaptureFixture[str]) -> None:
    ssd = ROOT / "models" / "reference" / "ssd_mobilenet_v1_1_metadata_1.tflite"
    report = run_eval(capsys, "--model", str(ssd), "--label", "car", "--score-threshold", "0.3")
    assert report["label_filter"] == ["car"]
    assert report["score_threshold"] == 0.3
    # COCO's "car" is a real car: the SSD finds few of the toys.
    assert report["recall"] < 0.5
    assert report["carfree_images"] == 0 and report["false_per_carfree_image"] is None


def test_eval_refuses_a_threshold_below_the_floor(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "--data", str(ROOT / "data" / "toycars"), "--score-threshold", "0.01"])
    assert code == 2
    assert "--score-floor" in capsys.readouterr().err
