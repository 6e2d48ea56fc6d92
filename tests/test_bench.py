"""``robovision bench``: a short real run whose JSON must hold every figure with sane values.

No timing is asserted (the machine is shared); the checks are on what the figures must
satisfy whatever the speed: percentiles in order, latency covering the stages it
contains, every frame reaching the subscriber, memory including the replayed frames.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robovision.bench.runner import default_models
from robovision.cli import main
from robovision.service.capture import Capture, Mailbox
from robovision.service.status import STAGES
from robovision.sources.replay import ReplaySource

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "data" / "toycars" / "images"
SSD = ROOT / "models" / "reference" / "ssd_mobilenet_v1_1_metadata_1.tflite"
MIB = 1024 * 1024
WARMUP = 20
TARGET_NAMES = {
    "pipeline_vs_ceiling",
    "latency_p50",
    "preprocess_p50",
    "steady_rss",
    "rss_growth",
    "vs_reference_loop",
}


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """The JSON document and the printed table of one short bench run on the SSD model."""
    out = tmp_path_factory.mktemp("bench") / "results.json"
    argv = [
        "bench",
        "--model", str(SSD),
        "--rounds", "1",
        "--frames", "40",
        "--invokes", "40",
        "--round-seconds", "1.5",
        "--long-frames", "100",
        "--startup-runs", "1",
        "--reference-frames", "3",
        "--out", str(out),
    ]  # fmt: skip
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(argv) == 0
    return json.loads(out.read_text()), printed.getvalue()


@pytest.mark.backend
def test_bench_json_has_every_figure_with_sane_values(bench_run: tuple[dict, str]) -> None:
    document, _ = bench_run
    (model,) = document["models"]
    assert model["kind"] == "ssd" and model["input"]["shape"] == [1, 300, 300, 3]
    assert document["settings"]["threads"] >= 1
    assert 0 < model["preprocess_alone_ms"]["p50"] <= model["preprocess_alone_ms"]["p95"]

    assert {b["backend"] for b in model["backends"]} == set(document["environment"]["backends"])
    for entry in model["backends"]:
        ceiling, pipeline = entry["ceiling"], entry["pipeline"]
        assert ceiling["fps"] > 0 and ceiling["invoke_ms"]["p50"] > 0
        assert pipeline["fps"] > 0 and pipeline["frames"] >= 2
        assert pipeline["ratio"] == pytest.approx(pipeline["fps"] / ceiling["fps"], rel=0.01)
        assert pipeline["limiting_stage"] in (*STAGES, "other")
        for stage in STAGES:
            pct = pipeline["stage_ms"][stage]
            assert 0 <= pct["p50"] <= pct["p95"], stage
        latency = pipeline["latency_ms"]
        assert latency["p50"] <= latency["p95"] <= latency["p99"]
        # capture-to-publish contains preprocessing and inference of the same frame
        stages = pipeline["stage_ms"]
        assert latency["p50"] >= stages["inference"]["p50"]
        # every frame published reached the subscriber process, later than it was published
        assert pipeline["received"] == pipeline["frames"] + WARMUP
        assert pipeline["receive_latency_ms"]["p50"] >= latency["p50"]
        assert pipeline["dropped_capture"] == 0


@pytest.mark.backend
def test_bench_measures_memory_startup_and_the_reference_loop(bench_run: tuple[dict, str]) -> None:
    document, _ = bench_run
    (model,) = document["models"]
    memory = model["memory"]
    frames = document["settings"]["frame_count"]
    assert frames == len(list(IMAGES.iterdir()))
    assert memory["replay_mb"] == pytest.approx(frames * 640 * 480 * 3 / MIB, abs=0.01)
    assert memory["replay_mb"] < memory["rss_after_warmup_mb"] <= memory["peak_rss_mb"]
    assert memory["rss_end_mb"] <= memory["peak_rss_mb"]
    growth = memory["rss_end_mb"] - memory["rss_after_warmup_mb"]
    assert memory["growth_mb"] == pytest.approx(growth, abs=0.01)
    assert memory["frames"] == 100

    startup = document["startup"]
    assert 0 < startup["first_message_s"] < 30 and len(startup["runs_s"]) == 1

    reference = model["reference"]
    if document["environment"]["reference_python"] is None:
        assert reference["status"] == "not measured" and "numpy" in reference["reason"]
    else:
        assert reference["status"] == "ok" and reference["frames"] == 3
        assert reference["speedup"] == pytest.approx(
            model["backends"][0]["pipeline"]["fps"] / reference["fps"], rel=0.01
        )


@pytest.mark.backend
def test_every_target_is_judged(bench_run: tuple[dict, str]) -> None:
    document, _ = bench_run
    ssd_targets = {t["target"]: t for t in document["targets"] if t["model"] == "ssd_mobilenet_v1_coco"}
    assert set(ssd_targets) == TARGET_NAMES
    for target in ssd_targets.values():
        assert target["status"] in ("PASS", "MISS", "n/a")
        if target["status"] != "n/a":
            at_least = target["rule"].startswith(">")
            passed = target["value"] >= target["limit"] if at_least else target["value"] <= target["limit"]
            assert passed == (target["status"] == "PASS"), target
    # only the SSD model ran, so the toy-car target says why it has no figure
    (toycar,) = [t for t in document["targets"] if t["model"] == "toycar"]
    assert toycar["status"] == "n/a"
    present = (ROOT / "models" / "toycar.tflite").exists()
    assert toycar["note"] == (
        "model not benchmarked" if present else f"{ROOT}/models/toycar.tflite not present"
    )
    (first_message,) = [t for t in document["targets"] if t["target"] == "first_message"]
    assert first_message["status"] in ("PASS", "MISS")


@pytest.mark.backend
def test_the_table_names_threads_and_every_judged_target(bench_run: tuple[dict, str]) -> None:
    document, printed = bench_run
    threads = document["settings"]["threads"]
    assert f"threads: {threads} interpreter threads for robovision and the reference loop alike" in printed
    target_lines = printed.split("targets:")[1].strip().split("\n\n")[0].splitlines()
    assert len(target_lines) == len(document["targets"])
    for line, target in zip(target_lines, document["targets"]):
        assert line.split()[:2] == [target["status"], target["target"]]


def test_default_models_pick_up_the_toycar_model_when_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "models" / "reference").mkdir(parents=True)
    monkeypatch.setenv("ROBOVISION_HOME", str(tmp_path))
    ssd = tmp_path / "models" / "reference" / SSD.name
    assert default_models() == (ssd,)

    shutil.copy(SSD, tmp_path / "models" / "toycar.tflite")
    assert default_models() == (tmp_path / "models" / "toycar.tflite", ssd)
    assert len(default_models(classifiers=True)) == 4


def test_on_demand_mailbox_reads_a_frame_only_when_the_loop_asks() -> None:
    mailbox = Mailbox(on_demand=True)
    sources: list[ReplaySource] = []

    def factory() -> ReplaySource:
        sources.append(ReplaySource(IMAGES, fps=0.0, size_wh=(64, 48), loop=True))
        return sources[-1]

    capture = Capture(factory, mailbox)
    capture.start()
    try:
        time.sleep(0.3)  # an unpaced source read freely would have handed out thousands by now
        taken = [mailbox.take(2.0) for _ in range(5)]
    finally:
        capture.stop()
    assert [item.frame.frame_id for item in taken if item is not None] == [0, 1, 2, 3, 4]
    assert mailbox.dropped == 0


@pytest.mark.backend
def test_reference_loop_reports_why_it_cannot_run(tmp_path: Path) -> None:
    from robovision.bench.reference import find_reference

    missing = find_reference(SSD, str(tmp_path / "no-python"))
    assert not missing.usable and missing.reason == f"no Python at {tmp_path / 'no-python'}"

    here = find_reference(SSD, sys.executable)
    if int(np.__version__.split(".")[0]) >= 2:
        assert not here.usable and f"numpy {np.__version__}" in here.reason
    else:
        assert here.usable and here.versions["numpy"] == np.__version__


def test_a_reference_loop_that_cannot_run_gives_its_reason_and_the_fix() -> None:
    from robovision.bench.runner import _reference_result

    reason = "tflite-runtime is not usable with this Python (/x/python): No module named 'tflite_runtime'"

    result = _reference_result([], None, reason)  # type: ignore[arg-type]

    assert result["status"] == "not measured"
    assert result["reason"].startswith(reason)
    assert "make setup-tflite" in result["reason"] and "--reference-python" in result["reason"]
    skipped = _reference_result([], None, "not measured (--no-reference)")  # type: ignore[arg-type]
    assert skipped["reason"] == "not measured (--no-reference)"
