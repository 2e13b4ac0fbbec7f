"""The ElevenLabs text-to-speech adapter: streamed PCM with character timestamps, turned into phoneme timings.

Two transports speak the same result (`ElevenLabsEngine(transport=...)`):
- "http" (default): `POST /v1/text-to-speech/{voice_id}/stream/with-timestamps`, a stream of JSON lines
  `{audio_base64, alignment: {characters, character_start_times_seconds, character_end_times_seconds}}`;
- "websocket": `/v1/text-to-speech/{voice_id}/stream-input` (see `elevenlabs_ws.py`).
ElevenLabs times characters, not sounds: `character_timing.py` turns them into phoneme timings.

Voice cloning (`clone_voice`, `POST /v1/voices/add`) and the voice list (`list_voices`, `GET /v1/voices`) live
here too; the CLI reaches them through `speech/voices.py`.

Settings (environment or settings file): ELEVENLABS_API_KEY (required), ELEVENLABS_BASE_URL, ELEVENLABS_MODEL_ID,
ELEVENLABS_VOICE_ID, ELEVENLABS_LANGUAGE (default en-us), ELEVENLABS_OUTPUT_FORMAT (pcm_22050, pcm_24000...),
ELEVENLABS_TRANSPORT (http or websocket).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from photoavatar.settings import setting
from photoavatar.speech.character_timing import RawChunk, assemble_chunks
from photoavatar.speech.engine import SpeechError
from photoavatar.speech.types import AudioChunk, VoiceInfo

DEFAULT_BASE_URL = "https://api.elevenlabs.io"
DEFAULT_VOICE_ID = "21m00Tcm4TlvDq8ikWAM"  # "Rachel", a premade voice every account has
ENGLISH_MODEL_ID = "eleven_flash_v2_5"  # lowest latency
MULTILINGUAL_MODEL_ID = "eleven_multilingual_v2"  # better German (and other languages) than flash
DEFAULT_OUTPUT_FORMAT = "pcm_22050"  # the Piper voices' rate, so both engines feed the same pipeline
TRANSPORTS = ("http", "websocket")
KEY_HELP = "set ELEVENLABS_API_KEY in the environment or elevenlabs_api_key in the photoavatar settings file"
VOICE_LIST_HELP = "run `photoavatar voice list --engine elevenlabs` to see the voices your key can use"
AUDIO_SUFFIXES = frozenset({".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".webm", ".mp4"})


@dataclass(frozen=True)
class ElevenLabsConfig:
    api_key: str | None
    base_url: str = DEFAULT_BASE_URL
    model_id: str = ENGLISH_MODEL_ID
    voice_id: str = DEFAULT_VOICE_ID
    language: str = "en-us"
    output_format: str = DEFAULT_OUTPUT_FORMAT
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 20.0  # longest silence tolerated between two pieces of a stream
    max_retries: int = 3  # on 429, before giving up
    max_retry_wait_s: float = 20.0  # total time spent waiting on 429s, across retries

    @classmethod
    def from_settings(cls) -> ElevenLabsConfig:
        language = setting("ELEVENLABS_LANGUAGE", "en-us") or "en-us"
        return cls(
            api_key=setting("ELEVENLABS_API_KEY"),
            base_url=(setting("ELEVENLABS_BASE_URL", DEFAULT_BASE_URL) or DEFAULT_BASE_URL).rstrip("/"),
            model_id=setting("ELEVENLABS_MODEL_ID") or default_model_for(language),
            voice_id=setting("ELEVENLABS_VOICE_ID", DEFAULT_VOICE_ID) or DEFAULT_VOICE_ID,
            language=language,
            output_format=setting("ELEVENLABS_OUTPUT_FORMAT", DEFAULT_OUTPUT_FORMAT) or DEFAULT_OUTPUT_FORMAT,
        )

    @property
    def sample_rate_hz(self) -> int:
        return sample_rate_for(self.output_format)

    def key_headers(self) -> dict[str, str]:
        if not self.api_key:
            raise SpeechError(f"no ElevenLabs API key: {KEY_HELP}")
        return {"xi-api-key": self.api_key}

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.read_timeout_s, connect=self.connect_timeout_s)


def default_model_for(language: str) -> str:
    return ENGLISH_MODEL_ID if language.lower().startswith("en") else MULTILINGUAL_MODEL_ID


def sample_rate_for(output_format: str) -> int:
    """The sample rate of a raw PCM output format ("pcm_24000" -> 24000); other codecs are refused."""
    codec, _, rate = output_format.partition("_")
    if codec != "pcm" or not rate.isdigit():
        raise SpeechError(
            f"ElevenLabs output format {output_format!r} is not raw PCM; "
            "set ELEVENLABS_OUTPUT_FORMAT to pcm_16000, pcm_22050, pcm_24000 or pcm_44100"
        )
    return int(rate)


# ---------------------------------------------------------------- errors


def error_message(body: str) -> str:
    """The human part of an ElevenLabs error body: {"detail": {"status","message"}} or {"detail": [{"msg"}]}."""
    try:
        detail = json.loads(body).get("detail", body)
    except (ValueError, AttributeError):
        return body.strip()[:300]
    if isinstance(detail, dict):
        return str(detail.get("message") or detail.get("status") or detail)
    if isinstance(detail, list):
        return "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail)
    return str(detail)


def http_error(status: int, body: str, what: str, voice_id: str | None = None) -> SpeechError:
    """A SpeechError that says what went wrong with WHAT (e.g. "text to speech") and what to do about it."""
    message = error_message(body)
    if status in (401, 403):
        return SpeechError(f"ElevenLabs refused the API key for {what} (HTTP {status}: {message}); "
                           f"check ELEVENLABS_API_KEY ({KEY_HELP})")
    if voice_id and (status == 404 or "voice" in message.lower()) and status in (400, 404, 422):
        return SpeechError(f"ElevenLabs has no voice {voice_id!r} (HTTP {status}: {message}); {VOICE_LIST_HELP}")
    if status == 429:
        return SpeechError(f"ElevenLabs is rate-limiting this key ({message}); wait a minute and try again, "
                           "or send fewer requests at once")
    if status >= 500:
        return SpeechError(f"ElevenLabs had a server error during {what} (HTTP {status}: {message}); try again later")
    return SpeechError(f"ElevenLabs rejected the {what} request (HTTP {status}: {message})")


def retry_delay_s(retry_after: str | None, attempt: int) -> float:
    """Seconds to wait before retry ATTEMPT (0-based): the server's Retry-After, else exponential backoff."""
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            pass  # an HTTP date: rare for ElevenLabs, fall back to backoff
    return 0.5 * 2**attempt


