"""Running a detector over labelled images and matching what it finds (numpy/OpenCV only)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

import numpy as np

from robovision.detection import FrameResult
from robovision.errors import SourceNotFoundError
from robovision.evaluate import ImageDetections, Matched, match_image
from robovision.train.dataset import LabelledImage, read_yolo_boxes

log = logging.getLogger(__name__)

DetectFn = Callable[[np.ndarray], FrameResult]
"""Detections in one BGR uint8 (h, w, 3) image, with stage times."""


@dataclass(frozen=True)
class Scored:
    """A detector's raw results on a set of images (detections above its score floor)."""

    images: tuple[ImageDetections, ...]
    inference_ms: tuple[float, ...]

    def matched(self, iou_threshold: float = 0.5) -> list[Matched]:
        return [match_image(image, iou_threshold) for image in self.images]

    @property
    def mean_inference_ms(self) -> float:
        return float(np.mean(self.inference_ms)) if self.inference_ms else float("nan")


def score_images(detect: DetectFn, items: Sequence[LabelledImage]) -> Scored:
    """Run ``detect`` on every image of ``items`` and keep its detections with the true boxes."""
    import cv2

    images, times = [], []
    for item in items:
        image_bgr = cv2.imread(str(item.image_path), cv2.IMREAD_COLOR)
        if image_bgr is None:
            raise SourceNotFoundError(f"cannot decode {item.image_path}; replace or remove the file")
        h, w = image_bgr.shape[:2]
        result = detect(image_bgr)
        boxes = np.asarray([d.box_xyxy for d in result.detections], dtype=np.float32).reshape(-1, 4)
        scores = np.asarray([d.score for d in result.detections], dtype=np.float32)
        truth = read_yolo_boxes(item.label_path, (w, h))
        images.append(ImageDetections(item.image_path.name, truth, boxes, scores))
        times.append(result.inference_ms)
    log.info("scored %d images", len(images))
    return Scored(tuple(images), tuple(times))
