"""The reference models end to end (card, preprocessor, interpreter, decoder) on real photographs."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from robovision.boxes import iou_xyxy
from robovision.detection import FrameResult
from robovision.frame import Frame, PixelLayout
from robovision.interpreter import BACKENDS, backend_status
from robovision.model import Model

pytestmark = pytest.mark.backend

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "models" / "reference"
SSD = REFERENCE / "ssd_mobilenet_v1_1_metadata_1.tflite"
MOBILENET_U8 = REFERENCE / "mobilenet_v1_0.25_128_quant.tflite"
MOBILENET_I8 = REFERENCE / "mobilenet_v1_0.25_128_quant_int8.tflite"
CAT = ROOT / "data" / "reference" / "cat.bmp"
HOPPER = ROOT / "data" / "reference" / "grace_hopper.bmp"
TOYCARS = ROOT / "data" / "toycars"
CAR_PHOTO = TOYCARS / "images" / "cf5f6825-IMG_0447.jpg"
"""A photograph where the COCO SSD finds the toy car at the card's own threshold (score 0.75)."""
CAT_CLASSES = {"tabby, tabby cat", "tiger cat", "Egyptian cat"}


def read_bgr(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"cannot read {path}"
    return image


def label_boxes_xyxy(image_path: Path, size_wh: tuple[int, int]) -> np.ndarray:
    """The photograph's labelled boxes (YOLO text: class cx cy w h, normalized) in pixels, (n, 4)."""
    label_path = TOYCARS / "labels" / f"{image_path.stem}.txt"
    rows = [line.split() for line in label_path.read_text().splitlines() if line.strip()]
    width, height = size_wh
    boxes = []
    for _, cx, cy, w, h in rows:
        cx_px, cy_px, w_px, h_px = float(cx) * width, float(cy) * height, float(w) * width, float(h) * height
        boxes.append([cx_px - w_px / 2, cy_px - h_px / 2, cx_px + w_px / 2, cy_px + h_px / 2])
    return np.asarray(boxes, dtype=np.float32)


def best_car_iou(result: FrameResult, truth_xyxy: np.ndarray) -> float:
    cars = [np.asarray(d.box_xyxy) for d in result.detections if d.label == "car"]
    return max((float(iou_xyxy(box, truth_xyxy).max()) for box in cars), default=0.0)


def test_ssd_card_maps_class_2_to_car_on_a_toy_car_photo() -> None:
    model = Model.load(SSD)
    image = read_bgr(CAR_PHOTO)

    result = model.detect_image(image, PixelLayout.BGR)

    cars = [d for d in result.detections if d.label == "car"]
    assert cars, [(d.label, round(d.score, 2)) for d in result.detections]
    assert {d.class_id for d in cars} == {2}
    assert all(d.score >= 0.5 for d in result.detections)  # the card's threshold
    truth = label_boxes_xyxy(CAR_PHOTO, (image.shape[1], image.shape[0]))
    assert best_car_iou(result, truth) >= 0.5


def test_ssd_finds_toy_cars_on_a_share_of_all_photographs() -> None:
    """The COCO SSD is a weak toy-car detector; measured 18 of 90 photographs at score >= 0.3."""
    model = Model.load(SSD, score_threshold=0.3)
    photos = sorted((TOYCARS / "images").glob("*.jpg"))
    assert len(photos) >= 80

    found = 0
    for photo in photos:
        image = read_bgr(photo)
        result = model.detect_image(image, PixelLayout.BGR)
        found += best_car_iou(result, label_boxes_xyxy(photo, (image.shape[1], image.shape[0]))) >= 0.5

    assert found >= 0.15 * len(photos), f"car found with IoU >= 0.5 on {found} of {len(photos)}"


def test_ssd_boxes_land_in_frame_pixels_for_any_frame_layout() -> None:
    model = Model.load(SSD)
    image_bgr = read_bgr(CAR_PHOTO)
    frame_rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])

    from_bgr = model.detect_image(image_bgr, PixelLayout.BGR)
    from_rgb = model.detect(Frame(frame_rgb, PixelLayout.RGB, 7, 0.0, 0.0, "file:car"))

    assert [d.label for d in from_bgr.detections] == [d.label for d in from_rgb.detections]
    height, width = image_bgr.shape[:2]
    for a, b in zip(from_bgr.detections, from_rgb.detections):
        np.testing.assert_allclose(a.box_xyxy, b.box_xyxy, atol=1.0)
        x0, y0, x1, y1 = a.box_xyxy
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        np.testing.assert_allclose(a.box_xyxy_norm, (x0 / width, y0 / height, x1 / width, y1 / height))


