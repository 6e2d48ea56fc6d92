"""The performance targets, each judged PASS or MISS from a bench document.

A target whose figure was not measured (the model is absent, a backend unusable, a part
skipped) is reported as "n/a" with the reason, never as a pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from robovision.paths import reference_model_path, shipped_model_path

PIPELINE_RATIO_MIN = {"ssd": 0.9, "toycar": 0.8}
"""Pipeline frame rate as a fraction of the bare interpreter's, per model, on ``TARGET_BACKEND``."""
TARGET_BACKEND = "litert"
LATENCY_SLACK_MS = 2.0
"""Capture-to-publish p50 may exceed preprocess p50 + inference p50 by this much."""
PREPROCESS_MAX_MS = 0.5
RSS_MAX_MB = 200.0
GROWTH_MAX_MB = 5.0
STARTUP_MAX_S = 2.0
REFERENCE_SPEEDUP_MIN = 5.0
TARGET_KINDS = ("toycar", "ssd")


def model_kind(path: Path, decoder: str = "") -> str:
    """Which targets apply to a model.

    "toycar" for the shipped model or another build of it (its card names the toycar
    decoder), "ssd" for the SSD reference model, else "other".
    """
    resolved = path.resolve()
    if resolved == shipped_model_path().resolve() or decoder == "toycar":
        return "toycar"
    if resolved == reference_model_path().resolve():
        return "ssd"
    return "other"


def evaluate(document: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per target and model: name, model, value, limit, unit, status (PASS/MISS/n/a), note."""
    results: list[dict[str, Any]] = []
    models = {m["kind"]: m for m in document["models"] if m["kind"] in TARGET_KINDS}
    for kind in TARGET_KINDS:
        model = models.get(kind)
        if model is None:
            absent = kind == "toycar" and not shipped_model_path().exists()
            why = f"{shipped_model_path()} not present" if absent else "model not benchmarked"
            results.append(_na("pipeline_vs_ceiling", kind, why))
            continue
        results += _model_targets(kind, model)
    results.append(_startup(document.get("startup")))
    return results


def _model_targets(kind: str, model: dict[str, Any]) -> list[dict[str, Any]]:
    name = model["model"]
    entry = next((b for b in model["backends"] if b["backend"] == TARGET_BACKEND), None)
    if entry is None:
        results = [_na("pipeline_vs_ceiling", name, f"backend {TARGET_BACKEND} not measured")]
        entry = model["backends"][0] if model["backends"] else None
    else:
        pipeline = entry["pipeline"]
        results = [
            _judge(
                "pipeline_vs_ceiling",
                name,
                pipeline["ratio"],
                PIPELINE_RATIO_MIN[kind],
                "x",
                at_least=True,
                note=f"limited by {pipeline['limiting_stage']}; beyond the ceiling: {_gap_text(pipeline)}",
            )
        ]
    if entry is not None:
        results += _stage_targets(name, entry)
    results += _memory_targets(name, model.get("memory"))
    if kind == "ssd":
        results.append(_reference_target(name, model.get("reference")))
    return results


def _gap_text(pipeline: dict[str, Any]) -> str:
    parts = pipeline.get("gap_parts_ms") or {}
    return ", ".join(f"{name} {value:.3f}" for name, value in parts.items()) + " ms per frame"


def _stage_targets(name: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
    pipeline = entry["pipeline"]
    stages = pipeline["stage_ms"]
    limit = stages["preprocess"]["p50"] + stages["inference"]["p50"] + LATENCY_SLACK_MS
    return [
        _judge(
            "latency_p50",
            name,
            pipeline["latency_ms"]["p50"],
            limit,
            "ms",
            at_least=False,
            note=f"limit = preprocess p50 + inference p50 + {LATENCY_SLACK_MS:g} ms ({entry['backend']})",
        ),
        _judge(
            "preprocess_p50",
            name,
            stages["preprocess"]["p50"],
            PREPROCESS_MAX_MS,
            "ms",
            at_least=False,
            note="640x480 BGR frame to the model input, in the pipeline",
        ),
    ]


def _memory_targets(name: str, memory: Optional[dict[str, Any]]) -> list[dict[str, Any]]:
    if memory is None:
        return [
            _na("steady_rss", name, "memory not measured"),
            _na("rss_growth", name, "memory not measured"),
        ]
    steady = max(memory["rss_after_warmup_mb"], memory["rss_end_mb"])
    return [
        _judge(
            "steady_rss",
            name,
            steady,
            RSS_MAX_MB,
            "MB",
            at_least=False,
            note=f"includes {memory['replay_mb']:.0f} MB of decoded replay frames",
        ),
        _judge(
            "rss_growth",
            name,
            memory["growth_mb"],
            GROWTH_MAX_MB,
            "MB",
            at_least=False,
            strict=True,
            note=f"over {memory['frames']} frames",
        ),
    ]


def _reference_target(name: str, reference: Optional[dict[str, Any]]) -> dict[str, Any]:
    if reference is None or reference.get("status") != "ok":
        return _na("vs_reference_loop", name, (reference or {}).get("reason", "reference loop not run"))
    return _judge(
        "vs_reference_loop",
        name,
        reference["speedup"],
        REFERENCE_SPEEDUP_MIN,
        "x",
        at_least=True,
        note=f"robovision ({reference['compared_with']}) vs {reference['backend']} loop",
    )


def _startup(startup: Optional[dict[str, Any]]) -> dict[str, Any]:
    if startup is None:
        return _na("first_message", "-", "start-up not measured")
    return _judge(
        "first_message",
        startup["model"],
        startup["first_message_s"],
        STARTUP_MAX_S,
        "s",
        at_least=False,
        note="spawn of robovision run to the first detection message received",
    )


def _judge(
    name: str,
    model: str,
    value: Optional[float],
    limit: float,
    unit: str,
    *,
    at_least: bool,
    strict: bool = False,
    note: str = "",
) -> dict[str, Any]:
    if value is None:
        return _na(name, model, "no figure")
    if at_least:
        passed = value > limit if strict else value >= limit
        miss_by = limit - value
    else:
        passed = value < limit if strict else value <= limit
        miss_by = value - limit
    return {
        "target": name,
        "model": model,
        "value": value,
        "limit": limit,
        "unit": unit,
        "rule": (">" if strict else ">=") if at_least else ("<" if strict else "<="),
        "status": "PASS" if passed else "MISS",
        "miss_by": None if passed else miss_by,
        "note": note,
    }


def _na(name: str, model: str, why: str) -> dict[str, Any]:
    return {"target": name, "model": model, "status": "n/a", "note": why}
