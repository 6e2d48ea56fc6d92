"""Training samples made from the photographs: geometric and photometric augmentation.

Every sample is a function of ``(seed, index)`` only, so a run is repeatable however the
samples are spread over threads. Four kinds of sample:

- a photograph, cropped/scaled, rotated, flipped, sometimes tilted in perspective as a
  camera close to the floor sees it;
- a photograph shrunk onto a larger background (many small, far cars);
- a car-free background (a negative texture or a car-free part of a photograph) with
  cars cut from their boxes pasted on at many sizes;
- a car-free background alone (chair wheels, hands, keyboards: things that are not cars).

Boxes are mapped through the same 3x3 homography as the pixels, using points on the
ellipse inscribed in each box, which keeps boxes tight under rotation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from robovision.train.carfree import find_carfree_windows
from robovision.train.config import AugmentConfig
from robovision.train.dataset import CachedImage

_ELLIPSE_T = np.linspace(0.0, 2.0 * np.pi, 24, endpoint=False)


@dataclass(frozen=True)
class Sample:
    """One training sample.

    ``image_rgb`` uint8 (s, s, 3); ``boxes_norm`` float32 (n, 4) xyxy in 0..1 of the
    input; ``ignore_norm`` float32 (m, 4): regions holding a car too cut off (or too small)
    to be a fair positive, where the loss neither rewards nor punishes a detection.
    """

    image_rgb: np.ndarray
    boxes_norm: np.ndarray
    ignore_norm: np.ndarray


@dataclass(frozen=True)
class _CarPatch:
    image_rgb: np.ndarray
    box_xyxy: np.ndarray
    """The car's box inside ``image_rgb`` (pixels)."""


