"""The systemd unit: systemd-analyze accepts it, and it says what the service relies on."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from robovision.errors import EXIT_MODEL, EXIT_RUNTIME, EXIT_USAGE

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "robovision.service"
needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="no systemd-analyze"
)


def _directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if match:
            found.setdefault(match.group(1), []).append(match.group(2))
    return found


def _verify(unit_text: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify on a copy whose ExecStart points at this environment's robovision."""
    robovision = Path(sys.executable).parent / "robovision"
    assert robovision.exists(), "the robovision entry point is not installed in this environment"
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={robovision}", unit_text, flags=re.MULTILINE)
    path = folder / "robovision.service"
    path.write_text(text)
    return subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60, check=False
    )


@needs_systemd_analyze
def test_unit_passes_systemd_analyze_verify_without_warnings(tmp_path: Path) -> None:
    result = _verify(UNIT.read_text(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


@needs_systemd_analyze
def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("Type=notify", "Type=notifyy").replace("WatchdogSec=", "WatchdogSecs=")
    result = _verify(broken, tmp_path)
    assert "notifyy" in result.stderr
    assert "WatchdogSecs" in result.stderr


def test_unit_declares_notify_watchdog_restart_policy_and_hardening() -> None:
    d = _directives(UNIT.read_text())
    assert d["Type"] == ["notify"]
    assert int(d["WatchdogSec"][0]) > 0
    assert d["Restart"] == ["on-failure"]
    assert "StartLimitIntervalSec" in d and "StartLimitBurst" in d
    prevented = {int(code) for code in d["RestartPreventExitStatus"][0].split()}
    assert {EXIT_USAGE, EXIT_MODEL, EXIT_RUNTIME} <= prevented
    assert d["User"] == ["robovision"]
    assert d["SupplementaryGroups"] == ["video"]
    assert d["RuntimeDirectory"] == ["robovision"]
    assert d["RuntimeDirectoryMode"] == ["0750"]
    for flag in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert d[flag] == ["yes"]
    assert d["ProtectSystem"] == ["strict"]
    allowed = " ".join(d["DeviceAllow"])
    for device in ("video4linux", "media", "dma_heap", "/dev/vchiq"):
        assert device in allowed
    assert d["ExecStart"][0].split()[1:3] == ["run", "--config"]
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
