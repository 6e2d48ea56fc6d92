"""The picamera2 adapter against the picamera2 stand-in in tests/fakes (real photographs as frames)."""

from __future__ import annotations

import concurrent.futures
import importlib
import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from robovision.errors import (
    EXIT_CAMERA_BUSY,
    CameraBusyError,
    ConfigError,
    SourceError,
    SourceLostError,
    SourceNotFoundError,
)
from robovision.frame import Frame, PixelLayout
from robovision.preprocess import Preprocessor, to_bgr
from robovision.sources import PiCameraSource, open_source
from robovision.sources.picamera import compact_i420
from robovision.tensor_spec import TensorSpec

ROOT = Path(__file__).resolve().parents[1]
FAKES = Path(__file__).resolve().parent / "fakes"
PHOTOS = sorted((ROOT / "data" / "toycars" / "images").glob("*.jpg"))[:3]


def _forget_picamera2() -> None:
    for name in [n for n in sys.modules if n == "picamera2" or n.startswith("picamera2.")]:
        del sys.modules[name]


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The stand-in importable as ``picamera2``, one imx708 camera showing three photographs."""
    _forget_picamera2()
    monkeypatch.syspath_prepend(str(FAKES))
    module = importlib.import_module("picamera2._standin")
    module.reset(cameras=("imx708",), images=PHOTOS, frame_interval_s=0.01)
    try:
        yield module
    finally:
        module.reset()
        _forget_picamera2()


def matching_photo_index(standin: ModuleType, frame: Frame) -> int:
    """Which of the stand-in's photographs the frame shows (exact for RGB formats)."""
    bgr = to_bgr(frame.image, frame.layout).astype(np.int16)
    errors = [np.abs(bgr - standin.frame_bgr(k, frame.size_wh)).mean() for k in range(len(PHOTOS))]
    return int(np.argmin(errors))


@pytest.mark.parametrize(
    ("pixel_format", "layout", "memory_order"),
    [
        ("RGB888", PixelLayout.BGR, (0, 1, 2)),
        ("BGR888", PixelLayout.RGB, (2, 1, 0)),
        ("XRGB8888", PixelLayout.XRGB8888, (0, 1, 2)),
        ("XBGR8888", PixelLayout.XBGR8888, (2, 1, 0)),
    ],
)
@pytest.mark.parametrize("size_wh", [(640, 480), (700, 524)], ids=["640x480", "700x524 (padded rows)"])
def test_main_stream_frames_hold_the_photograph_in_the_stated_layout(
    standin: ModuleType,
    pixel_format: str,
    layout: PixelLayout,
    memory_order: tuple[int, int, int],
    size_wh: tuple[int, int],
) -> None:
    with open_source("picamera2", size_wh=size_wh, pixel_format=pixel_format) as source:
        frames = [source.read(timeout_s=2.0) for _ in range(3)]
    for frame in frames:
        assert frame is not None
        assert frame.layout is layout
        assert frame.size_wh == size_wh
        expected_bgr = standin.frame_bgr(matching_photo_index(standin, frame), size_wh)
        assert np.array_equal(to_bgr(frame.image, frame.layout), expected_bgr)
        for channel, bgr_channel in enumerate(memory_order):
            assert np.array_equal(frame.image[:, :, channel], expected_bgr[:, :, bgr_channel])
        if frame.image.shape[2] == 4:
            assert np.all(frame.image[:, :, 3] == 255)


