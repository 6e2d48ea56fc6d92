"""Decoders on real SSD outputs and on synthetic tensors whose answer is worked out by hand."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from robovision.decoders import classification, decoder_names, load_decoder, make_detections, ssd, yolo
from robovision.decoders.base import DecodeParams
from robovision.errors import ConfigError, ModelFormatError
from robovision.interpreter import open_interpreter
from robovision.model_card import ModelCard
from robovision.model_file import read_model_file
from robovision.tensor_spec import TensorSpec
from robovision.transform import Transform

ROOT = Path(__file__).resolve().parent.parent
SSD_MODEL = ROOT / "models" / "reference" / "ssd_mobilenet_v1_1_metadata_1.tflite"
MOBILENET = ROOT / "models" / "reference" / "mobilenet_v1_0.25_128_quant.tflite"
CAR_PHOTO = ROOT / "data" / "toycars" / "images" / "cf5f6825-IMG_0447.jpg"

F32 = np.dtype(np.float32)


def identity(size_wh: tuple[int, int]) -> Transform:
    return Transform(size_wh, size_wh, (1.0, 1.0), (0.0, 0.0))


def letterbox_640x480_into_320() -> Transform:
    """A 640x480 frame letterboxed into 320x320: scale 0.5, 40 rows of padding above."""
    return Transform((640, 480), (320, 320), (0.5, 0.5), (0.0, 40.0))


def spec(
    name: str, shape: tuple[int, ...], dtype: np.dtype = F32, scale: float = 0.0, zp: int = 0
) -> TensorSpec:
    return TensorSpec(index=-1, name=name, shape=shape, dtype=dtype, scale=scale, zero_point=zp)


# ---------------------------------------------------------------- shared helpers


def test_decoder_names_lists_the_modules_and_unknown_kinds_fail() -> None:
    assert {"ssd", "classification", "yolo"} <= set(decoder_names())
    assert "base" not in decoder_names()
    assert load_decoder("ssd") is ssd
    with pytest.raises(ConfigError, match="unknown decoder 'retina'; known decoders: "):
        load_decoder("retina")


def test_make_detections_filters_sorts_and_normalizes() -> None:
    boxes = np.array([[0, 0, 10, 10], [10, 20, 30, 40], [5, 5, 6, 6], [1, 1, 2, 2]], np.float32)
    scores = np.array([0.6, 0.9, 0.6, 0.2], np.float32)
    params = DecodeParams(labels=("a", "b", "c"), score_threshold=0.5, class_filter=frozenset({"a", "b"}))

    found = make_detections(boxes, scores, np.array([0, 1, 2, 0]), (100, 50), params)

    assert [(d.label, d.score) for d in found] == [("b", pytest.approx(0.9)), ("a", pytest.approx(0.6))]
    assert found[0].box_xyxy == (10.0, 20.0, 30.0, 40.0)
    assert found[0].box_xyxy_norm == pytest.approx((0.1, 0.4, 0.3, 0.8))
    one = make_detections(boxes, scores, np.array([0, 1, 2, 0]), (100, 50), replace(params, max_detections=1))
    assert [d.label for d in one] == ["b"]


# ---------------------------------------------------------------- ssd


def test_ssd_decodes_hand_made_outputs_through_a_letterbox() -> None:
    # A box at frame (100, 50)-(300, 250) in a 640x480 frame letterboxed to 300x300:
    # scale 0.46875, 37.5 rows of padding -> input (46.875, 60.9375)-(140.625, 154.6875).
    transform = Transform((640, 480), (300, 300), (0.46875, 0.46875), (0.0, 37.5))
    boxes_yxyx = np.zeros((1, 4, 4), np.float32)
    boxes_yxyx[0, 0] = [60.9375 / 300, 46.875 / 300, 154.6875 / 300, 140.625 / 300]
    boxes_yxyx[0, 1] = [0.0, 0.0, 0.5, 0.5]
    boxes_yxyx[0, 2:] = 0.7  # rows past the count hold leftovers
    classes = np.array([[2, 0, 5, 5]], np.float32)
    scores = np.array([[0.8, 0.3, 0.99, 0.99]], np.float32)
    count = np.array([2], np.float32)
    specs = [spec("b", (1, 4, 4)), spec("c", (1, 4)), spec("s", (1, 4)), spec("n", (1,))]
    params = DecodeParams(labels=("person", "bicycle", "car"), score_threshold=0.25)

    found = ssd.decode([boxes_yxyx, classes, scores, count], specs, transform, params)

    assert [(d.label, d.class_id) for d in found] == [("car", 2), ("person", 0)]
    assert found[0].box_xyxy == pytest.approx((100.0, 50.0, 300.0, 250.0), abs=1e-3)
    # (0, 0)-(0.5, 0.5) of the input: x 0..150 -> 0..320; y 0..150 -> clipped at 0 .. 240.
    assert found[1].box_xyxy == pytest.approx((0.0, 0.0, 320.0, 240.0), abs=1e-3)


@pytest.fixture(scope="module")
def ssd_run() -> tuple[list[np.ndarray], tuple[TensorSpec, ...]]:
    """Real SSD outputs on a toy-car photograph (TF1 export order) and their specs."""
    interpreter = open_interpreter(SSD_MODEL)
    image_bgr = cv2.imread(str(CAR_PHOTO), cv2.IMREAD_COLOR)
    assert image_bgr is not None
    tensor = np.ascontiguousarray(cv2.resize(image_bgr, (300, 300))[:, :, ::-1])[None]
    return interpreter.run(tensor), interpreter.outputs


TF2_ORDER = (2, 0, 3, 1)
"""TF2 exports list scores, boxes, count, classes (TF1 positions 2, 0, 3, 1)."""
TF2_NAMES = ("StatefulPartitionedCall:1", "StatefulPartitionedCall:3", "StatefulPartitionedCall:0",
             "StatefulPartitionedCall:2")


def as_tf2(
    outputs: list[np.ndarray], specs: tuple[TensorSpec, ...], keep_index: bool
) -> tuple[list[np.ndarray], list[TensorSpec]]:
    """The same tensors in TF2 order with TF2 names; ``keep_index=False`` hides the graph link."""
    out = [outputs[i] for i in TF2_ORDER]
    renamed = [
        replace(specs[i], name=name, index=specs[i].index if keep_index else -1)
        for i, name in zip(TF2_ORDER, TF2_NAMES)
    ]
    return out, renamed


@pytest.mark.backend
def test_ssd_tf1_and_tf2_output_orders_decode_identically(
    ssd_run: tuple[list[np.ndarray], tuple[TensorSpec, ...]],
) -> None:
    outputs, specs = ssd_run
    model_file = read_model_file(SSD_MODEL)
    card = ModelCard.for_model(SSD_MODEL)
    base = DecodeParams(labels=card.read_labels(model_file), score_threshold=0.3)
    transform = Transform((640, 480), (300, 300), (300 / 640, 300 / 480), (0.0, 0.0))

    tf1_params = ssd.prepare(specs, base, model_file)
    tf1 = ssd.decode(outputs, specs, transform, tf1_params)

    graph_outputs, graph_specs = as_tf2(outputs, specs, keep_index=True)
    graph_params = ssd.prepare(graph_specs, base, model_file)
    by_graph = ssd.decode(graph_outputs, graph_specs, transform, graph_params)

    blind_outputs, blind_specs = as_tf2(outputs, specs, keep_index=False)
    blind_params = ssd.prepare(blind_specs, base, model_file)
    by_values = ssd.decode(blind_outputs, blind_specs, transform, blind_params)

    card_roles = replace(base, options={"output_roles": {"boxes": 1, "classes": 3, "scores": 0, "count": 2}})
    card_params = ssd.prepare(blind_specs, card_roles, model_file)
    by_card = ssd.decode(blind_outputs, blind_specs, transform, card_params)

    assert tf1_params.options["output_roles"] == {"boxes": 0, "classes": 1, "scores": 2, "count": 3}
    assert graph_params.options["output_roles"] == {"boxes": 1, "classes": 3, "scores": 0, "count": 2}
    assert "output_roles" not in blind_params.options
    assert len(tf1) >= 2 and any(d.label == "car" for d in tf1)
    assert tf1 == by_graph == by_values == by_card


def test_ssd_roles_by_value_fall_back_to_tf1_names_when_values_cannot_tell() -> None:
    boxes = np.zeros((1, 2, 4), np.float32)
    ones_and_zeros = np.array([[1.0, 0.0]], np.float32)
    specs = [
        spec("TFLite_Detection_PostProcess:2", (1, 2)),
        spec("TFLite_Detection_PostProcess", (1, 2, 4)),
        spec("TFLite_Detection_PostProcess:1", (1, 2)),
        spec("TFLite_Detection_PostProcess:3", (1,)),
    ]
    outputs = [ones_and_zeros, boxes, ones_and_zeros.copy(), np.array([2.0], np.float32)]

    roles = ssd.roles_from_values(outputs, specs)

    assert roles == {"boxes": 1, "classes": 2, "scores": 0, "count": 3}


def test_ssd_roles_by_value_tell_whole_class_ids_from_fractional_scores() -> None:
    outputs = [
        np.array([[0.25, 0.75]], np.float32),
        np.array([1.0], np.float32),
        np.array([[3.0, 17.0]], np.float32),
        np.zeros((1, 2, 4), np.float32),
    ]
    specs = [spec("a", (1, 2)), spec("b", (1,)), spec("c", (1, 2)), spec("d", (1, 2, 4))]

    assert ssd.roles_from_values(outputs, specs) == {"boxes": 3, "classes": 2, "scores": 0, "count": 1}


def test_ssd_refuses_outputs_it_cannot_match() -> None:
    outputs = [np.zeros((1, 2), np.float32)] * 4
    specs = [spec(str(i), (1, 2)) for i in range(4)]
    with pytest.raises(ModelFormatError, match=r"set decoder_options\.output_roles"):
        ssd.roles_from_values(outputs, specs)


@pytest.mark.parametrize(
    "roles",
    [{"boxes": 0, "classes": 1, "scores": 2}, {"boxes": 0, "classes": 0, "scores": 2, "count": 3},
     {"boxes": 0, "classes": 1, "scores": 2, "count": 9}, "0,1,2,3"],
)
def test_ssd_card_roles_are_checked(roles: object) -> None:
    specs = [spec("b", (1, 2, 4)), spec("c", (1, 2)), spec("s", (1, 2)), spec("n", (1,))]
    params = DecodeParams(options={"output_roles": roles})
    with pytest.raises(ConfigError, match="output_roles"):
        ssd.prepare(specs, params, read_model_file(SSD_MODEL))


def test_ssd_prepare_refuses_a_model_without_four_outputs() -> None:
    specs = [spec("probs", (1, 1001))]
    with pytest.raises(ModelFormatError, match="needs the four outputs of TFLite_Detection_PostProcess"):
        ssd.prepare(specs, DecodeParams(), read_model_file(MOBILENET))


# ---------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("raw", "out_spec"),
    [
        (np.array([[0, 10, 200, 50]], np.uint8), spec("p", (1, 4), np.dtype(np.uint8), 1 / 256, 0)),
        (np.array([[-128, -118, 72, -78]], np.int8), spec("p", (1, 4), np.dtype(np.int8), 1 / 256, -128)),
        (np.array([[0.0, 10 / 256, 200 / 256, 50 / 256]], np.float32), spec("p", (1, 4))),
    ],
    ids=["uint8", "int8", "float32"],
)
def test_classification_dequantizes_and_returns_the_top_k(raw: np.ndarray, out_spec: TensorSpec) -> None:
    params = DecodeParams(labels=("bg", "a", "b", "c"), score_threshold=0.1, options={"top_k": 3})

    found = classification.decode([raw], [out_spec], identity((64, 48)), params)

    # top 3 are ids 2 (200/256), 3 (50/256), 1 (10/256); the last is under the threshold.
    assert [(d.label, d.class_id) for d in found] == [("b", 2), ("c", 3)]
    assert [d.score for d in found] == pytest.approx([200 / 256, 50 / 256])
    assert all(d.box_xyxy == (0.0, 0.0, 64.0, 48.0) and d.box_xyxy_norm == (0, 0, 1, 1) for d in found)


def test_classification_softmax_option_turns_logits_into_probabilities() -> None:
    logits = np.array([[1.0, 2.0, 3.0]], np.float32)
    params = DecodeParams(score_threshold=0.0, options={"top_k": 3, "softmax": True})

    found = classification.decode([logits], [spec("logits", (1, 3))], identity((10, 10)), params)

    e = np.exp([1.0, 2.0, 3.0])
    assert [d.class_id for d in found] == [2, 1, 0]
    assert [d.score for d in found] == pytest.approx(list(e[::-1] / e.sum()))
    assert found[0].label == "2"  # no labels: the class id


@pytest.mark.parametrize("options", [{"top_k": 0}, {"top_k": "5"}, {"top_k": True}, {"softmax": "yes"}])
def test_classification_options_are_checked_at_load(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="decoder_options"):
        classification.prepare([spec("p", (1, 4))], DecodeParams(options=options), read_model_file(MOBILENET))


def test_classification_refuses_a_detection_head() -> None:
    with pytest.raises(ModelFormatError, match=r"needs one output of shape \(1, N\)"):
        classification.prepare([spec("boxes", (1, 10, 4))], DecodeParams(), read_model_file(MOBILENET))


# ---------------------------------------------------------------- yolo

INPUT = 320
# Candidates as (cx, cy, w, h) in input pixels, best class, score, objectness, class prob.
# Objectness * class prob equals the score for the YOLOv5 layout.
CANDIDATES = [
    ((100, 100, 40, 40), 0, 0.9, 1.0, 0.9),  # A
    ((102, 101, 40, 42), 0, 0.8, 0.8, 1.0),  # A': overlaps A, same class -> suppressed
    ((101, 100, 40, 40), 1, 0.7, 0.875, 0.8),  # B: overlaps A, other class
    ((250, 200, 60, 30), 2, 0.6, 0.75, 0.8),  # C
    ((50, 250, 20, 20), 0, 0.3, 0.5, 0.6),  # D: under the threshold
]
LOW_OBJECTNESS = ((160, 40, 30, 30), 2, 0.099, 0.1, 0.99)  # E: confident class, no object
N_CANDIDATES = 64
NC = 3
# Worked out by hand: corners of A, B, C in input pixels (identity transform).
A_XYXY, B_XYXY, C_XYXY = (80, 80, 120, 120), (81, 80, 121, 120), (220, 185, 280, 215)


def ultralytics_rows(normalized: bool) -> np.ndarray:
    """(N, 4 + nc) rows: box then one score per class."""
    rows = np.zeros((N_CANDIDATES, 4 + NC), np.float32)
    for i, (box, cls, score, _, _) in enumerate(CANDIDATES):
        rows[i, :4] = np.array(box, np.float32) / (INPUT if normalized else 1)
        rows[i, 4 + cls] = score
        rows[i, 4 + (cls + 1) % NC] = score / 3  # a weaker second class
    return rows


def yolov5_rows() -> np.ndarray:
    """(N, 5 + nc) rows: box, objectness, class probabilities."""
    rows = np.zeros((N_CANDIDATES, 5 + NC), np.float32)
    for i, (box, cls, _, objectness, prob) in enumerate([*CANDIDATES, LOW_OBJECTNESS]):
        rows[i, :4] = box
        rows[i, 4] = objectness
        rows[i, 5 + cls] = prob
    return rows


def yolo_params(**options: object) -> DecodeParams:
    labels = ("car", "truck", "bus")
    return DecodeParams(labels=labels, score_threshold=0.5, iou_threshold=0.5, options=options)


def summary(found: list) -> list[tuple[str, float, tuple[float, ...]]]:
    return [(d.label, round(d.score, 3), tuple(round(v, 1) for v in d.box_xyxy)) for d in found]


EXPECTED_CLASSWISE = [("car", 0.9, A_XYXY), ("truck", 0.7, B_XYXY), ("bus", 0.6, C_XYXY)]


@pytest.mark.parametrize(
    ("tensor", "options"),
    [
        (ultralytics_rows(normalized=False).T[None], {}),
        (ultralytics_rows(normalized=True).T[None], {}),
        (ultralytics_rows(normalized=True)[None], {}),
        (ultralytics_rows(normalized=False)[None], {"objectness": False, "normalized": False}),
        (yolov5_rows()[None], {}),
        (yolov5_rows()[None], {"objectness": True, "layout": "channels_last"}),
    ],
    ids=["v8-pixels", "v8-normalized", "v8-transposed", "v8-transposed-explicit", "v5", "v5-explicit"],
)
def test_yolo_layouts_decode_to_the_same_boxes(tensor: np.ndarray, options: dict[str, object]) -> None:
    out_spec = spec("output0", tensor.shape)

    found = yolo.decode([tensor], [out_spec], identity((INPUT, INPUT)), yolo_params(**options))

    assert summary(found) == EXPECTED_CLASSWISE


def test_yolo_agnostic_nms_lets_one_box_win_across_classes() -> None:
    tensor = ultralytics_rows(normalized=True).T[None]
    params = yolo_params(agnostic=True)
    found = yolo.decode([tensor], [spec("o", tensor.shape)], identity((INPUT, INPUT)), params)
    assert summary(found) == [("car", 0.9, A_XYXY), ("bus", 0.6, C_XYXY)]


def test_yolo_int8_output_is_dequantized() -> None:
    real = ultralytics_rows(normalized=True).T[None]
    scale, zero_point = 1 / 255, -128
    quantized = np.clip(np.round(real / scale) + zero_point, -128, 127).astype(np.int8)
    out_spec = spec("o", quantized.shape, np.dtype(np.int8), scale, zero_point)

    found = yolo.decode([quantized], [out_spec], identity((INPUT, INPUT)), yolo_params())

    assert [d.label for d in found] == ["car", "truck", "bus"]
    assert [d.score for d in found] == pytest.approx([0.9, 0.7, 0.6], abs=1 / 255)
    for d, box in zip(found, (A_XYXY, B_XYXY, C_XYXY)):
        assert d.box_xyxy == pytest.approx(box, abs=INPUT / 255)


def test_yolo_boxes_map_back_through_a_letterbox() -> None:
    tensor = ultralytics_rows(normalized=False).T[None]

    found = yolo.decode([tensor], [spec("o", tensor.shape)], letterbox_640x480_into_320(), yolo_params())

    # input (80, 80)-(120, 120) -> frame ((80 - 0) / 0.5, (80 - 40) / 0.5) ... = (160, 80)-(240, 160)
    assert summary(found)[0] == ("car", 0.9, (160.0, 80.0, 240.0, 160.0))
    assert found[0].box_xyxy_norm == pytest.approx((0.25, 80 / 480, 0.375, 160 / 480))


def test_yolo_class_filter_and_max_detections() -> None:
    tensor = ultralytics_rows(normalized=False).T[None]
    out_spec = spec("o", tensor.shape)

    only_trucks = replace(yolo_params(), class_filter=frozenset({"truck"}))
    only_one = replace(yolo_params(), max_detections=1)

    trucks = yolo.decode([tensor], [out_spec], identity((INPUT, INPUT)), only_trucks)
    best = yolo.decode([tensor], [out_spec], identity((INPUT, INPUT)), only_one)

    assert summary(trucks) == [("truck", 0.7, B_XYXY)]
    assert summary(best) == [("car", 0.9, A_XYXY)]


def test_yolo_without_candidates_over_the_threshold_finds_nothing() -> None:
    tensor = np.zeros((1, 4 + NC, N_CANDIDATES), np.float32)
    assert yolo.decode([tensor], [spec("o", tensor.shape)], identity((INPUT, INPUT)), yolo_params()) == []


def test_yolo_prepare_settles_layout_and_objectness_from_the_labels() -> None:
    model_file = read_model_file(MOBILENET)
    v8 = yolo.prepare([spec("o", (1, N_CANDIDATES, 4 + NC))], yolo_params(), model_file)
    v5 = yolo.prepare([spec("o", (1, N_CANDIDATES, 5 + NC))], yolo_params(), model_file)

    assert (v8.options["layout"], v8.options["objectness"]) == ("channels_last", False)
    assert (v5.options["layout"], v5.options["objectness"]) == ("channels_last", True)


def test_yolo_channels_last_without_labels_asks_about_objectness() -> None:
    with pytest.raises(ConfigError, match=r"Set decoder_options\.objectness = true"):
        yolo.prepare([spec("o", (1, 100, 9))], DecodeParams(), read_model_file(MOBILENET))


@pytest.mark.parametrize(
    ("shapes", "options", "error"),
    [
        ([(1, 7, 64), (1, 7, 64)], {}, ModelFormatError),
        ([(1, 7 * 64)], {}, ModelFormatError),
        ([(1, 7, 64)], {"layout": "nchw"}, ConfigError),
        ([(1, 7, 64)], {"agnostic": "yes"}, ConfigError),
        ([(1, 7, 64)], {"max_candidates": 0}, ConfigError),
        ([(1, 64, 5)], {"objectness": True}, ModelFormatError),
    ],
)
def test_yolo_prepare_refuses_bad_outputs_and_options(
    shapes: list[tuple[int, ...]], options: dict[str, object], error: type[Exception]
) -> None:
    specs = [spec(f"o{i}", shape) for i, shape in enumerate(shapes)]
    with pytest.raises(error):
        yolo.prepare(specs, yolo_params(**options), read_model_file(MOBILENET))
