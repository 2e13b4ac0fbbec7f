"""Settings: the one speech thread-count setting, its range and its errors."""

from __future__ import annotations

import pytest

from photoavatar.settings import DEFAULT_TTS_THREADS, MAX_TTS_THREADS, TTS_THREADS, tts_threads
from photoavatar.speech.engine import SpeechError
from photoavatar.speech.voices import make_engine


@pytest.fixture(autouse=True)
def no_settings_file(monkeypatch, tmp_path):
    monkeypatch.setenv("PHOTOAVATAR_SETTINGS", str(tmp_path / "none.toml"))


def test_unset_is_the_default(monkeypatch):
    monkeypatch.delenv(TTS_THREADS, raising=False)
    assert tts_threads() == DEFAULT_TTS_THREADS == 1


@pytest.mark.parametrize("value", ["1", "4"])
def test_the_range_ends_are_accepted(monkeypatch, value):
    monkeypatch.setenv(TTS_THREADS, value)
    assert tts_threads() == int(value) <= MAX_TTS_THREADS


@pytest.mark.parametrize(("value", "message"), [("0", "from 1 to 4, got 0"), ("5", "from 1 to 4, got 5"),
                                                 ("two", "whole number from 1 to 4")])
def test_out_of_range_or_not_a_number_is_refused_with_the_range(monkeypatch, value, message):
    monkeypatch.setenv(TTS_THREADS, value)
    with pytest.raises(ValueError, match=message):
        tts_threads()
    with pytest.raises(SpeechError, match=f"{TTS_THREADS}.*{message}"):
        make_engine("piper")
