"""The native-stderr filter drops MediaPipe's start-up chatter and keeps everything else, in order."""

import os
import sys

from photoavatar.avatar.native_logs import is_chatter, native_stderr_filtered

CHATTER = [
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "W0000 00:00:1796221531.997314   12811 inference_feedback_manager.cc:114] Feedback manager requires a model "
    "with a single signature inference. Disabling support for feedback tensors.",
    "I0000 00:00:1796221532.011641   12812 gl_context.cc:357] GL version: 3.2",
]
KEPT = [
    "E0000 00:00:1796221532.014988   12812 calculator_graph.cc:887] a real native error",
    "error: the photo shows 2 faces",
    "INFO:photoavatar:a log line of ours",
    "avatarize: landmarks (2/6)",
]


def test_known_chatter_is_recognised_and_errors_are_not():
    assert all(is_chatter(line) for line in CHATTER)
    assert not any(is_chatter(line) for line in KEPT)


def test_lines_written_to_fd_2_inside_the_block_come_back_without_the_chatter(capfd):
    with native_stderr_filtered():
        for line in CHATTER[:2] + KEPT[:1] + CHATTER[2:] + KEPT[1:]:
            os.write(2, (line + "\n").encode())
        print("from python", file=sys.stderr)
    lines = capfd.readouterr().err.splitlines()
    assert [line for line in lines if line != "from python"] == KEPT and "from python" in lines


def test_an_exception_inside_the_block_still_restores_stderr(capfd):
    try:
        with native_stderr_filtered():
            os.write(2, b"E0000 00:00:1.0 1 x.cc:1] failed\n")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    os.write(2, b"after\n")
    assert capfd.readouterr().err.splitlines() == ["E0000 00:00:1.0 1 x.cc:1] failed", "after"]
