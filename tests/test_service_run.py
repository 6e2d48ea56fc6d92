"""`robovision run` as a real subprocess on the replay of the bundled photographs, with real
subscribers on its Unix socket."""

from __future__ import annotations

import re
import signal
import socket
import statistics
import struct
import time
from pathlib import Path

import pytest
from service_support import (
    TOYCAR_MODEL,
    Collector,
    LineReader,
    ServiceProcess,
    connect,
    load_schema,
    schema_errors,
    service_config,
)

from robovision.errors import EXIT_ALREADY_RUNNING, EXIT_MODEL, EXIT_USAGE

FPS = 10.0
"""Replay rate: well below what the model manages on one busy core, so the loop keeps pace."""


def _seqs(collector: Collector) -> list[int]:
    return [m["seq"] for m in collector.of_type("detections")]


def _median_fps(collector: Collector, first_seq: int, count: int) -> float:
    """Frame rate from the publish times of ``count`` consecutive messages from ``first_seq``."""
    by_seq = {m["seq"]: m["t_publish_wall"] for m in collector.of_type("detections")}
    stamps = [by_seq[s] for s in range(first_seq, first_seq + count)]
    return 1.0 / statistics.median(b - a for a, b in zip(stamps, stamps[1:]))


def _assert_contiguous(seqs: list[int]) -> None:
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a subscriber that keeps up saw a gap"


def test_stuck_subscriber_does_not_slow_the_loop_and_sigterm_is_clean(tmp_path: Path) -> None:
    config = service_config(
        tmp_path, fps=FPS, socket_extra="queue_messages = 8\nsend_buffer_bytes = 4096", status_interval_s=0.5
    )
    frames = 40
    with ServiceProcess(config) as service:
        service.wait_ready()
        readers = [Collector(service.socket_path), Collector(service.socket_path)]
        readers[0].wait_for(lambda c: len(c.of_type("detections")) >= frames + 2, what="phase 1 frames")
        start_1 = _seqs(readers[0])[1]

        stuck = connect(service.socket_path, rcvbuf=4096)  # never reads
        stuck_id = LineReader(stuck, chunk=1).next()["subscriber_id"]  # only its hello line

        def stuck_is_dropping(c: Collector) -> bool:
            for status in c.of_type("status"):
                for entry in status["subscriber_drops"]:
                    if entry["id"] == stuck_id and entry["dropped"] > 0:
                        return True
            return False

        readers[0].wait_for(stuck_is_dropping, what="the stuck subscriber to back up")
        start_2 = _seqs(readers[0])[-1] + 1
        readers[0].wait_for(lambda c: _seqs(c)[-1] >= start_2 + frames, what="phase 2 frames")
        readers[1].wait_for(lambda c: _seqs(c)[-1] >= start_2 + frames, what="phase 2 frames")

        fps_free = _median_fps(readers[0], start_1, frames)
        fps_stuck = _median_fps(readers[0], start_2, frames)
        print(f"loop rate: {fps_free:.2f} fps without, {fps_stuck:.2f} fps with a stuck subscriber")
        assert abs(fps_stuck - fps_free) / fps_free < 0.10
        assert fps_free == pytest.approx(FPS, rel=0.10)

        code, took_s = service.terminate()
        for reader in readers:
            reader.stop()
            assert reader.error is None
            _assert_contiguous(_seqs(reader))
            assert not reader.of_type("gap")
        stuck.close()
        assert code == 0, service.log()
        assert took_s < 2.0
        assert not service.socket_path.exists()
        print(f"SIGTERM to exit: {took_s:.2f} s")

        schema = load_schema()
        for _, message in readers[0].messages:
            assert schema_errors(message, schema) == []
        last_status = readers[0].of_type("status")[-1]
        assert last_status["camera"]["state"] == "ok"
        assert last_status["backend"] == "litert"
        # Every message names the source alike: the source's own name.
        (hello,) = readers[0].of_type("hello")
        names = {hello["source"], last_status["source"]}
        names |= {m["source"] for m in readers[0].of_type("detections")}
        assert names == {"replay:images"}


