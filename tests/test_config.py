"""The service config: validation, suggestions, relative paths, overrides, socket placement."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from robovision.config import (
    CAMERA_HFOV_DEG,
    KEYS,
    Config,
    apply_overrides,
    check_option,
    default_socket_path,
    load_config,
    prepare_socket_folder,
    reloadable_changes,
)
from robovision.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "deploy" / "config.example.toml"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "robot.toml"
    path.write_text(text)
    return path


def test_example_file_is_valid_and_documents_every_key() -> None:
    config = load_config(EXAMPLE)
    assert config.file == EXAMPLE.resolve()
    text = EXAMPLE.read_text()
    for section, keys in KEYS.items():
        assert f"[{section}]" in text
        for key in keys:
            assert re.search(rf"^#? ?{key} = ", text, re.MULTILINE), f"{section}.{key} is not in the example"
    # The example's values are the defaults, apart from the installed model path.
    defaults = Config()
    assert config.source == defaults.source
    assert config.socket == defaults.socket
    assert config.service == defaults.service
    assert config.camera == defaults.camera
    assert config.model.path == Path("/opt/robovision/models/toycar.tflite")


def test_an_explicit_config_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[source]\nfsp = 10\n", r"unknown key \[source\] fsp; did you mean 'fps'\?"),
        ("[sorce]\nfps = 10\n", r"unknown section \[sorce\]; did you mean 'source'\?"),
        ("[source]\nfps = 'fast'\n", r"\[source\] fps = 'fast' is not valid; expected a number"),
        ("[source]\nfps = 0\n", r"expected a number above 0 and up to 240"),
        ("[source]\nsize_wh = [640]\n", r"\[width, height\]"),
        ("[source]\nloop = 1\n", r"true or false"),
        ("[model]\nscore_threshold = 1.5\n", r"a number from 0 to 1"),
        ("[model]\nnum_threads = -1\n", r"0 \(the interpreter's default\) or an integer from 1 to 64"),
        ("[camera]\nhfov_deg = 180\n", r"0 \(take it from camera.module\) or a number from 1 to 179"),
        ("[source]\nfps = nan\n", r"expected a number above 0"),
        ("[model]\nbackend = 'tpu'\n", r"one of 'auto', 'litert', 'tflite-runtime'"),
        ("[model]\nclass_filter = 'car'\n", r"a list of label strings"),
        ("[socket]\nmax_subscribers = 0\n", r"an integer from 1 to 1024"),
        ("[socket]\ntcp_host = '0.0.0.0'\n", r"loopback"),
        ("[camera]\nmodule = 'hq'\n", r"needs hfov_deg"),
        ("[camera]\nmodule = 'v4'\n", r"one of 'v1', 'v2'"),
        ("[source]\nretry_initial_s = 5.0\nretry_max_s = 1.0\n", r"retry_max_s"),
        ("[source]\nspec = 'python:mod:Cls'\n", r"allow_python = true"),
        ("fps = 10\n", r"unknown section \[fps\]"),
        ("[source\n", r"not valid TOML"),
    ],
)
def test_bad_values_name_the_file_the_key_and_the_fix(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_relative_paths_resolve_against_the_config_folder_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "config.toml"
    path.write_text(
        '[source]\nspec = "replay:photos"\n'
        '[model]\npath = "models/car.tflite"\n'
        '[socket]\npath = "run/d.sock"\n'
    )
    monkeypatch.chdir(tmp_path)
    config = load_config(path)
    assert config.source.spec == f"replay:{folder / 'photos'}"
    assert config.model.path == folder / "models" / "car.tflite"
    assert config.socket.resolved_path == folder / "run" / "d.sock"


def test_command_line_overrides_win_and_resolve_against_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "[source]\nfps = 10\n[model]\nscore_threshold = 0.4\n")
    monkeypatch.chdir(tmp_path / "..")
    config = apply_overrides(load_config(path), {"source.fps": 25.0, "model.path": "m.tflite"})
    assert config.source.fps == 25.0
    assert config.model.score_threshold == 0.4
    assert config.model.path == Path.cwd() / "m.tflite"
    with pytest.raises(ConfigError, match=r"command line: \[source\] fps = -1"):
        apply_overrides(config, {"source.fps": -1})


@pytest.mark.parametrize(("module", "hfov"), [(m, h) for m, h in CAMERA_HFOV_DEG.items() if h is not None])
def test_field_of_view_follows_the_camera_module(tmp_path: Path, module: str, hfov: float) -> None:
    config = load_config(_write(tmp_path, f"[camera]\nmodule = '{module}'\n"))
    assert config.camera.resolved_hfov_deg == hfov


def test_explicit_field_of_view_wins_and_zero_means_the_module_figure(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "[camera]\nmodule = 'hq'\nhfov_deg = 48.5\n"))
    assert config.camera.resolved_hfov_deg == 48.5
    config = load_config(_write(tmp_path, "[camera]\nmodule = 'v2'\nhfov_deg = 0\n"))
    assert config.camera.resolved_hfov_deg == 62.2


def test_reloadable_changes_are_told_apart_from_restart_ones(tmp_path: Path) -> None:
    old = load_config(_write(tmp_path, "[model]\nscore_threshold = 0.5\n"))
    new = load_config(_write(tmp_path, "[model]\nscore_threshold = 0.3\n[source]\nfps = 5\n"))
    applied, restart = reloadable_changes(old, new)
    assert applied == ["model.score_threshold"]
    assert restart == ["source.fps"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"RUNTIME_DIRECTORY": "/run/robovision", "XDG_RUNTIME_DIR": "/run/user/1000"}, "/run/robovision"),
        ({"XDG_RUNTIME_DIR": "/run/user/1000"}, "/run/user/1000/robovision"),
        ({}, f"/tmp/robovision-{os.getuid()}"),
    ],
)
def test_default_socket_place(environ: dict[str, str], expected: str) -> None:
    assert default_socket_path(environ) == Path(expected) / "detections.sock"


def test_socket_folder_is_created_private(tmp_path: Path) -> None:
    sock = tmp_path / "robovision" / "detections.sock"
    prepare_socket_folder(sock)
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700


def test_only_the_default_place_gets_its_folder_made_and_only_one_level(tmp_path: Path) -> None:
    explicit = tmp_path / "robot" / "detections.sock"
    with pytest.raises(ConfigError, match=r"does not exist; create it for the service user \(mkdir -p "):
        prepare_socket_folder(explicit, create=False)
    assert not explicit.parent.exists()
    deep = tmp_path / "xdg" / "robovision" / "detections.sock"
    with pytest.raises(ConfigError, match=f"{tmp_path / 'xdg'} does not exist"):
        prepare_socket_folder(deep, create=True)
    assert not (tmp_path / "xdg").exists()


def test_a_socket_path_that_is_a_folder_is_refused_with_the_file_path_to_use(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"is a folder; .* e.g. {tmp_path / 'detections.sock'}"):
        prepare_socket_folder(tmp_path, create=False)


@pytest.mark.parametrize(
    ("key", "value", "option", "message"),
    [
        ("model.num_threads", -1, "--threads", r"--threads -1 is not valid; expected 0 \(the interpreter's"),
        ("camera.hfov_deg", 200.0, "--hfov", r"--hfov 200.0 is not valid; expected 0 .* from 1 to 179"),
        ("source.fps", 0.0, "--fps", r"--fps 0.0 is not valid; expected a number above 0 and up to 240"),
        ("source.size_wh", [8, 8], "--size", r"--size 8x8 is not valid"),
    ],
)
def test_command_line_values_are_checked_against_the_key_and_named_by_their_option(
    key: str, value: object, option: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        check_option(key, value, option)
    assert check_option("model.num_threads", 0, "--threads") is None  # the interpreter's default
    assert check_option("camera.hfov_deg", 179, "--hfov") == 179.0
