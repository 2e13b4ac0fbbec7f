"""Configuration from the environment, or from a TOML settings file; never from code.

The file is `$PHOTOAVATAR_SETTINGS`, else `~/.config/photoavatar/settings.toml`. Keys are the lower-case
names of the environment variables (`elevenlabs_api_key = "..."`); the environment wins over the file.
The settings are listed in README.md ("Serving"); the ElevenLabs ones in speech/elevenlabs_api.py.
"""

from __future__ import annotations

import os
import tomllib
from functools import cache
from pathlib import Path


def settings_path() -> Path:
    explicit = os.environ.get("PHOTOAVATAR_SETTINGS")
    return Path(explicit) if explicit else Path.home() / ".config" / "photoavatar" / "settings.toml"


@cache
def _file_settings(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            return {str(k).lower(): v for k, v in tomllib.load(handle).items()}
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"cannot read the settings file {path}: {error}; fix or remove it") from error


def setting(name: str, default: str | None = None) -> str | None:
    """The value of setting NAME (e.g. "ELEVENLABS_API_KEY"): environment first, then the settings file."""
    value = os.environ.get(name.upper())
    if value not in (None, ""):
        return value
    found = _file_settings(settings_path()).get(name.lower())
    return str(found) if found not in (None, "") else default


def int_setting(name: str, default: int, low: int, high: int) -> int:
    """Setting NAME as a whole number in [LOW, HIGH], DEFAULT when unset; a clear error otherwise."""
    raw = setting(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"setting {name} must be a whole number from {low} to {high}, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"setting {name} must be from {low} to {high}, got {value}")
    return value


# onnxruntime threads per Piper run. 1: with two runs at once (PHOTOAVATAR_TTS_MODELS) two cores are full, and
# two threads each only contend; docs/latency.md ("Ten sessions on two cores") has the A/B. More than 4 only adds
# contention.
TTS_THREADS = "PHOTOAVATAR_TTS_THREADS"
MIN_TTS_THREADS, MAX_TTS_THREADS, DEFAULT_TTS_THREADS = 1, 4, 1


def tts_threads() -> int:
    """PHOTOAVATAR_TTS_THREADS: 1 to 4, default 1."""
    return int_setting(TTS_THREADS, DEFAULT_TTS_THREADS, MIN_TTS_THREADS, MAX_TTS_THREADS)


# Voice instances that synthesise at once (one model run each, one server synthesis worker each): by default one
# per core this process may run on, up to MAX_TTS_MODELS. Measured on 2 cores (docs/latency.md, "Ten sessions on
# two cores"): 2 x 1 thread beat 2 x 2 and 1 x 2, and 3 or 4 instances (runs sharing the cores) left ten sessions
# 50-200 ms later and with 2-8 times the gaps. bench/live_sessions.py --configs new:2x1,new:3x1,new:2x2
# compares them in one run.
TTS_MODELS = "PHOTOAVATAR_TTS_MODELS"
# Bulk work no listener waits for (analysing an uploaded audio file: seconds of CPU) runs at this nice, below the
# live audio and synthesis. Live synthesis itself runs at normal priority: at nice 10 ten sessions were 20-47 ms
# later at the median with more gaps in every round (docs/latency.md, "Priority"), likely as a worker preempted
# in Python holds the GIL the event loop needs; the loop still gets its turns at nice 0 (pacing p99 under 12 ms).
BULK_NICE = 10
MIN_TTS_MODELS, MAX_TTS_MODELS = 1, 4


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, as a container's cpuset sets it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


DEFAULT_TTS_MODELS = min(MAX_TTS_MODELS, max(MIN_TTS_MODELS, usable_cores()))


def tts_models() -> int:
    """PHOTOAVATAR_TTS_MODELS: 1 to 4, default one per usable core (at most 4)."""
    return int_setting(TTS_MODELS, DEFAULT_TTS_MODELS, MIN_TTS_MODELS, MAX_TTS_MODELS)


# Utterances in their making at once per voice instance (live/synthesis.py: more wait for their first step, so
# those started never fall silent). On 2 cores with 2 instances, 10 sessions starting together are about what
# the CPU carries; docs/latency.md ("More sessions than the machine carries") has 20 with and without the limit.
TTS_STREAMS_PER_MODEL = "PHOTOAVATAR_TTS_STREAMS_PER_MODEL"
MIN_TTS_STREAMS_PER_MODEL, MAX_TTS_STREAMS_PER_MODEL, DEFAULT_TTS_STREAMS_PER_MODEL = 1, 100, 5


def tts_streams_per_model() -> int:
    """PHOTOAVATAR_TTS_STREAMS_PER_MODEL: 1 to 100, default 5."""
    return int_setting(TTS_STREAMS_PER_MODEL, DEFAULT_TTS_STREAMS_PER_MODEL, MIN_TTS_STREAMS_PER_MODEL,
                       MAX_TTS_STREAMS_PER_MODEL)
