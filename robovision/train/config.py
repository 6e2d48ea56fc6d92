"""The training config: one TOML file that says how a toy-car model is made.

Every path in the file is relative to the file's own folder, so a config under
``models/`` can name ``../data/toycars``. Unknown keys are errors, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from robovision.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib


@dataclass(frozen=True)
class DataConfig:
    toycars_dir: Path = Path("data/toycars")
    """The labelled photographs: ``images/`` and ``labels/`` (YOLO) inside."""
    train_list: Path = Path("data/toycars/train.txt")
    """File names (one a line) of the photographs to train on."""
    val_list: Path = Path("data/toycars/val.txt")
    """File names of the photographs held out for validation and threshold choice."""
    negatives_dir: Path = Path("data/negatives")
    """Car-free textures used as backgrounds for pasted cars."""
    carfree_dir: Path = Path("data/carfree")
    """Car-free photographs used to count false detections when choosing the threshold."""
    cache_long_side_px: int = 384
    """Photographs are decoded once and kept in memory at this size (longer side)."""


@dataclass(frozen=True)
class ModelConfig:
    name: str = "toycar"
    input_size: int = 160
    """Square input side in pixels; must be a multiple of ``stride``."""
    stride: int = 8
    """Input pixels per output grid cell (3 max pools give 8)."""
    widths: tuple[int, ...] = (8, 16, 32, 64, 128, 160)
    """Channels at stride 1, 2, 4, 8 (two convs there), then the two stride-16 context convs."""
    head_width: int = 96
    offset_span_cells: float = 4.0
    """A box centre may lie up to half this many cells from the cell centre that predicts it."""


@dataclass(frozen=True)
class AugmentConfig:
    empty_probability: float = 0.2
    """Chance that a sample is a car-free background alone."""
    paste_probability: float = 0.2
    """Chance that a sample is a background with cars pasted on."""
    zoom_out_probability: float = 0.15
    """Chance that a photograph is shrunk onto a larger background (small, far cars)."""
    scale_range: tuple[float, float] = (0.6, 1.15)
    """Crop window size as a fraction of the photograph's size (log-uniform); below 1 zooms in."""
    rotate_deg: float = 8.0
    rotate90_probability: float = 0.1
    flip_vertical_probability: float = 0.1
    perspective_probability: float = 0.15
    min_visible_fraction: float = 0.45
    """A cut-off car counts as a car only if this much of its box stays in the crop."""
    blur_probability: float = 0.25
    noise_probability: float = 0.3
    grayscale_probability: float = 0.05


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 20250
    steps: int = 6000
    batch_size: int = 24
    learning_rate: float = 3e-3
    warmup_steps: int = 150
    weight_decay: float = 1e-3
    """AdamW decoupled weight decay."""
    ema_momentum: float = 0.995
    """Exponential moving average of the weights used for the exported model (0: off)."""
    threads: int = 2
    giou_loss_weight: float = 5.0
    offset_loss_weight: float = 1.0
    log_every: int = 50


@dataclass(frozen=True)
class QuantizeConfig:
    representative_count: int = 200
    """Augmented training samples fed to the int8 calibration."""


@dataclass(frozen=True)
class CardConfig:
    iou_threshold: float = 0.45
    max_detections: int = 20
    max_false_per_carfree_image: float = 0.05
    """The chosen score threshold keeps false detections on car-free images at or below this."""
    eval_score_floor: float = 0.05


@dataclass(frozen=True)
class Config:
    source: Path | None = None
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    card: CardConfig = field(default_factory=CardConfig)

    @property
    def grid_size(self) -> int:
        return self.model.input_size // self.model.stride


_SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "augment": AugmentConfig,
    "train": TrainConfig,
    "quantize": QuantizeConfig,
    "card": CardConfig,
}

T = TypeVar("T")


def load_config(path: Path | str) -> Config:
    """Read a training config; raise ``ConfigError`` naming the bad key and the fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"training config {path} not found: pass --config models/toycar.train.toml")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix the syntax at that line") from exc
    return config_from_dict(raw, base_dir=path.parent, source=path)


def config_from_dict(raw: dict[str, Any], base_dir: Path, source: Path | None = None) -> Config:
    """Build a config from parsed TOML; relative paths are resolved against ``base_dir``."""
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown} in training config; known: {sorted(_SECTIONS)}")
    parts: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        parts[name] = _section(cls, raw.get(name, {}), name, base_dir)
    config = Config(source=source, **parts)
    _validate(config)
    return config


def _section(cls: type[T], values: dict[str, Any], name: str, base_dir: Path) -> T:
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in [{name}]; known: {sorted(known)}")
    defaults = cls()
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        default = getattr(defaults, key)
        kwargs[key] = _coerce(value, default, f"{name}.{key}", base_dir)
    return dataclasses.replace(defaults, **kwargs)  # type: ignore[type-var]


def _coerce(value: Any, default: Any, key: str, base_dir: Path) -> Any:
    if isinstance(default, Path):
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a path string, got {value!r}")
        return (base_dir / value).resolve()
    if isinstance(default, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list like {list(default)}, got {value!r}")
        return tuple(value)
    if isinstance(default, bool) or isinstance(value, bool):
        if not isinstance(value, bool) or not isinstance(default, bool):
            raise ConfigError(f"{key} must be {type(default).__name__}, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, type(default)):
        raise ConfigError(f"{key} must be {type(default).__name__}, got {value!r}")
    return value


def _validate(config: Config) -> None:
    m = config.model
    if m.input_size % m.stride:
        raise ConfigError(
            f"model.input_size {m.input_size} is not a multiple of model.stride {m.stride}; "
            f"use e.g. {m.input_size - m.input_size % m.stride}"
        )
    if m.stride != 8:
        raise ConfigError(f"model.stride {m.stride} is not supported; the network has 3 pools (stride 8)")
    if len(m.widths) != 6:
        raise ConfigError(f"model.widths needs 6 stage widths, got {len(m.widths)}")
    if (m.input_size // m.stride) % 2:
        raise ConfigError(
            f"model.input_size {m.input_size} gives an odd grid; the context stage halves it: "
            "use a multiple of 16"
        )
    t = config.train
    if t.steps < 1 or t.batch_size < 1:
        raise ConfigError("train.steps and train.batch_size must be at least 1")
    lo, hi = config.augment.scale_range
    if not 0.05 <= lo <= hi:
        raise ConfigError(f"augment.scale_range {(lo, hi)} must be increasing and above 0.05")
