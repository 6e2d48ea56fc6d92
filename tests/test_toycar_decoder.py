"""The toy-car grid decoder on synthetic grids with known peaks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from robovision.boxes import iou_xyxy
from robovision.decoders import toycar
from robovision.decoders.base import DecodeParams
from robovision.errors import ModelFormatError, RuntimeIncompatibleError, RuntimeMissingError
from robovision.evaluate import ImageDetections, match_image, summarize
from robovision.frame import PixelLayout
from robovision.model import Model
from robovision.paths import project_root
from robovision.tensor_spec import TensorSpec
from robovision.train.dataset import find_labelled_images, read_name_list, read_yolo_boxes
from robovision.transform import Transform

GRID = 20
INPUT = 160
SPEC = TensorSpec(0, "grid", (1, GRID, GRID, 5), np.dtype(np.int8), scale=1 / 256, zero_point=-128)
PARAMS = DecodeParams(labels=("toy_car",), score_threshold=0.5, iou_threshold=0.45, max_detections=20)
PRECISION_FLOOR = 0.9
RECALL_FLOOR = 0.85
"""What the shipped model reaches on the validation photographs at its card's threshold, rounded down."""
# A 640x480 frame stretched to 160x160.
STRETCH = Transform(frame_wh=(640, 480), input_wh=(INPUT, INPUT), scale_xy=(0.25, 1 / 3), offset_xy=(0, 0))


def quantize(values: np.ndarray) -> np.ndarray:
    q = np.round(values / SPEC.scale) + SPEC.zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def grid_with(cars: list[tuple[int, int, float, tuple[float, float, float, float]]]) -> np.ndarray:
    """A quantized output with cars at (row, col, score, (dx, dy, w, h) channel values)."""
    values = np.zeros((1, GRID, GRID, 5), dtype=np.float32)
    values[..., 0] = 0.01
    for row, col, score, box in cars:
        values[0, row, col, 0] = score
        values[0, row, col, 1:] = box
    return quantize(values)


def test_one_peak_gives_one_box_in_frame_pixels() -> None:
    # Centre of cell (row 5, col 7) with v = 0.5 offsets: x = 7.5 / 20, y = 5.5 / 20 of the input;
    # width 0.25 and height 0.125 of the input.
    out = grid_with([(5, 7, 0.9, (0.5, 0.5, 0.25, 0.125))])
    (det,) = toycar.decode([out], [SPEC], STRETCH, PARAMS)
    expected_norm = (7.5 / 20 - 0.125, 5.5 / 20 - 0.0625, 7.5 / 20 + 0.125, 5.5 / 20 + 0.0625)
    np.testing.assert_allclose(det.box_xyxy_norm, expected_norm, atol=1 / 256)
    np.testing.assert_allclose(det.box_xyxy, np.array(expected_norm) * [640, 480, 640, 480], atol=640 / 256)
    assert det.label == "toy_car"
    assert det.class_id == 0
    assert det.score == pytest.approx(0.9, abs=1 / 256)


def test_offset_channels_move_the_centre_by_span_cells() -> None:
    # v = 0.75 with span 4 moves the centre one cell right; v = 0.25 one cell up.
    out = grid_with([(10, 10, 0.8, (0.75, 0.25, 0.1, 0.1))])
    (det,) = toycar.decode([out], [SPEC], STRETCH, PARAMS)
    x0, y0, x1, y1 = det.box_xyxy_norm
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    assert cx == pytest.approx(11.5 / 20, abs=0.01)
    assert cy == pytest.approx(9.5 / 20, abs=0.01)


def test_two_adjacent_cells_with_equal_scores_for_one_car_give_one_detection() -> None:
    # Both cells are 3x3 maxima (a tie) and describe the same box: suppression keeps one.
    out = grid_with([(8, 8, 0.9, (0.625, 0.5, 0.3, 0.3)), (8, 9, 0.9, (0.375, 0.5, 0.3, 0.3))])
    detections = toycar.decode([out], [SPEC], STRETCH, PARAMS)
    assert len(detections) == 1


def test_a_weaker_neighbour_is_not_a_peak_even_with_a_different_box() -> None:
    out = grid_with([(8, 8, 0.9, (0.5, 0.5, 0.3, 0.3)), (8, 9, 0.7, (0.5, 0.5, 0.05, 0.05))])
    detections = toycar.decode([out], [SPEC], STRETCH, PARAMS)
    assert [round(d.score, 2) for d in detections] == [0.9]


def test_separate_cars_come_best_first_and_the_threshold_applies() -> None:
    out = grid_with([
        (3, 3, 0.6, (0.5, 0.5, 0.1, 0.1)),
        (15, 15, 0.95, (0.5, 0.5, 0.1, 0.1)),
        (3, 15, 0.4, (0.5, 0.5, 0.1, 0.1)),
    ])
    detections = toycar.decode([out], [SPEC], STRETCH, PARAMS)
    assert [round(d.score, 2) for d in detections] == [0.95, 0.6]
    assert detections[0].center_xy[0] > detections[1].center_xy[0]


