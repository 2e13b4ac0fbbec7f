"""The ElevenLabs HTTP transport: `POST /v1/text-to-speech/{voice_id}/stream/with-timestamps`.

The answer is a stream of JSON lines `{audio_base64, alignment: {characters, character_start_times_seconds,
character_end_times_seconds}}`; each becomes a RawChunk (`character_timing.py` turns characters into phonemes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx

from photoavatar.speech.character_timing import RawChunk
from photoavatar.speech.elevenlabs_api import (
    ElevenLabsConfig,
    decode_audio,
    error_message,
    http_error,
    response_retrying_429,
)
from photoavatar.speech.engine import SpeechError


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
    try:
        with response_retrying_429(config, lambda: client.stream("POST", **request)) as response:
            if response.status_code != 200:
                raise http_error(response.status_code, response.read().decode("utf-8", "replace"),
                                 "text to speech", voice_id)
            yield from _parse_stream_lines(response.iter_lines(), config.sample_rate_hz)
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