def test_lores_stream_gives_compact_yuv420_frames_of_the_model_size(standin: ModuleType) -> None:
    # 704 px wide arrives from the camera with a 768-byte stride, like a Pi 5 delivers it
    with open_source("picamera2", size_wh=(1280, 960), lores_size_wh=(704, 528)) as source:
        frame = source.read(timeout_s=2.0)
    assert frame is not None
    assert frame.layout is PixelLayout.YUV420
    assert frame.image.shape == (528 * 3 // 2, 704)
    assert frame.size_wh == (704, 528)
    expected_bgr = standin.frame_bgr(matching_photo_index(standin, frame), (704, 528))
    diff = np.abs(to_bgr(frame.image, frame.layout).astype(np.int16) - expected_bgr)
    assert diff.mean() < 1.0  # chroma at half resolution, two 8-bit conversions
    assert np.percentile(diff, 99) <= 6


def test_lores_and_main_frames_give_the_model_nearly_the_same_input(standin: ModuleType) -> None:
    spec = TensorSpec(0, "image", (1, 300, 300, 3), np.dtype(np.uint8), 1 / 128, 128)
    tensors = []
    for options in ({"size_wh": (640, 480)}, {"size_wh": (1280, 960), "lores_size_wh": (640, 480)}):
        standin.reset(images=PHOTOS[:1], frame_interval_s=0.01)  # one photograph: same picture every frame
        with open_source("picamera2", **options) as source:
            frame = source.read(timeout_s=2.0)
        assert frame is not None
        tensor, _ = Preprocessor(spec)(frame.image, frame.layout)
        tensors.append(tensor.astype(np.int16))
    diff = np.abs(tensors[0] - tensors[1])
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 6


def test_compact_i420_drops_the_row_padding_of_every_plane(standin: ModuleType) -> None:
    formats = importlib.import_module("picamera2.formats")
    picture = standin.frame_bgr(0, (704, 528))
    padded = formats.render_buffer(picture, "YUV420").reshape(528 * 3 // 2, 768)
    assert np.all(padded[:528, 704:] == formats.PADDING_BYTE)

    compact = compact_i420(padded, (704, 528))
    y, u, v = formats._i420(picture, True)  # the planes the camera encoded
    flat = compact.reshape(-1)
    assert compact.shape == (792, 704)
    assert np.array_equal(compact[:528], y)
    assert np.array_equal(flat[704 * 528 : 704 * 528 + 352 * 264].reshape(264, 352), u)
    assert np.array_equal(flat[704 * 528 + 352 * 264 :].reshape(264, 352), v)
    assert compact_i420(compact, (704, 528)) is compact  # nothing to drop: no copy


def test_frames_have_increasing_ids_and_times_and_own_their_memory(standin: ModuleType) -> None:
    with open_source("picamera2:0") as source:
        frames = [source.read(timeout_s=2.0) for _ in range(5)]
        camera = source._camera  # type: ignore[attr-defined]
        assert camera.outstanding_requests == 0  # every request went back to the camera
    got = [f for f in frames if f is not None]
    assert [f.frame_id for f in got] == [0, 1, 2, 3, 4]
    assert all(a.t_capture_mono < b.t_capture_mono for a, b in zip(got, got[1:]))
    assert all(f.source == "picamera2:0" for f in got)
    assert not any(np.shares_memory(a.image, b.image) for a, b in zip(got, got[1:]))


def test_fps_becomes_the_frame_rate_control(standin: ModuleType) -> None:
    with open_source("picamera2", fps=20.0) as source:
        camera = source._camera  # type: ignore[attr-defined]
        assert camera.controls["FrameRate"] == 20.0
        assert camera.frame_interval_s == pytest.approx(0.05)


def test_camera_held_by_another_process_is_busy_with_a_fix(standin: ModuleType) -> None:
    picamera2 = importlib.import_module("picamera2")
    holder = picamera2.Picamera2(0)
    try:
        with pytest.raises(CameraBusyError) as raised:
            open_source("picamera2").open()
        assert "fuser" in str(raised.value)
        assert raised.value.exit_code == EXIT_CAMERA_BUSY
    finally:
        holder.close()
    with open_source("picamera2") as source:  # free again
        assert source.read(timeout_s=2.0) is not None


def test_second_source_on_the_same_camera_is_busy(standin: ModuleType) -> None:
    with open_source("picamera2"), pytest.raises(CameraBusyError, match="only one process"):
        open_source("picamera2:0").open()


def test_no_camera_attached_names_the_cable_and_the_listing_command(standin: ModuleType) -> None:
    standin.reset(cameras=())
    with pytest.raises(SourceNotFoundError) as raised:
        open_source("picamera2").open()
    assert "ribbon cable" in str(raised.value)
    assert "rpicam-hello --list-cameras" in str(raised.value)


def test_camera_number_past_the_last_lists_the_cameras(standin: ModuleType) -> None:
    with pytest.raises(SourceNotFoundError, match=r"camera 1 but libcamera lists 1 \(0: imx708\)"):
        open_source("picamera2:1").open()


def test_two_cameras_are_opened_by_number(standin: ModuleType) -> None:
    standin.reset(cameras=("imx708", "imx219"), images=PHOTOS)
    with open_source("picamera2:0") as first, open_source("picamera2:1") as second:
        assert first.read(timeout_s=2.0) is not None
        assert second.read(timeout_s=2.0) is not None


def test_camera_that_stops_delivering_is_lost_then_recovers(standin: ModuleType) -> None:
    with open_source("picamera2") as source:
        assert source.read(timeout_s=2.0) is not None
        standin.stall(0)
        with pytest.raises(SourceLostError, match=r"within 0.2 s.*ribbon cable"):
            source.read(timeout_s=0.2)
        standin.resume(0)
        frame = source.read(timeout_s=2.0)
    assert frame is not None and frame.frame_id == 1


def test_stall_before_the_first_frame_uses_the_default_timeout(standin: ModuleType) -> None:
    with open_source("picamera2", read_timeout_s=0.1) as source:
        standin.stall(0)
        with pytest.raises(SourceLostError, match=r"within 0\.1 s"):
            source.read()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"size_wh": (640, 480), "lores_size_wh": (800, 600)}, "may not exceed"),
        ({"size_wh": (641, 480)}, "even"),
        ({"pixel_format": "YUYV"}, "RGB888, BGR888, XRGB8888, XBGR8888"),
        ({"buffer_count": 1}, "at least 2"),
        ({"fps": 0}, "fps must be positive"),
    ],
)
def test_camera_settings_are_checked_before_opening(options: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        PiCameraSource(0, **options)


def test_missing_picamera2_says_how_to_install_it() -> None:
    _forget_picamera2()
    if importlib.util.find_spec("picamera2") is not None:
        pytest.skip("a real picamera2 is installed here")
    with pytest.raises(SourceError, match="sudo apt install python3-picamera2"):
        open_source("picamera2").open()


def test_importing_the_adapter_does_not_import_picamera2() -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(FAKES)!r}); "
        "import robovision.sources, robovision.sources.picamera; print('picamera2' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


