"""The model card: a TOML file beside the model (same stem, ``.toml``) saying how to use it.

Every key is optional; a model without a card runs with the defaults below and a decoder
guessed from its outputs. Keys:

- ``name``: shown in messages and logs (default: the model file's stem);
- ``decoder``: ``ssd``, ``classification``, ``yolo``, ``toycar`` (a module in
  ``robovision.decoders``);
- ``labels``: a text file, one label per line, relative to the card; or ``"embedded"``
  for a label file zipped inside the model file;
- ``label_offset``: added to a model class id to find its line in the labels file
  (1 for the TF1 COCO label maps whose line 0 is ``???``; -1 for a 1000-line ImageNet list
  with a 1001-class model);
- ``channel_order``: ``rgb`` or ``bgr``, what the model was trained on;
- ``resize``: ``stretch``, ``letterbox`` or ``crop``;
- ``score_threshold``, ``iou_threshold`` (0..1), ``max_detections`` (>= 1);
- ``class_filter``: list of labels to keep;
- ``mean``, ``std``: the real input value the model was trained on, ``(pixel - mean) / std``,
  a number or one per channel. Needed for float inputs; quantized image inputs usually
  span the pixel range already and need neither (see ``robovision.preprocess``);
- ``[decoder_options]``: settings for the chosen decoder (see its module).

Unknown keys and wrong types raise ``ConfigError`` naming the card, the key and the fix.
"""

from __future__ import annotations

import difflib
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from robovision.errors import ConfigError, ModelFormatError
from robovision.model_file import ModelFile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

log = logging.getLogger(__name__)

CHANNEL_ORDERS = ("rgb", "bgr")
RESIZE_MODES = ("stretch", "letterbox", "crop")
EMBEDDED = "embedded"
_MISPLACED = {
    "hfov_deg": "the field of view belongs to the camera, not the model: set [camera] hfov_deg "
    "in the service config or pass --hfov",
}


