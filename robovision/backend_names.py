"""Names of the interpreter backends, kept free of heavy imports so the CLI can offer them."""

from __future__ import annotations

BACKENDS = ("litert", "tflite-runtime")
"""Interpreter packages in order of preference: ai-edge-litert, then tflite-runtime 2.14."""
BACKEND_CHOICES = ("auto", *BACKENDS)
"""What a user may ask for: ``auto`` takes the first backend of ``BACKENDS`` that works."""
