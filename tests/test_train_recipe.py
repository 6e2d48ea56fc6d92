"""The training recipe: config, split, augmentation, targets, and a tiny end-to-end run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from robovision.errors import ConfigError
from robovision.paths import project_root
from robovision.train.augment import Augmenter, map_boxes
from robovision.train.config import AugmentConfig, config_from_dict, load_config
from robovision.train.dataset import (
    find_labelled_images,
    load_cached,
    read_name_list,
    read_yolo_boxes,
    split_by_photograph,
)
from robovision.train.targets import encode_targets

ROOT = project_root()
TOYCARS = ROOT / "data" / "toycars"
SHIPPED_CONFIG = ROOT / "models" / "toycar.train.toml"


def test_shipped_config_loads_and_resolves_paths_next_to_it() -> None:
    config = load_config(SHIPPED_CONFIG)
    assert config.data.toycars_dir == TOYCARS.resolve()
    assert config.grid_size == config.model.input_size // 8


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"train": {"stepz": 3}}, "unknown key"),
        ({"trian": {}}, "unknown section"),
        ({"train": {"steps": "many"}}, "train.steps must be int"),
        ({"model": {"input_size": 168}}, "odd grid"),
        ({"model": {"input_size": 150}}, "multiple of model.stride"),
        ({"model": {"widths": [8, 16]}}, "6 stage widths"),
    ],
)
def test_config_errors_name_the_key(raw: dict[str, dict[str, object]], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw, base_dir=ROOT)


def test_committed_split_is_by_photograph_and_reproducible() -> None:
    train = read_name_list(TOYCARS / "train.txt")
    val = read_name_list(TOYCARS / "val.txt")
    everything = [item.image_path.name for item in find_labelled_images(TOYCARS)]
    assert not set(train) & set(val)
    assert sorted(train + val) == everything
    assert (train, val) == split_by_photograph(everything, 0.2, seed=2025)


def test_yolo_boxes_are_read_in_pixels() -> None:
    (item,) = find_labelled_images(TOYCARS, ["74997a74-IMG_0484.jpg"])
    boxes = read_yolo_boxes(item.label_path, (640, 480))
    # label: 0 0.43926 0.55258 0.33958 0.89484
    np.testing.assert_allclose(boxes, [[(0.43926 - 0.16979) * 640, (0.55258 - 0.44742) * 480,
                                        (0.43926 + 0.16979) * 640, (0.55258 + 0.44742) * 480]], rtol=1e-4)


def test_map_boxes_keeps_visible_cars_and_ignores_cut_off_ones() -> None:
    boxes = np.array([[10, 10, 30, 30], [90, 10, 130, 30], [150, 150, 170, 170]], np.float32)
    shift = np.array([[1, 0, -20], [0, 1, 0], [0, 0, 1]], np.float64)  # 20 px left, into a 100 px image
    kept, ignored = map_boxes(boxes, shift, 100, min_visible_fraction=0.45)
    # box 0 -> x -10..10: half visible, kept clipped; box 1 -> 70..110: 3/4 visible; box 2: outside.
    np.testing.assert_allclose(kept, [[0, 10, 10, 30], [70, 10, 100, 30]], atol=1e-3)
    assert ignored.shape == (0, 4)
    kept, ignored = map_boxes(boxes, shift, 100, min_visible_fraction=0.6)
    np.testing.assert_allclose(ignored, [[0, 10, 10, 30]], atol=1e-3)


def test_encode_targets_peak_box_and_ignore_mask() -> None:
    boxes = np.array([[0.25, 0.25, 0.5, 0.75]], np.float32)  # centre (0.375, 0.5) -> cell (col 7, row 10)
    ignore = np.array([[0.0, 0.0, 0.1, 0.1]], np.float32)
    target = encode_targets(boxes, ignore, 20)
    assert target.shape == (20, 20, 7)
    assert target[10, 7, 0] == 1.0
    assert np.sum(target[..., 0] == 1.0) == 1
    np.testing.assert_allclose(target[10, 7, 1:6], [7.5, 10.0, 5.0, 10.0, 1.0])
    assert 0 < target[10, 8, 5] < 1  # the neighbours regress the same box with less weight
    np.testing.assert_allclose(target[9:12, 6:9, 1], 7.5)
    assert target[0, 0, 6] == 0.0 and target[1, 1, 6] == 0.0 and target[3, 3, 6] == 1.0


def test_augmented_samples_are_repeatable_and_well_formed() -> None:
    items = find_labelled_images(TOYCARS, read_name_list(TOYCARS / "train.txt")[:4])
    photos = load_cached(items, 256)
    texture = np.full((64, 64, 3), 90, np.uint8)
    first = Augmenter(photos, [texture], AugmentConfig(), 64, seed=3)
    again = Augmenter(photos, [texture], AugmentConfig(), 64, seed=3)
    for index in range(20):
        a, b = first.sample(index), again.sample(index)
        np.testing.assert_array_equal(a.image_rgb, b.image_rgb)
        np.testing.assert_array_equal(a.boxes_norm, b.boxes_norm)
        assert a.image_rgb.shape == (64, 64, 3) and a.image_rgb.dtype == np.uint8
        assert np.all((a.boxes_norm >= 0) & (a.boxes_norm <= 1))
        assert np.all(a.boxes_norm[:, 2:] > a.boxes_norm[:, :2])
    assert not np.array_equal(first.sample(0).image_rgb, first.sample(1).image_rgb)


@pytest.mark.slow
# TensorFlow's converter warns that int8 input statistics were not given; the representative
# dataset supplies them.
@pytest.mark.filterwarnings("ignore:Statistics for quantized inputs:UserWarning")
def test_tiny_training_run_converts_to_an_int8_model_the_runtime_decodes(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    from robovision.frame import PixelLayout
    from robovision.model import Model
    from robovision.model_card import ModelCard
    from robovision.train.recipe import train

    train_names = read_name_list(TOYCARS / "train.txt")[:3]
    val_names = read_name_list(TOYCARS / "val.txt")[:2]
    (tmp_path / "train.txt").write_text("\n".join(train_names) + "\n")
    (tmp_path / "val.txt").write_text("\n".join(val_names) + "\n")
    carfree = tmp_path / "carfree"
    carfree.mkdir()
    for path in sorted((ROOT / "data" / "carfree").glob("*.jpg"))[:2]:
        shutil.copy(path, carfree / path.name)
    raw = {
        "data": {
            "toycars_dir": str(TOYCARS),
            "train_list": "train.txt",
            "val_list": "val.txt",
            "negatives_dir": str(ROOT / "data" / "negatives"),
            "carfree_dir": "carfree",
            "cache_long_side_px": 192,
        },
        "model": {"name": "tiny", "input_size": 64, "widths": [4, 8, 8, 16, 16, 16], "head_width": 8},
        "train": {"steps": 3, "batch_size": 4, "warmup_steps": 1, "log_every": 1},
        "quantize": {"representative_count": 6},
    }
    config = config_from_dict(raw, base_dir=tmp_path)

    result = train(config, tmp_path / "out")

    assert result.model_path == tmp_path / "out" / "tiny.tflite"
    assert result.size_bytes == result.model_path.stat().st_size
    card = ModelCard.load(result.card_path)
    assert card.decoder == "toycar"
    assert card.score_threshold == pytest.approx(result.score_threshold, abs=5e-4)
    model = Model.load(result.model_path, score_threshold=0.05, max_detections=50)
    (spec_in,), (spec_out,) = model.interpreter.inputs, model.interpreter.outputs
    assert spec_in.dtype == np.int8 and spec_in.shape == (1, 64, 64, 3)
    assert spec_in.scale == pytest.approx(1 / 255) and spec_in.zero_point == -128
    assert spec_out.dtype == np.int8 and spec_out.shape == (1, config.grid_size, config.grid_size, 5)
    assert spec_out.scale == pytest.approx(1 / 256) and spec_out.zero_point == -128  # the sigmoid's range

    image = np.ascontiguousarray(load_cached(find_labelled_images(TOYCARS, val_names[:1]), 640)[0].image_rgb)
    frame_h, frame_w = image.shape[:2]
    frame_size = np.array([frame_w, frame_h, frame_w, frame_h])
    detections = model.detect_image(image, PixelLayout.RGB).detections
    scores = [d.score for d in detections]
    assert scores == sorted(scores, reverse=True)
    for d in detections:
        x0, y0, x1, y1 = d.box_xyxy
        assert 0 <= x0 <= x1 <= frame_w and 0 <= y0 <= y1 <= frame_h
        assert 0.05 <= d.score <= 1.0 and d.label == "toy_car"
        np.testing.assert_allclose(d.box_xyxy_norm, np.array(d.box_xyxy) / frame_size)
    assert result.int8_figures.val.images == 2 and result.int8_figures.carfree.images == 2