@dataclass(frozen=True)
class ModelCard:
    """How to feed a model and read its outputs. See the module docstring for each key."""

    name: str | None = None
    decoder: str | None = None
    labels: str | None = None
    """``"embedded"``, or the labels file's path resolved against the card's folder."""
    label_offset: int = 0
    channel_order: str = "rgb"
    resize: str = "stretch"
    score_threshold: float = 0.5
    iou_threshold: float = 0.5
    max_detections: int = 20
    class_filter: tuple[str, ...] | None = None
    mean: float | tuple[float, ...] = 0.0
    std: float | tuple[float, ...] = 1.0
    decoder_options: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None
    """The card file, or ``None`` for a model without a card."""
    given: frozenset[str] = frozenset()
    """The keys set by the card or by overrides (the rest are defaults)."""

    @classmethod
    def for_model(cls, model_path: str | Path) -> ModelCard:
        """The card beside ``model_path`` (same stem, ``.toml``), or the defaults if there is none."""
        card_path = Path(model_path).with_suffix(".toml")
        if not card_path.is_file():
            log.info("no model card at %s; using defaults", card_path)
            return cls()
        return cls.load(card_path)

    @classmethod
    def load(cls, card_path: str | Path) -> ModelCard:
        """Parse and check the card file at ``card_path``."""
        path = Path(card_path)
        try:
            with path.open("rb") as handle:
                data = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(f"cannot read model card {path}: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"model card {path} is not valid TOML: {exc}") from exc
        return cls().updated(data, where=f"model card {path}", base_dir=path.parent, card_path=path)

    def with_overrides(self, **overrides: Any) -> ModelCard:
        """A copy with ``overrides`` applied (checked like card keys; ``None`` values are ignored).

        A relative ``labels`` path given here resolves against the working directory.
        """
        given = {key: value for key, value in overrides.items() if value is not None}
        return self.updated(given, where="model override", base_dir=Path.cwd(), card_path=self.path)

    def updated(
        self, data: Mapping[str, Any], where: str, base_dir: Path, card_path: Path | None
    ) -> ModelCard:
        """A copy with the keys of ``data`` checked and applied; ``where`` names them in errors."""
        changes: dict[str, Any] = {}
        for key, value in data.items():
            changes[key] = _check_key(key, value, where, base_dir)
        return replace(self, **changes, path=card_path, given=self.given | frozenset(changes))

    def summary(self) -> dict[str, Any]:
        """The card as plain values (for ``robovision info``): every key, and where it came from."""
        out: dict[str, Any] = {"card": str(self.path) if self.path else None}
        for key in card_keys():
            value = getattr(self, key)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[key] = value
        out["defaults"] = sorted(set(card_keys()) - self.given)
        return out

    def read_labels(self, model_file: ModelFile) -> tuple[str, ...]:
        """Labels indexed by model class id (``label_offset`` applied); empty if the card has none."""
        if self.labels is None:
            return ()
        lines = _label_lines(self, model_file)
        if self.label_offset >= 0:
            return tuple(lines[self.label_offset :])
        return tuple(str(i) for i in range(-self.label_offset)) + tuple(lines)

    def check_class_filter(self, labels: tuple[str, ...]) -> None:
        """``ConfigError`` for a class filter label that is not among ``labels`` (if labels are known)."""
        if self.class_filter is None or not labels:
            return
        known = set(labels)
        for label in self.class_filter:
            if label not in known:
                close = difflib.get_close_matches(label, sorted(known), n=3)
                hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise ConfigError(
                    f"{self._where()}: class_filter label {label!r} is not in the model's labels.{hint}"
                )

    def _where(self) -> str:
        return f"model card {self.path}" if self.path else "model settings"


def card_keys() -> tuple[str, ...]:
    """The keys a card may hold."""
    return tuple(f.name for f in fields(ModelCard) if f.name not in ("path", "given"))


def _check_key(key: str, value: Any, where: str, base_dir: Path) -> Any:
    if key in _MISPLACED:
        raise ConfigError(f"{where}: key {key!r} does not go in a model card; {_MISPLACED[key]}")
    checker = _CHECKERS.get(key)
    if checker is None:
        close = difflib.get_close_matches(key, card_keys(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else f" Known keys: {', '.join(card_keys())}."
        raise ConfigError(f"{where}: unknown key {key!r}.{hint}")
    return checker(key, value, where, base_dir)


def _text(key: str, value: Any, where: str, base_dir: Path) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key} must be a non-empty string, got {value!r}")
    return value


def _choice(choices: tuple[str, ...]) -> Any:
    def check(key: str, value: Any, where: str, base_dir: Path) -> str:
        if value not in choices:
            raise ConfigError(f"{where}: {key} must be one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return check


def _labels(key: str, value: Any, where: str, base_dir: Path) -> str:
    text = _text(key, value, where, base_dir)
    if text == EMBEDDED:
        return text
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else (base_dir / path))


def _integer(minimum: int | None) -> Any:
    def check(key: str, value: Any, where: str, base_dir: Path) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {key} must be a whole number, got {value!r}")
        if minimum is not None and value < minimum:
            raise ConfigError(f"{where}: {key} must be {minimum} or more, got {value}")
        return value

    return check


def _fraction(key: str, value: Any, where: str, base_dir: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{where}: {key} must be a number from 0 to 1, got {value!r}")
    return float(value)


def _string_list(key: str, value: Any, where: str, base_dir: Path) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f'{where}: {key} must be a list of labels, e.g. ["car", "truck"], got {value!r}')
    return tuple(value)


def _per_channel(positive: bool) -> Any:
    def check(key: str, value: Any, where: str, base_dir: Path) -> float | tuple[float, ...]:
        values = value if isinstance(value, (list, tuple)) else [value]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if not numeric or len(values) not in (1, 3) or (positive and not all(v > 0 for v in values)):
            need = "positive " if positive else ""
            raise ConfigError(
                f"{where}: {key} must be a {need}number or a list of 3 {need}numbers (one per channel, "
                f"in the model's channel order), got {value!r}"
            )
        floats = tuple(float(v) for v in values)
        return floats if isinstance(value, (list, tuple)) else floats[0]

    return check


def _table(key: str, value: Any, where: str, base_dir: Path) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: {key} must be a table ([{key}] in the card), got {value!r}")
    return dict(value)


_CHECKERS: dict[str, Any] = {
    "name": _text,
    "decoder": _text,
    "labels": _labels,
    "label_offset": _integer(None),
    "channel_order": _choice(CHANNEL_ORDERS),
    "resize": _choice(RESIZE_MODES),
    "score_threshold": _fraction,
    "iou_threshold": _fraction,
    "max_detections": _integer(1),
    "class_filter": _string_list,
    "mean": _per_channel(positive=False),
    "std": _per_channel(positive=True),
    "decoder_options": _table,
}


def _label_lines(card: ModelCard, model_file: ModelFile) -> list[str]:
    if card.labels == EMBEDDED:
        text = _embedded_labels(card, model_file)
    else:
        path = Path(str(card.labels))
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"{card._where()}: cannot read labels file {path}: {exc.strerror or exc}. "
                f"Fix the labels path (relative paths start at the card's folder)."
            ) from exc
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _embedded_labels(card: ModelCard, model_file: ModelFile) -> str:
    texts = [name for name in model_file.embedded_files if name.endswith(".txt")]
    if not texts:
        raise ModelFormatError(
            f'{card._where()}: labels = "embedded" but {model_file.path} carries no label file. '
            f"Point labels at a text file with one label per line."
        )
    member = "labelmap.txt" if "labelmap.txt" in texts else texts[0]
    if len(texts) > 1 and member != "labelmap.txt":
        log.info("model carries several text files %s; reading labels from %s", texts, member)
    return model_file.read_embedded(member).decode("utf-8")
