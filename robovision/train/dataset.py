"""Photographs with YOLO labels: reading, the train/validation split, and an in-memory cache.

A labelled folder is either ``DIR/images`` + ``DIR/labels`` or images with their label
files beside them. A label file has one ``class cx cy w h`` line per box, normalized to
the image (0..1). An image with an empty or missing label file is a car-free image.

This module needs numpy and OpenCV only (no TensorFlow).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robovision.errors import ConfigError, SourceNotFoundError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class LabelledImage:
    """One photograph and where its labels live."""

    image_path: Path
    label_path: Path | None
    """``None`` when the image has no label file (a car-free image)."""


def find_labelled_images(data_dir: Path | str, names: Sequence[str] | None = None) -> list[LabelledImage]:
    """Images under ``data_dir`` (sorted by name), optionally only those in ``names``.

    ``names`` are image file names (``IMG_1.jpg``) or stems; a name that matches no image
    is an error, so a stale split file is caught.
    """
    data_dir = Path(data_dir)
    images_dir = data_dir / "images" if (data_dir / "images").is_dir() else data_dir
    labels_dir = data_dir / "labels" if (data_dir / "labels").is_dir() else images_dir
    if not images_dir.is_dir():
        raise SourceNotFoundError(f"no folder {images_dir}: pass a folder of images with YOLO labels")
    paths = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if names is not None:
        by_key = {p.name: p for p in paths} | {p.stem: p for p in paths}
        missing = [n for n in names if n not in by_key]
        if missing:
            raise ConfigError(f"{len(missing)} listed image(s) not in {images_dir}, e.g. {missing[:3]}")
        paths = [by_key[n] for n in names]
    out = []
    for path in paths:
        label = labels_dir / f"{path.stem}.txt"
        out.append(LabelledImage(path, label if label.is_file() else None))
    return out


def read_yolo_boxes(label_path: Path | None, size_wh: tuple[int, int]) -> np.ndarray:
    """Boxes of a YOLO label file in image pixels: float32 (n, 4) xyxy; (0, 4) if none.

    Every class id counts as a toy car (the source data names six car models).
    """
    if label_path is None:
        return np.zeros((0, 4), dtype=np.float32)
    rows = []
    for number, line in enumerate(label_path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            raise ConfigError(f"{label_path}:{number}: expected 'class cx cy w h', got {line!r}")
        rows.append([float(v) for v in parts[1:]])
    if not rows:
        return np.zeros((0, 4), dtype=np.float32)
    cxcywh = np.asarray(rows, dtype=np.float32)
    w, h = size_wh
    half = cxcywh[:, 2:] / 2.0
    xyxy = np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)
    return (xyxy * np.array([w, h, w, h], dtype=np.float32)).astype(np.float32)


def read_name_list(path: Path | str) -> list[str]:
    """Image names from a list file: one a line, ``#`` comments and blank lines ignored."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"list file {path} not found; write one image name a line")
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(name)
    return names


def split_by_photograph(names: Sequence[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """A deterministic (train, val) split of image names; both lists sorted."""
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    ordered = sorted(names)
    order = np.random.default_rng(seed).permutation(len(ordered))
    n_val = max(1, round(len(ordered) * val_fraction))
    val = sorted(ordered[i] for i in order[:n_val])
    train = sorted(ordered[i] for i in order[n_val:])
    return train, val


@dataclass(frozen=True)
class CachedImage:
    """A decoded photograph kept in memory for augmentation.

    ``image_rgb`` is uint8 (h, w, 3), scaled so its longer side is at most the cache size;
    ``boxes_xyxy`` are float32 (n, 4) in the cached image's pixels.
    """

    name: str
    image_rgb: np.ndarray
    boxes_xyxy: np.ndarray


def load_cached(items: Sequence[LabelledImage], long_side_px: int) -> list[CachedImage]:
    """Decode, shrink and convert to RGB every image in ``items``, with boxes scaled to match."""
    import cv2

    out = []
    for item in items:
        image_bgr = cv2.imread(str(item.image_path), cv2.IMREAD_COLOR)
        if image_bgr is None:
            raise SourceNotFoundError(f"cannot decode {item.image_path}; replace or remove the file")
        h, w = image_bgr.shape[:2]
        boxes = read_yolo_boxes(item.label_path, (w, h))
        scale = min(1.0, long_side_px / max(w, h))
        if scale < 1.0:
            size_wh = (round(w * scale), round(h * scale))
            image_bgr = cv2.resize(image_bgr, size_wh, interpolation=cv2.INTER_AREA)
            boxes = boxes * np.float32(scale)
        image_rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        out.append(CachedImage(item.image_path.name, image_rgb, boxes))
    log.info("cached %d images (longer side <= %d px)", len(out), long_side_px)
    return out