def test_crash_leaves_a_socket_the_next_start_reclaims_and_a_second_instance_is_refused(
    tmp_path: Path,
) -> None:
    config = service_config(tmp_path, fps=FPS)
    with ServiceProcess(config) as first:
        first.wait_ready()
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
    assert first.socket_path.exists()  # what a crash leaves behind
    with pytest.raises(ConnectionRefusedError):
        connect(first.socket_path)

    with ServiceProcess(config) as second:
        second.wait_ready()
        reader = Collector(second.socket_path)
        reader.wait_for(lambda c: len(c.of_type("detections")) >= 2, what="detections from the restart")
        with ServiceProcess(config) as third:
            code = third.proc.wait(60)
            assert code == EXIT_ALREADY_RUNNING
            assert "already running on" in third.log()
        reader.wait_for(lambda c: len(c.of_type("detections")) >= 4, what="detections after the refusal")
        reader.stop()
        assert second.terminate()[0] == 0
    assert "removing stale socket" in second.log()


def test_small_send_buffer_large_messages_and_a_subscriber_leaving_mid_message(tmp_path: Path) -> None:
    config = service_config(
        tmp_path,
        fps=FPS,
        model_extra="score_threshold = 0.01\nmax_detections = 100",
        socket_extra="send_buffer_bytes = 1024\nqueue_messages = 4",
    )
    with ServiceProcess(config) as service:
        service.wait_ready()
        slow = Collector(service.socket_path, rcvbuf=1024, chunk=97)
        for _ in range(3):
            leaver = connect(service.socket_path, rcvbuf=1024)
            time.sleep(0.3)
            assert leaver.recv(700)  # part of the stream, then gone mid-message with a reset
            leaver.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            leaver.close()
        slow.wait_for(lambda c: len(c.of_type("detections")) >= 30, what="30 detection messages")
        slow.stop()
        assert service.proc.poll() is None
        assert service.terminate()[0] == 0

    assert slow.error is None
    detections = slow.of_type("detections")
    sizes = [len(str(m)) for m in detections]
    assert max(sizes) > 1024  # each message needs several partial writes
    # Every gap is reported exactly: seq jumps equal the detection messages it says were dropped.
    reported, seqs = 0, []
    for _, message in slow.messages:
        if message["type"] == "gap":
            reported += message["dropped_detections"]
        elif message["type"] == "detections":
            seqs.append(message["seq"])
    assert seqs == sorted(seqs)
    assert seqs[-1] - seqs[0] + 1 == len(seqs) + reported
    schema = load_schema()
    for _, message in slow.messages:
        assert schema_errors(message, schema) == []
    log = service.log()
    assert "Traceback" not in log and " ERROR " not in log


def test_model_that_cannot_load_stops_the_service_with_exit_model(tmp_path: Path) -> None:
    bogus = tmp_path / "broken.tflite"
    bogus.write_bytes(b"this is not a flatbuffer" * 10)
    with ServiceProcess(service_config(tmp_path, model=bogus)) as service:
        code = service.proc.wait(60)
        assert code == EXIT_MODEL
        assert "broken.tflite" in service.log()
        assert "Traceback" not in service.log()
    assert not service.socket_path.exists()


def test_sighup_reloads_the_score_threshold_without_a_restart(tmp_path: Path) -> None:
    config = service_config(tmp_path, fps=FPS, model_extra="score_threshold = 0.97")
    with ServiceProcess(config) as service:
        service.wait_ready()
        reader = Collector(service.socket_path)
        reader.wait_for(lambda c: len(c.of_type("detections")) >= 15, what="detections before the reload")
        before = reader.of_type("detections")
        assert all(d["score"] >= 0.97 for m in before for d in m["detections"])

        config.write_text(config.read_text().replace("score_threshold = 0.97", "score_threshold = 0.3"))
        service.proc.send_signal(signal.SIGHUP)

        def reloaded(c: Collector) -> bool:
            return any(s["config_generation"] == 2 for s in c.of_type("status"))

        reader.wait_for(reloaded, what="a status after the reload")
        status = next(s for s in reader.of_type("status") if s["config_generation"] == 2)
        assert status["thresholds"]["score_threshold"] == 0.3
        seq_after = _seqs(reader)[-1] + 1
        reader.wait_for(lambda c: _seqs(c)[-1] >= seq_after + 15, what="detections after the reload")
        after = [m for m in reader.of_type("detections") if m["seq"] >= seq_after]
        scores = [d["score"] for m in after for d in m["detections"]]
        assert all(s >= 0.3 for s in scores)
        assert any(s < 0.97 for s in scores)  # the new threshold lets weaker detections through

        # A broken edit is refused and the running settings stay.
        config.write_text(config.read_text().replace("score_threshold = 0.3", "score_treshold = 0.1"))
        service.proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert all(s["config_generation"] <= 2 for s in reader.of_type("status"))
        assert service.proc.poll() is None
        reader.stop()
        code, took_s = service.terminate(signum=signal.SIGINT)
        assert code == 0
        assert took_s < 2.0
    assert "config not reloaded" in service.log()
    assert "SIGINT received; stopping" in service.log()
    assert "did you mean 'score_threshold'" in service.log()