def test_uint8_and_int8_classifiers_agree_that_it_is_a_cat() -> None:
    image = read_bgr(CAT)

    top = {}
    for path in (MOBILENET_U8, MOBILENET_I8):
        result = Model.load(path).detect_image(image, PixelLayout.BGR)
        top[path.stem] = result.detections[0]

    u8, i8 = top[MOBILENET_U8.stem], top[MOBILENET_I8.stem]
    assert u8.label == i8.label
    assert u8.class_id == i8.class_id
    assert u8.label in CAT_CLASSES
    assert u8.box_xyxy == (0.0, 0.0, float(image.shape[1]), float(image.shape[0]))


def test_classifier_reports_top_k_best_first_with_stage_times() -> None:
    model = Model.load(MOBILENET_U8, score_threshold=0.0)

    result = model.detect_image(read_bgr(CAT), PixelLayout.BGR)

    scores = [d.score for d in result.detections]
    assert len(scores) == 5  # the card's top_k
    assert scores == sorted(scores, reverse=True)
    assert sum(d.label in CAT_CLASSES for d in result.detections) >= 2
    assert result.preprocess_ms > 0 and result.inference_ms > 0 and result.decode_ms > 0


def test_two_threads_sharing_a_model_each_get_their_own_result() -> None:
    model = Model.load(SSD, score_threshold=0.2)
    images = {"car": read_bgr(CAR_PHOTO), "hopper": read_bgr(HOPPER)}
    expected = {name: model.detect_image(image, PixelLayout.BGR).detections for name, image in images.items()}
    assert expected["car"] != expected["hopper"]
    got: dict[str, list[tuple[object, ...]]] = {name: [] for name in images}
    errors: list[BaseException] = []
    start = threading.Barrier(len(images))

    def worker(name: str) -> None:
        try:
            start.wait(timeout=10)
            for _ in range(12):
                got[name].append(model.detect_image(images[name], PixelLayout.BGR).detections)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(name,)) for name in images]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    for name, results in got.items():
        assert len(results) == 12
        assert all(detections == expected[name] for detections in results)


def _require_both_backends() -> None:
    for name, status in backend_status().items():
        if not status.startswith("ok"):
            pytest.skip(f"backend {name} cannot run in this environment: {status}")


def test_both_backends_give_the_same_detections() -> None:
    _require_both_backends()
    image = read_bgr(CAR_PHOTO)

    models = [Model.load(SSD, backend=name, xnnpack=False, score_threshold=0.3) for name in BACKENDS]

    a, b = (model.detect_image(image, PixelLayout.BGR).detections for model in models)
    assert len(a) == len(b) >= 1
    for da, db in zip(a, b):
        assert (da.label, da.class_id) == (db.label, db.class_id)
        assert abs(da.score - db.score) <= 1 / 256 + 1e-6  # one step of the uint8 score tensor
        np.testing.assert_allclose(da.box_xyxy, db.box_xyxy, atol=1.0)


def test_both_backends_give_the_same_class_for_the_cat() -> None:
    _require_both_backends()
    image = read_bgr(CAT)

    for path in (MOBILENET_U8, MOBILENET_I8):
        models = [Model.load(path, backend=name) for name in BACKENDS]
        tops = [model.detect_image(image, PixelLayout.BGR).detections[0] for model in models]
        assert tops[0].label == tops[1].label
        assert tops[0].label in CAT_CLASSES
