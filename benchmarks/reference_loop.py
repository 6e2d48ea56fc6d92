"""A detection loop in the style of the common Raspberry Pi TFLite examples: the bench's baseline.

Each frame goes through the steps those examples take, in the same order: the whole
frame is converted from BGR to RGB (``cv2.cvtColor``), resized to the model's input size
(``cv2.resize``), given a batch axis (``np.expand_dims``), copied in with ``set_tensor``,
run with ``invoke`` and read back with ``get_tensor``; boxes scoring above the threshold
are turned into pixel coordinates in a Python loop. One thread does everything, every
step makes new arrays, and the interpreter is tflite-runtime's with ``num_threads`` set.

For a model with the four outputs of the SSD post-process op (boxes, classes, scores,
count, in the TF1 export's order, as the examples assume) the detections are read as
above; for any other model the loop reads the first output and keeps its best class.

    python benchmarks/reference_loop.py MODEL FRAMES.npy --threads 2 --count 50

``FRAMES.npy`` is an (n, h, w, 3) uint8 BGR array (``robovision bench`` writes the frames it
replays). One JSON line goes to stdout: ``fps`` over the timed frames, ``ms_p50`` per frame,
the versions used. When tflite-runtime cannot be loaded it prints ``{"error": ...}`` and
exits with status 3. ``--probe`` only checks that it loads the model.

It needs numpy < 2 (tflite-runtime 2.14 is built against numpy 1); it does not import
robovision, so it runs in any environment with tflite-runtime, numpy and OpenCV.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

EXIT_UNUSABLE = 3
SCORE_THRESHOLD = 0.5


def load_runtime():
    """numpy, cv2 and tflite-runtime's Interpreter class, or raise ImportError saying why not."""
    try:
        import cv2
        import numpy as np
        from tflite_runtime.interpreter import Interpreter
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"tflite-runtime is not usable with this Python ({sys.executable}): {exc}") from exc
    if int(np.__version__.split(".")[0]) >= 2:
        raise ImportError(
            f"tflite-runtime is built for numpy 1 but {sys.executable} has numpy {np.__version__}; "
            "run the reference loop with a Python that has numpy<2 (e.g. .venv-tflite/bin/python)"
        )
    return np, cv2, Interpreter


def open_interpreter(interpreter_class, model, threads):
    """The example's interpreter with its tensors allocated, or raise ImportError saying why not."""
    try:
        interpreter = interpreter_class(model_path=model, num_threads=threads)
        interpreter.allocate_tensors()
    except (SystemError, RuntimeError, ValueError) as exc:
        raise ImportError(f"tflite-runtime cannot run {model}: {exc}") from exc
    return interpreter


def versions(np, cv2):
    from importlib.metadata import version

    return {"tflite_runtime": version("tflite-runtime"), "numpy": np.__version__, "opencv": cv2.__version__}


def find_objects(np, outputs, image_w, image_h):
    """Detections above the threshold as (class id, score, (x_min, y_min, x_max, y_max) in pixels)."""
    if len(outputs) == 4:
        boxes, classes, scores = outputs[0][0], outputs[1][0], outputs[2][0]
        found = []
        for i in range(len(scores)):
            if SCORE_THRESHOLD < scores[i] <= 1.0:
                y_min = int(max(1, boxes[i][0] * image_h))
                x_min = int(max(1, boxes[i][1] * image_w))
                y_max = int(min(image_h, boxes[i][2] * image_h))
                x_max = int(min(image_w, boxes[i][3] * image_w))
                found.append((int(classes[i]), float(scores[i]), (x_min, y_min, x_max, y_max)))
        return found
    scores = outputs[0].reshape(-1)
    best = int(np.argmax(scores))
    return [(best, float(scores[best]), (0, 0, image_w, image_h))]


def run(args):
    np, cv2, interpreter_class = load_runtime()
    interpreter = open_interpreter(interpreter_class, args.model, args.threads)
    if args.probe:
        return versions(np, cv2)
    frames = np.load(args.frames)
    input_details = interpreter.get_input_details()
    output_details = interpreter.get_output_details()
    height, width = int(input_details[0]["shape"][1]), int(input_details[0]["shape"][2])
    input_dtype = input_details[0]["dtype"]

    frame_ms = []
    found = 0
    t_start = time.perf_counter()
    for i in range(args.warmup + args.count):
        if i == args.warmup:
            t_start = time.perf_counter()
        frame = frames[i % len(frames)]
        t0 = time.perf_counter()
        image_h, image_w = frame.shape[:2]
        frame_rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        frame_resized = cv2.resize(frame_rgb, (width, height))
        input_data = np.expand_dims(frame_resized, axis=0)
        if input_dtype == np.float32:
            input_data = (np.float32(input_data) - 127.5) / 127.5
        elif input_dtype == np.int8:
            input_data = (input_data.astype(np.int16) - 128).astype(np.int8)
        interpreter.set_tensor(input_details[0]["index"], input_data)
        interpreter.invoke()
        outputs = [interpreter.get_tensor(detail["index"]) for detail in output_details]
        found += len(find_objects(np, outputs, image_w, image_h))
        if i >= args.warmup:
            frame_ms.append((time.perf_counter() - t0) * 1000.0)
    elapsed = time.perf_counter() - t_start
    return {
        "fps": args.count / elapsed,
        "frames": args.count,
        "ms_p50": float(np.median(frame_ms)),
        "detections": found,
        "threads": args.threads,
        **versions(np, cv2),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a .tflite model")
    parser.add_argument("frames", nargs="?", help="an (n, h, w, 3) uint8 BGR .npy array")
    parser.add_argument("--threads", type=int, default=2, help="interpreter threads")
    parser.add_argument("--count", type=int, default=50, help="timed frames")
    parser.add_argument("--warmup", type=int, default=3, help="untimed frames first")
    parser.add_argument("--probe", action="store_true", help="only check that tflite-runtime loads MODEL")
    args = parser.parse_args(argv)
    if not args.probe and (args.frames is None or args.count < 1):
        parser.error("give FRAMES, and --count of 1 or more")
    try:
        report = run(args)
    except ImportError as exc:
        print(json.dumps({"error": str(exc)}))
        return EXIT_UNUSABLE
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
