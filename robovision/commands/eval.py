"""``robovision eval``: precision, recall, AP50 and false alarms of a model on labelled photographs."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robovision.backend_names import BACKEND_CHOICES
from robovision.errors import EXIT_OK, ConfigError

if TYPE_CHECKING:
    import numpy as np

    from robovision.evaluate import Summary

DEFAULT_SCORE_FLOOR = 0.05


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score a model on a folder of images with YOLO labels",
        description=(
            "Run MODEL on every image of --data (DIR/images + DIR/labels, or images with their .txt "
            "labels beside them; every labelled class counts as a toy car) and print precision, recall "
            "and F1 at IoU 0.5 at the score threshold, AP50 (all-point interpolated over detections "
            "down to --score-floor), the centre-hit rate (detections whose centre is inside a true "
            "box), false detections per car-free image (images of --data with an empty or missing "
            "label file, and the images of --carfree folders, which count only there) and the mean "
            "inference time."
        ),
    )
    parser.add_argument("--model", type=Path, default=None, help="model with its card (default: shipped)")
    parser.add_argument("--data", type=Path, required=True, help="folder of images with YOLO labels")
    parser.add_argument("--split-file", type=Path, default=None, help="only the images named in this list")
    parser.add_argument(
        "--carfree", type=Path, action="append", default=[], help="a folder of car-free images (repeatable)"
    )
    parser.add_argument(
        "--label", action="append", default=None, help="keep only detections with this label (repeatable)"
    )
    parser.add_argument("--score-threshold", type=float, default=None, help="default: the card's threshold")
    parser.add_argument(
        "--score-floor",
        type=float,
        default=DEFAULT_SCORE_FLOOR,
        help="lowest score kept for the PR curve (default %(default)s)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="auto",
        help="interpreter package (default: ai-edge-litert when it works)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="interpreter threads (default: the runtime's)"
    )
    parser.add_argument("--plot", type=Path, default=None, help="write the precision-recall curve (PNG)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robovision.evaluate import summarize
    from robovision.frame import PixelLayout
    from robovision.model import Model
    from robovision.paths import shipped_model_path
    from robovision.train.dataset import find_labelled_images, read_name_list
    from robovision.train.scoring import score_images

    if not 0.0 <= args.score_floor <= 1.0:
        raise ConfigError(f"--score-floor must be between 0 and 1, got {args.score_floor}")
    if args.score_threshold is not None:
        _check_threshold(args.score_threshold, args.score_floor)
    model_path = args.model or shipped_model_path()
    card_model = Model.load(model_path, backend=args.backend, num_threads=args.threads)
    threshold = card_model.card.score_threshold if args.score_threshold is None else args.score_threshold
    _check_threshold(threshold, args.score_floor)
    model = Model.load(
        model_path,
        backend=args.backend,
        num_threads=args.threads,
        score_threshold=args.score_floor,
        max_detections=100,
        class_filter=args.label,
    )
    names = read_name_list(args.split_file) if args.split_file else None
    items = find_labelled_images(args.data, names)
    carfree_items = [item for folder in args.carfree for item in find_labelled_images(folder)]
    if not items:
        raise ConfigError(f"no images in {args.data}; pass a folder of images with YOLO labels")

    def detect(image_bgr: np.ndarray) -> Any:
        return model.detect_image(image_bgr, PixelLayout.BGR)

    _warm_up(detect, items[0].image_path)
    scored = score_images(detect, [*items, *carfree_items])
    for image in scored.images[len(items) :]:
        if len(image.true_xyxy):
            raise ConfigError(f"{image.name} in a --carfree folder has labelled boxes; move it to --data")
    matched = scored.matched()
    data_matched, extra_carfree = matched[: len(items)], matched[len(items) :]
    summary = summarize(data_matched, threshold)
    # Car-free images of --data count in its precision and AP too; --carfree folders only here.
    carfree = summarize([m for m in data_matched if m.true_count == 0] + extra_carfree, threshold)
    summary = replace(
        summary,
        carfree_images=carfree.carfree_images,
        false_per_carfree_image=carfree.false_per_carfree_image,
    )
    report = _report(model, summary, scored.mean_inference_ms, args)
    if args.plot:
        _plot(data_matched, summary, args.plot, title=f"{model.name} on {args.data.name}")
        report["plot"] = str(args.plot)
    print(json.dumps(report, indent=2) if args.json else format_text(report))
    return EXIT_OK


def _check_threshold(threshold: float, floor: float) -> None:
    if not floor <= threshold <= 1.0:
        raise ConfigError(
            f"the score threshold {threshold:g} must lie between --score-floor ({floor:g}) and 1; "
            f"lower --score-floor to score below it"
        )


def _warm_up(detect: Any, path: Path) -> None:
    """One untimed run, so interpreter set-up is not in the mean time."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is not None:
        detect(image)


