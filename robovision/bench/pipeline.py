"""The full pipeline, run by the service's own code: capture thread, frame loop, socket publisher.

The frames come from an open :class:`~robovision.sources.replay.ReplaySource` shared
between rounds (decoded once), read through an on-demand mailbox: the capture thread
reads a frame when the loop asks for one, so the pipeline runs as fast as it can and a
frame never waits for the loop (the most demanding camera: one whose next frame is
always ready). A subscriber process (``python -m robovision.bench.subscriber``) is
connected to the publisher's Unix socket for the whole run and reports when each
detection message reached it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from robovision.config import Config, ModelConfig, ServiceConfig, SocketConfig, SourceConfig
from robovision.errors import ServiceError
from robovision.frame import Frame
from robovision.model import Model
from robovision.service.capture import Capture, Mailbox
from robovision.service.loop import FrameLoop
from robovision.service.notify import Notifier
from robovision.service.publisher import Publisher
from robovision.service.status import STAGES, FrameStats, FrameTiming
from robovision.sources.replay import ReplaySource

log = logging.getLogger(__name__)

_COLUMNS = ("t_publish_mono", *(f"{stage}_ms" for stage in STAGES), "total_ms")
_SUBSCRIBER_WAIT_S = 10.0
_SUBSCRIBER_EXIT_S = 10.0

FrameHook = Callable[[int], None]
"""Called by the loop thread after each frame with the number of frames done so far."""


@dataclass(frozen=True)
class PipelineRun:
    """One run of the pipeline, warm-up frames left out.

    ``stage_ms`` holds each stage's time for every measured frame (``STAGES`` order),
    ``total_ms`` capture-to-publish latency, ``frame_interval_ms`` the time between
    consecutive publishes, ``receive_latency_ms`` the subscriber's capture-to-receive time
    of each measured frame it got.
    """

    frames: int
    fps: float
    """Frames per second of a typical frame: 1000 / the median time between two publishes."""
    fps_throughput: float
    """Frames per second over the whole run (pauses the machine imposed included)."""
    stage_ms: dict[str, list[float]]
    total_ms: list[float]
    frame_interval_ms: list[float]
    received: int
    receive_latency_ms: list[float]
    dropped_capture: int


class _SharedReplay:
    """A frame source over an already open replay, which it leaves open at ``close()``."""

    def __init__(self, replay: ReplaySource) -> None:
        self._replay = replay
        self.name = replay.name

    def open(self) -> None:
        if not self._replay.is_open:
            self._replay.open()

    def read(self, timeout_s: Optional[float] = None) -> Optional[Frame]:
        return self._replay.read(timeout_s)

    def close(self) -> None:
        """Leave the replay open for the next round (its owner closes it)."""


class _RecordingStats(FrameStats):
    """The loop's statistics, also keeping every frame's timing in a preallocated array.

    Asks the loop to stop after ``limit`` frames or once ``budget_s`` seconds have passed
    since the first measured frame (frame ``warmup``). The array is filled at creation,
    so recording allocates nothing per frame.
    """

    def __init__(
        self, limit: int, warmup: int, budget_s: float, stop_event: threading.Event, hook: FrameHook | None
    ) -> None:
        super().__init__()
        self.rows = np.full((limit, len(_COLUMNS)), np.nan)
        self.limit = limit
        self.warmup = warmup
        self.budget_s = budget_s
        self._stop_event = stop_event
        self._hook = hook
        self._t_measured_mono: float | None = None

    def add(self, timing: FrameTiming, t_mono: float) -> None:
        super().add(timing, t_mono)
        index = self.frames - 1
        if index < self.limit:
            self.rows[index] = (
                t_mono,
                timing.capture_ms,
                timing.preprocess_ms,
                timing.inference_ms,
                timing.decode_ms,
                timing.publish_ms,
                timing.total_ms,
            )
        if index == self.warmup:
            self._t_measured_mono = t_mono
        if self._hook is not None:
            self._hook(self.frames)
        over_budget = self._t_measured_mono is not None and t_mono - self._t_measured_mono >= self.budget_s
        if self.frames >= self.limit or over_budget:
            self._stop_event.set()

    def measured(self) -> np.ndarray:
        done = min(self.frames, self.limit)
        return self.rows[self.warmup : done]


def bench_config(model: Model, replay: ReplaySource, socket_path: Path) -> Config:
    """The service settings for a bench run: the model's card thresholds, an unpaced replay."""
    size_wh = replay.size_wh or (0, 0)
    return Config(
        source=SourceConfig(spec=f"replay:{replay.path}", size_wh=size_wh, fps=0.0, loop=True),
        model=ModelConfig(
            path=model.path, backend=model.interpreter.backend_name, num_threads=model.interpreter.num_threads
        ),
        socket=SocketConfig(path=socket_path),
        service=ServiceConfig(status_interval_s=1.0, log_level="warning"),
    )


