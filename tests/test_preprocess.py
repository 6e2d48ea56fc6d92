from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from robovision.errors import ConfigError
from robovision.frame import PixelLayout
from robovision.preprocess import Preprocessor, ResizeMode, place, to_bgr
from robovision.tensor_spec import TensorSpec

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "data" / "toycars" / "images" / "03699cb1-IMG_0489.jpg"
MODELS = ROOT / "models" / "reference"

SPEC_U8_300 = TensorSpec(0, "image", (1, 300, 300, 3), np.dtype(np.uint8), 1 / 128, 128)
SPEC_I8_128 = TensorSpec(0, "input", (1, 128, 128, 3), np.dtype(np.int8), 1 / 127.5, -1)
SPEC_F32_224 = TensorSpec(0, "input", (1, 224, 224, 3), np.dtype(np.float32))


def photo_bgr(size_wh: tuple[int, int] = (704, 528)) -> np.ndarray:
    image = cv2.imread(str(PHOTO))
    assert image is not None
    return cv2.resize(image, size_wh, interpolation=cv2.INTER_AREA)


def padded(image: np.ndarray, stride_px: int) -> np.ndarray:
    """The same pixels as a view into a wider buffer whose extra columns hold noise."""
    rng = np.random.default_rng(7)
    shape = (image.shape[0], stride_px, *image.shape[2:])
    buffer = rng.integers(0, 256, size=shape, dtype=np.uint8)
    buffer[:, : image.shape[1]] = image
    view = buffer[:, : image.shape[1]]
    assert not view.flags.c_contiguous
    return view