def _report(model: Any, summary: Summary, mean_ms: float, args: argparse.Namespace) -> dict[str, Any]:
    figures = {key: value for key, value in vars(summary).items()}
    return {
        "model": str(model.path),
        "name": model.name,
        "backend": f"{model.interpreter.backend_name} {model.interpreter.backend_version}",
        "data": str(args.data),
        "split_file": str(args.split_file) if args.split_file else None,
        "carfree": [str(p) for p in args.carfree],
        "label_filter": args.label,
        "score_floor": args.score_floor,
        **{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in figures.items()},
        "mean_inference_ms": mean_ms,
    }


def format_text(report: dict[str, Any]) -> str:
    free = report["false_per_carfree_image"]
    r = report
    free_text = "n/a (no car-free images)" if free is None else (
        f"{free:.3f} ({round(free * report['carfree_images'])} in {report['carfree_images']} images)"
    )
    return "\n".join(
        [
            f"model          {report['model']} ({report['name']}, {report['backend']})",
            f"images         {r['images']} ({r['cars']} cars); car-free: {r['carfree_images']}",
            f"threshold      {report['score_threshold']:.3f}, IoU {report['iou_threshold']:.2f}",
            f"precision      {r['precision']:.3f} ({r['true_positives']} of {r['detections']})",
            f"recall         {report['recall']:.3f} ({report['true_positives']} of {report['cars']}, "
            f"{report['misses']} missed)",
            f"F1             {report['f1']:.3f}",
            f"AP50           {r['ap50']:.3f} (all-point interpolated, detections >= {r['score_floor']:g})",
            f"centre hits    {report['centre_hit_rate']:.3f} of detections",
            f"false/car-free {free_text}",
            f"inference      {report['mean_inference_ms']:.2f} ms mean",
        ]
    )


def _plot(matched: Any, summary: Summary, path: Path, title: str) -> None:
    """Precision against recall (OpenCV drawing), with the threshold's point marked."""
    import cv2
    import numpy as np

    from robovision.evaluate import precision_recall_curve

    scores = np.concatenate([m.scores for m in matched]) if matched else np.zeros(0)
    hits = np.concatenate([m.true_positive for m in matched]) if matched else np.zeros(0, bool)
    precision, recall, _ = precision_recall_curve(scores, hits, summary.cars)
    width, height, margin, top = 520, 470, 50, 80
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)

    def to_px(r: float, p: float) -> tuple[int, int]:
        return int(margin + r * (width - 2 * margin)), int(height - margin - p * (height - margin - top))

    for tick in np.linspace(0, 1, 6):
        cv2.line(canvas, to_px(tick, 0), to_px(tick, 1), (225, 225, 225), 1)
        cv2.line(canvas, to_px(0, tick), to_px(1, tick), (225, 225, 225), 1)
        cv2.putText(canvas, f"{tick:.1f}", (to_px(tick, 0)[0] - 10, height - margin + 18),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        cv2.putText(canvas, f"{tick:.1f}", (margin - 32, to_px(0, tick)[1] + 4),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.rectangle(canvas, to_px(0, 1), to_px(1, 0), (0, 0, 0), 1)
    start = [to_px(0.0, 1.0 if len(precision) else 0.0)]
    points = np.array(start + [to_px(r, p) for r, p in zip(recall, precision)])
    cv2.polylines(canvas, [points.reshape(-1, 1, 2).astype(np.int32)], False, (200, 80, 0), 2, cv2.LINE_AA)
    cv2.circle(canvas, to_px(summary.recall, summary.precision), 6, (0, 0, 220), 2, cv2.LINE_AA)
    cv2.putText(canvas, title, (margin, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, f"AP50 {summary.ap50:.3f}   o threshold {summary.score_threshold:.3f}",
                (margin, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(canvas, "recall", (width // 2 - 20, height - 12), font, 0.45, (0, 0, 0), 1)
    cv2.putText(canvas, "precision", (4, top - 12), font, 0.45, (0, 0, 0), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas):
        raise ConfigError(f"cannot write the plot to {path}; use a .png path in a writable folder")
