"""The baseline: ``benchmarks/reference_loop.py`` run in a Python that has tflite-runtime.

tflite-runtime 2.14 needs numpy 1, so the loop often cannot run in robovision's own
environment. It is run as a subprocess of ``--reference-python``, else of this Python if
tflite-runtime works here, else of ``.venv-tflite/bin/python`` in the project folder when
that exists. When none can run it, the reason is reported instead of a figure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from robovision.paths import project_root

SCRIPT_RELATIVE = Path("benchmarks") / "reference_loop.py"
_PROBE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ReferenceRunner:
    """How to run the reference loop, or why it cannot run (``python`` None, ``reason`` set)."""

    script: Path
    python: Optional[str]
    versions: dict[str, str]
    reason: str = ""

    @property
    def usable(self) -> bool:
        return self.python is not None


def script_path() -> Path:
    return project_root() / SCRIPT_RELATIVE


def find_reference(model_path: Path, explicit_python: Optional[str] = None) -> ReferenceRunner:
    """The first Python that can run the reference loop on ``model_path`` (see the module docstring)."""
    script = script_path()
    if not script.exists():
        return ReferenceRunner(script, None, {}, f"{script} is missing (it ships with the source checkout)")
    candidates = [explicit_python] if explicit_python else _default_pythons()
    reasons = []
    for python in candidates:
        report = _run(python, [str(script), str(model_path), "--probe"], _PROBE_TIMEOUT_S)
        if "error" not in report:
            return ReferenceRunner(script, python, {k: str(v) for k, v in report.items()})
        reasons.append(str(report["error"]))
    return ReferenceRunner(script, None, {}, " | ".join(reasons))


def run_reference(
    runner: ReferenceRunner, model_path: Path, frames_npy: Path, *, threads: int, count: int, timeout_s: float
) -> dict[str, Any]:
    """One run of the loop: its JSON report (``fps``, ``ms_p50``, ...) or ``{"error": ...}``."""
    if runner.python is None:
        return {"error": runner.reason}
    arguments = [
        str(runner.script),
        str(model_path),
        str(frames_npy),
        "--threads",
        str(threads),
        "--count",
        str(count),
    ]
    return _run(runner.python, arguments, timeout_s)


def _default_pythons() -> list[str]:
    candidates = [sys.executable]
    venv = project_root() / ".venv-tflite" / "bin" / "python"
    if venv.exists() and str(venv) != sys.executable:
        candidates.append(str(venv))
    return candidates


def _run(python: str, arguments: list[str], timeout_s: float) -> dict[str, Any]:
    try:
        done = subprocess.run([python, *arguments], capture_output=True, timeout=timeout_s, check=False)
    except FileNotFoundError:
        return {"error": f"no Python at {python}"}
    except subprocess.TimeoutExpired:
        return {"error": f"the reference loop took over {timeout_s:.0f} s with {python}"}
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        report = None
    if not isinstance(report, dict):
        tail = " | ".join(done.stderr.decode(errors="replace").strip().splitlines()[-2:])
        return {"error": f"the reference loop failed with {python} (exit {done.returncode}): {tail}"}
    return report
