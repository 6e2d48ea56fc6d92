"""`robovision demo`: the service on the bundled photographs as a real subprocess, watched."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from service_support import TOYCAR_MODEL, robovision_command


def _demo_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("robovision-demo-*")}


def test_demo_runs_the_service_prints_messages_and_stops_it_cleanly() -> None:
    before = _demo_folders()
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    result = subprocess.run(
        [*robovision_command(), "demo", "--count", "5", "--fps", "10"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    expected_model = TOYCAR_MODEL.name if TOYCAR_MODEL.exists() else "ssd_mobilenet_v1_1_metadata_1.tflite"
    assert lines[0].startswith(f"demo: model {expected_model}, replaying ")
    assert any(line.startswith("hello: robovision") for line in lines)
    detections = [line for line in lines if line.startswith("seq ")]
    assert len(detections) >= 5
    assert all(": " in line for line in detections)
    assert any(line.startswith("status: ") and "camera ok" in line for line in lines)
    assert "service exited with code 0" in result.stdout
    assert lines[-1] == "demo: service stopped cleanly (exit 0, socket removed)"
    assert _demo_folders() == before  # its temporary folder is gone