def run_pipeline(
    model: Model,
    replay: ReplaySource,
    socket_dir: Path,
    *,
    frames: int,
    warmup: int,
    budget_s: float = float("inf"),
    hook: FrameHook | None = None,
) -> PipelineRun:
    """Run ``warmup + frames`` frames (fewer if ``budget_s`` runs out) through the service's loop.

    ``socket_dir`` must be a folder this process owns; the socket is made and removed there.
    Raises ``ServiceError`` if the subscriber process does not connect or report.
    """
    config = bench_config(model, replay, socket_dir / "bench.sock")
    mailbox = Mailbox(on_demand=True)
    capture = Capture(lambda: _SharedReplay(replay), mailbox, read_timeout_s=config.source.read_timeout_s)
    sock = config.socket
    publisher = Publisher(
        sock.resolved_path,
        max_subscribers=sock.max_subscribers,
        queue_messages=sock.queue_messages,
        log_every_s=config.service.log_every_s,
    )
    loop = FrameLoop(
        config, model, capture=capture, mailbox=mailbox, publisher=publisher, notifier=Notifier({})
    )
    stats = _RecordingStats(warmup + frames, warmup, budget_s, loop.stop_event, hook)
    loop.stats = stats
    publisher.hello = loop.hello_line
    publisher.start()
    subscriber = _start_subscriber(sock.resolved_path, skip=warmup)
    try:
        _wait_for_subscriber(publisher, subscriber)
        capture.start()
        loop.run()
    except BaseException:
        subscriber.kill()
        subscriber.communicate()
        raise
    finally:
        capture.stop(timeout_s=1.0)
        publisher.stop(timeout_s=1.0)
    report = _finish_subscriber(subscriber)
    return _summarize(stats.measured(), report, mailbox.dropped)


def _summarize(rows: np.ndarray, report: dict[str, object], dropped: int) -> PipelineRun:
    if len(rows) < 2:
        raise ServiceError(f"the pipeline measured only {len(rows)} frame(s); give it more frames or time")
    t_publish = rows[:, 0]
    span_s = float(t_publish[-1] - t_publish[0])
    throughput = (len(rows) - 1) / span_s if span_s > 0 else 0.0
    interval_ms = np.diff(t_publish) * 1000.0
    typical_ms = float(np.median(interval_ms))
    stage_ms = {stage: rows[:, 1 + i].tolist() for i, stage in enumerate(STAGES)}
    latency = report.get("latencies_ms")
    received = report.get("received")
    return PipelineRun(
        frames=len(rows),
        fps=1000.0 / typical_ms if typical_ms > 0 else 0.0,
        fps_throughput=throughput,
        stage_ms=stage_ms,
        total_ms=rows[:, -1].tolist(),
        frame_interval_ms=interval_ms.tolist(),
        received=int(received) if isinstance(received, int) else 0,
        receive_latency_ms=[float(v) for v in latency] if isinstance(latency, list) else [],
        dropped_capture=dropped,
    )


def _start_subscriber(socket_path: Path, *, skip: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "robovision.bench.subscriber", str(socket_path), "--skip", str(skip)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_subscriber(publisher: Publisher, subscriber: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _SUBSCRIBER_WAIT_S
    while publisher.subscriber_count < 1:
        if subscriber.poll() is not None:
            err = subscriber.stderr.read().decode(errors="replace").strip() if subscriber.stderr else ""
            raise ServiceError(
                f"the bench subscriber exited (code {subscriber.returncode}) before connecting to "
                f"{publisher.path}: {err or 'no message'}"
            )
        if time.monotonic() > deadline:
            raise ServiceError(
                f"the bench subscriber did not connect to {publisher.path} within {_SUBSCRIBER_WAIT_S:g} s"
            )
        time.sleep(0.005)


def _finish_subscriber(subscriber: subprocess.Popen[bytes]) -> dict[str, object]:
    """The subscriber's JSON report, once it has seen the socket close."""
    try:
        out, err = subscriber.communicate(timeout=_SUBSCRIBER_EXIT_S)
    except subprocess.TimeoutExpired:
        subscriber.kill()
        subscriber.communicate()
        raise ServiceError("the bench subscriber did not exit after the socket closed") from None
    if subscriber.returncode != 0:
        why = err.decode(errors="replace").strip()
        raise ServiceError(f"the bench subscriber failed (exit {subscriber.returncode}): {why}")
    report = json.loads(out.decode().strip().splitlines()[-1])
    if not isinstance(report, dict):
        raise ServiceError(f"the bench subscriber reported {report!r}, not an object")
    return report
