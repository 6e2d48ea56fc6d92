from __future__ import annotations

import shutil
import struct
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from robovision.errors import ConfigError, SourceError, SourceNotFoundError
from robovision.frame import PixelLayout
from robovision.sources import FolderSource, ImageSource, OpenCVSource, ReplaySource, open_source

ROOT = Path(__file__).resolve().parents[1]
TOYCARS = ROOT / "data" / "toycars" / "images"
NEGATIVES = ROOT / "data" / "negatives"


def exif_orientation_segment(orientation: int) -> bytes:
    """A minimal APP1 segment: Exif header, little-endian TIFF, one IFD entry 0x0112 (SHORT)."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    tiff = b"II*\x00" + struct.pack("<I", 8) + ifd
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def write_jpeg_with_orientation(path: Path, image_bgr: np.ndarray, orientation: int) -> None:
    ok, encoded = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    data = encoded.tobytes()
    assert data[:2] == b"\xff\xd8"
    path.write_bytes(data[:2] + exif_orientation_segment(orientation) + data[2:])


def marked_landscape() -> np.ndarray:
    """80 x 40 (w x h), red band on the left, blue band at the bottom."""
    image = np.full((40, 80, 3), 128, np.uint8)
    image[:, :16] = (0, 0, 255)
    image[32:, 16:] = (255, 0, 0)
    return image


@pytest.mark.parametrize(
    ("orientation", "shape", "red_at", "blue_at"),
    [
        (1, (40, 80, 3), (20, 4), (37, 60)),  # as stored
        (3, (40, 80, 3), (20, 75), (2, 20)),  # rotated 180: red right, blue top
        (6, (80, 40, 3), (4, 20), (60, 2)),  # rotated 90 clockwise: red top, blue left
        (8, (80, 40, 3), (75, 20), (20, 37)),  # rotated 90 anticlockwise: red bottom, blue right
    ],
)
def test_image_file_comes_out_upright_by_its_exif_orientation(
    tmp_path: Path,
    orientation: int,
    shape: tuple[int, ...],
    red_at: tuple[int, int],
    blue_at: tuple[int, int],
) -> None:
    path = tmp_path / f"tagged_{orientation}.jpg"
    write_jpeg_with_orientation(path, marked_landscape(), orientation)
    with open_source(path) as source:
        assert isinstance(source, ImageSource)
        frame = source.read()
    assert frame is not None
    assert frame.image.shape == shape
    red = frame.image[red_at].astype(int)
    blue = frame.image[blue_at].astype(int)
    assert red[2] > 200 and red[0] < 60, red
    assert blue[0] > 200 and blue[2] < 60, blue


def test_image_source_gives_one_frame_then_ends(tmp_path: Path) -> None:
    photo = sorted(TOYCARS.glob("*.jpg"))[0]
    with open_source(str(photo)) as source:
        first = source.read()
        assert source.read() is None
    assert first is not None
    assert first.layout is PixelLayout.BGR
    assert np.array_equal(first.image, cv2.imread(str(photo)))
    assert first.source == f"file:{photo.name}"
    assert not first.image.flags.writeable


def test_looping_image_source_repeats_the_same_read_only_array() -> None:
    photo = sorted(TOYCARS.glob("*.jpg"))[0]
    with open_source(photo, loop=True) as source:
        frames = [source.read() for _ in range(3)]
    assert [f.frame_id for f in frames if f] == [0, 1, 2]
    assert all(f is not None and f.image is frames[0].image for f in frames)  # type: ignore[union-attr]


def test_folder_is_read_in_name_order_with_increasing_ids_and_times(tmp_path: Path) -> None:
    names = ["b.png", "a.jpg", "c.bmp", "notes.txt"]
    photos = sorted(TOYCARS.glob("*.jpg"))[:3]
    for name, photo in zip(names, photos):
        cv2.imwrite(str(tmp_path / name), cv2.resize(cv2.imread(str(photo)), (64, 48)))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub.jpg").mkdir()

    with open_source(tmp_path) as source:
        assert isinstance(source, FolderSource)
        assert [p.name for p in source.paths] == ["a.jpg", "b.png", "c.bmp"]
        frames = [source.read() for _ in range(4)]
    assert frames[3] is None
    got = [f for f in frames if f is not None]
    assert [f.frame_id for f in got] == [0, 1, 2]
    assert all(a.t_capture_mono <= b.t_capture_mono for a, b in zip(got, got[1:]))
    assert abs(got[0].t_capture_wall - time.time()) < 60
    expected_first = cv2.imread(str(tmp_path / "a.jpg"))
    assert np.array_equal(got[0].image, expected_first)
    assert not np.shares_memory(got[0].image, got[1].image)


def test_folder_loops_when_asked() -> None:
    with open_source(NEGATIVES, loop=True) as source:
        count = len(source.paths)  # type: ignore[attr-defined]
        frames = [source.read() for _ in range(2 * count + 1)]
    shapes = [f.image.shape for f in frames if f is not None]
    assert len(shapes) == 2 * count + 1
    assert shapes[:count] == shapes[count : 2 * count]
    assert [f.frame_id for f in frames if f] == list(range(2 * count + 1))


def write_video(
    path: Path, photos: list[Path], size_wh: tuple[int, int] = (320, 240), fps: float = 10.0
) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size_wh)
    assert writer.isOpened()
    for photo in photos:
        writer.write(cv2.resize(cv2.imread(str(photo)), size_wh, interpolation=cv2.INTER_AREA))
    writer.release()


def test_video_file_plays_every_frame_then_ends(tmp_path: Path) -> None:
    photos = sorted(TOYCARS.glob("*.jpg"))[:6]
    video = tmp_path / "drive.avi"
    write_video(video, photos)
    with open_source(video) as source:
        assert isinstance(source, OpenCVSource) and source.kind == "video"
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
    assert len(frames) == 6
    assert [f.frame_id for f in frames] == list(range(6))
    for frame, photo in zip(frames, photos):
        original = cv2.resize(cv2.imread(str(photo)), (320, 240), interpolation=cv2.INTER_AREA)
        assert frame.image.shape == (240, 320, 3)
        assert np.abs(frame.image.astype(int) - original).mean() < 6  # MJPEG is lossy
    # consecutive frames are different photographs, so order is checked too
    assert np.abs(frames[0].image.astype(int) - frames[1].image).mean() > 10


def test_looping_video_starts_again(tmp_path: Path) -> None:
    video = tmp_path / "short.avi"
    write_video(video, sorted(TOYCARS.glob("*.jpg"))[:3])
    with open_source(video, loop=True) as source:
        frames = [source.read() for _ in range(7)]
    assert all(f is not None for f in frames)
    assert np.array_equal(frames[0].image, frames[3].image)  # type: ignore[union-attr]
    assert np.array_equal(frames[1].image, frames[4].image)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "spec",
    ["missing.jpg", "missing_folder", "missing.mp4", "file:missing.png", "replay:missing"],
)
def test_missing_path_names_the_path(tmp_path: Path, spec: str) -> None:
    prefix, _, name = spec.rpartition(":")
    full = f"{prefix}:{tmp_path / name}" if prefix else str(tmp_path / name)
    with pytest.raises(SourceNotFoundError, match=str(tmp_path / name)):
        source = open_source(full)
        source.open()


def test_empty_folder_says_which_files_it_looked_for(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("nothing")
    with pytest.raises(SourceNotFoundError, match=r"no images in .*\.jpg"), open_source(tmp_path):
        pass


@pytest.mark.parametrize(
    ("name", "content"), [("broken.jpg", b"\xff\xd8not a jpeg"), ("clip.mp4", b"\x00" * 64)]
)
def test_undecodable_file_is_a_source_error(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SourceError, match=r"cannot|no frame"), open_source(path) as source:
        source.read()


@pytest.mark.parametrize(
    ("spec", "options", "message"),
    [
        (TOYCARS, {"fourcc": "MJPG"}, "FolderSource does not take fourcc; its options are: loop"),
        ("picamera2", {"lores": (320, 240)}, "PiCameraSource does not take lores"),
        ("rtsp://192.0.2.1/live", {"loop": True, "fourcc": "MJPG"}, "OpenCVSource does not take fourcc"),
        ("replay:" + str(TOYCARS), {"sizewh": (1, 1)}, "does not take sizewh"),
        ("", {}, "empty source"),
    ],
)
def test_options_that_do_not_apply_are_refused(spec: object, options: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        open_source(spec, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "cls"),
    [
        ("picamera2", "PiCameraSource"),
        ("picamera2:1", "PiCameraSource"),
        ("rtsp://user:secret@192.0.2.1/stream", "OpenCVSource"),
        ("replay:" + str(TOYCARS), "ReplaySource"),
        (str(TOYCARS), "FolderSource"),
    ],
)
def test_spec_chooses_the_source_without_opening_it(spec: str, cls: str) -> None:
    source = open_source(spec)
    assert type(source).__name__ == cls
    assert not source.is_open
    assert "secret" not in source.name


@pytest.mark.parametrize(
    "spec", ["picamera2:0", "7", "rtsp://192.0.2.1/live", str(TOYCARS), "replay:" + str(TOYCARS)]
)
def test_common_service_options_are_accepted_by_every_source(spec: str) -> None:
    source = open_source(spec, fps=15.0, size_wh=(320, 240), loop=True, read_timeout_s=None)
    assert not source.is_open


def test_video_file_accepts_the_options_a_service_passes_to_any_opencv_source(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    write_video(video, sorted(TOYCARS.glob("*.jpg"))[:2])
    with open_source(video, fps=30.0, size_wh=(640, 480), loop=False, read_timeout_s=2.0) as source:
        frame = source.read(timeout_s=2.0)
    assert frame is not None and frame.size_wh == (320, 240)  # a file keeps its own size


def test_common_options_reach_the_sources_they_apply_to() -> None:
    camera = open_source("picamera2:1", fps=15.0, size_wh=(320, 240), loop=True)
    assert camera.controls == {"FrameRate": 15.0}  # type: ignore[attr-defined]
    assert camera.size_wh == (320, 240)  # type: ignore[attr-defined]
    replay = open_source("replay:" + str(TOYCARS), fps=15.0, size_wh=(320, 240), loop=True)
    assert (replay.fps, replay.size_wh, replay.loop) == (15.0, (320, 240), True)  # type: ignore[attr-defined]
    usb = open_source(3, fps=15.0, size_wh=(320, 240), loop=True)
    assert (usb.fps, usb.size_wh, usb.loop) == (15.0, (320, 240), False)  # type: ignore[attr-defined]


def test_read_before_open_is_an_error() -> None:
    source = open_source(NEGATIVES)
    with pytest.raises(SourceError, match="before open"):
        source.read()


def test_source_never_writes_into_frames_it_handed_out(tmp_path: Path) -> None:
    for photo in sorted(TOYCARS.glob("*.jpg"))[:3]:
        shutil.copy(photo, tmp_path / photo.name)
    with open_source(tmp_path, loop=True) as source:
        first = source.read()
        assert first is not None
        kept = first.image.copy()
        for _ in range(5):
            source.read()
    assert np.array_equal(first.image, kept)


def test_replay_is_exported_from_the_package() -> None:
    assert ReplaySource.__module__ == "robovision.sources.replay"
