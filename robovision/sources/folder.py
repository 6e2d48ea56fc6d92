"""A folder of image files, read in name order."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from robovision.errors import SourceError, SourceNotFoundError
from robovision.frame import Frame, PixelLayout
from robovision.sources.base import FrameSource
from robovision.sources.image import IMAGE_SUFFIXES, is_image_path, read_image_bgr

log = logging.getLogger(__name__)


def list_images(folder: Path) -> list[Path]:
    """The image files directly inside ``folder``, sorted by file name."""
    if not folder.exists():
        raise SourceNotFoundError(f"no folder at {folder}: check the path")
    if not folder.is_dir():
        raise SourceError(f"{folder} is not a folder")
    try:
        paths = sorted(
            (p for p in folder.iterdir() if p.is_file() and is_image_path(p)), key=lambda p: p.name
        )
    except PermissionError:
        raise SourceError(
            f"cannot list {folder}: permission denied; check the folder's owner and mode"
        ) from None
    if not paths:
        raise SourceNotFoundError(f"no images in {folder} (looked for {', '.join(IMAGE_SUFFIXES)})")
    return paths


class FolderSource(FrameSource):
    """Every image in a folder, sorted by file name, decoded one per ``read()``.

    With ``loop=True`` it starts again after the last image; otherwise ``read()``
    returns None there. Each frame's image is a new array. ``timeout_s`` is not
    needed (decoding a file does not hang) and is ignored.
    """

    def __init__(self, path: str | Path, *, loop: bool = False) -> None:
        self.path = Path(path)
        super().__init__(f"folder:{self.path.name}")
        self.loop = bool(loop)
        self.paths: list[Path] = []
        self._index = 0

    def _open(self) -> None:
        self.paths = list_images(self.path)
        self._index = 0
        log.info("folder %s holds %d images", self.path, len(self.paths))

    def _read(self, timeout_s: Optional[float]) -> Optional[Frame]:
        if self._index >= len(self.paths):
            if not self.loop:
                return None
            self._index = 0
        path = self.paths[self._index]
        self._index += 1
        return self._make_frame(read_image_bgr(path), PixelLayout.BGR)

    def _close(self) -> None:
        self.paths = []
