"""Keep MediaPipe's native start-up chatter (TensorFlow Lite, absl, glog) off the user's terminal.

The C++ side logs through absl before anything initialises it, so every message goes straight to file
descriptor 2 ("Created TensorFlow Lite XNNPACK delegate", "Feedback manager requires a model with a single
signature..."). These come once, while a graph starts and runs its first image. Environment variables set
before import quiet what they can; around the native start-up the descriptor itself is captured, and every
captured line that is not known chatter (errors, our own log lines) is written back to stderr afterwards.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

QUIET_ENVIRONMENT = {"GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "3"}
# Info and warning lines of absl/glog ("I0000 00:00:..." / "W0000 ..."), TF Lite's INFO lines, absl's banner.
CHATTER = re.compile(r"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\]|INFO: Created TensorFlow Lite|"
                     r"WARNING: All log messages before absl::InitializeLog\(\) is called)")


def quiet_environment() -> None:
    """Ask the native libraries for errors only; call before importing mediapipe (the user's values win)."""
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl comes with mediapipe; without it there is nothing to quiet
        pass


def is_chatter(line: str) -> bool:
    return bool(CHATTER.match(line))


@contextmanager
def native_stderr_filtered() -> Iterator[None]:
    """Capture fd 2 for the block, then write back every line that is not native chatter."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines() if not is_chatter(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()
