from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from robovision.errors import ConfigError, SourceError, SourceLostError
from robovision.frame import Frame, PixelLayout
from robovision.sources import ReplaySource, open_source

ROOT = Path(__file__).resolve().parents[1]
TOYCARS = ROOT / "data" / "toycars" / "images"
NEGATIVES = ROOT / "data" / "negatives"


def negatives_bgr() -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in sorted(NEGATIVES.glob("*.png"))]


def index_of(source: ReplaySource, frame: Frame) -> int:
    """Which stored frame was handed out (frames are the stored arrays themselves)."""
    return next(i for i, stored in enumerate(source.frames) if stored is frame.image)


def test_folder_replay_hands_out_every_photo_in_order_then_ends() -> None:
    expected = negatives_bgr()
    with open_source(f"replay:{NEGATIVES}", fps=0) as source:
        frames = [source.read() for _ in range(len(expected) + 1)]
    assert frames[-1] is None
    got = [f for f in frames if f is not None]
    assert [f.frame_id for f in got] == list(range(len(expected)))
    for frame, image in zip(got, expected):
        assert frame.layout is PixelLayout.BGR
        assert np.array_equal(frame.image, image)
        assert frame.source == "replay:negatives"


def test_frames_are_the_stored_arrays_and_read_only() -> None:
    with open_source(f"replay:{NEGATIVES}", fps=0) as source:
        frame = source.read()
        assert frame is not None
        assert frame.image is source.frames[0]  # type: ignore[attr-defined]
        assert not frame.image.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            frame.image[0, 0] = 0


def test_looping_replay_starts_again_with_fresh_ids() -> None:
    with ReplaySource(NEGATIVES, fps=0, loop=True) as source:
        count = len(source.frames)
        frames = [source.read() for _ in range(2 * count + 2)]
        indices = [index_of(source, f) for f in frames if f is not None]
    assert indices == [i % count for i in range(2 * count + 2)]
    assert [f.frame_id for f in frames if f] == list(range(2 * count + 2))


def test_size_wh_resizes_every_frame_once_at_open() -> None:
    with ReplaySource(TOYCARS, fps=0, size_wh=(160, 120)) as source:
        assert {f.shape for f in source.frames} == {(120, 160, 3)}
        assert source.nbytes == len(source.frames) * 160 * 120 * 3
        frame = source.read()
    first_photo = cv2.imread(str(sorted(TOYCARS.glob("*.jpg"))[0]))
    assert frame is not None
    expected = cv2.resize(first_photo, (160, 120), interpolation=cv2.INTER_AREA)
    assert np.array_equal(frame.image, expected)


def test_video_replay_decodes_all_frames_up_front(tmp_path: Path) -> None:
    photos = sorted(TOYCARS.glob("*.jpg"))[:4]
    video = tmp_path / "lap.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (320, 240))
    originals = [cv2.resize(cv2.imread(str(p)), (320, 240), interpolation=cv2.INTER_AREA) for p in photos]
    for image in originals:
        writer.write(image)
    writer.release()

    with open_source(f"replay:{video}", fps=0, loop=True) as source:
        assert len(source.frames) == 4  # type: ignore[attr-defined]
        frames = [source.read() for _ in range(6)]
    for k, frame in enumerate(frames):
        assert frame is not None
        assert np.abs(frame.image.astype(int) - originals[k % 4]).mean() < 6


def test_paced_replay_hands_out_every_frame_no_earlier_than_due() -> None:
    fps = 40.0
    with ReplaySource(NEGATIVES, fps=fps, loop=True, drop_late=False) as source:
        count = len(source.frames)
        frames = [source.read() for _ in range(6)]
        indices = [index_of(source, f) for f in frames if f is not None]
    assert indices == [k % count for k in range(6)]
    times = [f.t_capture_mono for f in frames if f is not None]
    for k, t in enumerate(times):
        assert t - times[0] >= k / fps - 1e-3  # never early; how late is not checked


def test_slow_reader_gets_the_newest_frame_like_a_camera() -> None:
    with ReplaySource(TOYCARS, fps=50.0, size_wh=(32, 24)) as source:
        first = source.read()
        time.sleep(0.1)  # five frame intervals pass
        second = source.read()
        assert first is not None and second is not None
        assert index_of(source, first) == 0
        assert index_of(source, second) >= 5
        assert second.frame_id == first.frame_id + 1


def test_replay_without_loop_ends_after_the_last_frame_even_when_dropping() -> None:
    with ReplaySource(NEGATIVES, fps=200.0) as source:
        source.read()
        time.sleep(0.1)  # twenty intervals: past the last of the four frames
        assert source.read() is None


def test_next_frame_due_after_the_timeout_is_lost() -> None:
    with ReplaySource(NEGATIVES, fps=1.0) as source:
        assert source.read(timeout_s=0.05) is not None  # frame 0 is due at once
        with pytest.raises(SourceLostError, match="raise the timeout or the replay fps"):
            source.read(timeout_s=0.05)


def test_replay_over_the_memory_budget_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError) as raised, ReplaySource(TOYCARS, memory_budget_mb=5):
        pass
    message = str(raised.value)
    assert "5 MB budget" in message and "size_wh" in message and "memory_budget_mb" in message
    assert "90 frames" in message


def test_video_over_the_budget_is_refused_before_decoding(tmp_path: Path) -> None:
    video = tmp_path / "long.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (640, 480))
    frame = cv2.imread(str(sorted(TOYCARS.glob("*.jpg"))[0]))
    for _ in range(12):
        writer.write(frame)
    writer.release()
    with pytest.raises(ConfigError, match="12 frames"), ReplaySource(video, memory_budget_mb=2):
        pass
    with ReplaySource(video, size_wh=(64, 48), memory_budget_mb=2) as small:
        assert len(small.frames) == 12


def test_unreadable_video_is_a_source_error(tmp_path: Path) -> None:
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"\x00\x01" * 100)
    with pytest.raises(SourceError, match="ffprobe"), ReplaySource(video):
        pass


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fps": -1.0}, "fps"),
        ({"size_wh": (0, 10)}, "size_wh"),
        ({"memory_budget_mb": 0}, "memory_budget_mb"),
    ],
)
def test_replay_settings_are_checked(options: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        ReplaySource(NEGATIVES, **options)
