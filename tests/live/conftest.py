"""What the live tests share: real speech (the bundled Piper voice through the speech pipeline)."""

from __future__ import annotations

import pytest

from photoavatar.server.app import engine_speech_source


@pytest.fixture(scope="session")
def speech():
    source, engine = engine_speech_source("piper")
    return source, engine.voices()