class Augmenter:
    """Makes ``Sample``s from cached training photographs and background images.

    ``backgrounds`` are RGB uint8 images without cars (the negative textures); car-free
    windows of the photographs are added to them here.
    """

    def __init__(
        self,
        photos: Sequence[CachedImage],
        backgrounds: Sequence[np.ndarray],
        config: AugmentConfig,
        input_size: int,
        seed: int,
    ) -> None:
        if not photos:
            raise ValueError("the augmenter needs at least one photograph")
        self.photos = list(photos)
        self.config = config
        self.size = input_size
        self.seed = seed
        rng = np.random.default_rng([seed, 1])
        self.backgrounds = list(backgrounds) + _carfree_backgrounds(self.photos, rng)
        self.patches = _car_patches(self.photos)

    def sample(self, index: int) -> Sample:
        """The sample number ``index`` of this augmenter's endless, repeatable stream."""
        rng = np.random.default_rng([self.seed, 2, index])
        cfg = self.config
        kind = rng.random()
        if self.backgrounds and kind < cfg.empty_probability:
            image = self._background(rng)
            boxes = ignore = np.zeros((0, 4), dtype=np.float32)
        elif self.backgrounds and self.patches and kind < cfg.empty_probability + cfg.paste_probability:
            image, boxes, ignore = self._pasted(rng)
        else:
            image, boxes, ignore = self._photo(rng)
        image = photometric(image, rng, cfg)
        scale = np.float32(1.0 / self.size)
        return Sample(image, (boxes * scale).astype(np.float32), (ignore * scale).astype(np.float32))

    def _photo(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cfg = self.config
        photo = self.photos[int(rng.integers(len(self.photos)))]
        h, w = photo.image_rgb.shape[:2]
        zoom_out = bool(self.backgrounds) and rng.random() < cfg.zoom_out_probability
        if zoom_out:
            extent = float(np.exp(rng.uniform(np.log(1.4), np.log(3.2))))
        else:
            lo, hi = cfg.scale_range
            extent = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        aspect = float(np.exp(rng.uniform(-0.2, 0.2)))
        win_w, win_h = w * extent * aspect, h * extent / aspect
        cx = _window_centre(w, win_w, rng)
        cy = _window_centre(h, win_h, rng)
        matrix = _window_matrix(cx, cy, win_w, win_h, self.size)
        matrix = self._random_pose(rng) @ matrix
        if zoom_out or rng.random() < 0.5:
            canvas = self._background(rng)
            image = cv2.warpPerspective(
                photo.image_rgb, matrix, (self.size, self.size), dst=canvas,
                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT,
            )
        else:
            image = cv2.warpPerspective(
                photo.image_rgb, matrix, (self.size, self.size),
                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
            )
        boxes, ignore = map_boxes(photo.boxes_xyxy, matrix, self.size, cfg.min_visible_fraction)
        return image, boxes, ignore

    def _random_pose(self, rng: np.random.Generator) -> np.ndarray:
        """A homography about the input centre: rotation, flips, quarter turns, floor tilt."""
        cfg = self.config
        s = self.size
        centre = np.array([[1, 0, s / 2], [0, 1, s / 2], [0, 0, 1]], dtype=np.float64)
        uncentre = np.array([[1, 0, -s / 2], [0, 1, -s / 2], [0, 0, 1]], dtype=np.float64)
        angle = np.deg2rad(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
        if rng.random() < cfg.rotate90_probability:
            angle += np.pi / 2 * (1 if rng.random() < 0.5 else -1)
        c, si = np.cos(angle), np.sin(angle)
        pose = np.array([[c, -si, 0], [si, c, 0], [0, 0, 1]], dtype=np.float64)
        if rng.random() < 0.5:
            pose = np.diag([-1.0, 1.0, 1.0]) @ pose
        if rng.random() < cfg.flip_vertical_probability:
            pose = np.diag([1.0, -1.0, 1.0]) @ pose
        if rng.random() < cfg.perspective_probability:
            pose = _floor_tilt(rng.uniform(0.15, 0.5), s) @ pose
        return centre @ pose @ uncentre

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        """A random background crop as a fresh uint8 (size, size, 3) array."""
        bg = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        h, w = bg.shape[:2]
        side = int(min(h, w) * rng.uniform(0.4, 1.0))
        y0 = int(rng.integers(0, h - side + 1))
        x0 = int(rng.integers(0, w - side + 1))
        crop = bg[y0 : y0 + side, x0 : x0 + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.5:
            crop = np.rot90(crop)
        return cv2.resize(np.ascontiguousarray(crop), (self.size, self.size), interpolation=cv2.INTER_AREA)

    def _pasted(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        canvas = self._background(rng).astype(np.float32)
        placed: list[np.ndarray] = []
        for _ in range(int(rng.integers(1, 7))):
            patch = self.patches[int(rng.integers(len(self.patches)))]
            box = _paste_one(canvas, patch, rng, self.size, self.config)
            if box is None:
                continue
            placed = [b for b in placed if _covered_fraction(b, box) < 0.5]
            placed.append(box)
        boxes = np.asarray(placed, dtype=np.float32).reshape(-1, 4)
        return canvas.astype(np.uint8), boxes, np.zeros((0, 4), dtype=np.float32)


def _window_centre(extent_px: float, window_px: float, rng: np.random.Generator) -> float:
    half = window_px / 2.0
    lo, hi = sorted((half, extent_px - half))
    return float(rng.uniform(lo, hi))


def _window_matrix(cx: float, cy: float, win_w: float, win_h: float, size: int) -> np.ndarray:
    """Homography taking the source window centred at (cx, cy) to the (size, size) output."""
    sx, sy = size / win_w, size / win_h
    return np.array(
        [[sx, 0.0, size / 2 - cx * sx], [0.0, sy, size / 2 - cy * sy], [0.0, 0.0, 1.0]], dtype=np.float64
    )


def _floor_tilt(strength: float, size: int) -> np.ndarray:
    """Homography narrowing the top of the image: a view from low over the floor."""
    src = np.array([[0, 0], [size, 0], [size, size], [0, size]], dtype=np.float32)
    inset = strength * size / 2
    squash = strength * size * 0.3
    dst = np.array([[inset, squash], [size - inset, squash], [size, size], [0, size]], dtype=np.float32)
    return cv2.getPerspectiveTransform(src, dst).astype(np.float64)


def map_boxes(
    boxes_xyxy: np.ndarray, matrix: np.ndarray, size: int, min_visible_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Map boxes (n, 4) through a 3x3 homography into a (size, size) image.

    Returns ``(kept, ignored)``, float32 (k, 4) and (m, 4) in output pixels, clipped to
    the image: kept boxes show at least ``min_visible_fraction`` of their area and are at
    least 4 px on each side; partly visible others become ignore regions.
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    if not len(boxes):
        empty = np.zeros((0, 4), dtype=np.float32)
        return empty, empty
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    rx, ry = (boxes[:, 2] - boxes[:, 0]) / 2, (boxes[:, 3] - boxes[:, 1]) / 2
    px = cx[:, None] + rx[:, None] * np.cos(_ELLIPSE_T)[None, :]
    py = cy[:, None] + ry[:, None] * np.sin(_ELLIPSE_T)[None, :]
    points = np.stack([px, py, np.ones_like(px)], axis=-1) @ matrix.T
    points = points[..., :2] / points[..., 2:3]
    mapped = np.concatenate([points.min(axis=1), points.max(axis=1)], axis=1)
    clipped = np.clip(mapped, 0.0, float(size))
    area = np.prod(mapped[:, 2:] - mapped[:, :2], axis=1)
    visible = np.prod(np.clip(clipped[:, 2:] - clipped[:, :2], 0.0, None), axis=1)
    fraction = visible / np.maximum(area, 1e-6)
    sides = clipped[:, 2:] - clipped[:, :2]
    keep = (fraction >= min_visible_fraction) & (sides.min(axis=1) >= 4.0)
    ignore = ~keep & (visible > 4.0)
    return clipped[keep].astype(np.float32), clipped[ignore].astype(np.float32)


def _car_patches(photos: Sequence[CachedImage]) -> list[_CarPatch]:
    """Every labelled car with a margin of 12% of its box around it."""
    patches = []
    for photo in photos:
        h, w = photo.image_rgb.shape[:2]
        for box in photo.boxes_xyxy:
            bw, bh = box[2] - box[0], box[3] - box[1]
            x0 = int(max(0, box[0] - 0.12 * bw))
            y0 = int(max(0, box[1] - 0.12 * bh))
            x1 = int(min(w, box[2] + 0.12 * bw + 1))
            y1 = int(min(h, box[3] + 0.12 * bh + 1))
            if x1 - x0 < 8 or y1 - y0 < 8:
                continue
            local = (box - np.array([x0, y0, x0, y0], dtype=np.float32)).astype(np.float32)
            patches.append(_CarPatch(np.ascontiguousarray(photo.image_rgb[y0:y1, x0:x1]), local))
    return patches


def _carfree_backgrounds(photos: Sequence[CachedImage], rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for photo in photos:
        h, w = photo.image_rgb.shape[:2]
        min_side = max(48, min(h, w) // 4)
        for x0, y0, x1, y1 in find_carfree_windows(photo.boxes_xyxy, (w, h), min_side, 4, rng, tries=800):
            out.append(np.ascontiguousarray(photo.image_rgb[y0:y1, x0:x1]))
    return out


def _paste_one(
    canvas: np.ndarray, patch: _CarPatch, rng: np.random.Generator, size: int, cfg: AugmentConfig
) -> np.ndarray | None:
    """Blend one car into ``canvas`` (float32, modified in place); its box in pixels, or None."""
    image = patch.image_rgb
    box = patch.box_xyxy.astype(np.float64)
    if rng.random() < 0.5:
        image = image[:, ::-1]
        box = np.array([image.shape[1] - box[2], box[1], image.shape[1] - box[0], box[3]])
    if rng.random() < 0.3:
        image = np.rot90(image)
        w = image.shape[0]
        box = np.array([box[1], w - box[2], box[3], w - box[0]])
    long_side = max(box[2] - box[0], box[3] - box[1])
    target = float(np.exp(rng.uniform(np.log(0.08), np.log(0.6)))) * size
    scale = target / long_side
    ph, pw = image.shape[:2]
    out_w, out_h = max(2, round(pw * scale)), max(2, round(ph * scale))
    if out_w >= size or out_h >= size:
        return None
    image = cv2.resize(np.ascontiguousarray(image), (out_w, out_h), interpolation=cv2.INTER_AREA)
    image = _jitter_colour(image, rng, strength=0.5).astype(np.float32)
    x0 = int(rng.integers(0, size - out_w + 1))
    y0 = int(rng.integers(0, size - out_h + 1))
    box = box * scale + np.array([x0, y0, x0, y0])
    alpha = np.zeros((out_h, out_w), dtype=np.float32)
    local = (box - np.array([x0, y0, x0, y0])).round().astype(int)
    feather = max(1, round(min(local[2] - local[0], local[3] - local[1]) * 0.08))
    inset = feather // 2
    cv2.rectangle(
        alpha, (local[0] + inset, local[1] + inset), (local[2] - inset, local[3] - inset), 1.0, thickness=-1
    )
    alpha = cv2.GaussianBlur(alpha, (0, 0), sigmaX=feather)[:, :, None]
    region = canvas[y0 : y0 + out_h, x0 : x0 + out_w]
    region *= 1.0 - alpha
    region += alpha * image
    if min(box[2] - box[0], box[3] - box[1]) < 4:
        return None
    return box.astype(np.float32)


def _covered_fraction(box: np.ndarray, cover: np.ndarray) -> float:
    iw = max(0.0, min(box[2], cover[2]) - max(box[0], cover[0]))
    ih = max(0.0, min(box[3], cover[3]) - max(box[1], cover[1]))
    area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-6)
    return float(iw * ih / area)


def _jitter_colour(image_rgb: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Contrast, brightness, per-channel gain, gamma and saturation: a new uint8 (h, w, 3) array."""
    contrast = 1.0 + strength * rng.uniform(-0.35, 0.35)
    gain = (1.0 + strength * rng.uniform(-0.35, 0.35)) * (1.0 + strength * rng.uniform(-0.1, 0.1, size=3))
    bias = strength * rng.uniform(-30, 30)
    gamma = float(np.exp(strength * rng.uniform(-0.3, 0.3)))
    saturation = 1.0 + strength * rng.uniform(-0.4, 0.4)
    mean = float(image_rgb.mean())
    levels = np.arange(256, dtype=np.float32)[:, None]
    curve = np.clip(((levels - mean) * contrast + mean) * gain[None, :] + bias, 0.0, 255.0)
    curve = 255.0 * (curve / 255.0) ** gamma
    table = np.clip(np.rint(curve), 0, 255).astype(np.uint8).reshape(1, 256, 3)
    out = cv2.LUT(np.ascontiguousarray(image_rgb, dtype=np.uint8), table)
    gray = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    return np.asarray(cv2.addWeighted(out, saturation, gray, 1.0 - saturation, 0.0))


def photometric(image_rgb: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Colour and tone jitter, blur, noise and rare grayscale; a new uint8 (h, w, 3) array."""
    out = _jitter_colour(image_rgb, rng)
    if rng.random() < cfg.blur_probability:
        if rng.random() < 0.5:
            out = np.asarray(cv2.GaussianBlur(out, (0, 0), sigmaX=rng.uniform(0.5, 1.5)))
        else:
            out = _motion_blur(out, int(rng.integers(3, 8)), rng.uniform(0, 180))
    if rng.random() < cfg.noise_probability:
        noise = rng.standard_normal(size=out.shape, dtype=np.float32) * np.float32(rng.uniform(2.0, 10.0))
        out = np.clip(out + noise, 0.0, 255.0).astype(np.uint8)
    if rng.random() < cfg.grayscale_probability:
        out = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    return np.asarray(out, dtype=np.uint8)


def _motion_blur(image: np.ndarray, length: int, angle_deg: float) -> np.ndarray:
    line = np.zeros((length, length), dtype=np.float32)
    line[length // 2, :] = 1.0
    rotation = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle_deg, 1.0)
    kernel = np.asarray(cv2.warpAffine(line, rotation, (length, length)), dtype=np.float32)
    kernel /= max(float(kernel.sum()), 1e-6)
    return np.asarray(cv2.filter2D(image, -1, kernel))
