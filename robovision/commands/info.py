"""``robovision info MODEL``: what a model takes and gives, how it is read, and how fast it runs."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robovision.backend_names import BACKEND_CHOICES
from robovision.errors import EXIT_OK, ConfigError

if TYPE_CHECKING:
    from robovision.model import Model
    from robovision.tensor_spec import TensorSpec

DEFAULT_RUNS = 20


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show a model's inputs, outputs, card, backend and speed",
        description=(
            "Load MODEL with its card (MODEL's stem + .toml) and print its input and output "
            "tensors (name, shape, dtype, quantization), the card settings in effect, the "
            "interpreter backend and version, and the median time of RUNS invocations on a "
            "blank input (after one untimed warm-up)."
        ),
    )
    parser.add_argument("model", type=Path, help="a .tflite file")
    parser.add_argument("--backend", choices=BACKEND_CHOICES, default="auto")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads (default: backend's)")
    parser.add_argument(
        "--no-xnnpack", action="store_true", help="builtin kernels only, without the default XNNPACK delegate"
    )
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="timed invocations (0 to skip timing)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.runs < 0:
        raise ConfigError(f"--runs must be 0 or more, got {args.runs}")
    from robovision.model import Model

    model = Model.load(
        args.model, backend=args.backend, num_threads=args.threads, xnnpack=not args.no_xnnpack
    )
    report = describe(model)
    if args.runs:
        report["timing"] = time_invocations(model, args.runs)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_text(report))
    return EXIT_OK


def describe(model: Model) -> dict[str, Any]:
    """A JSON-ready description of ``model`` (everything but timing)."""
    interpreter = model.interpreter
    model_file = model.model_file
    card = model.card.summary()
    card["decoder"] = model.decoder
    card["decoder_guessed"] = model.card.decoder is None
    card["label_count"] = len(model.params.labels)
    card["options_in_effect"] = dict(model.params.options)
    custom_ops = sorted({code.custom_code for code in model_file.operator_codes if code.custom_code})
    return {
        "model": str(model.path),
        "name": model.name,
        "size_bytes": model_file.size_bytes,
        "backend": {
            "name": interpreter.backend_name,
            "version": interpreter.backend_version,
            "threads": interpreter.num_threads,
            "xnnpack": interpreter.xnnpack,
        },
        "inputs": [_tensor(spec) for spec in interpreter.inputs],
        "outputs": [_tensor(spec) for spec in interpreter.outputs],
        "graph": {
            "operators": len(model_file.operators),
            "custom_ops": custom_ops,
            "max_op_version": max((code.version for code in model_file.operator_codes), default=0),
            "embedded_files": list(model_file.embedded_files),
        },
        "card": card,
    }


def time_invocations(model: Model, runs: int) -> dict[str, Any]:
    """Median and spread of ``runs`` calls to ``invoke`` alone, on an input filled with its zero point."""
    import numpy as np

    interpreter = model.interpreter
    blank = [np.full(spec.shape, spec.zero_point, dtype=spec.dtype) for spec in interpreter.inputs]
    interpreter.set_input(*blank)
    interpreter.invoke()  # warm-up: first invocations allocate and pack weights
    times_ms = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times_ms.append((time.perf_counter() - start) * 1000.0)
    return {
        "runs": runs,
        "median_ms": round(statistics.median(times_ms), 3),
        "min_ms": round(min(times_ms), 3),
        "max_ms": round(max(times_ms), 3),
    }


def format_text(report: dict[str, Any]) -> str:
    backend = report["backend"]
    threads = "default" if backend["threads"] is None else backend["threads"]
    xnnpack = "default delegate" if backend["xnnpack"] else "builtin kernels only"
    graph = report["graph"]
    lines = [
        f"model     {report['model']} ({report['size_bytes'] / 1e6:.2f} MB), name {report['name']!r}",
        f"backend   {backend['name']} {backend['version']}, threads {threads}, {xnnpack}",
        f"graph     {graph['operators']} operators, highest op version {graph['max_op_version']}"
        + (f", custom ops: {', '.join(graph['custom_ops'])}" if graph["custom_ops"] else "")
        + (f", embedded files: {', '.join(graph['embedded_files'])}" if graph["embedded_files"] else ""),
        "inputs",
        *(_tensor_line(t) for t in report["inputs"]),
        "outputs",
        *(_tensor_line(t) for t in report["outputs"]),
        *_card_lines(report["card"]),
    ]
    if "timing" in report:
        timing = report["timing"]
        lines.append(
            f"timing    invoke median {timing['median_ms']:.2f} ms over {timing['runs']} runs "
            f"(min {timing['min_ms']:.2f}, max {timing['max_ms']:.2f})"
        )
    return "\n".join(lines)


def _tensor(spec: TensorSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"index": spec.index, "name": spec.name, "shape": list(spec.shape)}
    out["dtype"] = str(spec.dtype)
    out["quantization"] = {"scale": spec.scale, "zero_point": spec.zero_point} if spec.quantized else None
    return out


def _tensor_line(tensor: dict[str, Any]) -> str:
    quant = tensor["quantization"]
    quant_text = f"scale {quant['scale']:.6g} zero point {quant['zero_point']}" if quant else "not quantized"
    shape = "x".join(str(d) for d in tensor["shape"])
    return f"  [{tensor['index']}] {tensor['name']}  {shape} {tensor['dtype']}  {quant_text}"


def _card_lines(card: dict[str, Any]) -> list[str]:
    source = card["card"] or "none (defaults)"
    decoder = card["decoder"] + (" (guessed from the outputs)" if card["decoder_guessed"] else "")
    labels = card["labels"] or "none (class ids shown)"
    lines = [
        f"card      {source}",
        f"  decoder {decoder}",
        f"  labels  {labels}, {card['label_count']} after offset {card['label_offset']}",
        f"  input   resize {card['resize']}, channel order {card['channel_order']}, "
        f"mean {card['mean']}, std {card['std']}",
        f"  filter  score >= {card['score_threshold']}, iou {card['iou_threshold']}, "
        f"at most {card['max_detections']}, classes {card['class_filter'] or 'all'}",
    ]
    if card["options_in_effect"]:
        lines.append(f"  options {json.dumps(card['options_in_effect'])}")
    return lines
