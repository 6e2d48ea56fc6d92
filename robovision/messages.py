"""The detection message: one JSON object per processed frame.

The same schema is printed by ``robovision capture`` and carried on the detection
socket (one object per line). ``schema/messages.schema.json`` is its JSON Schema.
Field names carry their units: ``*_ms`` milliseconds, ``*_wall`` seconds since the
Unix epoch, ``*_mono`` seconds of the publisher's monotonic clock (comparable only
with other ``*_mono`` values from the same host and boot).
"""

from __future__ import annotations

import json
import time
from typing import Any

from robovision.detection import FrameResult
from robovision.frame import Frame

SCHEMA_VERSION = 1


def detection_message(
    frame: Frame,
    result: FrameResult,
    *,
    model_name: str,
    seq: int,
    hfov_deg: float | None = None,
    capture_ms: float | None = None,
    publish_ms: float | None = None,
    t_publish_wall: float | None = None,
) -> dict[str, Any]:
    """Build the message for one frame. Every processed frame gets one, even with no detections."""
    width, height = frame.size_wh
    latency_ms: dict[str, float] = {
        "preprocess": round(result.preprocess_ms, 3),
        "inference": round(result.inference_ms, 3),
        "decode": round(result.decode_ms, 3),
    }
    if capture_ms is not None:
        latency_ms["capture"] = round(capture_ms, 3)
    if publish_ms is not None:
        latency_ms["publish"] = round(publish_ms, 3)
    return {
        "v": SCHEMA_VERSION,
        "type": "detections",
        "seq": seq,
        "frame_id": frame.frame_id,
        "t_capture_wall": round(frame.t_capture_wall, 6),
        "t_capture_mono": round(frame.t_capture_mono, 6),
        "t_publish_wall": round(time.time() if t_publish_wall is None else t_publish_wall, 6),
        "latency_ms": latency_ms,
        "source": frame.source,
        "model": model_name,
        "image_wh": [width, height],
        "hfov_deg": hfov_deg,
        "detections": [d.to_dict(hfov_deg) for d in result.detections],
    }


def encode_line(message: dict[str, Any]) -> bytes:
    """One message as a compact UTF-8 JSON line ending in ``\\n``."""
    return (json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n").encode()


def hello_message(
    *,
    service_version: str,
    model_name: str,
    source: str,
    hfov_deg: float | None,
    status_interval_s: float,
    subscriber_id: int,
    queue_messages: int,
) -> dict[str, Any]:
    """The first line every subscriber receives: what it is connected to."""
    return {
        "v": SCHEMA_VERSION,
        "type": "hello",
        "service": "robovision",
        "version": service_version,
        "model": model_name,
        "source": source,
        "hfov_deg": hfov_deg,
        "status_interval_s": status_interval_s,
        "subscriber_id": subscriber_id,
        "queue_messages": queue_messages,
        "t_wall": round(time.time(), 6),
    }


def gap_message(dropped: int, dropped_detections: int) -> dict[str, Any]:
    """Sent to one subscriber before its next message when its queue overflowed.

    ``dropped`` counts every message it lost since the last one it received;
    ``dropped_detections`` the detection messages among them (the ``seq`` values it missed).
    """
    return {
        "v": SCHEMA_VERSION,
        "type": "gap",
        "dropped": dropped,
        "dropped_detections": dropped_detections,
        "t_wall": round(time.time(), 6),
    }


def error_message(code: str, message: str) -> dict[str, Any]:
    """A one-line refusal (e.g. too many subscribers); the service closes the connection after it."""
    return {"v": SCHEMA_VERSION, "type": "error", "code": code, "message": message}


def status_message(
    *,
    fps: float,
    latency_ms: dict[str, float],
    stage_ms: dict[str, dict[str, float]],
    frames: int,
    dropped_capture: int,
    subscriber_drops: list[dict[str, int]],
    camera_state: str,
    camera_error: str | None,
    camera_losses: int,
    backend: str,
    model_name: str,
    source: str,
    uptime_s: float,
    thresholds: dict[str, Any],
    hfov_deg: float | None,
    config_generation: int,
) -> dict[str, Any]:
    """The periodic health report.

    ``latency_ms`` holds ``p50``/``p95`` of capture-to-publish time over the recent window;
    ``stage_ms`` the same percentiles per stage; ``subscriber_drops`` one
    ``{"id", "dropped", "queued"}`` entry per connected subscriber.
    """
    return {
        "v": SCHEMA_VERSION,
        "type": "status",
        "t_wall": round(time.time(), 6),
        "t_mono": round(time.monotonic(), 6),
        "uptime_s": round(uptime_s, 3),
        "fps": round(fps, 2),
        "frames": frames,
        "latency_ms": {k: round(v, 3) for k, v in latency_ms.items()},
        "stage_ms": {stage: {k: round(v, 3) for k, v in pct.items()} for stage, pct in stage_ms.items()},
        "dropped": {
            "capture": dropped_capture,
            "subscribers": sum(entry["dropped"] for entry in subscriber_drops),
        },
        "subscribers": len(subscriber_drops),
        "subscriber_drops": subscriber_drops,
        "camera": {"state": camera_state, "error": camera_error, "losses": camera_losses},
        "backend": backend,
        "model": model_name,
        "source": source,
        "thresholds": thresholds,
        "hfov_deg": hfov_deg,
        "config_generation": config_generation,
    }
