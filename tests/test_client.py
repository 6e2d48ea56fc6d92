"""robovision.client: typed messages, and a subscriber that reconnects when the service restarts."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from service_support import load_schema, robovision_command, schema_errors

from robovision.client import (
    ConnectionEvent,
    DetectionMessage,
    GapMessage,
    HelloMessage,
    StatusMessage,
    Subscriber,
    UnknownMessage,
    format_message,
    parse_message,
)
from robovision.commands.subscribe import Notices
from robovision.detection import Detection, FrameResult
from robovision.errors import EXIT_NO_SOURCE, ServiceUnavailableError
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
    events: list[ConnectionEvent] = []
    subscriber = Subscriber(
        path, backoff_initial_s=0.05, backoff_max_s=0.2, timeout_s=10.0, on_connection=events.append
    )

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
    deadline = time.monotonic() + 5
    while len(events) < 5:  # the last loss, told before the subscriber is closed
        assert time.monotonic() < deadline, events
        time.sleep(0.01)
    subscriber.close()
    thread.join(5)
    assert not thread.is_alive()
    kinds = [type(m).__name__ for m in received]
    assert kinds == ["HelloMessage", "DetectionMessage", "HelloMessage", "DetectionMessage"]
    assert [m.seq for m in received if isinstance(m, DetectionMessage)] == [0, 1]
    assert subscriber.connections == 2
    assert isinstance(received[0], HelloMessage)
    told = [(e.kind, e.reason, e.reconnect) for e in events]
    assert told == [
        ("waiting", "no socket", False),
        ("connected", "", False),
        ("waiting", "connection lost", False),
        ("connected", "", True),
        ("waiting", "connection lost", False),
    ]


def _stale_socket(path: Path) -> Path:
    """A socket file nobody listens on: what a crashed service leaves."""
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()
    return path


def test_subscriber_without_reconnect_names_the_socket_the_cause_and_how_to_start_the_service(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "none.sock"
    with pytest.raises(ServiceUnavailableError, match="the socket does not exist; start it") as info:
        next(iter(Subscriber(missing, reconnect=False)))
    assert f"no robovision service at {missing}" in str(info.value)
    assert "systemctl start robovision" in str(info.value)
    assert isinstance(info.value, ConnectionError)  # what callers caught before
    stale = _stale_socket(tmp_path / "stale.sock")
    with pytest.raises(ServiceUnavailableError, match=r"nothing answers at .*: the service that made it"):
        next(iter(Subscriber(stale, reconnect=False)))


def test_connect_timeout_bounds_the_wait_for_a_service_that_is_missing(tmp_path: Path) -> None:
    events: list[ConnectionEvent] = []
    subscriber = Subscriber(
        tmp_path / "none.sock",
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
        connect_timeout_s=0.5,
        on_connection=events.append,
    )
    t0 = time.monotonic()
    with pytest.raises(ServiceUnavailableError, match=r"does not exist; .* \(no connection for 0.5 s\)"):
        next(iter(subscriber))
    assert time.monotonic() - t0 >= 0.5
    assert [(e.kind, e.reason) for e in events] == [("waiting", "no socket")]
    assert subscriber.connections == 0


def test_connect_timeout_also_bounds_the_wait_after_the_service_went_away(tmp_path: Path) -> None:
    path = tmp_path / "detections.sock"
    publisher = Publisher(path, hello=_hello)
    publisher.start()
    events: list[ConnectionEvent] = []
    subscriber = Subscriber(path, backoff_initial_s=0.05, connect_timeout_s=0.5, on_connection=events.append)
    messages = iter(subscriber)
    assert isinstance(next(messages), HelloMessage)
    publisher.stop()
    with pytest.raises(ServiceUnavailableError, match=r"no connection for 0\.5 s"):
        next(messages)
    assert [(e.kind, e.reason) for e in events] == [("waiting", "connection lost")]


def test_outage_notices_are_rate_limited_and_count_what_they_held_back() -> None:
    stream = io.StringIO()
    notices = Notices(stream, every_s=0.2, burst=1)
    path = Path("/run/robovision/detections.sock")
    for _ in range(3):
        notices(ConnectionEvent("waiting", path, reason="connection lost"))
        notices(ConnectionEvent("connected", path, reconnect=True, down_s=0.1))
    time.sleep(0.25)
    notices(ConnectionEvent("waiting", path, reason="no socket"))
    lines = stream.getvalue().splitlines()
    assert lines == [
        f"robovision subscribe: waiting for the service at {path} (connection lost); start it with "
        "`robovision run` or `sudo systemctl start robovision`",
        f"robovision subscribe: reconnected to {path} after 0.1 s",
        f"robovision subscribe: waiting for the service at {path} (no socket); start it with "
        "`robovision run` or `sudo systemctl start robovision` (2 earlier outage(s) not shown)",
    ]


class _Cli:
    """``robovision subscribe ...`` as a real subprocess, its stderr lines collected as they come."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*robovision_command(), "subscribe", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def wait_for_stderr(self, text: str, timeout_s: float = 30.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = [line for line in self.stderr if text in line]
            if found:
                return found[-1]
            assert self.proc.poll() is None or self._reader.is_alive(), f"exited: {self.stderr}"
            time.sleep(0.02)
        raise AssertionError(f"no {text!r} on stderr: {self.stderr}")

    def finish(self, timeout_s: float = 30.0) -> tuple[int, str]:
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        code = self.proc.wait(timeout_s)
        self._reader.join(5)
        return code, out


