"""robovision doctor: each check finds what is wrong and names the fix."""

from __future__ import annotations

import argparse
import os
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


def _doctor(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    doctor.add_parser(parser.add_subparsers())
    args = parser.parse_args(["doctor", *argv])
    return int(args.func(args))


def _config(tmp_path: Path, model: Path = REFERENCE_MODEL, spec: str = "picamera2:0") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[source]\nspec = "{spec}"\n[model]\npath = "{model}"\n[socket]\npath = "run/d.sock"\n')
    return path


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
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nscore_treshold = 0.3\n")
    assert _doctor("--config", str(bad)) == 1
    out = capsys.readouterr().out
    assert "did you mean 'score_threshold'" in out


def test_a_replay_setup_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _doctor("--config", str(_config(tmp_path, spec=f"replay:{REPO / 'data' / 'toycars' / 'images'}")))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "[ ok ] socket folder:" in out
    assert "[ ok ] interpreter litert:" in out
