"""Keep the start-up chatter of mediapipe's native runtime off the user's terminal.

mediapipe 0.10.21 (C++ absl logging and TFLite) writes lines such as ``W0000 ...
inference_feedback_manager.cc:114] Feedback manager requires a model with a single signature
inference`` and ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` straight to file
descriptor 2 when a graph is built and first run; no environment variable or Python logging
setting reaches them. :func:`quiet_native_logs` points fd 2 at a temporary file around such
calls, then sends the known start-up lines to the ``privvid.native`` logger (debug level) and
writes anything else back to stderr unchanged, so a real native error is never hidden.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager
from typing import Any, Iterator

log = logging.getLogger("privvid.native")

# the start-up lines of mediapipe/TFLite on CPU (absl "W0000"/"I0000" lines, TFLite INFO lines)
STARTUP_NOISE = re.compile(
    r"^(?:[WI]0000 \d\d:\d\d:\d+\.\d+\s+\d+ \S+\.cc:\d+\]"
    r"|INFO: Created TensorFlow Lite"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR)"
)
_lock = threading.Lock()
_capture: Any = None  # the temporary file fd 2 points at inside quiet_native_logs (one per process)


@contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Capture what native code writes to fd 2 inside the block; replay all but the start-up noise
    (also when the block raises). Cheap enough to wrap every model call (two ``dup2`` and a read of
    one reused temporary file)."""
    global _capture
    with _lock:
        if _capture is None:
            _capture = tempfile.TemporaryFile()
        _capture.seek(0)
        _capture.truncate()
        _flush_stderr()
        saved = os.dup(2)
        os.dup2(_capture.fileno(), 2)
        try:
            yield
        finally:
            _flush_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            _capture.seek(0)
            data = _capture.read()
            for line in data.decode("utf-8", errors="replace").splitlines() if data else ():
                if STARTUP_NOISE.match(line):
                    log.debug(line)
                elif line.strip():
                    print(line, file=sys.stderr)


def _flush_stderr() -> None:
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):  # no stderr, or a closed one
        pass


class QuietGraph:
    """A mediapipe solution graph whose ``process`` calls run inside :func:`quiet_native_logs`: the
    runtime logs when an interpreter first runs, which for a pose graph's landmark model is the first
    frame with a person in it, not the graph's first call."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph

    def process(self, image: Any) -> Any:
        with quiet_native_logs():
            return self.graph.process(image)

    def close(self) -> None:
        self.graph.close()


def quiet_graph(make: Any, *args: Any, **kwargs: Any) -> QuietGraph:
    """Build a mediapipe graph (``make(*args, **kwargs)``) with its start-up logs captured."""
    with quiet_native_logs():
        graph = make(*args, **kwargs)
        # a solution starts its graph and returns while the calculators are still opening (and
        # logging) on their own threads: wait for them, so their lines fall inside the capture
        wait = getattr(getattr(graph, "_graph", None), "wait_until_idle", None)
        if wait is not None:
            wait()
    return QuietGraph(graph)