def test_subscribe_cli_with_no_service_exits_3_with_one_line_naming_the_socket(tmp_path: Path) -> None:
    for socket_path, cause in (
        (tmp_path / "none.sock", "the socket does not exist"),
        (_stale_socket(tmp_path / "stale.sock"), "nothing answers at"),
    ):
        cli = _Cli("--socket", str(socket_path), "--no-reconnect")
        code, out = cli.finish()
        assert code == EXIT_NO_SOURCE
        assert out == ""
        assert len(cli.stderr) == 1, cli.stderr
        assert cli.stderr[0].startswith("robovision subscribe: error: ")
        assert str(socket_path) in cli.stderr[0] and cause in cli.stderr[0]
        assert "robovision run" in cli.stderr[0]


def test_subscribe_cli_refused_for_too_many_subscribers_exits_3_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "detections.sock"
    publisher = Publisher(path, hello=_hello, max_subscribers=1)
    publisher.start()
    try:
        with Subscriber(path, reconnect=False) as first:
            assert isinstance(next(iter(first)), HelloMessage)
            cli = _Cli("--socket", str(path))
            code, out = cli.finish()
    finally:
        publisher.stop()
    assert code == EXIT_NO_SOURCE
    assert out.startswith("error: too_many_subscribers: this service accepts at most 1 subscribers")
    refused = f"robovision subscribe: error: the service at {path} refused this subscriber"
    assert cli.stderr[-1].startswith(refused)
    assert not any("Traceback" in line for line in cli.stderr)


def test_subscribe_cli_says_when_it_waits_for_the_service_and_when_it_is_back(tmp_path: Path) -> None:
    path = tmp_path / "detections.sock"
    cli = _Cli("--socket", str(path), "--count", "1")
    try:
        cli.wait_for_stderr(f"waiting for the service at {path} (no socket)")
        for round_, notice in enumerate((f"connected to {path} after", f"reconnected to {path} after")):
            publisher = Publisher(path, hello=_hello)
            publisher.start()
            try:
                cli.wait_for_stderr(notice)
                if round_ == 1:
                    publisher.publish(encode_line(_detection_raw(seq=7)), is_detection=True)
                    code, out = cli.finish()
            finally:
                publisher.stop()
            if round_ == 0:
                cli.wait_for_stderr(f"waiting for the service at {path} (connection lost)")
    finally:
        if cli.proc.poll() is None:
            cli.proc.kill()
    assert code == 0, cli.stderr
    assert [line.split(":")[0] for line in out.splitlines()] == ["hello", "hello", "seq     7 frame    41"]
    assert len([line for line in cli.stderr if "waiting for the service" in line]) == 2


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