def test_max_detections_and_class_filter() -> None:
    out = grid_with([(r, c, 0.9, (0.5, 0.5, 0.05, 0.05)) for r in (2, 10, 17) for c in (2, 10, 17)])
    assert len(toycar.decode([out], [SPEC], STRETCH, PARAMS)) == 9
    fewer = DecodeParams(labels=("toy_car",), score_threshold=0.5, max_detections=4)
    assert len(toycar.decode([out], [SPEC], STRETCH, fewer)) == 4
    other = DecodeParams(labels=("toy_car",), score_threshold=0.5, class_filter=frozenset({"person"}))
    assert toycar.decode([out], [SPEC], STRETCH, other) == []


def test_float_logits_with_apply_sigmoid() -> None:
    logits = np.full((1, GRID, GRID, 5), -6.0, dtype=np.float32)
    logits[0, 4, 6] = [3.0, 0.0, 0.0, -1.0, -1.0]  # sigmoid: 0.953, 0.5, 0.5, 0.269, 0.269
    spec = TensorSpec(0, "grid", (1, GRID, GRID, 5), np.dtype(np.float32))
    params = DecodeParams(labels=("toy_car",), score_threshold=0.5, options={"apply_sigmoid": True})
    (det,) = toycar.decode([logits], [spec], STRETCH, params)
    assert det.score == pytest.approx(1 / (1 + np.exp(-3.0)), abs=1e-5)
    width_norm = det.box_xyxy_norm[2] - det.box_xyxy_norm[0]
    assert width_norm == pytest.approx(1 / (1 + np.exp(1.0)), abs=1e-5)


def test_a_box_reaching_past_the_input_is_clipped_to_the_frame() -> None:
    out = grid_with([(0, 0, 0.9, (0.5, 0.5, 0.4, 0.4))])
    (det,) = toycar.decode([out], [SPEC], STRETCH, PARAMS)
    assert det.box_xyxy[0] == 0.0 and det.box_xyxy[1] == 0.0
    assert det.box_xyxy_norm[2] == pytest.approx((0.5 / 20 + 0.2), abs=0.01)


@pytest.mark.parametrize("shape", [(1, GRID, GRID, 6), (GRID, GRID, 5), (2, GRID, GRID, 5)])
def test_wrong_output_shape_is_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(ModelFormatError, match="toycar decoder"):
        toycar.decode([np.zeros(shape, np.int8)], [SPEC], STRETCH, PARAMS)


# The shipped model, run end to end on the validation photographs by each installed backend.

SHIPPED = project_root() / "models" / "toycar.tflite"
TOYCARS = project_root() / "data" / "toycars"


def load_shipped(backend: str) -> Model:
    try:
        return Model.load(SHIPPED, backend=backend)
    except (RuntimeMissingError, RuntimeIncompatibleError) as exc:
        pytest.skip(f"{backend} not usable here: {exc}")


def detect_validation(model: Model) -> list[ImageDetections]:
    out = []
    for item in find_labelled_images(TOYCARS, read_name_list(TOYCARS / "val.txt")):
        image_bgr = cv2.imread(str(item.image_path))
        truth = read_yolo_boxes(item.label_path, (image_bgr.shape[1], image_bgr.shape[0]))
        detections = model.detect_image(image_bgr, PixelLayout.BGR).detections
        boxes = np.array([d.box_xyxy for d in detections], np.float32).reshape(-1, 4)
        scores = np.array([d.score for d in detections], np.float32)
        out.append(ImageDetections(item.image_path.name, truth, boxes, scores))
    return out


@pytest.mark.backend
@pytest.mark.parametrize("backend", ["litert", "tflite-runtime"])
def test_shipped_model_finds_the_validation_cars(backend: str) -> None:
    model = load_shipped(backend)
    assert model.decoder == "toycar"
    assert model.interpreter.inputs[0].dtype == np.int8 and model.interpreter.outputs[0].dtype == np.int8

    matched = [match_image(image) for image in detect_validation(model)]
    summary = summarize(matched, model.params.score_threshold)

    assert summary.cars == 81
    assert summary.precision >= PRECISION_FLOOR, summary
    assert summary.recall >= RECALL_FLOOR, summary


@pytest.mark.backend
def test_shipped_model_gives_the_same_detections_on_both_backends() -> None:
    # The runtimes' int8 kernels round differently by a few steps, so a detection scored at the
    # threshold may pass in one and not the other; any clearly above it must be in both.
    litert_model = load_shipped("litert")
    margin = 0.03  # up to 6 quantization steps (0.023) seen on the bundled photographs
    clear = litert_model.params.score_threshold + margin
    litert = detect_validation(litert_model)
    tflite_runtime = detect_validation(load_shipped("tflite-runtime"))
    for ours, theirs in [*zip(litert, tflite_runtime), *zip(tflite_runtime, litert)]:
        for box, score in zip(ours.boxes_xyxy, ours.scores):
            if score < clear:
                continue
            overlaps = iou_xyxy(box, theirs.boxes_xyxy)
            assert overlaps.size and overlaps.max() >= 0.85, (ours.name, box)
            assert abs(theirs.scores[int(np.argmax(overlaps))] - score) <= margin, (ours.name, box)