def as_i420(frame_bgr: np.ndarray) -> np.ndarray:
    """Full-range BT.601 I420, (h * 3 / 2, w), as a sYCC camera stream delivers it."""
    h, w = frame_bgr.shape[:2]
    ycrcb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YCrCb)
    u = cv2.resize(ycrcb[:, :, 2], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    v = cv2.resize(ycrcb[:, :, 1], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return np.concatenate([ycrcb[:, :, 0].ravel(), u.ravel(), v.ravel()]).reshape(h * 3 // 2, w)


def in_layout(frame_bgr: np.ndarray, layout: PixelLayout) -> np.ndarray:
    conversions = {
        PixelLayout.BGR: lambda f: f.copy(),
        PixelLayout.RGB: lambda f: cv2.cvtColor(f, cv2.COLOR_BGR2RGB),
        PixelLayout.XRGB8888: lambda f: cv2.cvtColor(f, cv2.COLOR_BGR2BGRA),  # B, G, R, X
        PixelLayout.XBGR8888: lambda f: cv2.cvtColor(f, cv2.COLOR_BGR2RGBA),  # R, G, B, X
        PixelLayout.GRAY: lambda f: cv2.cvtColor(f, cv2.COLOR_BGR2GRAY),
        PixelLayout.YUV420: as_i420,
    }
    return conversions[layout](frame_bgr)


def run(pre: Preprocessor, image: np.ndarray, layout: PixelLayout) -> np.ndarray:
    tensor, _ = pre(image, layout)
    return tensor.copy()


# --------------------------------------------------------------------------- layouts


VARIANTS = [
    ("rgb", PixelLayout.RGB, None),
    ("xrgb8888", PixelLayout.XRGB8888, None),
    ("xbgr8888", PixelLayout.XBGR8888, None),
    ("bgr padded 704 to 768", PixelLayout.BGR, 768),
    ("rgb padded 704 to 768", PixelLayout.RGB, 768),
    ("xrgb8888 padded 704 to 768", PixelLayout.XRGB8888, 768),
    ("xbgr8888 padded 704 to 768", PixelLayout.XBGR8888, 768),
]


@pytest.mark.parametrize("resize", list(ResizeMode))
@pytest.mark.parametrize("channel_order", ["rgb", "bgr"])
@pytest.mark.parametrize(("name", "layout", "stride_px"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_every_packed_layout_gives_byte_identical_model_input(
    name: str, layout: PixelLayout, stride_px: int | None, resize: ResizeMode, channel_order: str
) -> None:
    frame_bgr = photo_bgr()
    pre = Preprocessor(SPEC_U8_300, resize=resize, channel_order=channel_order)
    reference = run(pre, frame_bgr, PixelLayout.BGR)

    image = in_layout(frame_bgr, layout)
    if stride_px is not None:
        image = padded(image, stride_px)
    assert np.array_equal(run(pre, image, layout), reference)


def test_reference_tensor_is_the_photo_resized_in_model_channel_order() -> None:
    frame_bgr = photo_bgr()
    pre = Preprocessor(SPEC_U8_300, channel_order="rgb")
    expected = cv2.cvtColor(
        cv2.resize(frame_bgr, (300, 300), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB
    )
    tensor, transform = pre(frame_bgr, PixelLayout.BGR)
    assert tensor.shape == (1, 300, 300, 3) and tensor.dtype == np.uint8
    assert np.array_equal(tensor[0], expected)
    assert transform.frame_wh == (704, 528)


@pytest.mark.parametrize(
    ("view", "layout"),
    [
        pytest.param(lambda a: a[:, :, ::-1], PixelLayout.RGB, id="reversed channel stride"),
        pytest.param(lambda a: a[::-1][::-1], PixelLayout.BGR, id="double flip view"),
        pytest.param(np.asfortranarray, PixelLayout.BGR, id="fortran order"),
        pytest.param(lambda a: np.repeat(a, 2, axis=1)[:, ::2], PixelLayout.BGR, id="every other column"),
    ],
)
def test_non_contiguous_views_give_the_same_input(view, layout: PixelLayout) -> None:  # type: ignore[no-untyped-def]
    frame_bgr = photo_bgr()
    pre = Preprocessor(SPEC_U8_300, resize=ResizeMode.LETTERBOX)
    reference = run(pre, frame_bgr, PixelLayout.BGR)
    image = view(frame_bgr)
    assert not image.flags.c_contiguous or image.base is not None
    assert np.array_equal(run(pre, image, layout), reference)


@pytest.mark.parametrize("resize", list(ResizeMode))
@pytest.mark.parametrize("stride_px", [None, 768], ids=["compact", "rows padded to 768"])
def test_yuv420_input_is_close_to_bgr_input(resize: ResizeMode, stride_px: int | None) -> None:
    """YUV420 carries colour at half resolution and goes through two 8-bit conversions.

    So it cannot be byte-equal: colour edges blur over 2 px and values round by +-1.
    On a photograph the mean absolute difference stays under 1 level and 99 % of values
    within 6 levels; only a few pixels on sharp colour edges differ more.
    """
    frame_bgr = photo_bgr()
    pre = Preprocessor(SPEC_U8_300, resize=resize)
    reference = run(pre, frame_bgr, PixelLayout.BGR).astype(np.int16)
    i420 = as_i420(frame_bgr)
    image = i420 if stride_px is None else padded(i420, stride_px)
    diff = np.abs(run(pre, image, PixelLayout.YUV420).astype(np.int16) - reference)
    assert diff.mean() < 1.0
    assert np.percentile(diff, 99) <= 6
    # and a padded view reads exactly like the compact array
    assert np.array_equal(run(pre, padded(i420, 768), PixelLayout.YUV420), run(pre, i420, PixelLayout.YUV420))


def test_gray_input_fills_all_three_channels_with_the_gray_image() -> None:
    gray = cv2.cvtColor(photo_bgr(), cv2.COLOR_BGR2GRAY)
    pre = Preprocessor(SPEC_U8_300)
    tensor = run(pre, gray, PixelLayout.GRAY)[0]
    expected = cv2.resize(gray, (300, 300), interpolation=cv2.INTER_LINEAR)
    for channel in range(3):
        assert np.array_equal(tensor[:, :, channel], expected)


@pytest.mark.parametrize("layout", list(PixelLayout))
def test_caller_array_is_never_written(layout: PixelLayout) -> None:
    image = in_layout(photo_bgr(), layout)
    before = image.copy()
    image.setflags(write=False)
    for resize in ResizeMode:
        Preprocessor(SPEC_I8_128, resize=resize, pad_value=114)(image, layout)
    assert np.array_equal(image, before)


def test_output_buffer_is_reused_between_calls() -> None:
    pre = Preprocessor(SPEC_I8_128, resize=ResizeMode.LETTERBOX)
    first, _ = pre(photo_bgr(), PixelLayout.BGR)
    second, _ = pre(photo_bgr((640, 480)), PixelLayout.BGR)
    assert first is second
    assert second.shape == (1, 128, 128, 3) and second.dtype == np.int8


# --------------------------------------------------------------------------- geometry


@pytest.mark.parametrize(
    ("frame_wh", "input_wh", "mode", "scale_xy", "offset_xy"),
    [
        ((640, 480), (300, 300), ResizeMode.STRETCH, (300 / 640, 300 / 480), (0.0, 0.0)),
        ((640, 480), (300, 300), ResizeMode.LETTERBOX, (225 / 480, 225 / 480), (0.0, 37.0)),
        ((480, 640), (300, 300), ResizeMode.LETTERBOX, (225 / 480, 225 / 480), (37.0, 0.0)),
        ((640, 480), (300, 300), ResizeMode.CROP, (300 / 480, 300 / 480), (-80 * 300 / 480, 0.0)),
        ((1280, 720), (320, 320), ResizeMode.CROP, (320 / 720, 320 / 720), (-280 * 320 / 720, 0.0)),
        ((1280, 720), (320, 320), ResizeMode.LETTERBOX, (0.25, 0.25), (0.0, 70.0)),
    ],
)
def test_placement_table(frame_wh, input_wh, mode, scale_xy, offset_xy) -> None:  # type: ignore[no-untyped-def]
    transform = place(frame_wh, input_wh, mode).transform
    assert transform.scale_xy == pytest.approx(scale_xy)
    assert transform.offset_xy == pytest.approx(offset_xy)


def find_box_xyxy(image: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """Bounding box (x0, y0, x1, y1), edges in pixels, of pixels close to ``colour``."""
    close = np.all(np.abs(image.astype(np.int16) - np.array(colour, np.int16)) < 40, axis=2)
    ys, xs = np.nonzero(close)
    assert xs.size > 0, "rectangle not found in the model input"
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


@pytest.mark.parametrize("layout", [PixelLayout.BGR, PixelLayout.XRGB8888, PixelLayout.YUV420])
@pytest.mark.parametrize(
    ("frame_wh", "input_wh", "mode", "box_xyxy"),
    [
        ((640, 480), (300, 300), ResizeMode.LETTERBOX, (203, 151, 421, 329)),
        ((480, 640), (300, 300), ResizeMode.LETTERBOX, (40, 300, 300, 600)),
        ((1280, 720), (640, 640), ResizeMode.LETTERBOX, (900, 100, 1270, 500)),
        ((640, 480), (320, 240), ResizeMode.LETTERBOX, (17, 5, 101, 77)),
        ((640, 480), (300, 300), ResizeMode.CROP, (203, 151, 421, 329)),
        ((1280, 720), (640, 640), ResizeMode.CROP, (400, 20, 800, 700)),
        ((640, 480), (300, 300), ResizeMode.STRETCH, (10, 300, 300, 470)),
        ((640, 480), (300, 300), ResizeMode.STRETCH, (0, 0, 77, 480)),
    ],
)
def test_box_found_in_model_input_maps_back_to_frame_within_2_px(
    frame_wh: tuple[int, int],
    input_wh: tuple[int, int],
    mode: ResizeMode,
    box_xyxy: tuple[int, int, int, int],
    layout: PixelLayout,
) -> None:
    """The box is located in whole input pixels, so 2 frame pixels is as tight as it gets
    while one input pixel covers about two frame pixels (640x480 into 300x300, the usual case).
    """
    frame_bgr = photo_bgr(frame_wh) // 3  # a dim photograph as background
    x0, y0, x1, y1 = box_xyxy
    colour_bgr = (40, 240, 250)
    frame_bgr[y0:y1, x0:x1] = colour_bgr
    spec = TensorSpec(0, "image", (1, input_wh[1], input_wh[0], 3), np.dtype(np.uint8), 1 / 128, 128)
    pre = Preprocessor(spec, resize=mode, channel_order="bgr")
    tensor, transform = pre(in_layout(frame_bgr, layout), layout)

    found_input = find_box_xyxy(tensor[0], colour_bgr)
    found_frame = transform.input_to_frame_xyxy(found_input)[0]
    assert np.abs(found_frame - np.array(box_xyxy, np.float32)).max() <= 2.0
    # and the forward map predicts where the box lands in the input
    predicted = transform.frame_to_input_xyxy(np.array(box_xyxy, np.float32))[0]
    assert np.abs(predicted - found_input).max() <= 1.5


def test_letterbox_pads_with_pad_value_in_pixel_units() -> None:
    spec = TensorSpec(0, "input", (1, 100, 100, 3), np.dtype(np.float32))
    pre = Preprocessor(spec, resize=ResizeMode.LETTERBOX, mean=127.5, std=127.5, pad_value=114)
    tensor, transform = pre(photo_bgr((200, 100)), PixelLayout.BGR)
    assert transform.offset_xy == (0.0, 25.0)
    assert np.all(tensor[0, :25] == np.float32((114 - 127.5) / 127.5))
    assert np.all(tensor[0, 75:] == np.float32((114 - 127.5) / 127.5))
    assert not np.all(tensor[0, 25:75] == tensor[0, 0, 0])


# --------------------------------------------------------------------------- values


def ramp_image() -> np.ndarray:
    """A 16 x 16 BGR image holding every byte value once per channel (channels shifted)."""
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    return np.dstack([values, np.roll(values, 85), np.roll(values, 170)])


def ramp_spec(dtype: type, scale: float = 0.0, zero_point: int = 0) -> TensorSpec:
    return TensorSpec(0, "input", (1, 16, 16, 3), np.dtype(dtype), scale, zero_point)


def test_int8_pass_through_shifts_pixels_by_128() -> None:
    image = ramp_image()
    tensor, _ = Preprocessor(ramp_spec(np.int8, 1 / 127.5, -1), channel_order="bgr")(image, PixelLayout.BGR)
    assert np.array_equal(tensor[0].astype(np.int16), image.astype(np.int16) - 128)


@pytest.mark.parametrize(
    ("scale", "zero_point", "trained_on"),
    [
        pytest.param(1 / 127.5, -1, lambda p: p / 127.5 - 1.0, id="int8 mobilenet, [-1, 1]"),
        pytest.param(1 / 255, -128, lambda p: p / 255.0, id="int8, [0, 1]"),
        pytest.param(1.0, -128, lambda p: p, id="int8, [0, 255]"),
    ],
)
def test_int8_pass_through_represents_the_training_range_within_half_a_step(
    scale: float, zero_point: int, trained_on
) -> None:  # type: ignore[no-untyped-def]
    spec = ramp_spec(np.int8, scale, zero_point)
    image = ramp_image()
    tensor, _ = Preprocessor(spec, channel_order="bgr")(image, PixelLayout.BGR)
    real = spec.dequantize(tensor[0]).astype(np.float64)
    assert np.abs(real - trained_on(image.astype(np.float64))).max() <= scale / 2 + 1e-6


@pytest.mark.parametrize(
    ("dtype", "scale", "zero_point", "mean", "std"),
    [
        (np.int8, 1 / 127.5, -1, 127.5, 127.5),
        (np.int8, 0.0186, -14, (123.7, 116.3, 103.5), (58.4, 57.1, 57.4)),
        (np.uint8, 1 / 128, 128, 127.5, 127.5),
        (np.uint8, 1 / 255, 0, 0.0, 255.0),
    ],
)
def test_quantized_input_with_mean_std_matches_round_real_over_scale_plus_zero_point(
    dtype: type, scale: float, zero_point: int, mean, std
) -> None:  # type: ignore[no-untyped-def]
    spec = ramp_spec(dtype, scale, zero_point)
    image = ramp_image()
    tensor, _ = Preprocessor(spec, channel_order="bgr", mean=mean, std=std)(image, PixelLayout.BGR)
    info = np.iinfo(dtype)
    means = np.broadcast_to(np.asarray(mean, float), (3,))
    stds = np.broadcast_to(np.asarray(std, float), (3,))
    for (row, col, channel), pixel in np.ndenumerate(image):
        real = (int(pixel) - means[channel]) / stds[channel]
        expected = min(info.max, max(info.min, round(real / scale) + zero_point))
        assert tensor[0, row, col, channel] == expected, (pixel, channel)


def test_mean_std_the_tensor_cannot_hold_is_refused() -> None:
    with pytest.raises(ConfigError, match="mean/std in the model card"):
        Preprocessor(ramp_spec(np.int8, 1 / 127.5, -1), mean=0.0, std=100.0)


def test_float_input_is_pixel_minus_mean_over_std_per_channel() -> None:
    image = ramp_image()
    mean, std = (10.0, 20.0, 30.0), (2.0, 4.0, 8.0)
    tensor, _ = Preprocessor(ramp_spec(np.float32), channel_order="bgr", mean=mean, std=std)(
        image, PixelLayout.BGR
    )
    expected = ((image.astype(np.float64) - np.array(mean)) / np.array(std)).astype(np.float32)
    assert tensor.dtype == np.float32
    assert np.array_equal(tensor[0], expected)


def test_float_input_defaults_to_raw_pixel_values() -> None:
    image = ramp_image()
    tensor, _ = Preprocessor(ramp_spec(np.float32), channel_order="bgr")(image, PixelLayout.BGR)
    assert np.array_equal(tensor[0], image.astype(np.float32))


# --------------------------------------------------------------------------- a real model


def _litert_interpreter(model_path: Path):  # type: ignore[no-untyped-def]
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    interpreter = litert.Interpreter(model_path=str(model_path))
    interpreter.allocate_tensors()
    return interpreter


@pytest.mark.parametrize(
    "model", ["mobilenet_v1_0.25_128_quant.tflite", "mobilenet_v1_0.25_128_quant_int8.tflite"]
)
@pytest.mark.parametrize("resize", list(ResizeMode))
def test_quantized_mobilenet_recognises_the_cat_with_its_own_input_parameters(
    model: str, resize: ResizeMode
) -> None:
    interpreter = _litert_interpreter(MODELS / model)
    detail = interpreter.get_input_details()[0]
    scale, zero_point = detail["quantization"]
    spec = TensorSpec(
        detail["index"], detail["name"], tuple(detail["shape"]), np.dtype(detail["dtype"]), scale, zero_point
    )
    labels = (MODELS / "imagenet_labels.txt").read_text().splitlines()
    cat_bgr = cv2.imread(str(ROOT / "data" / "reference" / "cat.bmp"))

    tensor, _ = Preprocessor(spec, resize=resize, pad_value=114)(cat_bgr, PixelLayout.BGR)
    interpreter.set_tensor(spec.index, tensor)
    interpreter.invoke()
    scores = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
    assert "cat" in labels[int(np.argmax(scores))]


# --------------------------------------------------------------------------- to_bgr and errors


@pytest.mark.parametrize(
    "layout", [PixelLayout.BGR, PixelLayout.RGB, PixelLayout.XRGB8888, PixelLayout.XBGR8888]
)
def test_to_bgr_restores_packed_layouts_exactly(layout: PixelLayout) -> None:
    frame_bgr = photo_bgr((320, 240))
    image = padded(in_layout(frame_bgr, layout), 384)
    out = to_bgr(image, layout)
    assert out.shape == (240, 320, 3) and out.flags.c_contiguous
    assert np.array_equal(out, frame_bgr)
    assert not np.shares_memory(out, image)


def test_to_bgr_of_yuv420_is_close_to_the_original() -> None:
    frame_bgr = photo_bgr((320, 240))
    out = to_bgr(as_i420(frame_bgr), PixelLayout.YUV420)
    diff = np.abs(out.astype(np.int16) - frame_bgr)
    assert out.shape == (240, 320, 3)
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 6


@pytest.mark.parametrize(
    ("image", "layout", "message"),
    [
        (np.zeros((48, 64, 3), np.uint8), PixelLayout.XRGB8888, r"\(h, w, 4\)"),
        (np.zeros((48, 64), np.uint8), PixelLayout.BGR, r"\(h, w, 3\)"),
        (np.zeros((48, 64, 3), np.float32), PixelLayout.BGR, "uint8"),
        (np.zeros((71, 64), np.uint8), PixelLayout.YUV420, "h \\* 3 // 2"),
        (np.zeros((72, 63), np.uint8), PixelLayout.YUV420, "even"),
    ],
)
def test_image_not_matching_its_layout_is_refused(
    image: np.ndarray, layout: PixelLayout, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Preprocessor(SPEC_U8_300)(image, layout)


@pytest.mark.parametrize(
    ("spec", "kwargs", "message"),
    [
        (TensorSpec(0, "x", (1, 224, 224, 1), np.dtype(np.uint8), 1.0, 0), {}, r"\(1, h, w, 3\)"),
        (TensorSpec(0, "x", (224, 224, 3), np.dtype(np.uint8), 1.0, 0), {}, r"\(1, h, w, 3\)"),
        (TensorSpec(0, "x", (1, 8, 8, 3), np.dtype(np.int16), 1.0, 0), {}, "uint8, int8, float32"),
        (SPEC_U8_300, {"resize": "zoom"}, "stretch, letterbox, crop"),
        (SPEC_U8_300, {"channel_order": "rbg"}, "'rgb' or 'bgr'"),
        (SPEC_U8_300, {"pad_value": 300}, "0..255"),
        (SPEC_F32_224, {"std": 0.0}, "zero"),
        (SPEC_F32_224, {"mean": (1.0, 2.0)}, "one per channel"),
        (TensorSpec(0, "x", (1, 8, 8, 3), np.dtype(np.int8)), {"mean": 1.0}, "no quantization"),
    ],
)
def test_unusable_settings_are_refused(spec: TensorSpec, kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        Preprocessor(spec, **kwargs)
