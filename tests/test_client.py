"""robovision.client: typed messages, and a subscriber that reconnects when the service restarts."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from service_support import load_schema, schema_errors

from robovision.client import (
    DetectionMessage,
    GapMessage,
    HelloMessage,
    StatusMessage,
    Subscriber,
    UnknownMessage,
    format_message,
    parse_message,
)
from robovision.detection import Detection, FrameResult
from robovision.frame import Frame, PixelLayout
from robovision.messages import detection_message, encode_line, gap_message, hello_message, status_message
from robovision.service.publisher import Publisher


def _detection_raw(seq: int = 3) -> dict:
    frame = Frame(np.zeros((480, 640, 3), np.uint8), PixelLayout.BGR, 41, 1234.5, 1.7e9, "replay:images")
    car = Detection("car", 2, 0.87, (320.0, 100.0, 480.0, 220.0), (0.5, 0.2083, 0.75, 0.4583))
    result = FrameResult((car,), preprocess_ms=1.5, inference_ms=20.25, decode_ms=0.5)
    return detection_message(frame, result, model_name="toycar", seq=seq, hfov_deg=66.0, capture_ms=3.0)


def _status_raw() -> dict:
    return status_message(
        fps=14.8, latency_ms={"p50": 40.0, "p95": 55.0}, stage_ms={"inference": {"p50": 30.0, "p95": 41.0}},
        frames=100, dropped_capture=3, subscriber_drops=[{"id": 1, "dropped": 7, "queued": 2}],
        camera_state="ok", camera_error=None, camera_losses=0, backend="litert", model_name="toycar",
        source="picamera2:0",
        uptime_s=12.0, thresholds={"score_threshold": 0.5, "max_detections": 20, "class_filter": None},
        hfov_deg=66.0, config_generation=1,
    )


def test_messages_built_by_the_service_parse_into_typed_values_and_match_the_schema() -> None:
    schema = load_schema()
    raw = _detection_raw()
    assert schema_errors(raw, schema) == []
    message = parse_message(raw)
    assert isinstance(message, DetectionMessage)
    assert (message.seq, message.frame_id, message.image_wh) == (3, 41, (640, 480))
    (car,) = message.detections
    assert car.label == "car"
    assert car.box_xyxy == (320.0, 100.0, 480.0, 220.0)
    # centre x at 0.625 of the width, 66 deg lens: atan(0.25 * tan(33 deg)) = 9.22 deg right
    assert car.bearing_deg == pytest.approx(9.22, abs=0.005)

    status = parse_message(_status_raw())
    assert schema_errors(_status_raw(), schema) == []
    assert isinstance(status, StatusMessage)
    assert (status.dropped_capture, status.dropped_subscribers, status.subscribers) == (3, 7, 1)
    gap = gap_message(5, 4)
    assert schema_errors(gap, schema) == []
    assert parse_message(gap) == GapMessage(5, 4, gap)
    for built in (raw, _status_raw(), gap, {"v": 1, "type": "future"}):
        assert parse_message(built).type == built["type"]


def test_schema_checker_rejects_what_the_schema_forbids() -> None:
    schema = load_schema()
    raw = _detection_raw()
    raw["detections"][0]["score"] = 1.5
    assert any("maximum" in e for e in schema_errors(raw, schema))
    status = _status_raw()
    status["camera"]["state"] = "sleepy"
    assert schema_errors(status, schema)
    del status["fps"]
    assert schema_errors(status, schema)


def test_unknown_types_pass_through_and_other_versions_are_refused() -> None:
    assert isinstance(parse_message({"v": 1, "type": "future"}), UnknownMessage)
    with pytest.raises(ValueError, match="version"):
        parse_message({"v": 2, "type": "detections"})
    with pytest.raises(ValueError, match="malformed detections"):
        parse_message({"v": 1, "type": "detections", "seq": 1})


def test_format_message_is_one_readable_line() -> None:
    line = format_message(parse_message(_detection_raw()))
    assert line.startswith("seq     3 frame    41")
    assert "car 0.87 @ +9.2°" in line
    assert "\n" not in format_message(parse_message(_status_raw()))


def _hello(sub_id: int) -> bytes:
    return encode_line(
        hello_message(
            service_version="0.1.0", model_name="toycar", source="replay", hfov_deg=66.0,
            status_interval_s=1.0, subscriber_id=sub_id, queue_messages=32,
        )
    )


def test_subscriber_reconnects_with_backoff_when_the_service_restarts(tmp_path: Path) -> None:
    path = tmp_path / "detections.sock"
    received: list[object] = []
    subscriber = Subscriber(path, backoff_initial_s=0.05, backoff_max_s=0.2, timeout_s=10.0)

    def consume() -> None:
        for message in subscriber:
            received.append(message)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    time.sleep(0.3)  # no service yet: the subscriber keeps trying
    for round_ in range(2):
        publisher = Publisher(path, hello=_hello)
        publisher.start()
        deadline = time.monotonic() + 5
        while publisher.subscriber_count == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        publisher.publish(encode_line(_detection_raw(seq=round_)), is_detection=True)
        deadline = time.monotonic() + 5
        while sum(isinstance(m, DetectionMessage) for m in received) <= round_:
            assert time.monotonic() < deadline, "the subscriber did not reconnect"
            time.sleep(0.01)
        publisher.stop()
    subscriber.close()
    thread.join(5)
    assert not thread.is_alive()
    kinds = [type(m).__name__ for m in received]
    assert kinds == ["HelloMessage", "DetectionMessage", "HelloMessage", "DetectionMessage"]
    assert [m.seq for m in received if isinstance(m, DetectionMessage)] == [0, 1]
    assert subscriber.connections == 2
    assert isinstance(received[0], HelloMessage)


def test_subscriber_without_reconnect_reports_a_missing_service(tmp_path: Path) -> None:
    with pytest.raises(ConnectionError, match="is robovision running"):
        next(iter(Subscriber(tmp_path / "none.sock", reconnect=False)))


def test_subscribe_command_prints_one_line_per_message_and_stops_after_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from robovision.commands import subscribe

    path = tmp_path / "detections.sock"
    publisher = Publisher(path, hello=_hello)
    publisher.start()
    stop = threading.Event()

    def produce() -> None:
        seq = 0
        while not stop.wait(0.02):
            publisher.publish(encode_line(_detection_raw(seq=seq)), is_detection=True)
            seq += 1

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        parser = argparse.ArgumentParser()
        subscribe.add_parser(parser.add_subparsers())
        args = parser.parse_args(["subscribe", "--socket", str(path), "--count", "3", "--no-reconnect"])
        assert args.func(args) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith("hello: robovision 0.1.0, model toycar")
        assert len(lines) == 4
        assert all(line.startswith("seq ") and "car 0.87" in line for line in lines[1:])

        args = parser.parse_args(["subscribe", "--socket", str(path), "--count", "2", "--raw"])
        assert args.func(args) == 0
        raw = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [m["type"] for m in raw] == ["hello", "detections", "detections"]
    finally:
        stop.set()
        producer.join()
        publisher.stop()
