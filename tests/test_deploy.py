"""deploy/install.sh: refuses where it does not belong, and its dry run prints every step."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "deploy" / "install.sh"
BOARD_FILE = Path("/proc/device-tree/model")
ON_A_PI = BOARD_FILE.exists() and "Raspberry Pi" in BOARD_FILE.read_text(errors="replace")
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    command = ["bash", str(SCRIPT), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_script_is_valid_bash() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0


@pytest.mark.skipif(ON_A_PI, reason="this machine is a Raspberry Pi")
def test_refuses_on_a_machine_that_is_not_a_pi_and_says_how_to_force() -> None:
    result = _run("--dry-run")
    assert result.returncode == 1
    assert "not a Raspberry Pi" in result.stderr
    assert "--force" in result.stderr
    assert "== 1." not in result.stdout


def test_dry_run_prints_every_step_and_changes_nothing() -> None:
    opt_existed = Path("/opt/robovision").exists()
    config_existed = Path("/etc/robovision").exists()
    result = _run("--dry-run", "--force")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    expected = [
        "+ apt-get install -y --no-install-recommends python3-picamera2 python3-venv",
        "-m venv --system-site-packages /opt/robovision/venv",
        "-m pip install --upgrade --constraint /opt/robovision/constraints.txt " + str(REPO),
        "numpy==",
        "systemd/robovision.service /etc/systemd/system/robovision.service",
        "+ systemctl daemon-reload",
        "+ systemctl enable robovision.service",
        "+ systemctl restart robovision.service",
    ]
    for text in expected:
        assert text in out, f"missing step: {text}"
    assert ("useradd --system" in out and "--groups video" in out) or "usermod --append --groups video" in out
    assert "config.example.toml /etc/robovision/config.toml" in out or "keeping the existing" in out
    steps = [line for line in out.splitlines() if line.startswith("== ")]
    assert [s.split()[1] for s in steps[1:8]] == ["1.", "2.", "3.", "4.", "5.", "6.", "7."]
    assert Path("/opt/robovision").exists() == opt_existed
    assert Path("/etc/robovision").exists() == config_existed


def test_unknown_options_are_refused() -> None:
    result = _run("--frobnicate")
    assert result.returncode == 2
    assert "unknown option --frobnicate" in result.stderr
