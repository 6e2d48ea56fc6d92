"""The training recipe: data, fit, float check, int8 conversion, threshold choice, card.

``train(config, out_dir)`` runs it end to end on the CPU with fixed seeds and writes
``<name>.tflite``, its card ``<name>.toml`` and ``<name>_labels.txt`` to ``out_dir``. The
score threshold in the card is chosen on the validation photographs (best F1) under a
cap on false detections per car-free image (``card.max_false_per_carfree_image``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robovision.detection import FrameResult
from robovision.evaluate import Summary, choose_threshold, summarize
from robovision.frame import PixelLayout
from robovision.tensor_spec import TensorSpec
from robovision.train.augment import Augmenter
from robovision.train.config import Config
from robovision.train.dataset import (
    CachedImage,
    LabelledImage,
    find_labelled_images,
    load_cached,
    read_name_list,
)
from robovision.train.scoring import DetectFn, Scored, score_images
from robovision.train.targets import encode_targets

log = logging.getLogger(__name__)

LABEL = "toy_car"


@dataclass(frozen=True)
class Figures:
    """Validation figures of one model form (float or int8) at the card's threshold."""

    form: str
    val: Summary
    carfree: Summary
    mean_inference_ms: float


@dataclass(frozen=True)
class TrainResult:
    model_path: Path
    card_path: Path
    score_threshold: float
    size_bytes: int
    op_versions: dict[str, int]
    float_figures: Figures
    int8_figures: Figures
    train_seconds: float
    final_loss: float


def train(config: Config, out_dir: Path, steps: int | None = None) -> TrainResult:
    """Train, convert and write the model and its card; see the module docstring."""
    import cv2

    cv2.setNumThreads(1)
    tf, keras = _tensorflow(config)
    from robovision.train.convert import check_op_versions, convert_int8, op_versions
    from robovision.train.network import build_model, grid_loss, with_sigmoid

    data = config.data
    train_items = find_labelled_images(data.toycars_dir, read_name_list(data.train_list))
    val_items = find_labelled_images(data.toycars_dir, read_name_list(data.val_list))
    carfree_items = find_labelled_images(data.carfree_dir)
    photos = load_cached(train_items, data.cache_long_side_px)
    backgrounds = _read_backgrounds(data.negatives_dir)
    augmenter = Augmenter(photos, backgrounds, config.augment, config.model.input_size, config.train.seed)

    steps = steps or config.train.steps
    model = build_model(config)
    started = time.monotonic()
    final_loss = _fit(tf, keras, model, grid_loss(config), augmenter, config=config, steps=steps)
    train_seconds = time.monotonic() - started
    deployable = with_sigmoid(model)

    floor = config.card.eval_score_floor
    float_detect = _float_detector(deployable, config, floor)
    float_val, float_free = score_images(float_detect, val_items), score_images(float_detect, carfree_items)

    flatbuffer = convert_int8(deployable, _representative(augmenter, photos, config))
    versions = op_versions(flatbuffer)
    check_op_versions(versions)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = config.model.name
    model_path = out_dir / f"{name}.tflite"
    model_path.write_bytes(flatbuffer)
    (out_dir / f"{name}_labels.txt").write_text(LABEL + "\n", encoding="utf-8")
    card_path = out_dir / f"{name}.toml"
    card_path.write_text(card_text(config, score_threshold=0.5), encoding="utf-8")

    int8_val, int8_free = _score_int8(model_path, floor, val_items, carfree_items)
    threshold = choose_threshold(
        int8_val.matched(), int8_free.matched(), config.card.max_false_per_carfree_image, floor
    )
    card_path.write_text(card_text(config, score_threshold=threshold), encoding="utf-8")
    result = TrainResult(
        model_path=model_path,
        card_path=card_path,
        score_threshold=threshold,
        size_bytes=len(flatbuffer),
        op_versions=versions,
        float_figures=_figures("float", float_val, float_free, threshold),
        int8_figures=_figures("int8", int8_val, int8_free, threshold),
        train_seconds=train_seconds,
        final_loss=final_loss,
    )
    log.info("wrote %s (%d bytes) and %s, threshold %.3f", model_path, len(flatbuffer), card_path, threshold)
    return result


