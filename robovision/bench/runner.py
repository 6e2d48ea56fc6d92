"""One benchmark run: every model on every usable backend, measured in interleaved rounds.

Each round measures, for every model and backend in turn, the ceiling (bare ``invoke()``)
and then the full pipeline, followed by the model's reference loop after its first backend;
so the ratios compare figures taken seconds apart under the same load. Figures are medians over the
rounds (rates, ratios) or percentiles over every measured frame of every round (stage
times, latency). Memory and start-up are measured once per model, in processes of their
own, after the rounds.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from robovision import __version__
from robovision.bench import targets
from robovision.bench.ceiling import rate_fps, time_invocations, typical_fps
from robovision.bench.frames import FRAME_SIZE_WH, open_replay, write_frames
from robovision.bench.memory import measure_memory
from robovision.bench.pipeline import PipelineRun, run_pipeline
from robovision.bench.prepare import prepared_tensors, time_preprocess
from robovision.bench.reference import ReferenceRunner, find_reference, run_reference
from robovision.bench.startup import time_to_first_message
from robovision.bench.stats import median, percentiles, rounded
from robovision.errors import ConfigError
from robovision.interpreter import BACKENDS, backend_status
from robovision.model import Model
from robovision.paths import bundled_images_dir, reference_model_path, shipped_model_path
from robovision.service.status import STAGES
from robovision.sources.replay import ReplaySource

log = logging.getLogger(__name__)

CLASSIFIER_NAMES = ("mobilenet_v1_0.25_128_quant.tflite", "mobilenet_v1_0.25_128_quant_int8.tflite")
PREPROCESS_SAMPLES = 500
_REFERENCE_TIMEOUT_S = 600.0
_MEMORY_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class BenchSettings:
    """What to measure and how much; the defaults are the figures ``robovision bench`` reports."""

    models: tuple[Path, ...]
    threads: int
    backends: Optional[tuple[str, ...]] = None
    """None: every installed, usable backend."""
    rounds: int = 5
    frames: int = 300
    """Pipeline frames per round (after ``warmup``)."""
    warmup: int = 20
    invokes: int = 300
    """Ceiling invocations per round."""
    round_s: float = 4.0
    """At most this long for each measurement of a round."""
    long_frames: int = 10000
    long_warmup: int = 300
    startup_runs: int = 3
    reference_frames: int = 30
    reference_python: Optional[str] = None
    frames_dir: Path = field(default_factory=bundled_images_dir)
    size_wh: tuple[int, int] = FRAME_SIZE_WH
    memory: bool = True
    startup: bool = True
    reference: bool = True


def default_models(classifiers: bool = False) -> tuple[Path, ...]:
    """The toy-car model when it is there, the SSD reference model, and the classifiers if asked."""
    models = [shipped_model_path()] if shipped_model_path().exists() else []
    models.append(reference_model_path())
    if classifiers:
        models += [reference_model_path(name) for name in CLASSIFIER_NAMES]
    return tuple(models)


@dataclass
class _Entry:
    """One model on one backend, and what the rounds measured for it."""

    model: Model
    tensors: list[np.ndarray]
    invoke_ms: list[float] = field(default_factory=list)
    ceiling_fps: list[float] = field(default_factory=list)
    ceiling_throughput: list[float] = field(default_factory=list)
    pipelines: list[PipelineRun] = field(default_factory=list)


def run_bench(settings: BenchSettings) -> dict[str, Any]:
    """Measure everything in ``settings``; the result is the JSON document ``robovision bench`` writes."""
    _check(settings)
    t_start = time.monotonic()
    load_start = os.getloadavg()
    backends, unusable = _backends(settings.backends)
    replay = open_replay(settings.frames_dir, settings.size_wh)
    try:
        frames = replay.frames
        entries = _load(settings, backends, frames)
        with tempfile.TemporaryDirectory(prefix="robovision-bench-") as folder:
            tmp = Path(folder)
            reference = _find_reference(settings)
            frames_npy = write_frames(frames, tmp / "frames.npy") if reference.usable else tmp / "none.npy"
            references = _rounds(settings, entries, replay, tmp, (reference, frames_npy))
        models = [
            _model_result(
                settings,
                path,
                [e for e in entries if e.model.path == path],
                frames,
                references[path],
                reference_reason=reference.reason,
            )
            for path in _paths(entries)
        ]
    finally:
        replay.close()
    if settings.memory:
        for result in models:
            result["memory"] = _memory(settings, Path(result["path"]), backends[0])
    startup = _startup(settings, backends[0]) if settings.startup else None
    document = {
        "robovision": __version__,
        "environment": _environment(backends, unusable, reference),
        "settings": _settings_dict(settings, len(frames)),
        "models": models,
        "startup": startup,
        "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
        "duration_s": time.monotonic() - t_start,
    }
    document["targets"] = targets.evaluate(document)
    return rounded(document)  # type: ignore[return-value]


def _check(settings: BenchSettings) -> None:
    if settings.rounds < 1 or settings.frames < 2 or settings.invokes < 1 or settings.threads < 1:
        raise ConfigError("rounds, invokes and threads must be 1 or more, frames 2 or more")
    if settings.long_frames < 1 or settings.startup_runs < 0 or settings.reference_frames < 1:
        raise ConfigError("--long-frames and --reference-frames must be 1 or more, --startup-runs 0 or more")
    if not settings.models:
        raise ConfigError("no model to benchmark; pass --model PATH")


def _backends(wanted: Optional[Sequence[str]]) -> tuple[list[str], dict[str, str]]:
    status = backend_status()
    unusable = {name: text for name, text in status.items() if not text.startswith("ok")}
    if wanted is None:
        usable = [name for name in BACKENDS if name not in unusable]
    else:
        bad = [name for name in wanted if name in unusable]
        if bad:
            raise ConfigError(f"backend {bad[0]} cannot run here: {unusable[bad[0]]}")
        usable = list(wanted)
    if not usable:
        raise ConfigError("no usable interpreter backend: " + " | ".join(unusable.values()))
    return usable, unusable


def _load(settings: BenchSettings, backends: list[str], frames: Sequence[np.ndarray]) -> list[_Entry]:
    entries = []
    for path in settings.models:
        tensors: list[np.ndarray] | None = None
        for backend in backends:
            model = Model.load(path, backend=backend, num_threads=settings.threads)
            if tensors is None:
                tensors = prepared_tensors(model, frames)
            entries.append(_Entry(model, tensors))
    return entries


def _paths(entries: Sequence[_Entry]) -> list[Path]:
    return list(dict.fromkeys(entry.model.path for entry in entries))


def _find_reference(settings: BenchSettings) -> ReferenceRunner:
    if not settings.reference:
        return ReferenceRunner(Path(), None, {}, "not measured (--no-reference)")
    return find_reference(settings.models[0], settings.reference_python)


def _rounds(
    settings: BenchSettings,
    entries: list[_Entry],
    replay: ReplaySource,
    tmp: Path,
    reference: tuple[ReferenceRunner, Path],
) -> dict[Path, list[dict[str, Any]]]:
    """Run the rounds; ``reference`` is the runner and the frames file it reads.

    Within a round each model's reference loop runs right after its pipeline on the first
    backend (the one it is compared with), so the two see the same load.
    """
    runner, frames_npy = reference
    references: dict[Path, list[dict[str, Any]]] = {path: [] for path in _paths(entries)}
    for number in range(settings.rounds):
        log.info("round %d of %d", number + 1, settings.rounds)
        for entry in entries:
            times = time_invocations(
                entry.model.interpreter, entry.tensors, settings.invokes, settings.round_s
            )
            entry.invoke_ms += times
            entry.ceiling_fps.append(typical_fps(times))
            entry.ceiling_throughput.append(rate_fps(times))
            run = run_pipeline(
                entry.model,
                replay,
                tmp,
                frames=settings.frames,
                warmup=settings.warmup,
                budget_s=settings.round_s,
            )
            entry.pipelines.append(run)
            path = entry.model.path
            if runner.usable and len(references[path]) == number:
                references[path].append(
                    run_reference(
                        runner,
                        path,
                        frames_npy,
                        threads=settings.threads,
                        count=settings.reference_frames,
                        timeout_s=_REFERENCE_TIMEOUT_S,
                    )
                )
    return references


def _model_result(
    settings: BenchSettings,
    path: Path,
    entries: list[_Entry],
    frames: Sequence[np.ndarray],
    references: list[dict[str, Any]],
    *,
    reference_reason: str = "",
) -> dict[str, Any]:
    model = entries[0].model
    spec = model.input_spec
    backends = [_backend_result(entry) for entry in entries]
    return {
        "model": model.name,
        "path": str(path),
        "kind": targets.model_kind(path, model.decoder),
        "input": {"shape": list(spec.shape), "dtype": str(spec.dtype)},
        "preprocess_alone_ms": percentiles(time_preprocess(model, frames, PREPROCESS_SAMPLES)),
        "backends": backends,
        "reference": _reference_result(references, entries[0], reference_reason),
    }


def _backend_result(entry: _Entry) -> dict[str, Any]:
    interpreter = entry.model.interpreter
    runs = entry.pipelines
    ratios = [run.fps / ceiling for run, ceiling in zip(runs, entry.ceiling_fps) if ceiling > 0]
    throughput_ratios = [
        run.fps_throughput / ceiling for run, ceiling in zip(runs, entry.ceiling_throughput) if ceiling > 0
    ]
    stage_ms = {stage: [v for run in runs for v in run.stage_ms[stage]] for stage in STAGES}
    interval_ms = [v for run in runs for v in run.frame_interval_ms]
    other_ms = _other_ms(runs)
    limiting, share = _limiting_stage(stage_ms, other_ms, interval_ms)
    ceiling_ms = 1000.0 / median(entry.ceiling_fps)
    pipeline_fps = median([run.fps for run in runs])
    return {
        "backend": interpreter.backend_name,
        "version": interpreter.backend_version,
        "threads": interpreter.num_threads,
        "ceiling": {
            "fps": median(entry.ceiling_fps),
            "rounds_fps": entry.ceiling_fps,
            "throughput_fps": median(entry.ceiling_throughput),
            "invoke_ms": percentiles(entry.invoke_ms),
            "invocations": len(entry.invoke_ms),
        },
        "pipeline": {
            "fps": pipeline_fps,
            "rounds_fps": [run.fps for run in runs],
            "ratio": median(ratios),
            "rounds_ratio": ratios,
            "throughput_fps": median([run.fps_throughput for run in runs]),
            "throughput_ratio": median(throughput_ratios),
            "frames": sum(run.frames for run in runs),
            "limiting_stage": limiting,
            "limiting_share": share,
            "stage_ms": {stage: percentiles(values) for stage, values in stage_ms.items()},
            "other_ms": percentiles(other_ms),
            "frame_ms": percentiles(interval_ms),
            "gap_ms": 1000.0 / pipeline_fps - ceiling_ms if pipeline_fps > 0 else None,
            "gap_parts_ms": _gap_parts(stage_ms, other_ms, entry.invoke_ms),
            "latency_ms": percentiles([v for run in runs for v in run.total_ms], (50, 95, 99)),
            "receive_latency_ms": percentiles(
                [v for run in runs for v in run.receive_latency_ms], (50, 95, 99)
            ),
            "received": sum(run.received for run in runs),
            "dropped_capture": sum(run.dropped_capture for run in runs),
        },
    }


def _gap_parts(
    stage_ms: dict[str, list[float]], other_ms: list[float], invoke_ms: list[float]
) -> dict[str, float]:
    """Median ms per frame of each part of the pipeline beyond the bare ``invoke()``.

    ``inference_excess`` is the pipeline's inference stage (input copy, invoke, output
    copies, on caches the other stages left) minus the bare ``invoke()``.
    """
    parts = {stage: median(values) for stage, values in stage_ms.items() if stage != "inference"}
    parts["inference_excess"] = median(stage_ms["inference"]) - median(invoke_ms)
    parts["other"] = median(other_ms)
    return parts


def _other_ms(runs: Sequence[PipelineRun]) -> list[float]:
    """Per frame: the time between two publishes not spent in a timed stage (hand-over, bookkeeping)."""
    other = []
    for run in runs:
        work = np.sum([run.stage_ms[stage] for stage in STAGES], axis=0)
        other += (np.asarray(run.frame_interval_ms) - work[1:]).tolist()
    return other


def _limiting_stage(
    stage_ms: dict[str, list[float]], other_ms: list[float], interval_ms: list[float]
) -> tuple[str, float]:
    """The stage taking the largest median share of a frame's time, and that share (0..1)."""
    medians = {stage: median(values) for stage, values in stage_ms.items()}
    medians["other"] = median(other_ms)
    stage = max(medians, key=lambda name: medians[name])
    frame = median(interval_ms)
    return stage, medians[stage] / frame if frame > 0 else float("nan")


