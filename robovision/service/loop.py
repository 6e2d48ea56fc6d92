"""The frame loop: newest frame in, detections out, a status message at a fixed interval.

Runs in the service's main thread. Each turn waits (bounded) for the newest captured
frame, runs the model on it, publishes one detection message (also when nothing was
found), then does the periodic work: hang check on the capture thread, the status
message, systemd's watchdog ping and status text, and a pending config reload.
Every wait is bounded, so a stop request is honoured within one frame's processing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from robovision import __version__
from robovision.config import Config, reloadable_changes
from robovision.errors import ConfigError, RobovisionError, ServiceError
from robovision.messages import detection_message, encode_line, hello_message, status_message
from robovision.model import Model
from robovision.service.capture import Capture, Captured, Mailbox
from robovision.service.notify import Notifier
from robovision.service.publisher import Publisher
from robovision.service.status import FrameStats, FrameTiming
from robovision.service.throttle import Throttle

log = logging.getLogger(__name__)

_MAX_WAIT_S = 0.1
_PUBLISHER_STALE_S = 5.0
_STATUS_TEXT_EVERY_S = 5.0


@dataclass(frozen=True)
class Thresholds:
    """The decode settings a reload may change, and the field of view used for bearings."""

    score_threshold: float
    max_detections: int
    class_filter: tuple[str, ...] | None
    hfov_deg: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "score_threshold": self.score_threshold,
            "max_detections": self.max_detections,
            "class_filter": list(self.class_filter) if self.class_filter is not None else None,
        }


def thresholds_for(config: Config, model: Model) -> Thresholds:
    """The config's thresholds, falling back to the model card's for keys the config leaves out."""
    card = model.card
    class_filter = config.model.class_filter if config.model.class_filter is not None else card.class_filter
    labels = model.params.labels
    if class_filter is not None and labels:
        unknown = sorted(set(class_filter) - set(labels))
        if unknown:
            raise ConfigError(
                f"[model] class_filter names {', '.join(map(repr, unknown))}, which model {model.name} "
                f"does not know; its labels include {', '.join(map(repr, labels[:8]))}"
            )
    return Thresholds(
        score_threshold=(
            config.model.score_threshold if config.model.score_threshold is not None else card.score_threshold
        ),
        max_detections=(
            config.model.max_detections if config.model.max_detections is not None else card.max_detections
        ),
        class_filter=class_filter,
        hfov_deg=config.camera.resolved_hfov_deg,
    )


class FrameLoop:
    """Wires the capture, the model and the publisher together for one run of the service."""

    def __init__(
        self,
        config: Config,
        model: Model,
        *,
        capture: Capture,
        mailbox: Mailbox,
        publisher: Publisher,
        notifier: Notifier,
        reload_config: Callable[[], Config] | None = None,
        source_name: str | None = None,
    ) -> None:
        self.config = config
        self._source_name = source_name or config.source.spec
        self.model = model
        self.capture = capture
        self.mailbox = mailbox
        self.publisher = publisher
        self.notifier = notifier
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self._reload_config = reload_config
        self._throttle = Throttle(log, config.service.log_every_s)
        self.stats = FrameStats()
        self.seq = 0
        self.config_generation = 1
        self.thresholds = thresholds_for(config, model)
        self._apply_thresholds(self.thresholds)
        self._started_mono = time.monotonic()
        self._ready = False
        self._last_watchdog_mono = 0.0
        self._last_status_text_mono = 0.0

    # -- messages ---------------------------------------------------------------------

    @property
    def source_name(self) -> str:
        """The source's own name, as its frames carry it (the spec until one could be built)."""
        return self._source_name

    def hello_line(self, subscriber_id: int) -> bytes:
        return encode_line(
            hello_message(
                service_version=__version__,
                model_name=self.model.name,
                source=self.source_name,
                hfov_deg=self.thresholds.hfov_deg,
                status_interval_s=self.config.service.status_interval_s,
                subscriber_id=subscriber_id,
                queue_messages=self.config.socket.queue_messages,
            )
        )

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        return status_message(
            fps=self.stats.rate.rate(now, stale_after_s=max(2.0, 2 * self.config.service.status_interval_s)),
            latency_ms=self.stats.total.percentiles(),
            stage_ms=self.stats.stage_percentiles(),
            frames=self.stats.frames,
            dropped_capture=self.mailbox.dropped,
            subscriber_drops=[s.to_dict() for s in self.publisher.subscriber_stats()],
            camera_state=self.capture.state.value,
            camera_error=self.capture.error,
            camera_losses=self.capture.losses,
            backend=self.model.interpreter.backend_name,
            model_name=self.model.name,
            source=self.source_name,
            uptime_s=now - self._started_mono,
            thresholds=self.thresholds.to_dict(),
            hfov_deg=self.thresholds.hfov_deg,
            config_generation=self.config_generation,
        )

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> int:
        """Process frames until stopped or the source ends. Returns the exit code (0)."""
        interval_s = self.config.service.status_interval_s
        next_status_mono = time.monotonic() + interval_s
        while not self.stop_event.is_set():
            if self.reload_event.is_set():
                self.reload_event.clear()
                self._reload()
            item = self.mailbox.take(min(_MAX_WAIT_S, max(0.0, next_status_mono - time.monotonic())))
            if item is not None:
                self._process(item)
            now = time.monotonic()
            self.capture.check_hung(now)
            if now >= next_status_mono:
                self._publish_status()
                next_status_mono = max(next_status_mono + interval_s, now)
            self._tell_systemd(now)
            if self.capture.fatal is not None:
                raise self.capture.fatal
            if not self.publisher.alive:
                raise ServiceError("the publisher thread stopped (its error is logged); restart the service")
            if self.capture.ended and item is None:
                log.info("source ended after %d frames; stopping", self.stats.frames)
                self._publish_status()
                break
        return 0

    def _process(self, item: Captured) -> None:
        frame = item.frame
        if frame.source != self._source_name:
            self._source_name = frame.source  # a camera missing at start has its own name now
        try:
            result = self.model.detect(frame)
        except RobovisionError as exc:
            self._throttle.log("detect", logging.WARNING, "frame %d skipped: %s", frame.frame_id, exc)
            return
        t_build = time.perf_counter()
        message = detection_message(
            frame,
            result,
            model_name=self.model.name,
            seq=self.seq,
            hfov_deg=self.thresholds.hfov_deg,
            capture_ms=item.capture_ms,
        )
        t_publish_mono = time.monotonic()
        build_ms = (time.perf_counter() - t_build) * 1000.0
        total_ms = (t_publish_mono - frame.t_capture_mono) * 1000.0
        message["latency_ms"]["publish"] = round(build_ms, 3)
        message["latency_ms"]["total"] = round(total_ms, 3)
        self.publisher.publish(encode_line(message), is_detection=True)
        publish_ms = (time.perf_counter() - t_build) * 1000.0
        self.seq += 1
        timing = FrameTiming(
            capture_ms=item.capture_ms,
            preprocess_ms=result.preprocess_ms,
            inference_ms=result.inference_ms,
            decode_ms=result.decode_ms,
            publish_ms=publish_ms,
            total_ms=total_ms,
        )
        self.stats.add(timing, t_publish_mono)

    def _publish_status(self) -> None:
        self.publisher.publish(encode_line(self.status()), is_detection=False)

    def _tell_systemd(self, now_mono: float) -> None:
        """READY once a frame is in (or the camera is known to be missing), then watchdog pings.

        The ping is sent only from here, so a hung loop stops pinging and systemd restarts
        the service; it is also held back when the publisher thread has stopped turning.
        """
        if not self._ready and (self.stats.frames > 0 or self.capture.error is not None):
            self._ready = True
            self.notifier.ready(self._status_text())
            log.info("service ready: %s", self._status_text())
        if now_mono - self._last_status_text_mono >= _STATUS_TEXT_EVERY_S:
            self._last_status_text_mono = now_mono
            self.notifier.status(self._status_text())
        interval_s = self.notifier.watchdog_interval_s
        if interval_s is None or now_mono - self._last_watchdog_mono < interval_s:
            return
        if now_mono - self.publisher.heartbeat_mono > _PUBLISHER_STALE_S:
            self._throttle.log("publisher", logging.ERROR, "publisher thread stalled; watchdog ping held")
            return
        self._last_watchdog_mono = now_mono
        self.notifier.watchdog()

    def _status_text(self) -> str:
        fps = self.stats.rate.rate(time.monotonic())
        return (
            f"{fps:.1f} fps, camera {self.capture.state.value}, "
            f"{self.publisher.subscriber_count} subscriber(s), model {self.model.name}"
        )

    # -- reload -----------------------------------------------------------------------

    def _reload(self) -> None:
        if self._reload_config is None:
            log.warning("SIGHUP: this service was started without a config file; nothing to reload")
            return
        try:
            new_config = self._reload_config()
            new_thresholds = thresholds_for(new_config, self.model)
        except ConfigError as exc:
            log.error("SIGHUP: config not reloaded, keeping the running settings: %s", exc)
            return
        applied, restart = reloadable_changes(self.config, new_config)
        if restart:
            log.warning("SIGHUP: %s changed; these take effect only after a restart", ", ".join(restart))
        old = self.thresholds
        self.thresholds = new_thresholds
        self._apply_thresholds(new_thresholds)
        self.config = replace(
            self.config,
            camera=new_config.camera,
            model=replace(
                self.config.model,
                score_threshold=new_config.model.score_threshold,
                max_detections=new_config.model.max_detections,
                class_filter=new_config.model.class_filter,
            ),
        )
        self.config_generation += 1
        log.info(
            "SIGHUP: reloaded (%s); score >= %.3f (was %.3f), max %d (was %d), hfov %.1f (was %.1f)",
            ", ".join(applied) or "no reloadable change",
            new_thresholds.score_threshold,
            old.score_threshold,
            new_thresholds.max_detections,
            old.max_detections,
            new_thresholds.hfov_deg,
            old.hfov_deg,
        )

    def _apply_thresholds(self, thresholds: Thresholds) -> None:
        self.model.params = replace(
            self.model.params,
            score_threshold=thresholds.score_threshold,
            max_detections=thresholds.max_detections,
            class_filter=frozenset(thresholds.class_filter) if thresholds.class_filter is not None else None,
        )
