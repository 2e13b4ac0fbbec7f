"""web/sync.js under node's test runner (tests/web/sync.test.mjs): RTP mapping, wrap, onsets, scheduling."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

SUITE = Path(__file__).with_name("sync.test.mjs")

pytestmark = pytest.mark.usefixtures("node")  # fails with the reason when node is missing


def test_sync_suite_passes_in_node():
    done = subprocess.run(["node", "--test", "--test-reporter=tap", str(SUITE)], capture_output=True, text=True, timeout=60)
    passed = int(re.search(r"^# pass (\d+)", done.stdout, re.M).group(1))
    failed = int(re.search(r"^# fail (\d+)", done.stdout, re.M).group(1))
    assert done.returncode == 0 and failed == 0, done.stdout[-4000:] + done.stderr
    assert passed == len(re.findall(r"^test\(", SUITE.read_text(), re.M)) >= 10
