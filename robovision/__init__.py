"""robovision: a camera-to-detections runtime for small robots."""

__version__ = "0.1.0"