# ---------------------------------------------------------------- stream pieces


def decode_audio(encoded: str | None, where: str) -> bytes:
    if not encoded:
        return b""
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise SpeechError(f"ElevenLabs sent audio that is not base64 ({where}): {error}") from error


# ---------------------------------------------------------------- HTTP transport


def _tts_request(config: ElevenLabsConfig, text: str, voice_id: str) -> dict:
    return {
        "url": f"{config.base_url}/v1/text-to-speech/{voice_id}/stream/with-timestamps",
        "params": {"output_format": config.output_format},
        "headers": {**config.key_headers(), "Accept": "application/json"},
        "json": {"text": text, "model_id": config.model_id},
    }


def stream_http(config: ElevenLabsConfig, text: str, voice_id: str, client: httpx.Client | None = None) -> Iterator[RawChunk]:
    """The pieces of `stream/with-timestamps`, retrying on 429 (only before any audio arrived).

    Pass a long-lived CLIENT to keep the connection (and its TLS handshake) across utterances.
    """
    if client is None:
        with httpx.Client(timeout=config.timeout()) as own_client:
            yield from stream_http(config, text, voice_id, own_client)
        return
    request = _tts_request(config, text, voice_id)
    waited_s = 0.0
    for attempt in range(config.max_retries + 1):
        try:
            with client.stream("POST", **request) as response:
                if response.status_code == 429 and attempt < config.max_retries:
                    delay_s = retry_delay_s(response.headers.get("retry-after"), attempt)
                    if waited_s + delay_s <= config.max_retry_wait_s:
                        response.read()
                        waited_s += delay_s
                        time.sleep(delay_s)
                        continue
                if response.status_code != 200:
                    raise http_error(response.status_code, response.read().decode("utf-8", "replace"),
                                     "text to speech", voice_id)
                yield from _parse_stream_lines(response.iter_lines(), config.sample_rate_hz)
                return
        except httpx.TimeoutException as error:
            raise SpeechError(f"ElevenLabs did not answer within {config.read_timeout_s:.0f} s "
                              f"({type(error).__name__}); try again later") from error
        except httpx.TransportError as error:
            raise SpeechError(f"the connection to ElevenLabs at {config.base_url} failed or was cut "
                              f"({type(error).__name__}: {error}); check the network and try again") from error


