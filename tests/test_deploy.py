"""deploy/install.sh: refuses where it does not belong, and its dry run prints every step.

Runs that are not dry runs go as user ``nobody`` (when the tests run as root) from a copy of
the script, so that even a broken refusal could not change this machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "deploy" / "install.sh"
BOARD_FILE = Path("/proc/device-tree/model")
ON_A_PI = BOARD_FILE.exists() and "Raspberry Pi" in BOARD_FILE.read_text(errors="replace")
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")


def _run(*args: str, script: Path = SCRIPT, unprivileged: bool = False) -> subprocess.CompletedProcess[str]:
    command = ["bash", str(script), *args]
    if unprivileged and os.getuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv to run the installer as an unprivileged user")
        command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def checkout() -> Iterator[Path]:
    """A world-readable copy of the installer in an otherwise empty checkout (no models/)."""
    folder = Path(tempfile.mkdtemp(prefix="robovision-install-"))
    try:
        (folder / "deploy").mkdir()
        shutil.copy(SCRIPT, folder / "deploy" / "install.sh")
        for path in (folder, folder / "deploy"):
            path.chmod(0o755)
        (folder / "deploy" / "install.sh").chmod(0o755)
        yield folder
    finally:
        shutil.rmtree(folder)


def test_script_is_valid_bash() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0


def test_help_shows_the_whole_header() -> None:
    result = _run("--help")
    assert result.returncode == 0
    out = result.stdout
    assert out.startswith("Install robovision as a systemd service")
    for text in ("What it does", "1. apt:", "7. the systemd unit, enabled and (re)started", "NUMPY:",
                 "opencv-python-headless < 4.12", "options: --dry-run  --force  --no-start  --help"):
        assert text in out, text
    assert "set -euo" not in out


@pytest.mark.skipif(ON_A_PI, reason="this machine is a Raspberry Pi")
def test_refuses_on_a_machine_that_is_not_a_pi_and_says_how_to_force(checkout: Path) -> None:
    model = checkout / "models" / "toycar.tflite"
    model.parent.mkdir(mode=0o755)
    shutil.copy(REPO / "models" / "toycar.tflite", model)
    model.chmod(0o644)
    result = _run(script=checkout / "deploy" / "install.sh", unprivileged=True)
    assert result.returncode == 1
    assert "not a Raspberry Pi" in result.stderr
    assert "refusing to install here; pass --force to go ahead anyway" in result.stderr
    assert "== 1." not in result.stdout


@pytest.mark.skipif(ON_A_PI, reason="this machine is a Raspberry Pi")
def test_a_dry_run_on_a_machine_that_is_not_a_pi_warns_and_prints_every_step() -> None:
    result = _run("--dry-run")
    assert result.returncode == 0, result.stderr
    assert "install.sh: warning: this machine is not a Raspberry Pi" in result.stderr
    assert "install.sh: warning: a real install here needs --force; the steps follow anyway" in result.stderr
    steps = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("== ")]
    assert steps[1:8] == ["1.", "2.", "3.", "4.", "5.", "6.", "7."]


def test_a_checkout_without_the_model_is_not_installed(checkout: Path) -> None:
    script = checkout / "deploy" / "install.sh"
    missing = f"{checkout}/models/toycar.tflite is missing, so this checkout is incomplete"
    dry = _run("--dry-run", script=script, unprivileged=True)
    assert dry.returncode == 0, dry.stderr
    assert f"install.sh: warning: {missing}" in dry.stderr
    assert "robovision train --config models/toycar.train.toml --out models/" in dry.stderr
    assert "a real install stops here until the model is in place" in dry.stderr
    real = _run("--force", script=script, unprivileged=True)
    assert real.returncode == 1
    assert missing in real.stderr
    assert "refusing to install without the model" in real.stderr
    assert "== 1." not in real.stdout


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
