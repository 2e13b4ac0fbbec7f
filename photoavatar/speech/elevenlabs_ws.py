"""The ElevenLabs websocket transport: `/v1/text-to-speech/{voice_id}/stream-input`.

We send `{"text": " ", voice_settings}` (open), the whole text with `flush` (generate now), then `{"text": ""}`
(end). The server answers `{"audio": base64, "alignment": {"chars", "charStartTimesMs", "charDurationsMs"}}`
pieces and finally `{"isFinal": true}`. Its alignment times are relative to each piece, so a running offset (the
audio received so far) turns them into utterance seconds.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect

from photoavatar.speech.character_timing import RawChunk
from photoavatar.speech.elevenlabs_api import ElevenLabsConfig, decode_audio, http_error
from photoavatar.speech.engine import SpeechError

VOICE_SETTINGS = {"stability": 0.5, "similarity_boost": 0.75}
POLICY_VIOLATION = 1008  # the close code ElevenLabs uses for a bad key or a bad request


def stream_input_url(config: ElevenLabsConfig, voice_id: str) -> str:
    parts = urlsplit(config.base_url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    query = urlencode({"model_id": config.model_id, "output_format": config.output_format})
    return urlunsplit((scheme, parts.netloc, f"{parts.path}/v1/text-to-speech/{voice_id}/stream-input", query, ""))


def stream_websocket(config: ElevenLabsConfig, text: str, voice_id: str) -> Iterator[RawChunk]:
    """The pieces of one utterance over the websocket; SpeechError (after what arrived) if the stream breaks."""
    headers = config.key_headers()
    try:
        with connect(stream_input_url(config, voice_id), additional_headers=headers, open_timeout=config.connect_timeout_s,
                     close_timeout=2, max_size=None) as socket:
            socket.send(json.dumps({"text": " ", "voice_settings": VOICE_SETTINGS}))
            socket.send(json.dumps({"text": text.strip() + " ", "flush": True}))  # the API wants a trailing space
            socket.send(json.dumps({"text": ""}))
            yield from _receive_pieces(socket, config, voice_id)
    except InvalidStatus as error:
        body = error.response.body.decode("utf-8", "replace") if error.response.body else ""
        raise http_error(error.response.status_code, body, "text to speech (websocket)", voice_id) from error
    except ConnectionClosedError as error:
        raise _closed_error(error, voice_id) from error
    except TimeoutError as error:
        raise SpeechError(f"ElevenLabs sent nothing for {config.read_timeout_s:.0f} s on the websocket; try again later") from error
    except (InvalidHandshake, OSError) as error:
        raise SpeechError(f"cannot open the ElevenLabs websocket at {config.base_url} ({error}); "
                          "check the network and ELEVENLABS_BASE_URL") from error


def _receive_pieces(socket, config: ElevenLabsConfig, voice_id: str) -> Iterator[RawChunk]:
    bytes_so_far = 0
    for number in itertools.count(1):
        try:
            message = _parse_message(socket.recv(timeout=config.read_timeout_s), number, voice_id)
        except ConnectionClosedOK:
            return  # the server finished cleanly without an isFinal message
        pcm = decode_audio(message.get("audio"), f"websocket message {number}")
        offset_s = bytes_so_far / 2 / config.sample_rate_hz
        chars, starts, ends = _alignment_lists(message.get("alignment") or message.get("normalizedAlignment"), offset_s)
        if pcm or chars:
            yield RawChunk(pcm, chars, starts, ends)
        bytes_so_far += len(pcm)
        if message.get("isFinal"):
            return


def _parse_message(raw: str | bytes, number: int, voice_id: str) -> dict:
    try:
        message = json.loads(raw)
    except ValueError as error:
        raise SpeechError(f"ElevenLabs sent a malformed websocket message ({number}: not JSON); try again") from error
    if not isinstance(message, dict):
        raise SpeechError(f"ElevenLabs sent a malformed websocket message ({number}: not a JSON object)")
    if message.get("error") or (message.get("message") and "audio" not in message):
        raise _refusal(str(message.get("message") or message.get("error")), voice_id)
    return message


def _alignment_lists(alignment: dict | None, offset_s: float) -> tuple[tuple[str, ...], tuple[float, ...], tuple[float, ...]]:
    """Characters with utterance-relative start and end seconds from a piece-relative alignment in milliseconds."""
    if not alignment:
        return (), (), ()
    try:
        chars = tuple(alignment["chars"])
        starts = tuple(offset_s + float(ms) / 1000 for ms in alignment["charStartTimesMs"])
        durations = tuple(float(ms) / 1000 for ms in alignment["charDurationsMs"])
    except (KeyError, TypeError, ValueError) as error:
        raise SpeechError(f"ElevenLabs sent a websocket alignment without {error}; please report this") from error
    return chars, starts, tuple(start + duration for start, duration in zip(starts, durations, strict=False))


def _closed_error(error: ConnectionClosedError, voice_id: str) -> SpeechError:
    close = error.rcvd
    reason = close.reason if close else ""
    if close and close.code == POLICY_VIOLATION:
        return _refusal(reason, voice_id)
    code = close.code if close else "none"
    return SpeechError(f"the ElevenLabs websocket was cut mid-stream (close code {code}{': ' + reason if reason else ''}); "
                       "the utterance is incomplete, try again")


def _refusal(reason: str, voice_id: str) -> SpeechError:
    """The server's own words, with the advice that fits: a bad key, an unknown voice, or another refusal."""
    body = json.dumps({"detail": reason})
    if "key" in reason.lower() or "auth" in reason.lower():
        return http_error(401, body, "text to speech (websocket)")
    return http_error(400, body, "text to speech (websocket)", voice_id)
