"""Where the shipped models and bundled data are found."""

from __future__ import annotations

import os
from pathlib import Path

SHIPPED_MODEL_NAME = "toycar.tflite"


def project_root() -> Path:
    """The folder holding ``models/`` and ``data/``: ``$ROBOVISION_HOME`` or the source checkout."""
    home = os.environ.get("ROBOVISION_HOME")
    if home:
        return Path(home)
    return Path(__file__).resolve().parent.parent


def models_dir() -> Path:
    return project_root() / "models"


def shipped_model_path() -> Path:
    """The project's own toy-car model."""
    return models_dir() / SHIPPED_MODEL_NAME


def reference_model_path(name: str = "ssd_mobilenet_v1_1_metadata_1.tflite") -> Path:
    return models_dir() / "reference" / name


def bundled_images_dir() -> Path:
    return project_root() / "data" / "toycars" / "images"
