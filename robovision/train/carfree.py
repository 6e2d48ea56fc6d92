"""Car-free windows of labelled photographs, and the fixed car-free evaluation set.

``find_carfree_windows`` finds rectangles that touch no labelled box; training uses them
as backgrounds for pasted cars, and ``write_carfree_set`` cuts them from the validation
photographs (plus the negative textures) into a folder of images without labels, where
every detection is a false one.

Run ``python -m robovision.train.carfree`` to (re)build ``data/carfree/``; the set is
deterministic for a given seed and input.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from robovision.errors import SourceNotFoundError
from robovision.train.dataset import IMAGE_SUFFIXES, find_labelled_images, read_name_list, read_yolo_boxes

log = logging.getLogger(__name__)

UNLABELLED_CARS = {
    "87498cf3-IMG_0508.jpg": "the orange car at the bottom centre has no box",
}
"""Photographs with a visible car that has no label: no car-free crop is cut from them."""


def find_carfree_windows(
    boxes_xyxy: np.ndarray,
    size_wh: tuple[int, int],
    min_side_px: int,
    count: int,
    rng: np.random.Generator,
    *,
    margin_px: float = 8.0,
    tries: int = 3000,
    max_overlap: float = 0.3,
) -> list[tuple[int, int, int, int]]:
    """Up to ``count`` windows (x0, y0, x1, y1), in pixels, that overlap no box.

    Boxes (n, 4) are grown by ``margin_px`` first. Larger windows are preferred and the
    windows found overlap each other by at most ``max_overlap`` of the smaller one's area.
    """
    w, h = size_wh
    if min(w, h) < min_side_px:
        return []
    grown = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4) + np.float32(margin_px) * np.array(
        [-1, -1, 1, 1], dtype=np.float32
    )
    sides = rng.uniform(min_side_px, min(w, h), size=tries)
    aspects = np.exp(rng.uniform(np.log(0.75), np.log(1.34), size=tries))
    ww = np.minimum(sides * np.sqrt(aspects), w).astype(np.int64)
    hh = np.minimum(sides / np.sqrt(aspects), h).astype(np.int64)
    x0 = (rng.uniform(0, 1, size=tries) * (w - ww + 1)).astype(np.int64)
    y0 = (rng.uniform(0, 1, size=tries) * (h - hh + 1)).astype(np.int64)
    cand = np.stack([x0, y0, x0 + ww, y0 + hh], axis=1)
    if len(grown):
        overlap_x = (cand[:, None, 0] < grown[None, :, 2]) & (cand[:, None, 2] > grown[None, :, 0])
        overlap_y = (cand[:, None, 1] < grown[None, :, 3]) & (cand[:, None, 3] > grown[None, :, 1])
        cand = cand[~np.any(overlap_x & overlap_y, axis=1)]
    cand = cand[np.argsort(-(cand[:, 2] - cand[:, 0]) * (cand[:, 3] - cand[:, 1]), kind="stable")]
    chosen: list[np.ndarray] = []
    for box in cand:
        if len(chosen) >= count:
            break
        if all(_overlap_of_smaller(box, other) <= max_overlap for other in chosen):
            chosen.append(box)
    return [(int(b[0]), int(b[1]), int(b[2]), int(b[3])) for b in chosen]


def _overlap_of_smaller(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(iw * ih) / float(max(smaller, 1))


def write_carfree_set(
    toycars_dir: Path,
    names: Sequence[str],
    negatives_dir: Path,
    out_dir: Path,
    *,
    crops_per_photo: int = 3,
    min_side_px: int = 150,
    seed: int = 7,
) -> list[str]:
    """Write the negatives (PNG) and car-free crops of the named photographs (JPEG) to ``out_dir``.

    Returns the provenance lines (one per written image), also written to
    ``out_dir/PROVENANCE.txt``. Existing images in ``out_dir`` are replaced.
    """
    import cv2

    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.iterdir():
        if old.suffix.lower() in IMAGE_SUFFIXES:
            old.unlink()
    lines = []
    negatives = sorted(p for p in negatives_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not negatives:
        raise SourceNotFoundError(f"no images in {negatives_dir}; restore data/negatives")
    for path in negatives:
        image = _read(path)
        cv2.imwrite(str(out_dir / f"negative-{path.stem}.png"), image)
        lines.append(f"negative-{path.stem}.png: whole of {negatives_dir.name}/{path.name}")
    rng = np.random.default_rng(seed)
    for item in find_labelled_images(toycars_dir, names):
        if item.image_path.name in UNLABELLED_CARS:
            log.info("no crops from %s: %s", item.image_path.name, UNLABELLED_CARS[item.image_path.name])
            continue
        image = _read(item.image_path)
        h, w = image.shape[:2]
        boxes = read_yolo_boxes(item.label_path, (w, h))
        windows = find_carfree_windows(boxes, (w, h), min_side_px, crops_per_photo, rng)
        for k, (x0, y0, x1, y1) in enumerate(windows):
            name = f"crop-{item.image_path.stem}-{k}.jpg"
            cv2.imwrite(str(out_dir / name), image[y0:y1, x0:x1], [cv2.IMWRITE_JPEG_QUALITY, 95])
            lines.append(f"{name}: {toycars_dir.name}/images/{item.image_path.name} x={x0}:{x1} y={y0}:{y1}")
    text = _provenance_header(seed) + "\n".join(lines) + "\n"
    (out_dir / "PROVENANCE.txt").write_text(text, encoding="utf-8")
    log.info("wrote %d car-free images to %s", len(lines), out_dir)
    return lines


def _read(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceNotFoundError(f"cannot decode {path}; replace or remove the file")
    return np.asarray(image)


def _provenance_header(seed: int) -> str:
    return (
        "Car-free images for counting false detections. No label files: every detection is false.\n"
        "Made by `python -m robovision.train.carfree` "
        f"(seed {seed}) from data/negatives (scikit-image sample images, CC0)\n"
        "and from regions of data/toycars validation photographs that touch no labelled box\n"
        "(MIT, see data/toycars/LICENSE). Skipped, for a car without a box: "
        + ", ".join(f"{name} ({why})" for name, why in UNLABELLED_CARS.items())
        + ".\n\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    from robovision.paths import project_root

    root = project_root()
    parser = argparse.ArgumentParser(description="Build the car-free evaluation set.")
    parser.add_argument("--toycars", type=Path, default=root / "data" / "toycars")
    parser.add_argument("--list", type=Path, default=root / "data" / "toycars" / "val.txt")
    parser.add_argument("--negatives", type=Path, default=root / "data" / "negatives")
    parser.add_argument("--out", type=Path, default=root / "data" / "carfree")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    write_carfree_set(args.toycars, read_name_list(args.list), args.negatives, args.out, seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
