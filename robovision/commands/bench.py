"""``robovision bench``: pipeline speed against the bare interpreter, latency, memory, start-up."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from robovision.backend_names import BACKENDS
from robovision.errors import EXIT_OK, ConfigError


def _size_wh(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}")
    return int(width), int(height)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure the pipeline against the bare interpreter, the reference loop, memory and start-up",
        description=(
            "Replay the bundled photographs from memory at full speed and measure, for each model "
            "(the toy-car model when present, the SSD reference model) on each usable backend: the bare "
            "interpreter's rate (invoke alone), the full service pipeline's rate with a subscriber "
            "attached, per-stage and capture-to-publish times, memory over a long run, the time from "
            "starting `robovision run` to its first message, and a loop written like the common "
            "Raspberry Pi examples (tflite-runtime). Prints a table with each target's PASS/MISS and "
            "writes the figures as JSON with --out."
        ),
    )
    parser.add_argument("--out", type=Path, help="write the JSON results here (e.g. benchmarks/results.json)")
    parser.add_argument(
        "--model", type=Path, action="append", dest="models", help="benchmark this model (repeat for more)"
    )
    parser.add_argument("--classifiers", action="store_true", help="add the MobileNet reference classifiers")
    parser.add_argument(
        "--backend",
        action="append",
        dest="backends",
        choices=BACKENDS,
        help="only this backend (repeat for more; default: every usable one)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="interpreter threads for every side (default: cores)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved measurement rounds (default 5)")
    parser.add_argument("--frames", type=int, default=300, help="pipeline frames per round (default 300)")
    parser.add_argument("--invokes", type=int, default=300, help="bare invocations per round (default 300)")
    parser.add_argument(
        "--round-seconds",
        type=float,
        default=4.0,
        help="time limit of each measurement in a round (default 4)",
    )
    parser.add_argument(
        "--long-frames", type=int, default=10000, help="frames of the memory run (default 10000)"
    )
    parser.add_argument("--startup-runs", type=int, default=3, help="start-up measurements (default 3)")
    parser.add_argument(
        "--reference-frames", type=int, default=30, help="reference loop frames per round (default 30)"
    )
    parser.add_argument(
        "--reference-python",
        help="Python with tflite-runtime and numpy<2 for the reference loop (default: this one, "
        "else .venv-tflite/bin/python when present)",
    )
    parser.add_argument(
        "--frames-dir", type=Path, help="photographs to replay (default: the bundled toy cars)"
    )
    parser.add_argument(
        "--size", type=_size_wh, default=(640, 480), metavar="WxH", help="frame size (640x480)"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the long memory run")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up measurement")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference loop")
    parser.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> Any:
    from robovision.bench.runner import BenchSettings, default_models

    models = tuple(args.models) if args.models else default_models(args.classifiers)
    optional: dict[str, Any] = {}
    if args.frames_dir is not None:
        optional["frames_dir"] = args.frames_dir
    return BenchSettings(
        models=models,
        threads=args.threads,
        backends=tuple(args.backends) if args.backends else None,
        rounds=args.rounds,
        frames=args.frames,
        invokes=args.invokes,
        round_s=args.round_seconds,
        long_frames=args.long_frames,
        startup_runs=0 if args.no_startup else args.startup_runs,
        reference_frames=args.reference_frames,
        reference_python=args.reference_python,
        size_wh=args.size,
        memory=not args.no_memory,
        startup=not args.no_startup and args.startup_runs > 0,
        reference=not args.no_reference,
        **optional,
    )


def run(args: argparse.Namespace) -> int:
    if args.threads < 1:
        raise ConfigError(f"--threads must be 1 or more, got {args.threads}")
    from robovision.bench.report import format_report
    from robovision.bench.runner import run_bench

    document = run_bench(settings_from_args(args))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(format_report(document))
    if args.out is not None:
        print(f"\nresults written to {args.out}")
    return EXIT_OK
