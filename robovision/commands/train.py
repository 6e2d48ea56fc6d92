"""``robovision train``: make the toy-car model from a training config."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from robovision.errors import EXIT_OK, ConfigError, RuntimeMissingError


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the toy-car detector, convert it to int8 and write it with its card",
        description=(
            "Train the toy-car detector on the CPU with fixed seeds, convert it to a full-integer "
            "int8 TFLite model, choose its score threshold on the validation photographs and write "
            "<name>.tflite, <name>.toml (card) and <name>_labels.txt to --out. Needs TensorFlow: "
            "pip install -e '.[train]'."
        ),
    )
    parser.add_argument("--config", type=Path, required=True, help="e.g. models/toycar.train.toml")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder for the model, card and labels; files of the same name there are replaced "
        "(--out models/ replaces the shipped model; git keeps the old one)",
    )
    parser.add_argument("--steps", type=int, default=None, help="override train.steps (for quick trials)")
    parser.set_defaults(func=run, default_verbosity=1)


def run(args: argparse.Namespace) -> int:
    from robovision.train.config import load_config

    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"--steps must be 1 or more, got {args.steps}")
    config = load_config(args.config)
    try:
        import tensorflow  # noqa: F401
    except ImportError as exc:
        raise RuntimeMissingError(
            "training needs TensorFlow; install it with pip install -e '.[train]' (Python 3.9 to 3.12)"
        ) from exc
    from robovision.train.recipe import train

    result = train(config, args.out, steps=args.steps)
    print(format_result(result))
    return EXIT_OK


def format_result(result: Any) -> str:
    """A short plain-text report of a ``TrainResult``: files, size, then float vs int8 figures."""
    lines = [
        f"model      {result.model_path} ({result.size_bytes / 1024:.1f} KiB)",
        f"card       {result.card_path} (score_threshold {result.score_threshold:.3f})",
        f"ops        {', '.join(f'{k} v{v}' for k, v in sorted(result.op_versions.items()))}",
        f"training   {result.train_seconds / 60:.1f} min, final loss {result.final_loss:.4f}",
        "",
        f"{'form':6} {'AP50':>6} {'P':>6} {'R':>6} {'F1':>6} {'centre':>7} {'false/free':>10} {'ms':>6}",
    ]
    def ms(fig: Any) -> str:
        # The float model runs eagerly in Keras: its time says nothing about deployment.
        return f"{fig.mean_inference_ms:6.2f}" if fig.form == "int8" else f"{'-':>6}"

    for fig in (result.float_figures, result.int8_figures):
        v = fig.val
        lines.append(
            f"{fig.form:6} {v.ap50:6.3f} {v.precision:6.3f} {v.recall:6.3f} {v.f1:6.3f} "
            f"{v.centre_hit_rate:7.3f} {fig.carfree.false_per_carfree_image:10.3f} {ms(fig)}"
        )
    lines.append(
        f"(validation: {result.int8_figures.val.images} photographs, {result.int8_figures.val.cars} cars; "
        f"car-free: {result.int8_figures.carfree.images} images; IoU 0.5; P/R/F1 at the card's threshold)"
    )
    return "\n".join(lines)
