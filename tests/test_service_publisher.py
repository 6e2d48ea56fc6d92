"""The detection socket's publisher, on real Unix sockets in a temporary folder."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import stat
import struct
import threading
import time
from pathlib import Path

import pytest
from service_support import LineReader, connect, load_schema, schema_errors

from robovision.config import DEFAULT_SEND_BUFFER_BYTES
from robovision.errors import ConfigError, ServiceError, SocketInUseError
from robovision.messages import encode_line
from robovision.service.publisher import Publisher, bind_error


def _hello(sub_id: int) -> bytes:
    return encode_line({"v": 1, "type": "hello", "subscriber_id": sub_id})


def _line(seq: int, pad: int = 0) -> bytes:
    return encode_line({"v": 1, "type": "detections", "seq": seq, "pad": "x" * pad})


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "detections.sock"


def _publisher(path: Path, **options: object) -> Publisher:
    pub = Publisher(path, hello=_hello, **options)  # type: ignore[arg-type]
    pub.start()
    return pub


def _wait_for(condition, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_every_subscriber_gets_hello_then_every_line_in_order(sock_path: Path) -> None:
    pub = _publisher(sock_path, queue_messages=400)
    try:
        clients = [connect(sock_path) for _ in range(2)]
        _wait_for(lambda: pub.subscriber_count == 2)
        for seq in range(300):
            pub.publish(_line(seq, pad=200), is_detection=True)
        for client in clients:
            reader = iter(LineReader(client))
            hello = next(reader)
            assert hello["type"] == "hello"
            seqs = [next(reader)["seq"] for _ in range(300)]
            assert seqs == list(range(300))
    finally:
        pub.stop()


def test_socket_file_is_0660_in_a_private_folder_and_removed_at_stop(sock_path: Path) -> None:
    pub = _publisher(sock_path)
    info = os.stat(sock_path)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o660
    assert stat.S_IMODE(os.stat(sock_path.parent).st_mode) == 0o700
    pub.stop()
    assert not sock_path.exists()


def test_socket_group_is_applied(sock_path: Path) -> None:
    import grp

    group = grp.getgrgid(os.getgid()).gr_name if os.getuid() != 0 else "video"
    pub = _publisher(sock_path, group=group)
    try:
        assert os.stat(sock_path).st_gid == grp.getgrnam(group).gr_gid
    finally:
        pub.stop()


def test_stuck_subscriber_loses_its_oldest_lines_and_is_told_how_many(sock_path: Path) -> None:
    total, queue = 600, 100
    pub = _publisher(sock_path, queue_messages=queue, send_buffer_bytes=4096)
    try:
        stuck = connect(sock_path, rcvbuf=4096)
        healthy = connect(sock_path)
        _wait_for(lambda: pub.subscriber_count == 2)
        healthy_seqs: list[int] = []
        reader_done = threading.Event()

        def read_healthy() -> None:
            for message in LineReader(healthy):
                if message["type"] == "detections":
                    healthy_seqs.append(message["seq"])
                    if message["seq"] == total - 1:
                        break
            reader_done.set()

        thread = threading.Thread(target=read_healthy)
        thread.start()
        longest_publish_s = 0.0
        for seq in range(total):
            t0 = time.perf_counter()
            pub.publish(_line(seq, pad=1000), is_detection=True)
            longest_publish_s = max(longest_publish_s, time.perf_counter() - t0)
            time.sleep(0.002)
        assert reader_done.wait(20)
        thread.join()
        assert healthy_seqs == list(range(total))
        print(f"longest publish() call with a stuck subscriber: {longest_publish_s * 1000:.2f} ms")

        stats = {s.sub_id: s for s in pub.subscriber_stats()}
        # The stuck one (id 1) holds at most its queue and a few lines in the socket buffers.
        assert stats[1].dropped > total - queue - 20
        assert stats[2].dropped == 0

        # Now the stuck subscriber reads: whole lines, the oldest lost, the loss reported exactly.
        stuck.settimeout(5.0)
        received: list[int] = []
        reported = 0
        for message in LineReader(stuck):
            if message["type"] == "gap":
                reported += message["dropped_detections"]
                assert message["dropped"] == message["dropped_detections"]
            elif message["type"] == "detections":
                received.append(message["seq"])
                if message["seq"] == total - 1:
                    break
        assert received == sorted(received)
        assert len(received) + reported == total
        assert received[-queue:] == list(range(total - queue, total))  # the newest lines are kept
        assert reported == stats[1].dropped
    finally:
        pub.stop()


def test_partial_writes_are_completed_so_every_line_is_whole(sock_path: Path) -> None:
    pub = _publisher(sock_path, queue_messages=1000, send_buffer_bytes=2048)
    try:
        client = connect(sock_path, rcvbuf=2048)
        _wait_for(lambda: pub.subscriber_count == 1)
        for seq in range(40):
            pub.publish(_line(seq, pad=60_000 + seq), is_detection=True)
        seqs = []
        for message in LineReader(client, chunk=777):
            if message["type"] == "detections":
                assert len(message["pad"]) == 60_000 + message["seq"]
                seqs.append(message["seq"])
                if message["seq"] == 39:
                    break
        assert seqs == list(range(40))
    finally:
        pub.stop()


def test_subscriber_that_resets_mid_message_is_dropped_quietly(sock_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    pub = _publisher(sock_path, send_buffer_bytes=4096, queue_messages=100)
    try:
        leaver = connect(sock_path, rcvbuf=4096)
        stayer = connect(sock_path)
        _wait_for(lambda: pub.subscriber_count == 2)
        for seq in range(20):
            pub.publish(_line(seq, pad=20_000), is_detection=True)
        assert len(leaver.recv(1000)) > 0  # part of a line
        leaver.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        leaver.close()  # reset with unread data
        for seq in range(20, 60):
            pub.publish(_line(seq, pad=20_000), is_detection=True)
        seqs: list[int] = []
        reader = iter(LineReader(stayer))
        while len(seqs) < 60:
            message = next(reader)
            if message["type"] == "detections":
                seqs.append(message["seq"])
        assert seqs == list(range(60))
        _wait_for(lambda: pub.subscriber_count == 1)
        assert pub.alive
        assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    finally:
        pub.stop()


def test_subscribers_beyond_the_cap_get_a_one_line_json_error(sock_path: Path) -> None:
    pub = _publisher(sock_path, max_subscribers=2)
    try:
        first, second = connect(sock_path), connect(sock_path)
        _wait_for(lambda: pub.subscriber_count == 2)
        extra = connect(sock_path)
        data = b""
        while not data.endswith(b"\n"):
            chunk = extra.recv(4096)
            assert chunk, "closed before the error line"
            data += chunk
        message = json.loads(data)
        assert message["type"] == "error"
        assert message["code"] == "too_many_subscribers"
        assert "max_subscribers" in message["message"]
        assert extra.recv(10) == b""  # then closed
        assert pub.subscriber_count == 2
        first.close()
        _wait_for(lambda: pub.subscriber_count == 1)
        second.close()
    finally:
        pub.stop()


def test_what_a_subscriber_sends_is_discarded_and_a_flood_disconnects_it(sock_path: Path) -> None:
    pub = _publisher(sock_path, max_inbound_bytes_per_s=10_000)
    try:
        polite = connect(sock_path)
        flooder = connect(sock_path)
        _wait_for(lambda: pub.subscriber_count == 2)
        polite.sendall(b"hello there\n" * 10)
        flooder.settimeout(5.0)
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(1000):
                flooder.sendall(b"x" * 4096)
                time.sleep(0.001)
        _wait_for(lambda: pub.subscriber_count == 1)
        pub.publish(_line(0), is_detection=True)
        reader = iter(LineReader(polite))
        assert next(reader)["type"] == "hello"
        assert next(reader)["seq"] == 0
    finally:
        pub.stop()


def test_stale_socket_file_is_reclaimed(sock_path: Path) -> None:
    sock_path.parent.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock_path))
    dead.close()  # the file stays, nobody listens: what a crash leaves
    assert sock_path.exists()
    pub = _publisher(sock_path)
    try:
        client = connect(sock_path)
        assert LineReader(client).next()["type"] == "hello"
    finally:
        pub.stop()


def test_a_live_socket_is_not_taken_over(sock_path: Path) -> None:
    first = _publisher(sock_path)
    try:
        second = Publisher(sock_path, hello=_hello)
        with pytest.raises(SocketInUseError, match="already running"):
            second.start()
        assert sock_path.exists()
        assert LineReader(connect(sock_path)).next()["type"] == "hello"
    finally:
        first.stop()


def test_a_file_that_is_not_a_socket_is_left_alone(sock_path: Path) -> None:
    sock_path.parent.mkdir(mode=0o700)
    sock_path.write_text("not a socket")
    with pytest.raises(ConfigError, match="not a socket"):
        Publisher(sock_path, hello=_hello).start()
    assert sock_path.read_text() == "not a socket"


@pytest.mark.parametrize(
    ("error", "kind", "hint"),
    [
        (errno.ENOENT, ConfigError, "takes no new files"),
        (errno.EPERM, ConfigError, "takes no new files"),
        (errno.EACCES, ConfigError, "chown USER"),
        (errno.EROFS, ConfigError, "read-only filesystem"),
        (errno.EADDRINUSE, SocketInUseError, "stop the other robovision"),
        (errno.ENOBUFS, ServiceError, "cannot bind"),
    ],
)
def test_each_bind_failure_gets_the_hint_for_its_cause(
    tmp_path: Path, error: int, kind: type[Exception], hint: str
) -> None:
    path = tmp_path / "detections.sock"
    found = bind_error(path, OSError(error, os.strerror(error)))
    assert type(found) is kind
    assert hint in str(found) and str(path) in str(found)


def _old_lines_ahead_of_the_gap(sock_path: Path, send_buffer_bytes: int) -> int:
    """Detection lines a reader that stalled through 200 lines gets before its ``gap`` message."""
    pub = _publisher(sock_path, send_buffer_bytes=send_buffer_bytes, queue_messages=32)
    try:
        stalled = connect(sock_path)  # reads nothing while 200 lines go out
        _wait_for(lambda: pub.subscriber_count == 1)
        for seq in range(200):
            pub.publish(_line(seq, pad=900), is_detection=True)  # a detection message's size
            time.sleep(0.004)
        _wait_for(lambda: pub.subscriber_stats()[0].queued == 32)
        before_gap = 0
        for message in LineReader(stalled):
            if message["type"] == "gap":
                return before_gap
            before_gap += message["type"] == "detections"
        raise AssertionError("no gap message")
    finally:
        pub.stop()


def test_the_default_send_buffer_holds_only_a_few_lines_for_a_reader_that_stalls(sock_path: Path) -> None:
    held = _old_lines_ahead_of_the_gap(sock_path, DEFAULT_SEND_BUFFER_BYTES)
    held_by_system_default = _old_lines_ahead_of_the_gap(sock_path, 0)
    print(
        f"old lines ahead of the gap: {held} with SO_SNDBUF {DEFAULT_SEND_BUFFER_BYTES}, "
        f"{held_by_system_default} with the system default"
    )
    assert 1 <= held <= 8  # about half a second at 15 frames per second
    assert held_by_system_default > 40


def test_a_flooding_subscriber_is_told_why_before_it_is_dropped(sock_path: Path) -> None:
    pub = _publisher(sock_path, max_inbound_bytes_per_s=10_000)
    try:
        flooder = connect(sock_path)
        _wait_for(lambda: pub.subscriber_count == 1)
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(1000):
                flooder.sendall(b"x" * 4096)
                time.sleep(0.001)
        messages = []
        with contextlib.suppress(ConnectionResetError):
            messages.extend(LineReader(flooder))
        assert [m["type"] for m in messages] == ["hello", "error"]
        assert messages[1]["code"] == "too_much_input"
        assert "max_inbound_bytes_per_s" in messages[1]["message"]
        assert schema_errors(messages[1], load_schema()) == []
    finally:
        pub.stop()


def test_tcp_listener_is_loopback_and_carries_the_same_lines(sock_path: Path) -> None:
    pub = _publisher(sock_path, tcp_host="127.0.0.1", tcp_port=_free_port())
    try:
        assert pub.tcp_address is not None
        assert pub.tcp_address[0] == "127.0.0.1"
        client = socket.create_connection(pub.tcp_address, timeout=5)
        _wait_for(lambda: pub.subscriber_count == 1)
        pub.publish(_line(7), is_detection=True)
        reader = iter(LineReader(client))
        assert next(reader)["type"] == "hello"
        assert next(reader)["seq"] == 7
    finally:
        pub.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
