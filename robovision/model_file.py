"""Read what robovision needs from a ``.tflite`` file without an interpreter.

A TFLite model is a FlatBuffer with the file identifier ``TFL3`` at bytes 4..8. This
module checks that identifier and reads, for the main subgraph, the operator codes
(builtin code or custom name, and version), which operator produces which tensor, and
the tensor names. Some models also carry a zip archive appended to the flatbuffer
(the label map of the TF1 SSD models); ``embedded_files`` lists it.

Only the fields above are decoded; everything else in the schema is skipped. Offsets
follow the FlatBuffers binary format: little-endian, 32-bit offsets, so files up to 2 GiB.
"""

from __future__ import annotations

import io
import logging
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from robovision.errors import ModelFormatError, ModelNotFoundError

log = logging.getLogger(__name__)

FILE_IDENTIFIER = b"TFL3"
CUSTOM_BUILTIN_CODE = 32
"""``BuiltinOperator.CUSTOM`` in the TFLite schema: the op is named by ``custom_code``."""

# Field slots (declaration order) in the TFLite schema tables this module reads.
_MODEL_OPERATOR_CODES, _MODEL_SUBGRAPHS = 1, 2
_OPCODE_DEPRECATED_BUILTIN, _OPCODE_CUSTOM, _OPCODE_VERSION, _OPCODE_BUILTIN = 0, 1, 2, 3
_SUBGRAPH_TENSORS, _SUBGRAPH_INPUTS, _SUBGRAPH_OUTPUTS, _SUBGRAPH_OPERATORS = 0, 1, 2, 3
_TENSOR_SHAPE, _TENSOR_NAME = 0, 3
_OPERATOR_OPCODE_INDEX, _OPERATOR_INPUTS, _OPERATOR_OUTPUTS = 0, 1, 2


@dataclass(frozen=True)
class OperatorCode:
    """One entry of the model's operator code table.

    ``builtin_code`` is the TFLite ``BuiltinOperator`` value (32 for custom ops).
    ``version_offset`` and ``custom_code_offset`` are the byte offsets in the file of the
    stored version (int32) and of the custom name's first byte, or ``None`` when not stored
    (a version equal to the schema default, 1, may be left out).
    """

    builtin_code: int
    custom_code: str | None
    version: int
    version_offset: int | None = None
    custom_code_offset: int | None = None

    @property
    def name(self) -> str:
        """The custom op name, or ``builtin:<code>`` for builtin ops."""
        return self.custom_code if self.custom_code is not None else f"builtin:{self.builtin_code}"


@dataclass(frozen=True)
class Operator:
    """One node of the main subgraph: which opcode it runs and its tensor indices."""

    opcode: OperatorCode
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class ModelFile:
    """The parts of a TFLite model file robovision reads, for subgraph 0."""

    path: Path
    size_bytes: int
    operator_codes: tuple[OperatorCode, ...]
    operators: tuple[Operator, ...]
    tensor_names: tuple[str, ...]
    input_indices: tuple[int, ...]
    output_indices: tuple[int, ...]
    embedded_files: tuple[str, ...]

    def producer_of(self, tensor_index: int) -> tuple[Operator, int] | None:
        """The operator writing ``tensor_index`` and the position among its outputs, if any."""
        for op in self.operators:
            if tensor_index in op.outputs:
                return op, op.outputs.index(tensor_index)
        return None

    def has_custom_op(self, name: str) -> bool:
        return any(code.custom_code == name for code in self.operator_codes)

    def read_embedded(self, member: str) -> bytes:
        """Bytes of ``member`` from the zip archive appended to the model."""
        with zipfile.ZipFile(io.BytesIO(self.path.read_bytes())) as archive:
            return archive.read(member)


def check_model_path(path: str | Path) -> Path:
    """``path`` as a ``Path`` if it is an existing file; otherwise ``ModelNotFoundError``."""
    model_path = Path(path)
    if not model_path.is_file():
        where = "is a directory, not a model file" if model_path.is_dir() else "does not exist"
        raise ModelNotFoundError(
            f"model file {str(model_path)!r} {where}. Check the path; the bundled models are in "
            f"models/ and models/reference/, and `robovision info MODEL` shows what a model expects."
        )
    return model_path


def read_model_file(path: str | Path) -> ModelFile:
    """Parse ``path``. Raises ``ModelNotFoundError`` or ``ModelFormatError``."""
    model_path = check_model_path(path)
    data = model_path.read_bytes()
    check_identifier(data, model_path)
    try:
        parsed = _parse(data, model_path)
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise ModelFormatError(
            f"{model_path} has the TFLite identifier but its flatbuffer is damaged ({exc}). "
            f"Copy the model again or re-export it."
        ) from exc
    log.debug("read %s: %d ops, %d tensors", model_path, len(parsed.operators), len(parsed.tensor_names))
    return parsed


