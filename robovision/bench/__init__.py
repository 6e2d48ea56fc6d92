"""``robovision bench``: how close the full pipeline runs to the interpreter's own speed.

Every figure is measured on the same frames (a replay of the bundled photographs, decoded
into memory and handed out as fast as asked) and the same interpreter thread count:

- ``ceiling``: the bare interpreter, ``invoke()`` alone on prepared input tensors;
- ``pipeline``: the service's own capture thread, frame loop and socket publisher with a
  subscriber process attached, frame rate and per-stage times;
- ``memory``: resident memory over a long run, in a process of its own;
- ``startup``: a real ``robovision run`` process, from spawn to the first detection message;
- ``reference``: ``benchmarks/reference_loop.py``, a loop written the way the common
  Raspberry Pi examples are, on tflite-runtime.

This package imports only the standard library at import time, so its subprocess entry
points (``python -m robovision.bench.subscriber``) start fast.
"""