def _parse_stream_lines(lines: Iterator[str], sample_rate_hz: int) -> Iterator[RawChunk]:
    """Pieces from JSON lines. Times are taken as utterance-relative; if they restart at 0 in a later line
    (chunk-relative, as on the websocket), the audio received so far is added as an offset."""
    bytes_so_far = 0
    previous_start_s = -1.0
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if line.startswith("data:"):  # tolerate server-sent-event framing of the same objects
            line = line[5:].strip()
        if not line:
            continue
        message = _parse_json_line(line, number)
        pcm = decode_audio(message.get("audio_base64"), f"line {number}")
        chars, starts, ends = _alignment_lists(message.get("alignment") or message.get("normalized_alignment"))
        if starts and starts[0] + 1e-3 < previous_start_s:
            offset_s = bytes_so_far / 2 / sample_rate_hz
            starts, ends = tuple(s + offset_s for s in starts), tuple(e + offset_s for e in ends)
        if starts:
            previous_start_s = starts[-1]
        bytes_so_far += len(pcm)
        yield RawChunk(pcm, chars, starts, ends)


def _parse_json_line(line: str, number: int) -> dict:
    try:
        message = json.loads(line)
    except ValueError as error:
        raise SpeechError(f"ElevenLabs sent a malformed stream (line {number} is not JSON: {line[:80]!r}); "
                          "try again, and report it if it persists") from error
    if not isinstance(message, dict):
        raise SpeechError(f"ElevenLabs sent a malformed stream (line {number} is not a JSON object)")
    if "detail" in message and "audio_base64" not in message:  # an error reported inside the stream
        raise SpeechError(f"ElevenLabs stopped the stream: {error_message(line)}")
    return message


def _alignment_lists(alignment: dict | None) -> tuple[tuple[str, ...], tuple[float, ...], tuple[float, ...]]:
    if not alignment:
        return (), (), ()
    try:
        return (tuple(alignment["characters"]), tuple(float(t) for t in alignment["character_start_times_seconds"]),
                tuple(float(t) for t in alignment["character_end_times_seconds"]))
    except (KeyError, TypeError, ValueError) as error:
        raise SpeechError(f"ElevenLabs sent an alignment without {error}; please report this") from error


# ---------------------------------------------------------------- the engine


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
            from photoavatar.speech.elevenlabs_ws import stream_websocket

            return stream_websocket(self.config, text, voice_id)
        return stream_http(self.config, text, voice_id, self._client)


# ---------------------------------------------------------------- voices


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
    waited_s = 0.0
    try:
        with httpx.Client(timeout=config.timeout()) as client:
            for attempt in range(config.max_retries + 1):
                response = client.request(method, f"{config.base_url}{path}", headers=headers, **kwargs)
                delay_s = retry_delay_s(response.headers.get("retry-after"), attempt)
                if response.status_code != 429 or attempt == config.max_retries or waited_s + delay_s > config.max_retry_wait_s:
                    break
                waited_s += delay_s
                time.sleep(delay_s)
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

