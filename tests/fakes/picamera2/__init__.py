"""A stand-in for picamera2, the Raspberry Pi camera library, for tests on machines without a camera.

Put ``tests/fakes`` on ``sys.path`` and ``import picamera2``. The public API robovision
uses is mirrored from picamera2's source (see ``picamera2.picamera2``); frames show real
photographs from ``data/toycars/images``. Test hooks live in ``picamera2._standin``.
"""

from .picamera2 import ColorSpace, Picamera2, Preview, Transform
from .request import CompletedRequest

__all__ = ["ColorSpace", "CompletedRequest", "Picamera2", "Preview", "Transform"]
