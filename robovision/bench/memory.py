"""Memory over a long pipeline run, in a process of its own so other models do not count.

``measure_memory`` starts ``python -m robovision.bench.memory`` with one model; that
process runs the pipeline (``robovision.bench.pipeline``) for ``warmup + frames`` frames
and prints one JSON object:

- ``rss_after_warmup_mb``: resident memory once the warm-up frames are done;
- ``rss_end_mb``: resident memory after the last frame;
- ``growth_mb``: the difference, what the long run added;
- ``peak_rss_mb``: the highest resident memory the process reached;
- ``replay_mb``: of that, the decoded replay frames (a camera holds a few buffers instead).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from robovision.bench.stats import memory_mb
from robovision.errors import ServiceError

MB = 1024 * 1024


def measure_memory(
    model_path: Path,
    frames_dir: Path,
    *,
    backend: str,
    threads: int,
    size_wh: tuple[int, int],
    warmup: int,
    frames: int,
    timeout_s: float,
) -> dict[str, Any]:
    """Run the long pipeline in a subprocess and return its report (see the module docstring)."""
    command = [
        sys.executable,
        "-m",
        "robovision.bench.memory",
        str(model_path),
        str(frames_dir),
        "--backend",
        backend,
        "--threads",
        str(threads),
        "--size",
        f"{size_wh[0]}x{size_wh[1]}",
        "--warmup",
        str(warmup),
        "--frames",
        str(frames),
    ]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ServiceError(
            f"the memory run of {model_path.name} took over {timeout_s:.0f} s; lower --long-frames"
        ) from None
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise ServiceError(f"the memory run of {model_path.name} failed: {' | '.join(tail)}")
    report = json.loads(done.stdout.decode().strip().splitlines()[-1])
    if not isinstance(report, dict):
        raise ServiceError(f"the memory run reported {report!r}, not an object")
    return report


def _long_run(args: argparse.Namespace) -> dict[str, Any]:
    from robovision.bench.frames import open_replay
    from robovision.bench.pipeline import run_pipeline
    from robovision.model import Model

    width, _, height = args.size.partition("x")
    model = Model.load(args.model, backend=args.backend, num_threads=args.threads)
    replay = open_replay(Path(args.frames_dir), (int(width), int(height)))
    samples: dict[str, float] = {}

    def sample(done: int) -> None:
        if done == args.warmup:
            samples["rss_after_warmup_mb"] = memory_mb()["rss_mb"]
        elif done == args.warmup + args.frames:
            now = memory_mb()
            samples.update(rss_end_mb=now["rss_mb"], peak_rss_mb=now["peak_rss_mb"])

    with tempfile.TemporaryDirectory(prefix="robovision-bench-") as folder:
        run = run_pipeline(model, replay, Path(folder), frames=args.frames, warmup=args.warmup, hook=sample)
    if "rss_end_mb" not in samples:
        raise ServiceError(f"the long run stopped after {run.frames} measured frames of {args.frames}")
    return {
        "model": model.name,
        "backend": model.interpreter.backend_name,
        "frames": run.frames,
        "fps": run.fps,
        **samples,
        "growth_mb": samples["rss_end_mb"] - samples["rss_after_warmup_mb"],
        "replay_mb": replay.nbytes / MB,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robovision.bench.memory")
    parser.add_argument("model", type=Path)
    parser.add_argument("frames_dir", type=Path)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--frames", type=int, default=10000)
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps(_long_run(args)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
