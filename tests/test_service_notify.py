"""systemd notifications over a real datagram socket, and the status statistics."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest

from robovision.service.notify import Notifier
from robovision.service.status import FrameStats, FrameTiming, RateMeter, percentile


def _receiver(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5.0)
    return sock


def _fields(datagram: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in datagram.decode().splitlines())


def test_ready_status_watchdog_and_stopping_reach_the_notify_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    receiver = _receiver(str(path))
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())}
    notifier = Notifier(env)
    assert notifier.enabled
    assert notifier.watchdog_interval_s == pytest.approx(1.5)
    assert notifier.ready("10 fps")
    assert _fields(receiver.recv(4096)) == {"READY": "1", "STATUS": "10 fps", "MAINPID": str(os.getpid())}
    assert notifier.watchdog()
    assert _fields(receiver.recv(4096)) == {"WATCHDOG": "1"}
    assert notifier.stopping()
    assert _fields(receiver.recv(4096))["STOPPING"] == "1"
    notifier.close()


def test_abstract_notify_socket_names_work() -> None:
    name = f"robovision-test-{os.getpid()}"
    receiver = _receiver(b"\0" + name.encode())
    notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
    assert notifier.status("camera lost")
    assert _fields(receiver.recv(4096)) == {"STATUS": "camera lost"}


def test_without_systemd_nothing_is_sent_and_no_watchdog_is_due() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.watchdog_interval_s is None
    assert not notifier.ready("x")


def test_watchdog_meant_for_another_process_is_ignored() -> None:
    notifier = Notifier({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"})
    assert notifier.watchdog_interval_s is None


def test_gone_notify_socket_is_reported_once_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert not notifier.watchdog()
    assert not notifier.watchdog()
    assert len([r for r in caplog.records if "NOTIFY_SOCKET" in r.getMessage()]) == 1


@pytest.mark.parametrize("q", [0, 5, 50, 95, 100])
def test_percentile_matches_numpy_linear_interpolation(q: float) -> None:
    values = np.random.default_rng(3).gamma(2.0, 10.0, size=257)
    assert percentile(values.tolist(), q) == pytest.approx(float(np.percentile(values, q)))


def test_rate_meter_reports_events_per_second_and_zero_when_stale() -> None:
    meter = RateMeter(50)
    for i in range(21):
        meter.tick(100.0 + i * 0.05)
    assert meter.rate(101.0) == pytest.approx(20.0)
    assert meter.rate(110.0) == 0.0


def test_frame_stats_keep_per_stage_percentiles() -> None:
    stats = FrameStats(window=10)
    for i in range(20):
        ms = float(i)
        stats.add(FrameTiming(ms, ms + 1, ms + 2, ms + 3, ms + 4, ms * 10), t_mono=i * 0.1)
    assert stats.frames == 20
    stages = stats.stage_percentiles()
    assert stages["capture"]["p50"] == pytest.approx(14.5)  # the last 10 values: 10..19
    assert stages["publish"]["p50"] == pytest.approx(18.5)
    expected_p95 = percentile([i * 10.0 for i in range(10, 20)], 95)
    assert stats.total.percentiles()["p95"] == pytest.approx(expected_p95)
