"""Which voices exist, and the one place that builds a speech engine by name (used by the CLI and the server)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from photoavatar.settings import setting, tts_models, tts_threads
from photoavatar.speech.engine import SpeechEngine, SpeechError
from photoavatar.speech.types import VoiceInfo

log = logging.getLogger(__name__)

ENGINES = ("piper", "elevenlabs")

_piper_engines: dict[tuple, SpeechEngine] = {}
_piper_lock = threading.Lock()


def list_voices(engine: str = "all") -> list[VoiceInfo]:
    """Voices of ENGINE ("piper", "elevenlabs" or "all"). Piper voices are listed without loading any model.

    With "all", ElevenLabs is asked only when an API key is configured, and a failure there is logged and
    skipped so the local voices are still listed; asked for by name, its errors are the answer.
    """
    if engine not in (*ENGINES, "all"):
        raise SpeechError(f"unknown engine {engine!r}; choose one of: all, {', '.join(ENGINES)}")
    voices: list[VoiceInfo] = []
    if engine in ("piper", "all"):
        from photoavatar.speech.piper_engine import discover_voice_files

        voices.extend(voice.info() for voice in discover_voice_files())
    if engine == "elevenlabs":
        voices.extend(_elevenlabs().list_voices())
    elif engine == "all" and setting("ELEVENLABS_API_KEY"):
        voices.extend(_elevenlabs_voices_or_nothing())
    return voices


def _elevenlabs_voices_or_nothing() -> list[VoiceInfo]:
    try:
        return _elevenlabs().list_voices()
    except SpeechError as error:
        log.warning("ElevenLabs voices skipped: %s", error)
        return []


def _elevenlabs():
    # Imported on use: the embedded default must work without the cloud adapter's dependencies or a key.
    from photoavatar.speech import elevenlabs

    return elevenlabs


def clone_voice(name: str, samples: list[Path] | list[str], description: str = "") -> str:
    """Clone a voice with ElevenLabs from audio SAMPLES; return the new voice_id."""
    return _elevenlabs().clone_voice(name, [Path(sample) for sample in samples], description=description)


def make_engine(name: str = "piper", **options) -> SpeechEngine:
    """The engine called NAME. Piper is built once and shared (its model takes a second and ~100 MB to load).

    Piper options: threads (onnxruntime threads, default the PHOTOAVATAR_TTS_THREADS setting), models (voice
    instances run at once, default PHOTOAVATAR_TTS_MODELS), streamed (False: each run rendered whole), voice.
    """
    if name == "piper":
        return _shared_piper(**options)
    if name == "elevenlabs":
        return _elevenlabs().ElevenLabsEngine(**options)
    raise SpeechError(f"unknown speech engine {name!r}; choose one of: {', '.join(ENGINES)}")


def _shared_piper(**options) -> SpeechEngine:
    from photoavatar.speech.piper_engine import PiperEngine

    try:
        options.setdefault("threads", tts_threads())
        options.setdefault("models", tts_models())
    except ValueError as error:
        raise SpeechError(str(error)) from None
    key = tuple(sorted((name, str(value)) for name, value in options.items()))
    with _piper_lock:  # one instance per option set (normally just one), built once even under concurrency
        if key not in _piper_engines:
            _piper_engines[key] = PiperEngine(**options)
        return _piper_engines[key]
