"""Settings: the speech thread and instance counts, their ranges, defaults and errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from photoavatar.settings import (
    DEFAULT_TTS_THREADS,
    MAX_TTS_THREADS,
    TTS_MODELS,
    TTS_THREADS,
    tts_models,
    tts_threads,
)
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


def _default_models_on(cores: set[int]) -> int:
    """tts_models() unset, in a fresh interpreter allowed to run on CORES only (the default is read at import)."""
    script = (f"import os; os.sched_setaffinity(0, {sorted(cores)!r}); "
              "from photoavatar.settings import tts_models; print(tts_models())")
    env = {k: v for k, v in os.environ.items() if k != TTS_MODELS}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_the_default_instance_count_is_one_per_usable_core():
    allowed = os.sched_getaffinity(0)
    assert _default_models_on({min(allowed)}) == 1
    assert _default_models_on(allowed) == min(4, len(allowed))


def test_an_instance_count_set_wins_over_the_cores(monkeypatch):
    monkeypatch.setenv(TTS_MODELS, "3")
    assert tts_models() == 3