def _tensorflow(config: Config) -> tuple[Any, Any]:
    """TensorFlow and Keras, on the CPU with the configured threads and seeds."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    keras = tf.keras
    try:
        tf.config.set_visible_devices([], "GPU")
        tf.config.threading.set_intra_op_parallelism_threads(config.train.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        # TensorFlow fixes these at its first op; a second training in one process keeps them.
        log.info(
            "TensorFlow already initialized in this process; keeping its %d intra-op threads",
            tf.config.threading.get_intra_op_parallelism_threads(),
        )
    keras.utils.set_random_seed(config.train.seed)
    tf.config.experimental.enable_op_determinism()
    return tf, keras


def _fit(
    tf: Any, keras: Any, model: Any, loss_fn: Any, augmenter: Augmenter, *, config: Config, steps: int
) -> float:
    """Train ``model`` in place for ``steps`` batches; the last logged mean loss."""
    t = config.train
    warmup = min(t.warmup_steps, max(steps // 10, 1))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=t.learning_rate * 0.05,
        decay_steps=max(steps - warmup, 1),
        alpha=0.02,
        warmup_target=t.learning_rate,
        warmup_steps=warmup,
    )
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=t.weight_decay,
        use_ema=t.ema_momentum > 0,
        ema_momentum=t.ema_momentum if t.ema_momentum > 0 else 0.99,
    )
    variables = model.trainable_variables

    @tf.function(jit_compile=False, reduce_retracing=True)
    def step(images: Any, targets: Any) -> Any:
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            total, focal, box = loss_fn(targets, logits)
        optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
        return tf.stack([total, focal, box])

    log.info("training %d steps of %d samples (%d params)", steps, t.batch_size, model.count_params())
    running, last_mean = [], float("nan")
    started = time.monotonic()
    with BatchStream(augmenter, t.batch_size, steps, config.grid_size) as stream:
        for number, (images, targets) in enumerate(stream, start=1):
            running.append(step(images, targets).numpy())
            if number % t.log_every == 0 or number == steps:
                mean = np.mean(running, axis=0)
                last_mean = float(mean[0])
                elapsed = time.monotonic() - started
                per_step = elapsed / number
                log.info(
                    "step %d/%d loss %.4f (centre %.4f, box %.4f) %.2f s/step, %.0f s left",
                    number, steps, mean[0], mean[1], mean[2], per_step, per_step * (steps - number),
                )
                running = []
    if t.ema_momentum > 0:
        optimizer.finalize_variable_values(variables)
    return last_mean


class BatchStream:
    """Augmented batches made in a background thread: ``(images, targets)`` float32 arrays
    (b, s, s, 3) in 0..1 and (b, g, g, 7). Batch ``k`` holds samples ``k*b .. k*b + b - 1``,
    so the stream is the same however fast it is consumed. Use as a context manager; the
    thread is stopped and joined on exit.
    """

    def __init__(self, augmenter: Augmenter, batch_size: int, batches: int, grid: int) -> None:
        self._augmenter = augmenter
        self._batch_size = batch_size
        self._batches = batches
        self._grid = grid
        self._queue: queue.Queue[tuple[np.ndarray, np.ndarray] | BaseException] = queue.Queue(maxsize=8)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="batch-stream", daemon=True)

    def __enter__(self) -> BatchStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(timeout=0.1)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for _ in range(self._batches):
            item = self._queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    def _produce(self) -> None:
        try:
            for k in range(self._batches):
                batch = self.make(k)
                while not self._stop.is_set():
                    try:
                        self._queue.put(batch, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            self._queue.put(exc)

    def make(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch number ``k``."""
        samples = [self._augmenter.sample(k * self._batch_size + i) for i in range(self._batch_size)]
        images = np.stack([s.image_rgb for s in samples]).astype(np.float32) / np.float32(255.0)
        targets = np.stack([encode_targets(s.boxes_norm, s.ignore_norm, self._grid) for s in samples])
        return images, targets


def _read_backgrounds(folder: Path) -> list[np.ndarray]:
    import cv2

    from robovision.train.dataset import IMAGE_SUFFIXES

    out = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            out.append(np.ascontiguousarray(image[:, :, ::-1]))
        else:
            log.warning("skipping %s: not a readable image", path)
    return out