def _reference_result(
    references: list[dict[str, Any]], entry: _Entry, runner_reason: str = ""
) -> dict[str, Any]:
    errors = [str(r["error"]) for r in references if "error" in r]
    good = [r for r in references if "error" not in r]
    if not good:
        reason = errors[0] if errors else runner_reason or "not run"
        if not errors and runner_reason and "--no-reference" not in runner_reason:
            reason += (
                "; set up the tflite-runtime environment with `make setup-tflite`, "
                "or name a Python that has it with --reference-python"
            )
        return {"status": "not measured", "reason": reason}
    pipeline_fps = [run.fps for run in entry.pipelines]
    speedups = [fps * r["ms_p50"] / 1000.0 for fps, r in zip(pipeline_fps, references) if "error" not in r]
    return {
        "status": "ok",
        "backend": f"tflite-runtime {good[0].get('tflite_runtime', '?')}",
        "numpy": good[0].get("numpy"),
        "fps": median([1000.0 / r["ms_p50"] for r in good]),
        "rounds_fps": [1000.0 / r["ms_p50"] for r in good],
        "throughput_fps": median([r["fps"] for r in good]),
        "ms_p50": median([r["ms_p50"] for r in good]),
        "frames": sum(int(r["frames"]) for r in good),
        "compared_with": entry.model.interpreter.backend_name,
        "speedup": median(speedups),
        "rounds_speedup": speedups,
        "errors": errors,
    }


