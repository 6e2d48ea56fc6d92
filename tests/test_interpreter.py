"""The interpreter wrapper on the reference models, with each installed backend."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from robovision.errors import ConfigError
from robovision.interpreter import BACKENDS, Interpreter, backend_status, open_interpreter

pytestmark = pytest.mark.backend

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "models" / "reference"
MOBILENET_U8 = REFERENCE / "mobilenet_v1_0.25_128_quant.tflite"
MOBILENET_I8 = REFERENCE / "mobilenet_v1_0.25_128_quant_int8.tflite"
SSD = REFERENCE / "ssd_mobilenet_v1_1_metadata_1.tflite"
CAT = ROOT / "data" / "reference" / "cat.bmp"
HOPPER = ROOT / "data" / "reference" / "grace_hopper.bmp"
CAR_PHOTO = ROOT / "data" / "toycars" / "images" / "cf5f6825-IMG_0447.jpg"


def usable_backends() -> list[str]:
    return [name for name, status in backend_status().items() if status.startswith("ok")]


def require_backend(name: str) -> None:
    status = backend_status()[name]
    if not status.startswith("ok"):
        pytest.skip(f"backend {name} cannot run in this environment: {status}")


def rgb_input(path: Path, size_wh: tuple[int, int]) -> np.ndarray:
    """The photo stretched to ``size_wh``, RGB uint8, shape (1, h, w, 3)."""
    image_bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image_bgr is not None, path
    resized = cv2.resize(image_bgr, size_wh, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(resized[:, :, ::-1])[None]


def as_int8(tensor_u8: np.ndarray) -> np.ndarray:
    """uint8 pixels for a model whose int8 input has zero point -1 and scale 2/255 (real -1..1)."""
    return (tensor_u8.astype(np.int16) - 128).astype(np.int8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_specs_describe_the_uint8_classifier(backend: str) -> None:
    require_backend(backend)
    interpreter = open_interpreter(MOBILENET_U8, backend=backend)

    (spec_in,) = interpreter.inputs
    (spec_out,) = interpreter.outputs
    assert spec_in.shape == (1, 128, 128, 3)
    assert spec_in.dtype == np.uint8
    assert spec_in.scale == pytest.approx(1 / 128)
    assert spec_in.zero_point == 128
    assert spec_out.name == "MobilenetV1/Predictions/Reshape_1"
    assert spec_out.shape == (1, 1001)
    assert spec_out.scale == pytest.approx(1 / 256)
    assert interpreter.backend_name == backend
    assert interpreter.backend_version[0].isdigit()


def test_ssd_outputs_are_the_four_postprocess_tensors() -> None:
    interpreter = open_interpreter(SSD)

    assert [spec.name for spec in interpreter.outputs] == [
        "TFLite_Detection_PostProcess",
        "TFLite_Detection_PostProcess:1",
        "TFLite_Detection_PostProcess:2",
        "TFLite_Detection_PostProcess:3",
    ]
    assert [spec.shape for spec in interpreter.outputs] == [(1, 10, 4), (1, 10), (1, 10), (1,)]
    assert interpreter.inputs[0].shape == (1, 300, 300, 3)


def test_auto_prefers_litert_when_it_is_installed() -> None:
    if "litert" not in usable_backends():
        pytest.skip(f"ai-edge-litert not usable here: {backend_status()['litert']}")
    assert open_interpreter(MOBILENET_U8).backend_name == "litert"


def test_run_returns_copies_that_later_runs_do_not_touch() -> None:
    interpreter = open_interpreter(MOBILENET_U8)
    (cat_scores,) = interpreter.run(rgb_input(CAT, (128, 128)))
    kept = cat_scores.copy()

    (hopper_scores,) = interpreter.run(rgb_input(HOPPER, (128, 128)))

    np.testing.assert_array_equal(cat_scores, kept)
    assert int(np.argmax(cat_scores)) != int(np.argmax(hopper_scores))
    interpreter_memory = interpreter._raw.tensor(interpreter.outputs[0].index)()
    assert not np.shares_memory(hopper_scores, interpreter_memory)


def test_split_steps_give_what_run_gives() -> None:
    interpreter = open_interpreter(SSD, num_threads=1)
    tensor = rgb_input(CAR_PHOTO, (300, 300))

    interpreter.set_input(tensor)
    interpreter.invoke()
    split = interpreter.get_outputs()
    whole = interpreter.run(tensor)

    assert interpreter.num_threads == 1
    for a, b in zip(split, whole):
        np.testing.assert_array_equal(a, b)


def test_input_of_the_wrong_shape_or_dtype_is_refused() -> None:
    interpreter = open_interpreter(MOBILENET_U8)
    with pytest.raises(ValueError, match=r"expects \(1, 128, 128, 3\) uint8, got \(1, 64, 64, 3\) uint8"):
        interpreter.run(np.zeros((1, 64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="float32"):
        interpreter.run(np.zeros((1, 128, 128, 3), np.float32))
    with pytest.raises(ValueError, match="takes 1 input"):
        interpreter.run()


@pytest.mark.parametrize(("backend", "threads"), [("nope", None), ("auto", 0)])
def test_bad_arguments_raise_config_error(backend: str, threads: int | None) -> None:
    with pytest.raises(ConfigError):
        open_interpreter(MOBILENET_U8, backend=backend, num_threads=threads)


def test_two_threads_running_at_once_each_get_their_own_answer() -> None:
    interpreter = open_interpreter(SSD)
    inputs = {"car": rgb_input(CAR_PHOTO, (300, 300)), "hopper": rgb_input(HOPPER, (300, 300))}
    expected = {name: interpreter.run(tensor) for name, tensor in inputs.items()}
    assert not np.array_equal(expected["car"][2], expected["hopper"][2])
    results: dict[str, list[list[np.ndarray]]] = {name: [] for name in inputs}
    errors: list[BaseException] = []
    start = threading.Barrier(len(inputs))

    def worker(name: str) -> None:
        try:
            start.wait(timeout=10)
            for _ in range(15):
                results[name].append(interpreter.run(inputs[name]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(name,)) for name in inputs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors
    for name, runs in results.items():
        assert len(runs) == 15
        for outputs in runs:
            for got, want in zip(outputs, expected[name]):
                np.testing.assert_array_equal(got, want)


def _outputs_by_backend(model: Path, tensor: np.ndarray, xnnpack: bool) -> dict[str, list[np.ndarray]]:
    for name in BACKENDS:
        require_backend(name)
    return {
        name: open_interpreter(model, backend=name, num_threads=1, xnnpack=xnnpack).run(tensor)
        for name in BACKENDS
    }


def _ssd_outputs_agree(by_backend: dict[str, list[np.ndarray]], score_atol: float) -> None:
    boxes_a, classes_a, scores_a, count_a = by_backend["litert"]
    boxes_b, classes_b, scores_b, count_b = by_backend["tflite-runtime"]
    assert count_a[0] == count_b[0] > 0
    strong = scores_a[0] >= 0.3
    assert strong.sum() >= 1
    np.testing.assert_array_equal(classes_a[0][strong], classes_b[0][strong])
    np.testing.assert_allclose(scores_a[0][strong], scores_b[0][strong], atol=score_atol)
    np.testing.assert_allclose(boxes_a[0][strong], boxes_b[0][strong], atol=0.01)


# With the builtin kernels on both sides the two runtimes compute the same integers: outputs
# within one quantization step (measured: identical).


def test_builtin_kernels_agree_on_the_uint8_classifier_within_one_step() -> None:
    by_backend = _outputs_by_backend(MOBILENET_U8, rgb_input(CAT, (128, 128)), xnnpack=False)

    litert, tflite = (by_backend[name][0].astype(np.int32) for name in BACKENDS)
    assert int(np.argmax(litert)) == int(np.argmax(tflite))
    assert int(np.abs(litert - tflite).max()) <= 1


def test_builtin_kernels_agree_on_the_int8_classifier_within_one_step() -> None:
    by_backend = _outputs_by_backend(MOBILENET_I8, as_int8(rgb_input(CAT, (128, 128))), xnnpack=False)

    litert, tflite = (by_backend[name][0] for name in BACKENDS)
    assert int(np.argmax(litert)) == int(np.argmax(tflite))
    np.testing.assert_allclose(litert, tflite, atol=1 / 256 + 1e-6)


def test_builtin_kernels_agree_on_ssd_detections_within_one_step() -> None:
    tensor = rgb_input(CAR_PHOTO, (300, 300))
    _ssd_outputs_agree(_outputs_by_backend(SSD, tensor, xnnpack=False), score_atol=1 / 256 + 1e-6)


# With the default delegates ai-edge-litert runs uint8/int8 models on XNNPACK, which rounds
# differently: same answers, scores a few steps apart (measured: up to 7/256 on the classifier
# output, 2/256 on SSD scores).


def test_default_kernels_give_the_same_answers_on_both_backends() -> None:
    cat = rgb_input(CAT, (128, 128))
    by_backend = _outputs_by_backend(MOBILENET_U8, cat, xnnpack=True)
    litert, tflite = (by_backend[name][0].astype(np.int32) for name in BACKENDS)
    assert int(np.argmax(litert)) == int(np.argmax(tflite))
    assert int(np.abs(litert - tflite).max()) <= 10

    _ssd_outputs_agree(_outputs_by_backend(SSD, rgb_input(CAR_PHOTO, (300, 300)), xnnpack=True), 4 / 256)


def test_op_details_list_the_postprocess_op_after_delegation() -> None:
    interpreter = open_interpreter(SSD)
    names = [op["op_name"] for op in interpreter.op_details()]
    assert names.count("TFLite_Detection_PostProcess") == 1
    assert "DELEGATE" in names  # the convolutions, taken over by XNNPACK
    assert isinstance(interpreter, Interpreter)
