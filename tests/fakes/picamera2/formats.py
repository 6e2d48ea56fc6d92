"""Pixel formats the stand-in renders, with strides like a Raspberry Pi 5 (PiSP) delivers.

Packed RGB rows are aligned to 64 bytes. YUV420 luma rows are aligned to 128 bytes so the
half-width chroma rows stay 64-byte aligned: a 704-pixel-wide YUV420 stream arrives with
a 768-byte stride, as picamera2 users report (picamera2 issue 1182: lores 704x576 gives
an array of shape (864, 768)).
"""

from __future__ import annotations

import cv2
import numpy as np

RGB_FORMATS = ("RGB888", "BGR888", "XRGB8888", "XBGR8888")
YUV_FORMATS = ("YUV420",)
BYTES_PER_PIXEL = {"RGB888": 3, "BGR888": 3, "XRGB8888": 4, "XBGR8888": 4}
PADDING_BYTE = 0x5A  # what the unused end of each row happens to hold


def is_RGB(fmt: str) -> bool:  # noqa: N802 - picamera2's own spelling
    return fmt in RGB_FORMATS


def is_YUV(fmt: str) -> bool:  # noqa: N802
    return fmt in YUV_FORMATS


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def stride_for(fmt: str, width: int) -> int:
    if fmt in YUV_FORMATS:
        return _align(width, 128)
    return _align(width * BYTES_PER_PIXEL[fmt], 64)


def frame_size(fmt: str, size_wh: tuple[int, int]) -> int:
    stride = stride_for(fmt, size_wh[0])
    return stride * size_wh[1] * 3 // 2 if fmt in YUV_FORMATS else stride * size_wh[1]


def _packed(frame_bgr: np.ndarray, fmt: str) -> np.ndarray:
    # picamera2 names formats from the most significant byte: "RGB888" is B, G, R in memory.
    if fmt == "RGB888":
        return frame_bgr
    if fmt == "BGR888":
        return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    if fmt == "XRGB8888":
        return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2BGRA)
    return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGBA)


def _i420(frame_bgr: np.ndarray, full_range: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, w = frame_bgr.shape[:2]
    if not full_range:
        i420 = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YUV_I420).reshape(-1)  # BT.601 limited range
        cw, ch = w // 2, h // 2
        y = i420[: w * h].reshape(h, w)
        u = i420[w * h : w * h + cw * ch].reshape(ch, cw)
        v = i420[w * h + cw * ch :].reshape(ch, cw)
        return y, u, v
    ycrcb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YCrCb)  # BT.601 full range, as sYCC
    u = cv2.resize(ycrcb[:, :, 2], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    v = cv2.resize(ycrcb[:, :, 1], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return ycrcb[:, :, 0], u, v


def render_buffer(frame_bgr: np.ndarray, fmt: str, full_range: bool = True) -> np.ndarray:
    """The flat uint8 buffer a camera stream of ``fmt`` holds for ``frame_bgr``, padding included."""
    h, w = frame_bgr.shape[:2]
    stride = stride_for(fmt, w)
    buffer = np.full(frame_size(fmt, (w, h)), PADDING_BYTE, np.uint8)
    if fmt in RGB_FORMATS:
        packed = _packed(frame_bgr, fmt)
        buffer.reshape(h, stride)[:, : w * BYTES_PER_PIXEL[fmt]] = packed.reshape(h, -1)
        return buffer
    y, u, v = _i420(frame_bgr, full_range)
    chroma_stride = stride // 2
    buffer[: stride * h].reshape(h, stride)[:, :w] = y
    offset = stride * h
    for plane in (u, v):
        size = chroma_stride * (h // 2)
        buffer[offset : offset + size].reshape(h // 2, chroma_stride)[:, : w // 2] = plane
        offset += size
    return buffer
