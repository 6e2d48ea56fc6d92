"""``robovision capture``: one frame (or every frame of a file) through the model, as JSON."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from robovision.backend_names import BACKEND_CHOICES
from robovision.errors import EXIT_OK, ConfigError, RobovisionError, SourceError
from robovision.paths import shipped_model_path

log = logging.getLogger(__name__)



def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "capture",
        help="run the model on one frame and print its detections as JSON",
        description=(
            "Take one frame from SOURCE, run the model and print one JSON detection message "
            "on stdout (the schema the detection socket carries). With --json-lines, every "
            "frame of a folder or video is processed and printed as one line each."
        ),
    )
    parser.add_argument(
        "--source",
        required=True,
        help="image file, folder, video file, /dev/videoN or index, stream URL, picamera2[:N]",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="TFLite model with its card beside it (default: the shipped toy-car model)",
    )
    parser.add_argument("--backend", choices=BACKEND_CHOICES, default="auto")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads")
    parser.add_argument("--score-threshold", type=float, default=None, help="override the card's")
    parser.add_argument("--hfov", type=float, default=None, help="horizontal field of view, degrees")
    parser.add_argument("--annotate", type=Path, default=None, help="save the frame with boxes drawn")
    parser.add_argument(
        "--json-lines", action="store_true", help="every frame of a folder or video, one line each"
    )
    parser.add_argument("--limit", type=int, default=None, help="with --json-lines: at most N frames")
    parser.add_argument("--warmup", action="store_true", help="one untimed inference before the first frame")
    parser.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be 1 or more, got {args.threads}")
    if args.score_threshold is not None and not 0.0 <= args.score_threshold <= 1.0:
        raise ConfigError(f"--score-threshold must be between 0 and 1, got {args.score_threshold}")
    if args.hfov is not None and not 1.0 <= args.hfov <= 179.0:
        raise ConfigError(f"--hfov is the horizontal field of view in degrees (1..179), got {args.hfov}")
    if args.limit is not None and not args.json_lines:
        raise ConfigError("--limit goes with --json-lines")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be 1 or more, got {args.limit}")
    if args.annotate is not None and args.json_lines:
        raise ConfigError("--annotate saves one frame; drop --json-lines or --annotate")
    if args.annotate is not None and args.annotate.suffix.lower() not in (".jpg", ".jpeg", ".png"):
        raise ConfigError(f"--annotate needs a .jpg or .png file name, got {args.annotate}")
    if args.annotate is not None and not args.annotate.parent.is_dir():
        raise ConfigError(f"--annotate: folder {args.annotate.parent} does not exist; create it first")


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    from robovision.messages import detection_message
    from robovision.model import Model
    from robovision.sources import open_source

    overrides: dict[str, Any] = {}
    if args.score_threshold is not None:
        overrides["score_threshold"] = args.score_threshold
    model_path = args.model or shipped_model_path()
    model = Model.load(model_path, backend=args.backend, num_threads=args.threads, **overrides)
    if args.warmup:
        model.interpreter.invoke()

    count = 0
    with open_source(args.source, loop=False) as source:
        while args.limit is None or count < args.limit:
            t_read = time.perf_counter()
            frame = source.read(timeout_s=10.0)
            capture_ms = (time.perf_counter() - t_read) * 1000.0
            if frame is None:
                break
            result = model.detect(frame)
            message = detection_message(
                frame, result, model_name=model.name, seq=count, hfov_deg=args.hfov, capture_ms=capture_ms
            )
            if args.json_lines:
                print(json.dumps(message, separators=(",", ":")), flush=True)
            else:
                print(json.dumps(message, indent=2))
            if args.annotate is not None:
                _save_annotated(args.annotate, frame, result.detections)
            count += 1
            if not args.json_lines:
                break
    if count == 0:
        raise SourceError(f"{args.source} gave no frame; check that it holds an image or video")
    log.info("processed %d frame(s)", count)
    return EXIT_OK


def _save_annotated(path: Path, frame: Any, detections: Any) -> None:
    import cv2

    from robovision.annotate import draw_detections, to_bgr

    image_bgr = draw_detections(to_bgr(frame.image, frame.layout), detections)
    if not cv2.imwrite(str(path), image_bgr):
        raise RobovisionError(f"could not write {path}; check that its folder is writable")
    log.info("annotated frame written to %s", path)
