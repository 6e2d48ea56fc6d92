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