def check_identifier(data: bytes, path: Path) -> None:
    """Raise ``ModelFormatError`` unless ``data`` starts like a TFLite flatbuffer."""
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        found = data[4:8] if len(data) >= 8 else data[:8]
        raise ModelFormatError(
            f"{path} is not a TFLite model: bytes 4..8 are {found!r}, expected {FILE_IDENTIFIER!r}. "
            f"robovision runs .tflite files; convert a SavedModel or Keras model with "
            f"tf.lite.TFLiteConverter (or `robovision train`, which exports one)."
        )


class _Reader:
    """Minimal FlatBuffers table reader over a bytes object."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def u32(self, pos: int) -> int:
        return int(struct.unpack_from("<I", self.data, pos)[0])

    def i32(self, pos: int) -> int:
        return int(struct.unpack_from("<i", self.data, pos)[0])

    def field_pos(self, table: int, slot: int) -> int | None:
        """Absolute position of field ``slot`` of the table at ``table``, or ``None`` if absent."""
        vtable = table - self.i32(table)
        vtable_size = int(struct.unpack_from("<H", self.data, vtable)[0])
        entry = 4 + 2 * slot
        if entry >= vtable_size:
            return None
        offset = int(struct.unpack_from("<H", self.data, vtable + entry)[0])
        return table + offset if offset else None

    def ref(self, table: int, slot: int) -> int | None:
        """Target of an offset field (table, vector or string), or ``None`` if absent."""
        pos = self.field_pos(table, slot)
        return None if pos is None else pos + self.u32(pos)

    def scalar(self, table: int, slot: int, fmt: str, default: int) -> tuple[int, int | None]:
        pos = self.field_pos(table, slot)
        if pos is None:
            return default, None
        return int(struct.unpack_from(fmt, self.data, pos)[0]), pos

    def tables(self, table: int, slot: int) -> list[int]:
        vec = self.ref(table, slot)
        if vec is None:
            return []
        return [vec + 4 + 4 * i + self.u32(vec + 4 + 4 * i) for i in range(self.u32(vec))]

    def ints(self, table: int, slot: int) -> tuple[int, ...]:
        vec = self.ref(table, slot)
        if vec is None:
            return ()
        count = self.u32(vec)
        return tuple(int(v) for v in struct.unpack_from(f"<{count}i", self.data, vec + 4))

    def string(self, table: int, slot: int) -> str | None:
        pos = self.ref(table, slot)
        if pos is None:
            return None
        length = self.u32(pos)
        return self.data[pos + 4 : pos + 4 + length].decode("utf-8")

    def string_offset(self, table: int, slot: int) -> int | None:
        """Offset of the first byte of a string field's text, or ``None`` if absent."""
        pos = self.ref(table, slot)
        return None if pos is None else pos + 4


def _parse(data: bytes, path: Path) -> ModelFile:
    reader = _Reader(data)
    root = reader.u32(0)
    codes = tuple(_operator_code(reader, t) for t in reader.tables(root, _MODEL_OPERATOR_CODES))
    subgraphs = reader.tables(root, _MODEL_SUBGRAPHS)
    if not subgraphs:
        raise ModelFormatError(f"{path} has no subgraph; re-export the model.")
    main = subgraphs[0]
    operators = tuple(
        Operator(
            opcode=codes[reader.scalar(op, _OPERATOR_OPCODE_INDEX, "<I", 0)[0]],
            inputs=reader.ints(op, _OPERATOR_INPUTS),
            outputs=reader.ints(op, _OPERATOR_OUTPUTS),
        )
        for op in reader.tables(main, _SUBGRAPH_OPERATORS)
    )
    names = tuple(reader.string(t, _TENSOR_NAME) or "" for t in reader.tables(main, _SUBGRAPH_TENSORS))
    return ModelFile(
        path=path,
        size_bytes=len(data),
        operator_codes=codes,
        operators=operators,
        tensor_names=names,
        input_indices=reader.ints(main, _SUBGRAPH_INPUTS),
        output_indices=reader.ints(main, _SUBGRAPH_OUTPUTS),
        embedded_files=_zip_members(data),
    )


def _operator_code(reader: _Reader, table: int) -> OperatorCode:
    deprecated, _ = reader.scalar(table, _OPCODE_DEPRECATED_BUILTIN, "<b", 0)
    builtin, _ = reader.scalar(table, _OPCODE_BUILTIN, "<i", 0)
    version, version_pos = reader.scalar(table, _OPCODE_VERSION, "<i", 1)
    # Files written before the builtin_code field existed leave it at 0 and keep the code in
    # the one-byte field; newer files fill both. The larger of the two is the real code.
    return OperatorCode(
        builtin_code=max(builtin, deprecated),
        custom_code=reader.string(table, _OPCODE_CUSTOM),
        version=version,
        version_offset=version_pos,
        custom_code_offset=reader.string_offset(table, _OPCODE_CUSTOM),
    )


def _zip_members(data: bytes) -> tuple[str, ...]:
    if b"PK\x05\x06" not in data[-65_557:]:
        return ()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return tuple(archive.namelist())
    except zipfile.BadZipFile as exc:
        log.warning("ignoring a damaged zip archive appended to the model: %s", exc)
        return ()
