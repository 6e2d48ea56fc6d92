"""Checks on a V4L2 camera node before OpenCV opens it, so failures get the right error.

OpenCV only reports "could not open"; the kernel says why. ``probe_capture_node``
opens the node itself and asks: does it exist, may we open it, is it a capture
device, and is another process streaming from it.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import re
import struct

from robovision.errors import CameraBusyError, CameraPermissionError, SourceError, SourceNotFoundError

log = logging.getLogger(__name__)

VIDEO_NODE = re.compile(r"^/dev/video(\d+)$")

# From linux/videodev2.h.
_CAP_VIDEO_CAPTURE = 0x00000001
_CAP_DEVICE_CAPS = 0x80000000
_BUF_TYPE_VIDEO_CAPTURE = 1
_CAPABILITY_SIZE = 104  # struct v4l2_capability
# struct v4l2_format: a u32 type, then a 200-byte union aligned like a pointer.
_FORMAT_SIZE = 4 + (ctypes.sizeof(ctypes.c_void_p) - 4) + 200


def _ioc(direction: int, number: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("V") << 8) | number


VIDIOC_QUERYCAP = _ioc(2, 0, _CAPABILITY_SIZE)
VIDIOC_G_FMT = _ioc(3, 4, _FORMAT_SIZE)
VIDIOC_S_FMT = _ioc(3, 5, _FORMAT_SIZE)


def node_path(index: int) -> str:
    return f"/dev/video{index}"


def not_found_message(path: str) -> str:
    return (
        f"no camera at {path}: list the video nodes with `ls /dev/video*` and `v4l2-ctl --list-devices`, "
        "and check the USB cable; a Raspberry Pi camera on the ribbon cable is opened as 'picamera2' "
        "(check it with `rpicam-hello --list-cameras`)"
    )


def busy_message(path: str) -> str:
    return (
        f"{path} is busy: another process is using the camera; find it with `fuser {path}` "
        "(or `sudo fuser -v /dev/video*`) and stop it, e.g. a second robovision service"
    )


def permission_message(path: str) -> str:
    return (
        f"permission denied opening {path}: add the user to the 'video' group with "
        "`sudo usermod -aG video $USER` and log in again (a systemd service needs "
        "SupplementaryGroups=video)"
    )


def error_for_errno(path: str, err: OSError) -> SourceError:
    """The robovision error for an ``OSError`` raised while opening or setting up ``path``."""
    if err.errno in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return SourceNotFoundError(not_found_message(path))
    if err.errno in (errno.EACCES, errno.EPERM):
        return CameraPermissionError(permission_message(path))
    if err.errno == errno.EBUSY:
        return CameraBusyError(busy_message(path))
    return SourceError(f"cannot open {path}: {err.strerror or err}")


def probe_capture_node(path: str) -> str:
    """Raise the fitting error unless ``path`` is a free V4L2 capture node; return its card name."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError as err:
        raise error_for_errno(path, err) from None
    try:
        card, caps = _query_capabilities(fd, path)
        if not caps & _CAP_VIDEO_CAPTURE:
            raise SourceNotFoundError(
                f"{path} ({card}) is not a video capture node (it may be a metadata, codec or ISP node); "
                "list the cameras with `v4l2-ctl --list-devices` and use the first node of the camera"
            )
        _check_not_streaming(fd, path)
        return card
    finally:
        os.close(fd)


def _query_capabilities(fd: int, path: str) -> tuple[str, int]:
    buffer = bytearray(_CAPABILITY_SIZE)
    try:
        fcntl.ioctl(fd, VIDIOC_QUERYCAP, buffer)
    except OSError as err:
        if err.errno == errno.ENOTTY:
            raise SourceNotFoundError(
                f"{path} is not a V4L2 video device; {not_found_message(path)}"
            ) from None
        raise error_for_errno(path, err) from None
    card = bytes(buffer[16:48]).split(b"\0", 1)[0].decode("utf-8", "replace")
    capabilities, device_caps = struct.unpack_from("<II", buffer, 84)
    return card, device_caps if capabilities & _CAP_DEVICE_CAPS else capabilities


def _check_not_streaming(fd: int, path: str) -> None:
    """Setting the current format again fails with EBUSY while another process streams."""
    buffer = bytearray(_FORMAT_SIZE)
    struct.pack_into("<I", buffer, 0, _BUF_TYPE_VIDEO_CAPTURE)
    try:
        fcntl.ioctl(fd, VIDIOC_G_FMT, buffer)
        fcntl.ioctl(fd, VIDIOC_S_FMT, buffer)
    except OSError as err:
        if err.errno == errno.EBUSY:
            raise CameraBusyError(busy_message(path)) from None
        log.debug("format check on %s failed (%s); leaving the verdict to OpenCV", path, err)
