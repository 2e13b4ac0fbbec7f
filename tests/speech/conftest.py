"""Shared fixtures for the speech tests: the Piper engine takes about a second to load, so load it once."""

from __future__ import annotations

import pytest

from photoavatar.speech.piper_engine import PiperEngine


@pytest.fixture(scope="session")
def piper_engine() -> PiperEngine:
    return PiperEngine(threads=1)
