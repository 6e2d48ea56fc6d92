"""Camera faults leave the service up: absent at boot, lost mid-run, hung; it recovers by itself.

The service runs as a real subprocess on ``tests/fault_sources.py:FaultyReplay`` (the
bundled photographs through the real replay source), whose faults are switched by files.
"""

from __future__ import annotations

import time
from pathlib import Path

from service_support import Collector, ServiceProcess, service_config

TESTS = Path(__file__).resolve().parent


def _faulty_service(tmp_path: Path) -> tuple[Path, ServiceProcess]:
    faults = tmp_path / "faults"
    faults.mkdir()
    config = service_config(
        tmp_path,
        source="python:fault_sources:FaultyReplay",
        fps=10.0,
        source_extra="allow_python = true\nread_timeout_s = 1.0\nretry_initial_s = 0.1\nretry_max_s = 0.8",
        status_interval_s=0.25,
    )
    env = {"ROBOVISION_TEST_FAULTS": str(faults), "PYTHONPATH": str(TESTS)}
    return faults, ServiceProcess(config, env=env)


def _states_since(collector: Collector, index: int) -> list[str]:
    return [m["camera"]["state"] for _, m in collector.messages[index:] if m["type"] == "status"]


def _detections_since(collector: Collector, index: int) -> int:
    return sum(1 for _, m in collector.messages[index:] if m["type"] == "detections")


def test_camera_absent_at_boot_then_lost_mid_run_comes_back_without_a_restart(tmp_path: Path) -> None:
    faults, service = _faulty_service(tmp_path)
    (faults / "lost").touch()  # no camera at boot
    with service:
        service.wait_ready()
        reader = Collector(service.socket_path)
        reader.wait_for(lambda c: "absent" in _states_since(c, 0), what="status camera absent")
        assert _detections_since(reader, 0) == 0
        absent = next(m for m in reader.of_type("status") if m["camera"]["state"] == "absent")
        assert "no camera connected" in absent["camera"]["error"]

        (faults / "lost").unlink()  # plugged in
        reader.wait_for(lambda c: len(c.of_type("detections")) >= 5, what="detections once the camera is in")

        mark = len(reader.messages)
        (faults / "lost").touch()  # unplugged mid-run
        reader.wait_for(
            lambda c: c.of_type("status")[-1]["camera"]["losses"] == 1, what="status counting the loss"
        )
        t_lost = time.monotonic()
        time.sleep(5.0)
        states = _states_since(reader, mark)
        assert set(states) <= {"ok", "lost", "reconnecting"}
        assert states[-1] == "reconnecting"  # still retrying
        assert "no camera connected" in reader.of_type("status")[-1]["camera"]["error"]
        quiet_from = len(reader.messages)
        assert _detections_since(reader, quiet_from - 3) == 0  # nothing while the camera is away

        (faults / "lost").unlink()  # back after 5 s
        mark = len(reader.messages)
        reader.wait_for(lambda c: _detections_since(c, mark) >= 5, what="detections after the camera is back")
        reader.wait_for(lambda c: "ok" in _states_since(c, mark), what="status camera ok")
        assert reader.of_type("status")[-1]["camera"]["error"] is None
        assert reader.of_type("status")[-1]["camera"]["losses"] == 1
        recovered_s = time.monotonic() - t_lost - 5.0
        print(f"detections resumed {recovered_s:.2f} s after the camera came back")
        assert service.proc.poll() is None  # the same process all along
        uptimes = [m["uptime_s"] for m in reader.of_type("status")]
        assert uptimes == sorted(uptimes)
        reader.stop()
        assert service.terminate()[0] == 0


def test_a_hung_capture_is_detected_and_the_source_reopened(tmp_path: Path) -> None:
    faults, service = _faulty_service(tmp_path)
    with service:
        service.wait_ready()
        reader = Collector(service.socket_path)
        reader.wait_for(lambda c: len(c.of_type("detections")) >= 3, what="first detections")
        mark = len(reader.messages)
        t_hang = time.monotonic()
        (faults / "hang").touch()

        def hung_reported(c: Collector) -> bool:
            return any(
                m["type"] == "status" and "hung" in (m["camera"]["error"] or "") for _, m in c.messages[mark:]
            )

        reader.wait_for(hung_reported, timeout_s=10.0, what="a status reporting the hang")
        detected_s = time.monotonic() - t_hang
        print(f"hang reported {detected_s:.2f} s after the capture stopped")
        assert detected_s < 1.0 + 0.5 + 1.5  # read_timeout_s + grace + a status interval and a busy machine
        (faults / "hang").unlink()
        mark = len(reader.messages)
        reader.wait_for(lambda c: _detections_since(c, mark) >= 5, what="detections after the hang")
        reader.stop()
        assert service.terminate()[0] == 0
    assert "capture hung" in service.log()