def _memory(settings: BenchSettings, path: Path, backend: str) -> dict[str, Any]:
    log.info("memory: %d frames of %s in a subprocess", settings.long_frames, path.name)
    return measure_memory(
        path,
        settings.frames_dir,
        backend=backend,
        threads=settings.threads,
        size_wh=settings.size_wh,
        warmup=settings.long_warmup,
        frames=settings.long_frames,
        timeout_s=_MEMORY_TIMEOUT_S,
    )


def _startup(settings: BenchSettings, backend: str) -> dict[str, Any]:
    path = settings.models[0]
    runs = [
        time_to_first_message(
            path, settings.frames_dir, backend=backend, threads=settings.threads, size_wh=settings.size_wh
        )
        for _ in range(settings.startup_runs)
    ]
    return {"model": path.name, "backend": backend, "first_message_s": median(runs), "runs_s": runs}


def _environment(backends: list[str], unusable: dict[str, str], reference: ReferenceRunner) -> dict[str, Any]:
    import cv2

    return {
        "python": platform.python_version(),
        "executable": sys.executable,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "backends": backends,
        "backends_unusable": unusable,
        "reference_python": reference.python,
        "reference_versions": reference.versions,
        "reference_unusable": reference.reason or None,
    }


def _settings_dict(settings: BenchSettings, frame_count: int) -> dict[str, Any]:
    return {
        "threads": settings.threads,
        "threads_note": "the same interpreter thread count for robovision and the reference loop",
        "rounds": settings.rounds,
        "frames_per_round": settings.frames,
        "warmup_frames": settings.warmup,
        "invokes_per_round": settings.invokes,
        "round_s": settings.round_s,
        "long_frames": settings.long_frames,
        "startup_runs": settings.startup_runs,
        "reference_frames": settings.reference_frames,
        "frames_dir": str(settings.frames_dir),
        "frame_count": frame_count,
        "frame_size_wh": list(settings.size_wh),
    }