def _representative(
    augmenter: Augmenter, photos: Sequence[CachedImage], config: Config
) -> Iterator[np.ndarray]:
    """Calibration inputs: training photographs as the camera path feeds them, then augmented ones."""
    import cv2

    size = config.model.input_size
    count = config.quantize.representative_count
    for photo in photos[: count // 2]:
        image = cv2.resize(photo.image_rgb, (size, size), interpolation=cv2.INTER_LINEAR)
        yield (image.astype(np.float32) / 255.0)[None]
    for i in range(count - min(len(photos), count // 2)):
        yield (augmenter.sample(10_000_000 + i).image_rgb.astype(np.float32) / 255.0)[None]


def _float_detector(model: Any, config: Config, floor: float) -> DetectFn:
    """A ``DetectFn`` running the float Keras model through the runtime's preprocess and decoder."""
    from robovision.decoders import toycar
    from robovision.decoders.base import DecodeParams
    from robovision.preprocess import Preprocessor, ResizeMode

    size = config.model.input_size
    grid = config.grid_size
    spec_in = TensorSpec(0, "image", (1, size, size, 3), np.dtype(np.float32))
    spec_out = TensorSpec(0, "grid", (1, grid, grid, 5), np.dtype(np.float32))
    pre = Preprocessor(spec_in, resize=ResizeMode.STRETCH, channel_order="rgb", mean=0.0, std=255.0)
    params = DecodeParams(
        labels=(LABEL,),
        score_threshold=floor,
        iou_threshold=config.card.iou_threshold,
        max_detections=100,
        options={"offset_span_cells": config.model.offset_span_cells},
    )

    def detect(image_bgr: np.ndarray) -> FrameResult:
        tensor, transform = pre(image_bgr, PixelLayout.BGR)
        started = time.perf_counter()
        grid_out = np.asarray(model(tensor.reshape(spec_in.shape), training=False))
        inference_ms = (time.perf_counter() - started) * 1000.0
        detections = toycar.decode([grid_out], [spec_out], transform, params)
        return FrameResult(tuple(detections), 0.0, inference_ms, 0.0)

    return detect


def _score_int8(
    model_path: Path, floor: float, val_items: Sequence[LabelledImage], carfree_items: Sequence[LabelledImage]
) -> tuple[Scored, Scored]:
    from robovision.model import Model

    model = Model.load(model_path, score_threshold=floor, max_detections=100)

    def detect(image_bgr: np.ndarray) -> FrameResult:
        return model.detect_image(image_bgr, PixelLayout.BGR)

    return score_images(detect, val_items), score_images(detect, carfree_items)


def _figures(form: str, val: Scored, carfree: Scored, threshold: float) -> Figures:
    return Figures(
        form=form,
        val=summarize(val.matched(), threshold),
        carfree=summarize(carfree.matched(), threshold),
        mean_inference_ms=val.mean_inference_ms,
    )


def card_text(config: Config, score_threshold: float) -> str:
    """The model card (TOML) for a model made with ``config``."""
    m = config.model
    grid = config.grid_size
    return f"""# Model card for {m.name}.tflite (read by robovision.model_card). Made by `robovision train`.
name = "{m.name}"
decoder = "toycar"
labels = "{m.name}_labels.txt"
channel_order = "rgb"
resize = "stretch"
# Chosen on the validation photographs: best F1 with at most {config.card.max_false_per_carfree_image:g}
# false detections per car-free image.
score_threshold = {score_threshold:.3f}
iou_threshold = {config.card.iou_threshold:g}
max_detections = {config.card.max_detections}

# Output (1, {grid}, {grid}, 5) int8, values after a sigmoid (0..1); per cell:
#   0: centre score (a car's box centre lies in this cell)
#   1, 2: centre x, y in cells = col|row + 0.5 + (v - 0.5) * offset_span_cells
#   3, 4: box width, height as a fraction of the input width, height
# Input (1, {m.input_size}, {m.input_size}, 3) int8 RGB, q = pixel - 128 (scale 1/255, zero point -128).
[decoder_options]
offset_span_cells = {m.offset_span_cells:g}
"""
