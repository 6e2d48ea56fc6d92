"""Turn a camera frame into the model's input tensor, and remember how it was placed.

The work is ordered to touch as few bytes as possible: the frame (or its centre crop)
is resized first, in its own pixel layout, straight to the size it will occupy in the
model input; only that small image is colour-converted, and the conversion writes
directly into the output buffer. All buffers are allocated once per frame size and
layout and reused, so steady-state calls allocate nothing but the small ``Transform``.

Pixel values
------------
The model sees the image as an 8-bit RGB (or BGR) picture, transformed as follows:

- Float inputs: ``real = (p - mean) / std`` per channel (``mean``/``std`` from the model
  card, in the model's channel order; the defaults 0 and 1 give raw 0..255 values).
- Quantized inputs (uint8 / int8) with the default ``mean=0, std=1``: the pixel bytes are
  handed over as they are, ``q = p`` for uint8 and ``q = p - 128`` for int8. This is exact
  for image models whose quantized input spans the pixel range: the tensor then holds the
  real value the model was trained on to within half a quantization step. Examples: the
  uint8 MobileNet (scale 1/128, zero point 128, trained on ``p / 127.5 - 1``) and the int8
  MobileNet (scale 1/127.5, zero point -1, same training range); a [0, 1] model quantized
  with scale 1/255 and zero point 0 (uint8) or -128 (int8) is reproduced exactly.
- Quantized inputs with ``mean``/``std`` given: ``real = (p - mean) / std`` and
  ``q = clip(round(real / scale) + zero_point)`` with the tensor's own scale and zero
  point (round half to even, as Python's ``round``). A mean/std whose pixel range the
  tensor cannot represent (more than one step of clipping) is refused with ``ConfigError``.

YUV420 frames are taken as full-range BT.601 (sYCC, JPEG levels), which is what
picamera2's preview configuration delivers.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Union

import cv2
import numpy as np

from robovision.errors import ConfigError
from robovision.frame import PixelLayout, image_size_wh
from robovision.tensor_spec import TensorSpec
from robovision.transform import Transform

log = logging.getLogger(__name__)

ChannelValues = Union[float, Sequence[float]]


class ResizeMode(str, enum.Enum):
    """How a frame of another aspect ratio is fitted to the model input."""

    STRETCH = "stretch"
    """Scale each axis independently; nothing is lost, shapes are distorted."""
    LETTERBOX = "letterbox"
    """Scale to fit inside, centred, padding the rest with ``pad_value``."""
    CROP = "crop"
    """Scale to cover, centred, cutting off what sticks out (the frame edges are not seen)."""


_INTERPOLATION = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "nearest": cv2.INTER_NEAREST}

_CHANNELS = {
    PixelLayout.BGR: 3,
    PixelLayout.RGB: 3,
    PixelLayout.XRGB8888: 4,
    PixelLayout.XBGR8888: 4,
    PixelLayout.GRAY: 1,
}

# cv2 colour codes from a packed layout to an RGB or BGR image; None: already in that order.
_PACKED_TO = {
    (PixelLayout.BGR, "rgb"): cv2.COLOR_BGR2RGB,
    (PixelLayout.BGR, "bgr"): None,
    (PixelLayout.RGB, "rgb"): None,
    (PixelLayout.RGB, "bgr"): cv2.COLOR_RGB2BGR,
    (PixelLayout.XRGB8888, "rgb"): cv2.COLOR_BGRA2RGB,  # memory B, G, R, X
    (PixelLayout.XRGB8888, "bgr"): cv2.COLOR_BGRA2BGR,
    (PixelLayout.XBGR8888, "rgb"): cv2.COLOR_RGBA2RGB,  # memory R, G, B, X
    (PixelLayout.XBGR8888, "bgr"): cv2.COLOR_RGBA2BGR,
    (PixelLayout.GRAY, "rgb"): cv2.COLOR_GRAY2RGB,
    (PixelLayout.GRAY, "bgr"): cv2.COLOR_GRAY2BGR,
}
# Full-range BT.601 YCbCr to RGB/BGR; the planes are merged in OpenCV's Y, Cr, Cb order.
_YCRCB_TO = {"rgb": cv2.COLOR_YCrCb2RGB, "bgr": cv2.COLOR_YCrCb2BGR}


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Placement:
    """Where a frame goes in the model input.

    ``src_xywh`` is the part of the frame used (all of it, or the centre crop) in frame
    pixels; ``dst_xywh`` is where it lands in the input, in input pixels; ``transform``
    maps between the two for boxes.
    """

    src_xywh: tuple[int, int, int, int]
    dst_xywh: tuple[int, int, int, int]
    transform: Transform


def place(frame_wh: tuple[int, int], input_wh: tuple[int, int], mode: ResizeMode) -> Placement:
    """Work out the source region, destination region and exact ``Transform`` for ``mode``.

    The transform is exact for the resize that is then done (the source region is
    scaled to the destination region edge to edge), so boxes map back without drift.
    """
    fw, fh = frame_wh
    iw, ih = input_wh
    if mode is ResizeMode.STRETCH:
        return Placement(
            (0, 0, fw, fh), (0, 0, iw, ih), Transform(frame_wh, input_wh, (iw / fw, ih / fh), (0.0, 0.0))
        )
    if mode is ResizeMode.LETTERBOX:
        scale = min(iw / fw, ih / fh)
        nw = max(1, min(iw, round(fw * scale)))
        nh = max(1, min(ih, round(fh * scale)))
        ox, oy = (iw - nw) // 2, (ih - nh) // 2
        transform = Transform(frame_wh, input_wh, (nw / fw, nh / fh), (float(ox), float(oy)))
        return Placement((0, 0, fw, fh), (ox, oy, nw, nh), transform)
    scale = max(iw / fw, ih / fh)
    cw = max(1, min(fw, round(iw / scale)))
    ch = max(1, min(fh, round(ih / scale)))
    x0, y0 = (fw - cw) // 2, (fh - ch) // 2
    sx, sy = iw / cw, ih / ch
    transform = Transform(frame_wh, input_wh, (sx, sy), (-x0 * sx, -y0 * sy))
    return Placement((x0, y0, cw, ch), (0, 0, iw, ih), transform)


# --------------------------------------------------------------------------- pixel layouts


def check_image(image: np.ndarray, layout: PixelLayout) -> tuple[int, int]:
    """Validate ``image`` against ``layout`` and return its size (w, h) in pixels."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        got = image.dtype if isinstance(image, np.ndarray) else type(image).__name__
        raise ConfigError(f"a {layout.value} image must be a uint8 numpy array, got {got}")
    if layout is PixelLayout.YUV420:
        rows, width = image.shape[:2] if image.ndim == 2 else (0, 0)
        if image.ndim != 2 or rows == 0 or rows % 3 or width % 2:
            raise ConfigError(
                f"a yuv420 image must be (h * 3 // 2, w) with even w and h, got shape {image.shape}; "
                "a picamera2 lores array must first be cut to its configured width"
            )
        return image_size_wh(image, layout)
    channels = _CHANNELS[layout]
    expected_ndim = 2 if channels == 1 else 3
    if image.ndim != expected_ndim or (channels > 1 and image.shape[2] != channels):
        want = "(h, w)" if channels == 1 else f"(h, w, {channels})"
        raise ConfigError(f"a {layout.value} image must be {want} uint8, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ConfigError(f"empty {layout.value} image of shape {image.shape}")
    return image_size_wh(image, layout)


def i420_planes(image: np.ndarray, size_wh: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y (h, w), U (h/2, w/2) and V (h/2, w/2) views of a C-contiguous I420 image (h * 3/2, w)."""
    w, h = size_wh
    cw, ch = w // 2, h // 2
    flat = image.reshape(-1)
    y = flat[: w * h].reshape(h, w)
    u = flat[w * h : w * h + cw * ch].reshape(ch, cw)
    v = flat[w * h + cw * ch : w * h + 2 * cw * ch].reshape(ch, cw)
    return y, u, v


def to_bgr(image: np.ndarray, layout: PixelLayout) -> np.ndarray:
    """A new (h, w, 3) uint8 BGR image of ``image`` in ``layout``; the input is never modified.

    YUV420 is converted as full-range BT.601 (see the module docstring), with the
    chroma planes upsampled bilinearly.
    """
    size_wh = check_image(image, layout)
    if layout is PixelLayout.YUV420:
        y, u, v = i420_planes(np.ascontiguousarray(image), size_wh)
        u_full = cv2.resize(u, size_wh, interpolation=cv2.INTER_LINEAR)
        v_full = cv2.resize(v, size_wh, interpolation=cv2.INTER_LINEAR)
        return cv2.cvtColor(cv2.merge([y, v_full, u_full]), _YCRCB_TO["bgr"])
    code = _PACKED_TO[(layout, "bgr")]
    if code is None:
        return np.array(image, order="C", copy=True)
    return cv2.cvtColor(_opencv_compatible(image), code)


def _opencv_compatible(image: np.ndarray) -> np.ndarray:
    """``image`` itself when OpenCV can read it in place (any row stride, packed pixels), else a copy.

    Padded rows are fine; reversed or interleaved channel strides (``a[:, :, ::-1]``,
    ``a[:, ::2]``) are not, and are copied once into a new contiguous array.
    """
    item = image.itemsize
    pixel_ok = image.strides[1] == (item if image.ndim == 2 else item * image.shape[2])
    if image.strides[0] > 0 and pixel_ok and (image.ndim == 2 or image.strides[2] == item):
        return image
    return np.ascontiguousarray(image)


# --------------------------------------------------------------------------- pixel values


def _per_channel(values: ChannelValues, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 3)
    if arr.size != 3:
        raise ConfigError(f"{name} must be one number or three (one per channel), got {values!r}")
    return arr


def _value_table(
    spec: TensorSpec, dtype: np.dtype, mean: np.ndarray, std: np.ndarray
) -> Optional[np.ndarray]:
    """A (256, 1, 3) lookup table from pixel value to tensor value, or None for pass-through."""
    if np.any(std == 0):
        raise ConfigError(f"std must not be zero, got {std.tolist()}")
    identity = bool(np.all(mean == 0.0) and np.all(std == 1.0))
    pixels = np.arange(256, dtype=np.float64)[:, None]
    real = (pixels - mean[None, :]) / std[None, :]
    if dtype == np.float32:
        return np.ascontiguousarray(real.astype(np.float32).reshape(256, 1, 3))
    if identity:
        return None
    if not spec.quantized:
        raise ConfigError(f"input tensor {spec.name!r} is {dtype} but carries no quantization scale")
    info = np.iinfo(dtype)
    q = np.rint(real / spec.scale) + spec.zero_point
    lo, hi = float(q.min()), float(q.max())
    if lo < info.min - 1 or hi > info.max + 1:
        raise ConfigError(
            f"mean={mean.tolist()} std={std.tolist()} map pixels 0..255 to quantized values "
            f"{lo:.0f}..{hi:.0f}, outside {dtype} {info.min}..{info.max} of input {spec.name!r} "
            f"(scale {spec.scale:.6g}, zero point {spec.zero_point}): set mean/std in the model card "
            "to the normalization the model was trained with, or remove them to hand pixels over as they are"
        )
    return np.clip(q, info.min, info.max).astype(dtype).reshape(256, 1, 3)


# --------------------------------------------------------------------------- preprocessor


class Preprocessor:
    """Frame to model input for one input tensor.

    ``pre(image, layout) -> (tensor, transform)``: ``tensor`` has ``input_spec.shape``
    (1, h, w, 3) and ``input_spec.dtype``; ``transform`` maps input pixels back to frame
    pixels. ``image`` may be any ``PixelLayout``, with padded rows or other strides; it is
    only read.

    Buffer ownership: the returned tensor is this preprocessor's own buffer and is
    overwritten by the next call; copy it to keep it, and do not write into it. One
    preprocessor must not be called from two threads at once (give each thread its own).

    ``interpolation`` is "linear" (default, fast), "area" (better when shrinking a lot,
    several times slower) or "nearest".
    """

    def __init__(
        self,
        input_spec: TensorSpec,
        *,
        resize: ResizeMode | str = ResizeMode.STRETCH,
        channel_order: str = "rgb",
        mean: ChannelValues = 0.0,
        std: ChannelValues = 1.0,
        pad_value: int = 0,
        interpolation: str = "linear",
    ) -> None:
        shape = tuple(int(d) for d in input_spec.shape)
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
            raise ConfigError(
                f"input {input_spec.name!r} has shape {shape}; robovision feeds images as (1, h, w, 3)"
            )
        self.spec = input_spec
        self.input_wh = (shape[2], shape[1])
        self.dtype = np.dtype(input_spec.dtype)
        if self.dtype not in (np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.float32)):
            raise ConfigError(
                f"input {input_spec.name!r} has dtype {self.dtype}; supported: uint8, int8, float32"
            )
        try:
            self.resize = ResizeMode(resize)
        except ValueError:
            raise ConfigError(f"resize must be one of stretch, letterbox, crop; got {resize!r}") from None
        if channel_order not in ("rgb", "bgr"):
            raise ConfigError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
        self.channel_order = channel_order
        if interpolation not in _INTERPOLATION:
            raise ConfigError(f"interpolation must be one of {sorted(_INTERPOLATION)}, got {interpolation!r}")
        self._interpolation = _INTERPOLATION[interpolation]
        if not 0 <= int(pad_value) <= 255:
            raise ConfigError(f"pad_value is a pixel value 0..255, got {pad_value}")
        self.pad_value = int(pad_value)
        self._table = _value_table(
            input_spec, self.dtype, _per_channel(mean, "mean"), _per_channel(std, "std")
        )

        iw, ih = self.input_wh
        self._image = np.empty((ih, iw, 3), np.uint8)  # the model image in channel_order
        if self.dtype == np.uint8 and self._table is None:
            self._tensor = self._image.reshape(1, ih, iw, 3)
        else:
            self._tensor = np.empty((1, ih, iw, 3), self.dtype)
        self._key: Optional[tuple[PixelLayout, tuple[int, int]]] = None
        self._placement: Optional[Placement] = None
        self._scratch: dict[str, np.ndarray] = {}

    @property
    def passthrough(self) -> bool:
        """True when pixel bytes reach the tensor unchanged (uint8) or shifted by 128 (int8)."""
        return self._table is None

    def __call__(self, image: np.ndarray, layout: PixelLayout) -> tuple[np.ndarray, Transform]:
        layout = PixelLayout(layout)
        frame_wh = check_image(image, layout)
        placement = self._prepare(layout, frame_wh, image)
        dst_region = self._dst_region(placement)
        if layout is PixelLayout.YUV420:
            self._fill_from_yuv420(image, frame_wh, placement, dst_region)
        else:
            self._fill_from_packed(image, layout, placement, dst_region)
        self._finish()
        return self._tensor, placement.transform

    # -- steps

    def _prepare(self, layout: PixelLayout, frame_wh: tuple[int, int], image: np.ndarray) -> Placement:
        """(Re)allocate scratch buffers when the frame size or layout changes."""
        key = (layout, frame_wh)
        if key == self._key and self._placement is not None:
            return self._placement
        placement = place(frame_wh, self.input_wh, self.resize)
        _, _, nw, nh = placement.dst_xywh
        self._scratch = {}
        if layout is PixelLayout.YUV420:
            self._scratch["compact"] = np.empty(image.shape, np.uint8)
            for plane in ("y", "u", "v"):
                self._scratch[plane] = np.empty((nh, nw), np.uint8)
            self._scratch["ycrcb"] = np.empty((nh, nw, 3), np.uint8)
        elif _PACKED_TO[(layout, self.channel_order)] is not None:
            channels = _CHANNELS[layout]
            shape = (nh, nw) if channels == 1 else (nh, nw, channels)
            self._scratch["small"] = np.empty(shape, np.uint8)
        self._image[...] = self.pad_value
        self._key, self._placement = key, placement
        log.debug("preprocess plan for %s %dx%d: %s", layout.value, frame_wh[0], frame_wh[1], placement)
        return placement

    def _dst_region(self, placement: Placement) -> np.ndarray:
        x, y, w, h = placement.dst_xywh
        return self._image[y : y + h, x : x + w]

    def _fill_from_packed(
        self, image: np.ndarray, layout: PixelLayout, placement: Placement, dst_region: np.ndarray
    ) -> None:
        x0, y0, cw, ch = placement.src_xywh
        src = _opencv_compatible(image[y0 : y0 + ch, x0 : x0 + cw])
        size_wh = (dst_region.shape[1], dst_region.shape[0])
        code = _PACKED_TO[(layout, self.channel_order)]
        if code is None:
            cv2.resize(src, size_wh, dst=dst_region, interpolation=self._interpolation)
            return
        small = self._scratch["small"]
        cv2.resize(src, size_wh, dst=small, interpolation=self._interpolation)
        cv2.cvtColor(small, code, dst=dst_region)

    def _fill_from_yuv420(
        self, image: np.ndarray, frame_wh: tuple[int, int], placement: Placement, dst_region: np.ndarray
    ) -> None:
        """Resize the three planes straight to the target size, then convert only that."""
        if not image.flags.c_contiguous:
            compact = self._scratch["compact"]
            np.copyto(compact, image)
            image = compact
        y, u, v = i420_planes(image, frame_wh)
        x0, y0, cw, ch = placement.src_xywh
        cx0, cy0 = x0 // 2, y0 // 2
        cx1, cy1 = (x0 + cw + 1) // 2, (y0 + ch + 1) // 2
        size_wh = (dst_region.shape[1], dst_region.shape[0])
        scratch = self._scratch
        cv2.resize(
            y[y0 : y0 + ch, x0 : x0 + cw], size_wh, dst=scratch["y"], interpolation=self._interpolation
        )
        cv2.resize(u[cy0:cy1, cx0:cx1], size_wh, dst=scratch["u"], interpolation=cv2.INTER_LINEAR)
        cv2.resize(v[cy0:cy1, cx0:cx1], size_wh, dst=scratch["v"], interpolation=cv2.INTER_LINEAR)
        cv2.merge([scratch["y"], scratch["v"], scratch["u"]], dst=scratch["ycrcb"])
        cv2.cvtColor(scratch["ycrcb"], _YCRCB_TO[self.channel_order], dst=dst_region)

    def _finish(self) -> None:
        """Map the model image to tensor values (nothing to do for uint8 pass-through)."""
        if self._table is not None:
            cv2.LUT(self._image, self._table, dst=self._tensor[0])
        elif self.dtype == np.int8:
            np.bitwise_xor(self._image, 0x80, out=self._tensor[0].view(np.uint8))