# --------------------------------------------------------------------------- the stand-in mirrors picamera2


def test_standin_preview_defaults_and_padded_lores_match_picamera2(standin: ModuleType) -> None:
    picamera2 = importlib.import_module("picamera2")
    with picamera2.Picamera2() as camera:
        config = camera.create_preview_configuration(main={"size": (1280, 960)}, lores={"size": (704, 576)})
        assert config["main"]["format"] == "XBGR8888" and config["buffer_count"] == 4
        camera.configure(config)
        camera.start()
        assert camera.capture_array("main").shape == (960, 1280, 4)
        assert camera.capture_array("lores").shape == (864, 768)  # as reported in picamera2 issue 1182
        assert camera.stream_configuration("lores")["stride"] == 768
        metadata = camera.capture_metadata()
        assert {"SensorTimestamp", "ExposureTime", "FrameDuration"} <= set(metadata)


def test_standin_still_configuration_is_bgr888_at_sensor_resolution(standin: ModuleType) -> None:
    picamera2 = importlib.import_module("picamera2")
    with picamera2.Picamera2() as camera:
        config = camera.create_still_configuration()
        assert config["main"]["size"] == (4608, 2592) and config["main"]["format"] == "BGR888"
        assert config["buffer_count"] == 1


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda c: c.create_preview_configuration(main={"sise": (640, 480)}), ValueError, "Bad key 'sise'"),
        (
            lambda c: c.configure(
                c.create_preview_configuration(main={"size": (320, 240)}, lores={"size": (640, 480)})
            ),
            RuntimeError,
            "lores stream dimensions may not exceed main stream",
        ),
        (
            lambda c: c.configure(c.create_preview_configuration(main={"format": "NV99"})),
            RuntimeError,
            "Bad format NV99 in stream main",
        ),
    ],
)
def test_standin_rejects_configurations_like_picamera2(
    standin: ModuleType, make, error: type, message: str
) -> None:  # type: ignore[no-untyped-def]
    picamera2 = importlib.import_module("picamera2")
    with picamera2.Picamera2() as camera, pytest.raises(error, match=message):
        make(camera)


def test_standin_capture_before_start_times_out_like_a_job(standin: ModuleType) -> None:
    picamera2 = importlib.import_module("picamera2")
    with picamera2.Picamera2() as camera:
        camera.configure()
        with pytest.raises(concurrent.futures.TimeoutError):
            camera.capture_request(wait=0.05)


def test_standin_absent_camera_is_an_index_error_like_picamera2(standin: ModuleType) -> None:
    standin.reset(cameras=())
    picamera2 = importlib.import_module("picamera2")
    assert picamera2.Picamera2.global_camera_info() == []
    with pytest.raises(IndexError):
        picamera2.Picamera2()


def test_standin_busy_camera_error_chain_matches_picamera2(standin: ModuleType) -> None:
    picamera2 = importlib.import_module("picamera2")
    with picamera2.Picamera2(), pytest.raises(RuntimeError, match="did not complete") as raised:
        picamera2.Picamera2()
    assert "Device or resource busy" in str(raised.value.__context__)
