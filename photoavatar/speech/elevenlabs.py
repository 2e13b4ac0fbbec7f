"""The ElevenLabs text-to-speech engine: streamed PCM with character timestamps, turned into phoneme timings.

Modules, each importing only the ones before it:
- `elevenlabs_api.py`: settings (`ElevenLabsConfig`), error messages, the one 429 retry helper;
- `elevenlabs_http.py`: the "http" transport (default), `stream/with-timestamps` JSON lines;
- `elevenlabs_ws.py`: the "websocket" transport, `stream-input`;
- this module: `ElevenLabsEngine(transport=...)`, voice cloning (`clone_voice`, `POST /v1/voices/add`) and the
  voice list (`list_voices`, `GET /v1/voices`); the CLI reaches them through `speech/voices.py`.
ElevenLabs times characters, not sounds: `character_timing.py` turns them into phoneme timings.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx

from photoavatar.settings import setting
from photoavatar.speech.character_timing import RawChunk, assemble_chunks
from photoavatar.speech.elevenlabs_api import (
    AUDIO_SUFFIXES,
    TRANSPORTS,
    ElevenLabsConfig,
    http_error,
    response_retrying_429,
)
from photoavatar.speech.elevenlabs_http import stream_http
from photoavatar.speech.elevenlabs_ws import stream_websocket
from photoavatar.speech.engine import SpeechError
from photoavatar.speech.types import AudioChunk, VoiceInfo

__all__ = ["ElevenLabsConfig", "ElevenLabsEngine", "clone_voice", "list_voices"]


class ElevenLabsEngine:
    """SpeechEngine over ElevenLabs. The key is checked when first used, so building the engine never fails."""

    name = "elevenlabs"

    def __init__(self, config: ElevenLabsConfig | None = None, transport: str | None = None):
        self.config = config or ElevenLabsConfig.from_settings()
        self.transport = transport or setting("ELEVENLABS_TRANSPORT", "http") or "http"
        if self.transport not in TRANSPORTS:
            raise SpeechError(f"unknown ElevenLabs transport {self.transport!r}; use one of {', '.join(TRANSPORTS)}")
        # One client for the engine's life: its kept-alive connection saves a TLS handshake per utterance.
        self._client = httpx.Client(timeout=self.config.timeout())

    def close(self) -> None:
        self._client.close()

    def voices(self) -> list[VoiceInfo]:
        return list_voices(self.config)

    def synthesize(self, text: str, voice_id: str | None = None) -> Iterator[AudioChunk]:
        if not text or not text.strip():
            raise SpeechError("there is no text to speak; give at least one word")
        voice = voice_id or self.config.voice_id
        self.config.key_headers()  # fail before the first chunk, not inside the stream, when the key is missing
        return assemble_chunks(self._pieces(text, voice), text, self.config.language, self.config.sample_rate_hz)

    def _pieces(self, text: str, voice_id: str) -> Iterator[RawChunk]:
        if self.transport == "websocket":
            return stream_websocket(self.config, text, voice_id)
        return stream_http(self.config, text, voice_id, self._client)


def list_voices(config: ElevenLabsConfig | None = None) -> list[VoiceInfo]:
    """The voices this key can use (premade, cloned...), via `GET /v1/voices`."""
    config = config or ElevenLabsConfig.from_settings()
    body = _request_json(config, "GET", "/v1/voices", "listing voices")
    voices = body.get("voices")
    if not isinstance(voices, list):
        raise SpeechError("ElevenLabs answered the voice list without a `voices` list; please report this")
    return [_voice_info(voice, config.sample_rate_hz) for voice in voices if isinstance(voice, dict)]


def _voice_info(voice: dict, sample_rate_hz: int) -> VoiceInfo:
    labels = voice.get("labels") or {}
    verified = voice.get("verified_languages") or []
    language = (verified[0].get("locale") or verified[0].get("language")) if verified else None
    return VoiceInfo(
        voice_id=str(voice.get("voice_id", "")),
        name=str(voice.get("name", "")),
        language=str(language or labels.get("language") or "en"),
        engine="elevenlabs",
        sample_rate_hz=sample_rate_hz,
        details={"category": voice.get("category"), "labels": labels, "description": voice.get("description")},
    )


def clone_voice(name: str, samples: list[Path], description: str = "", config: ElevenLabsConfig | None = None) -> str:
    """Create an instant voice clone from audio SAMPLES (`POST /v1/voices/add`) and return its voice_id."""
    if not name or not name.strip():
        raise SpeechError("a cloned voice needs a name; pass --name")
    files = [_sample_upload(Path(sample)) for sample in samples]
    if not files:
        raise SpeechError("cloning a voice needs at least one audio sample (WAV, MP3, FLAC...), ideally 1-2 minutes of clean speech")
    config = config or ElevenLabsConfig.from_settings()
    body = _request_json(config, "POST", "/v1/voices/add", "voice cloning",
                         data={"name": name.strip(), "description": description}, files=files)
    voice_id = body.get("voice_id")
    if not isinstance(voice_id, str) or not voice_id:
        raise SpeechError("ElevenLabs accepted the voice but sent no voice_id back; check your voices on elevenlabs.io")
    return voice_id


def _sample_upload(path: Path) -> tuple[str, tuple[str, bytes, str]]:
    if not path.is_file():
        raise SpeechError(f"voice sample {path} does not exist (or is not a file); check the path")
    data = path.read_bytes()
    mime = _audio_mime(data)
    if mime is None or path.suffix.lower() not in AUDIO_SUFFIXES:
        raise SpeechError(f"voice sample {path} is not an audio file ElevenLabs accepts; "
                          f"use recordings in one of: {', '.join(sorted(AUDIO_SUFFIXES))}")
    return ("files", (path.name, data, mime))


def _audio_mime(data: bytes) -> str | None:
    """The MIME type of audio DATA from its first bytes, or None when it is not a known audio container."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    if data[:4] == b"fLaC":
        return "audio/flac"
    if data[:4] == b"OggS":
        return "audio/ogg"
    if data[4:8] == b"ftyp":
        return "audio/mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "audio/webm"
    return None


def _request_json(config: ElevenLabsConfig, method: str, path: str, what: str, **kwargs) -> dict:
    """One JSON request with the key, 429 retries and clear errors."""
    headers = config.key_headers()
    try:
        with httpx.Client(timeout=config.timeout()) as client, response_retrying_429(
                config, lambda: client.stream(method, f"{config.base_url}{path}", headers=headers, **kwargs)) as response:
            response.read()
    except httpx.TimeoutException as error:
        raise SpeechError(f"ElevenLabs did not answer {what} in time; try again later") from error
    except httpx.TransportError as error:
        raise SpeechError(f"cannot reach ElevenLabs at {config.base_url} for {what} ({error}); check the network") from error
    if response.status_code != 200:
        raise http_error(response.status_code, response.text, what)
    try:
        return response.json()
    except ValueError as error:
        raise SpeechError(f"ElevenLabs answered {what} with something that is not JSON; try again later") from error
