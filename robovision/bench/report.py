"""The bench document as a text table, the way ``robovision bench`` prints it."""

from __future__ import annotations

from typing import Any, Optional

from robovision.service.status import STAGES


def _num(value: Optional[float], digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pcts(pct: dict[str, Any], keys: tuple[str, ...] = ("p50", "p95"), digits: int = 2) -> str:
    return "/".join(_num(pct.get(key), digits) for key in keys) if pct else "-"


def format_report(document: dict[str, Any]) -> str:
    """Settings, one block per model, start-up, and the targets with PASS/MISS."""
    settings = document["settings"]
    env = document["environment"]
    lines = [
        f"robovision {document['robovision']} bench: {settings['frame_count']} frames "
        f"{settings['frame_size_wh'][0]}x{settings['frame_size_wh'][1]} replayed from memory at full speed; "
        f"{settings['rounds']} interleaved rounds; medians over rounds",
        f"threads: {settings['threads']} interpreter threads for robovision and the reference loop alike "
        f"({env['cpus']} cores); load average {_load(document)}",
    ]
    for name, why in env["backends_unusable"].items():
        lines.append(f"backend {name}: not usable here: {why}")
    for model in document["models"]:
        lines += ["", *_model_block(model)]
    startup = document.get("startup")
    if startup:
        runs = ", ".join(_num(v) for v in startup["runs_s"])
        lines += [
            "",
            f"start to first published message ({startup['model']}, {startup['backend']}): "
            f"{_num(startup['first_message_s'])} s (runs: {runs})",
        ]
    lines += ["", "targets:"] + [_target_line(t) for t in document["targets"]]
    return "\n".join(lines)


def _load(document: dict[str, Any]) -> str:
    load = document["load_average"]
    return f"{_num(load['start'][0])} at start, {_num(load['end'][0])} at end"


def _model_block(model: dict[str, Any]) -> list[str]:
    shape = "x".join(str(v) for v in model["input"]["shape"][1:3])
    lines = [
        f"{model['model']} ({model['kind']}, input {shape} {model['input']['dtype']}): "
        f"preprocess alone p50/p95 {_pcts(model['preprocess_alone_ms'], digits=3)} ms",
        f"  {'backend':<15} {'ceiling':>8} {'pipeline':>8} {'ratio':>6}  {'limited by':<22}"
        + "".join(f" {stage[:5] + ' p50/95':>14}" for stage in STAGES)
        + f" {'latency p50/95/99':>19}",
    ]
    for entry in model["backends"]:
        pipeline = entry["pipeline"]
        stages = pipeline["stage_ms"]
        limited = f"{pipeline['limiting_stage']} ({_num(100 * (pipeline['limiting_share'] or 0), 0)}%)"
        lines.append(
            f"  {entry['backend'] + ' ' + entry['version']:<15} {_num(entry['ceiling']['fps'], 1):>8} "
            f"{_num(pipeline['fps'], 1):>8} {_num(pipeline['ratio']):>6}  {limited:<22}"
            + "".join(f" {_pcts(stages[stage]):>14}" for stage in STAGES)
            + f" {_pcts(pipeline['latency_ms'], ('p50', 'p95', 'p99')):>19}"
        )
    lines.append(
        "  (ceiling and pipeline: frames/s of a typical frame, 1000 / median ms; stage times and "
        "capture-to-publish latency in ms)"
    )
    for entry in model["backends"]:
        pipeline = entry["pipeline"]
        parts = pipeline.get("gap_parts_ms") or {}
        lines.append(
            f"  {entry['backend']}: per frame beyond the bare invoke(): "
            + ", ".join(f"{name} {_num(value, 3)}" for name, value in parts.items())
            + f" ms; whole-run throughput {_num(pipeline['throughput_fps'], 1)} against "
            f"{_num(entry['ceiling']['throughput_fps'], 1)} frames/s ({_num(pipeline['throughput_ratio'])})"
        )
    reference = model["reference"]
    if reference["status"] == "ok":
        lines.append(
            f"  reference loop ({reference['backend']}, numpy {reference['numpy']}): "
            f"{_num(reference['fps'], 1)} frames/s; robovision ({reference['compared_with']}) "
            f"is {_num(reference['speedup'], 1)}x faster"
        )
    else:
        lines.append(f"  reference loop: {reference['status']}: {reference['reason']}")
    memory = model.get("memory")
    if memory:
        lines.append(
            f"  memory ({memory['backend']}, {memory['frames']} frames): "
            f"RSS {_num(memory['rss_after_warmup_mb'], 1)} MB after warm-up, "
            f"{_num(memory['rss_end_mb'], 1)} MB at the end (growth {_num(memory['growth_mb'], 2)} MB), "
            f"peak {_num(memory['peak_rss_mb'], 1)} MB (replay frames: {_num(memory['replay_mb'], 1)} MB)"
        )
    return lines


def _target_line(target: dict[str, Any]) -> str:
    head = f"  {target['status']:<4}  {target['target']:<20} {target['model']:<24}"
    if target["status"] == "n/a":
        return f"{head} {target['note']}"
    digits = 3 if target["unit"] in ("ms", "x") else 2
    figure = (
        f"{_num(target['value'], digits)} {target['unit']} {target['rule']} {_num(target['limit'], digits)}"
    )
    miss = (
        f"; misses by {_num(target['miss_by'], digits)} {target['unit']}"
        if target["miss_by"] is not None
        else ""
    )
    return f"{head} {figure}{miss} ({target['note']})"
