from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from robovision.annotate import draw_detections, label_colour_bgr, to_bgr
from robovision.detection import Detection
from robovision.errors import ConfigError
from robovision.frame import PixelLayout

ROOT = Path(__file__).resolve().parents[1]
PHOTO = sorted((ROOT / "data" / "toycars" / "images").glob("*.jpg"))[0]


def detection(label: str, score: float, box_xyxy: tuple[float, float, float, float]) -> Detection:
    w, h = 640, 480
    x0, y0, x1, y1 = box_xyxy
    return Detection(label, 0, score, box_xyxy, (x0 / w, y0 / h, x1 / w, y1 / h))


@pytest.fixture
def photo_bgr() -> np.ndarray:
    image = cv2.imread(str(PHOTO))
    assert image is not None and image.shape == (480, 640, 3)
    return image


def test_box_edges_take_the_label_colour_and_the_rest_is_untouched(photo_bgr: np.ndarray) -> None:
    before = photo_bgr.copy()
    out = draw_detections(photo_bgr, [detection("toycar", 0.91, (200.0, 150.0, 420.0, 330.0))])
    colour = np.array(label_colour_bgr("toycar"), np.uint8)

    assert out is not photo_bgr and not np.shares_memory(out, photo_bgr)
    assert np.array_equal(photo_bgr, before)  # the input is not drawn on
    for x, y in [(200, 240), (201, 240), (419, 240), (418, 240), (310, 329), (310, 328), (300, 151)]:
        assert np.array_equal(out[y, x], colour), (x, y)
    # well inside the box, and well outside it (away from the label tag above), nothing changed
    assert np.array_equal(out[170:320, 210:410], photo_bgr[170:320, 210:410])
    assert np.array_equal(out[340:, :], photo_bgr[340:, :])
    assert np.array_equal(out[:, 430:], photo_bgr[:, 430:])
    assert np.array_equal(out[:, :190], photo_bgr[:, :190])


def test_label_tag_sits_above_the_box_with_readable_text(photo_bgr: np.ndarray) -> None:
    out = draw_detections(photo_bgr, [detection("toycar", 0.91, (200.0, 150.0, 420.0, 330.0))])
    tag = out[125:149, 200:300]
    colour = np.array(label_colour_bgr("toycar"), np.uint8)
    is_colour = np.all(tag == colour, axis=2)
    assert 0.4 < is_colour.mean() < 0.98  # a filled tag with text written over it
    assert np.array_equal(out[:120], photo_bgr[:120])


def test_box_at_the_top_edge_keeps_its_tag_inside_the_frame(photo_bgr: np.ndarray) -> None:
    out = draw_detections(photo_bgr, [detection("toycar", 0.5, (10.0, 0.0, 200.0, 100.0))])
    colour = np.array(label_colour_bgr("toycar"), np.uint8)
    assert np.all(out[5, 12:40] == colour, axis=1).mean() > 0.3
    assert np.array_equal(out[120:], photo_bgr[120:])


def test_box_past_the_frame_is_clipped_not_an_error(photo_bgr: np.ndarray) -> None:
    out = draw_detections(photo_bgr, [detection("toycar", 0.7, (-50.0, 400.0, 700.0, 520.0))])
    colour = np.array(label_colour_bgr("toycar"), np.uint8)
    assert np.array_equal(out[479, 320], colour)
    assert np.array_equal(out[440, 0], colour)
    assert np.array_equal(out[440, 639], colour)


def test_colours_are_stable_per_label_and_differ_between_labels() -> None:
    assert label_colour_bgr("toycar") == label_colour_bgr("toycar")
    colours = {label_colour_bgr(label) for label in ("toycar", "person", "dog", "cat", "truck")}
    assert len(colours) == 5
    assert all(max(colour) == 255 for colour in colours)  # bright enough to see


def test_no_detections_gives_an_identical_copy(photo_bgr: np.ndarray) -> None:
    out = draw_detections(photo_bgr, [])
    assert np.array_equal(out, photo_bgr) and out is not photo_bgr


@pytest.mark.parametrize("layout", [PixelLayout.RGB, PixelLayout.XBGR8888])
def test_frames_in_other_layouts_are_drawn_after_to_bgr(photo_bgr: np.ndarray, layout: PixelLayout) -> None:
    code = {PixelLayout.RGB: cv2.COLOR_BGR2RGB, PixelLayout.XBGR8888: cv2.COLOR_BGR2RGBA}[layout]
    frame_image = cv2.cvtColor(photo_bgr, code)
    out = draw_detections(
        to_bgr(frame_image, layout), [detection("toycar", 0.9, (100.0, 100.0, 200.0, 200.0))]
    )
    assert np.array_equal(out[150, 100], np.array(label_colour_bgr("toycar"), np.uint8))
    assert np.array_equal(out[300:], photo_bgr[300:])


def test_non_bgr_input_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="to_bgr"):
        draw_detections(np.zeros((48, 64), np.uint8), [])
