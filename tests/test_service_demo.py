"""`robovision demo`: the service on the bundled photographs as a real subprocess, watched."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from service_support import TOYCAR_MODEL, robovision_command

from robovision.errors import EXIT_USAGE


def _demo_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("robovision-demo-*")}


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*robovision_command(), "demo", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=_env(),
        check=False,
    )


def _processes_mentioning(text: str) -> list[int]:
    """Ids of the processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue  # gone meanwhile
    return found


def test_demo_runs_the_service_prints_count_messages_and_stops_it_cleanly() -> None:
    before = _demo_folders()
    result = _demo("--count", "3", "--fps", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"demo: model {TOYCAR_MODEL.name}, replaying ")
    assert any(line.startswith("hello: robovision") and "source replay:images" in line for line in lines)
    detections = [line for line in lines if line.startswith("seq ")]
    assert len(detections) == 3  # --count means what it says, whatever came while waiting for a status
    assert any("toy_car" in line for line in detections)
    statuses = [line for line in lines if line.startswith("status: ")]
    assert len(statuses) == 1 and "camera ok" in statuses[0]
    assert "service exited with code 0" in result.stdout
    assert lines[-1] == "demo: service stopped cleanly (exit 0, socket removed)"
    assert _demo_folders() == before  # its temporary folder is gone


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--images", "/no/such/photos"), "--images /no/such/photos: no such folder or file"),
        (("--images", "{empty}"), "--images {empty}: no images in {empty}"),
        (("--model", "/no/such/model.tflite"), "--model /no/such/model.tflite: no such file"),
        (("--fps", "0"), "--fps 0.0 is not valid; expected a number above 0 and up to 240"),
        (("--count", "0"), "--count must be 1 or more"),
    ],
)
def test_bad_options_are_refused_before_anything_starts(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    before = _demo_folders()
    args = tuple(a.format(empty=tmp_path) for a in args)
    result = _demo(*args)
    assert result.returncode == EXIT_USAGE
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"robovision demo: error: {message.format(empty=tmp_path)}")
    assert _demo_folders() == before


def test_sigterm_stops_the_service_and_removes_the_temporary_folder_as_ctrl_c_does() -> None:
    demo = subprocess.Popen(
        [*robovision_command(), "demo", "--count", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert demo.stdout is not None
        folder = None
        for line in demo.stdout:
            match = re.search(r"--config (\S+)/config\.toml", line)
            folder = Path(match.group(1)) if match else folder
            if line.startswith("seq "):
                break
        assert folder is not None and folder.exists()
        assert len(_processes_mentioning(str(folder))) == 1  # the service
        demo.send_signal(signal.SIGTERM)
        _, err = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 128 + signal.SIGTERM
    assert "SIGTERM received; service stopped, temporary folder removed" in err
    assert "Traceback" not in err
    assert not folder.exists()
    deadline = time.monotonic() + 5
    while _processes_mentioning(str(folder)) and time.monotonic() < deadline:
        time.sleep(0.05)  # an exited child may linger a moment as a zombie of its reaper
    assert _processes_mentioning(str(folder)) == []
