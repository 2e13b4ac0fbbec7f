"""ElevenLabs settings, errors and the pieces both transports share (`elevenlabs_http.py`, `elevenlabs_ws.py`).

Settings (environment or settings file): ELEVENLABS_API_KEY (required), ELEVENLABS_BASE_URL, ELEVENLABS_MODEL_ID,
ELEVENLABS_VOICE_ID, ELEVENLABS_LANGUAGE (default en-us), ELEVENLABS_OUTPUT_FORMAT (pcm_22050, pcm_24000...),
ELEVENLABS_TRANSPORT (http or websocket).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import httpx

from photoavatar.settings import setting
from photoavatar.speech.engine import SpeechError

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


@contextmanager
def response_retrying_429(config: ElevenLabsConfig,
                          open_response: Callable[[], AbstractContextManager[httpx.Response]]) -> Iterator[httpx.Response]:
    """The response of OPEN_RESPONSE (an httpx stream), sent again while ElevenLabs answers 429 (rate limit).

    At most `config.max_retries` retries and `config.max_retry_wait_s` of waiting in all; then the last
    answer, 429 or not, is the caller's to turn into an error. Nothing has been streamed before a retry.
    """
    waited_s = 0.0
    for attempt in range(config.max_retries + 1):
        with open_response() as response:
            delay_s = retry_delay_s(response.headers.get("retry-after"), attempt)
            if (response.status_code == 429 and attempt < config.max_retries
                    and waited_s + delay_s <= config.max_retry_wait_s):
                response.read()
                waited_s += delay_s
                time.sleep(delay_s)
                continue
            yield response
            return


def decode_audio(encoded: str | None, where: str) -> bytes:
    if not encoded:
        return b""
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise SpeechError(f"ElevenLabs sent audio that is not base64 ({where}): {error}") from error
