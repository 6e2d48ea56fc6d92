"""robovision doctor: each check finds what is wrong and names the fix."""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

import pytest

from robovision.commands import doctor
from robovision.commands.doctor import (
    FAIL,
    OK,
    UserInfo,
    can_read_write,
    check_camera_nodes,
    check_video_group,
)

REPO = Path(__file__).resolve().parent.parent
REFERENCE_MODEL = REPO / "models" / "reference" / "ssd_mobilenet_v1_1_metadata_1.tflite"
FAKES = REPO / "tests" / "fakes"


def _doctor(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    doctor.add_parser(parser.add_subparsers())
    args = parser.parse_args(["doctor", *argv])
    return int(args.func(args))


def _config(
    tmp_path: Path, model: Path = REFERENCE_MODEL, spec: str = "picamera2:0", socket: str = "d.sock"
) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[source]\nspec = "{spec}"\n[model]\npath = "{model}"\n[socket]\npath = "{socket}"\n')
    return path


def _doctor_process(config: Path, pythonpath: str = "") -> subprocess.CompletedProcess[str]:
    """``robovision doctor`` in a fresh interpreter, with ``pythonpath`` ahead of the installed packages."""
    from service_support import robovision_command

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run(
        [*robovision_command(), "doctor", "--config", str(config)],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )


def test_a_user_outside_the_video_group_fails_with_the_usermod_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `nobody` exists on every Debian system and is in no group but its own.
    user = UserInfo.lookup("nobody")
    assert "video" not in user.groups
    code = _doctor("--config", str(_config(tmp_path)), "--user", "nobody", "--dev", str(tmp_path / "dev"))
    out = capsys.readouterr().out
    assert code == 1
    assert "[FAIL] video group: nobody is not in the video group" in out
    assert "fix: sudo usermod -aG video nobody" in out
    assert "[FAIL] camera nodes: no /dev/video* device nodes" in out
    assert "[ ok ] model:" in out


def test_the_same_config_passes_the_group_check_for_a_member() -> None:
    member = UserInfo("robot", 1234, frozenset({1234, 44}), frozenset({"robot", "video"}))
    assert check_video_group(member, required=True).outcome == OK
    outsider = UserInfo("robot", 1234, frozenset({1234}), frozenset({"robot"}))
    assert check_video_group(outsider, required=True).outcome == FAIL
    assert check_video_group(outsider, required=False).outcome == "warn"


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give test files to another group")
def test_camera_node_permissions_follow_owner_group_and_mode(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in ("video0", "media0"):
        node = dev / name
        node.write_text("")
        os.chown(node, 0, 44)
        node.chmod(0o660)
    member = UserInfo("robot", 1234, frozenset({1234, 44}), frozenset({"robot", "video"}))
    outsider = UserInfo("other", 1235, frozenset({1235}), frozenset({"other"}))
    assert can_read_write(dev / "video0", member)
    assert not can_read_write(dev / "video0", outsider)
    (ok,) = check_camera_nodes(dev, member, required=True)
    assert ok.outcome == OK
    (blocked,) = check_camera_nodes(dev, outsider, required=True)
    assert blocked.outcome == FAIL
    assert "cannot open" in blocked.detail and "usermod -aG video other" in blocked.fix


def test_missing_model_and_bad_config_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _doctor("--config", str(_config(tmp_path, model=tmp_path / "gone.tflite", spec="replay:x")))
    out = capsys.readouterr().out
    assert code == 1
    assert "[FAIL] model:" in out and "gone.tflite" in out
    assert f"the shipped model ({REPO / 'models' / 'toycar.tflite'})" in out
    assert "robovision train --config models/toycar.train.toml --out models/" in out
    assert f"[FAIL] source: replay:{tmp_path / 'x'} does not exist, so the service refuses" in out

    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nscore_treshold = 0.3\n")
    assert _doctor("--config", str(bad)) == 1
    out = capsys.readouterr().out
    assert "did you mean 'score_threshold'" in out
    # Only the config is blamed: nothing is said about the default model it did not get to name.
    assert [line for line in out.splitlines() if line.startswith("[FAIL]")] == [
        line for line in out.splitlines() if line.startswith("[FAIL] config:")
    ]
    assert "[skip] model: not checked: the config above does not load" in out
    assert "toycar" not in out


def test_a_pi_camera_source_needs_picamera2_importable(tmp_path: Path) -> None:
    config = _config(tmp_path, spec="picamera2:0")
    without = _doctor_process(config)
    assert "[FAIL] source: picamera2 cannot be imported (No module named 'picamera2')" in without.stdout
    assert "fix: sudo apt install python3-picamera2" in without.stdout
    assert "--system-site-packages" in without.stdout
    with_it = _doctor_process(config, pythonpath=str(FAKES))
    assert f"[ ok ] source: picamera2 importable from {FAKES / 'picamera2'}" in with_it.stdout


def test_an_explicit_socket_path_in_a_missing_folder_fails_with_the_mkdir_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = REPO / "data" / "toycars" / "images"
    assert _doctor("--config", str(_config(tmp_path, spec=f"replay:{images}", socket="run/d.sock"))) == 1
    out = capsys.readouterr().out
    assert f"[FAIL] socket folder: {tmp_path / 'run'}, the folder of [socket] path, does not exist" in out
    assert f"mkdir -p {tmp_path / 'run'}" in out


def test_a_replay_setup_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _doctor("--config", str(_config(tmp_path, spec=f"replay:{REPO / 'data' / 'toycars' / 'images'}")))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "[ ok ] socket folder:" in out
    assert "[ ok ] interpreter litert:" in out
    assert f"[ ok ] source: replay:{REPO / 'data' / 'toycars' / 'images'} exists" in out