def test_under_systemd_ready_comes_after_the_first_frame_then_watchdog_pings(tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(notify_path))
    receiver.settimeout(30.0)
    env = {"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "1000000"}
    config = service_config(tmp_path, fps=FPS)
    with ServiceProcess(config, env=env) as service:
        datagrams: list[dict[str, str]] = []
        while not any("READY" in d for d in datagrams):
            datagrams.append(dict(line.split("=", 1) for line in receiver.recv(4096).decode().splitlines()))
        ready = next(d for d in datagrams if "READY" in d)
        assert ready["MAINPID"] == str(service.proc.pid)
        assert "camera ok" in ready["STATUS"]
        assert connect(service.socket_path)  # bound before READY
        t0 = time.monotonic()
        pings = 0
        while pings < 4:  # one every WatchdogSec / 2 while the loop turns
            assert time.monotonic() - t0 < 15.0, f"only {pings} watchdog pings"
            pings += receiver.recv(4096) == b"WATCHDOG=1"
        service.proc.send_signal(signal.SIGTERM)
        tail = []
        while service.proc.poll() is None or not tail:
            try:
                tail.append(receiver.recv(4096).decode())
            except TimeoutError:
                break
            if any("STOPPING=1" in t for t in tail):
                break
        assert any("STOPPING=1" in t for t in tail)
        assert service.proc.wait(5) == 0


def test_a_folder_source_is_read_on_request_so_every_frame_is_processed_then_the_service_ends(
    tmp_path: Path,
) -> None:
    from service_support import IMAGES

    count = len([p for p in IMAGES.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")])
    with ServiceProcess(service_config(tmp_path, source=str(IMAGES)), "--no-loop") as service:
        service.wait_ready()
        reader = Collector(service.socket_path)
        assert service.proc.wait(120) == 0  # the folder's end stops the service
        reader.join(10)
    frame_ids = [m["frame_id"] for m in reader.of_type("detections")]
    assert frame_ids == list(range(frame_ids[0], count))  # every frame, in order, to the last
    assert reader.of_type("status")[-1]["dropped"]["capture"] == 0
    assert not service.socket_path.exists()


@pytest.mark.parametrize(
    ("socket_arg", "message"),
    [
        ("{tmp}", r"socket path \S+ is a folder; give the path of the socket file itself"),
        ("{tmp}/robot/detections.sock", r"folder of socket path \S+ does not exist; create it .*mkdir -p"),
        ("/proc/robovision-test.sock", r"/proc takes no new files|/proc is not writable"),
    ],
)
def test_a_socket_path_that_cannot_be_used_stops_the_service_with_a_config_error(
    tmp_path: Path, socket_arg: str, message: str
) -> None:
    config = service_config(tmp_path, model=TOYCAR_MODEL)
    with ServiceProcess(config, "--socket", socket_arg.format(tmp=tmp_path)) as service:
        code = service.proc.wait(60)
    log = service.log()
    assert code == EXIT_USAGE, log  # not 1, which systemd would restart in a loop
    assert re.search(message, log), log
    assert "Traceback" not in log
    assert not (tmp_path / "robot").exists()  # an explicit path's folder is not made


def test_a_replay_of_a_path_that_does_not_exist_is_refused_at_start(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-photos"
    config = service_config(tmp_path, source=f"replay:{missing}", model=TOYCAR_MODEL)
    with ServiceProcess(config) as service:
        code = service.proc.wait(60)
    log = service.log()
    assert code == EXIT_USAGE, log
    assert f"{missing} does not exist; fix the path" in log
    assert "Traceback" not in log
    assert not service.socket_path.exists()
