"""A local fake of the ElevenLabs API, speaking its documented wire format on 127.0.0.1 (HTTP and websocket).

Endpoints: `POST /v1/text-to-speech/{voice_id}/stream/with-timestamps` (JSON lines), the websocket
`/v1/text-to-speech/{voice_id}/stream-input`, `GET /v1/voices`, `POST /v1/voices/add` (multipart).
Speech is synthetic but real PCM: every letter is a short sound (a voiced tone for vowels, quiet noise for
consonants), every space or punctuation mark is digital silence, and the character timings say exactly where
each sound is. Tests flip the failure switches on `FakeElevenLabs` (bad key, 429, 5xx, cut or garbled streams).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import uuid
from dataclasses import dataclass, field

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

OUTPUT_FORMATS = ("pcm_8000", "pcm_16000", "pcm_22050", "pcm_24000", "pcm_44100", "pcm_48000")
VOWEL_LETTERS = frozenset("aeiouyäöüAEIOUYÄÖÜ")
VOWEL_S, CONSONANT_S, SPACE_S, PAUSE_S = 0.09, 0.06, 0.05, 0.16
AUDIO_MAGIC = (b"RIFF", b"ID3", b"fLaC", b"OggS")


def char_duration_s(char: str) -> float:
    if char.isspace():
        return SPACE_S
    if not char.isalnum():
        return PAUSE_S
    return VOWEL_S if char in VOWEL_LETTERS else CONSONANT_S


def char_sound(char: str, n_samples: int, rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """Int16 samples for one character: vowels a 140 Hz voiced tone, consonants quiet noise, the rest silence."""
    if not char.isalnum():
        return np.zeros(n_samples, dtype=np.int16)
    if char in VOWEL_LETTERS:
        t = np.arange(n_samples) / rate_hz
        wave = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in (1, 2, 3, 5))
        return (wave * 6000).astype(np.int16) | 1  # | 1: never exactly zero, so "voiced" is testable
    return (rng.uniform(-1500, 1500, n_samples).astype(np.int16) | 1)


@dataclass
class Piece:
    """One streamed piece: the audio of some characters and where each one starts and ends in it."""

    pcm: bytes
    chars: list[str]
    start_samples: list[int]  # relative to the piece
    end_samples: list[int]


def synthesize(text: str, rate_hz: int, chars_per_piece: int) -> list[Piece]:
    rng = np.random.default_rng(len(text))
    pieces = []
    for first in range(0, len(text), chars_per_piece):
        chars = list(text[first:first + chars_per_piece])
        sounds, starts, ends, cursor = [], [], [], 0
        for char in chars:
            n_samples = round(char_duration_s(char) * rate_hz)
            sounds.append(char_sound(char, n_samples, rate_hz, rng))
            starts.append(cursor)
            cursor += n_samples
            ends.append(cursor)
        pieces.append(Piece(np.concatenate(sounds).astype("<i2").tobytes(), chars, starts, ends))
    return pieces


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict
    headers: dict
    body: object = None
    client_port: int = 0  # tells a kept-alive connection from a new one


@dataclass
class FakeElevenLabs:
    """The fake service. Use as a context manager; `base_url` is what ELEVENLABS_BASE_URL should be."""

    api_key: str = "test-key"
    voices: dict = field(default_factory=lambda: {
        "voice-en": {"voice_id": "voice-en", "name": "Fake Rachel", "category": "premade",
                     "labels": {"accent": "american", "language": "en"}, "description": "calm",
                     "verified_languages": [{"language": "en", "locale": "en-US", "model_id": "eleven_flash_v2_5"}]},
        "voice-de": {"voice_id": "voice-de", "name": "Fake Hans", "category": "premade",
                     "labels": {"language": "de"}, "description": None, "verified_languages": []},
    })
    chars_per_piece: int = 7  # small, so words straddle pieces
    # failure switches
    rate_limit_next: int = 0  # answer this many next requests with 429
    retry_after: str = "0"
    server_error_next: int = 0  # answer this many next requests with 503
    cut_after_pieces: int | None = None  # drop the connection after this many pieces
    malformed_after_pieces: int | None = None  # send a line that is not JSON after this many pieces
    relative_http_times: bool = False  # HTTP alignment times restarting at 0 in every piece
    hold: threading.Event | None = None  # if set, pieces after the first wait for it
    requests: list[RecordedRequest] = field(default_factory=list)
    pieces_sent: int = 0
    added_samples: list[tuple[str, bytes, str]] = field(default_factory=list)

    def __post_init__(self):
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> FakeElevenLabs:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._app(), log_level="critical", lifespan="off", ws="websockets-sansio")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                return self
            threading.Event().wait(0.01)
        raise RuntimeError("the fake ElevenLabs server did not start")

    def __exit__(self, *exc) -> None:
        if self.hold is not None:
            self.hold.set()
        self._server.should_exit = True
        self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------ routes

    def _app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/text-to-speech/{voice_id}/stream/with-timestamps", self._tts_http, methods=["POST"]),
            WebSocketRoute("/v1/text-to-speech/{voice_id}/stream-input", self._tts_websocket),
            Route("/v1/voices", self._list_voices, methods=["GET"]),
            Route("/v1/voices/add", self._add_voice, methods=["POST"]),
        ])

    def _gate(self, request: Request) -> Response | None:
        """The checks every HTTP call passes first, in the real service's order: key, then load."""
        if request.headers.get("xi-api-key") != self.api_key:
            return _error(401, "invalid_api_key", "Invalid API key")
        if self.rate_limit_next > 0:
            self.rate_limit_next -= 1
            return JSONResponse({"detail": {"status": "too_many_concurrent_requests",
                                            "message": "Too many concurrent requests"}},
                                status_code=429, headers={"Retry-After": self.retry_after})
        if self.server_error_next > 0:
            self.server_error_next -= 1
            return _error(503, "service_unavailable", "The service is temporarily unavailable")
        return None

    async def _record(self, request: Request, body: object) -> None:
        self.requests.append(RecordedRequest(request.method, request.url.path, dict(request.query_params),
                                             dict(request.headers), body, request.client.port))

    async def _tts_http(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        await self._record(request, body)
        refusal = self._gate(request) or self._check_tts(request.path_params["voice_id"],
                                                         request.query_params.get("output_format", "mp3_44100_128"), body)
        if refusal:
            return refusal
        rate_hz = int(request.query_params["output_format"].split("_")[1])
        pieces = synthesize(body["text"], rate_hz, self.chars_per_piece)
        return StreamingResponse(self._http_lines(pieces, rate_hz), media_type="application/json")

    def _check_tts(self, voice_id: str, output_format: str, body: object) -> Response | None:
        if voice_id not in self.voices:
            return _error(404, "voice_not_found", f"A voice with voice_id {voice_id} was not found.")
        if output_format not in OUTPUT_FORMATS:
            return _validation_error(["query", "output_format"], f"this fake only speaks PCM, not {output_format}")
        if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"].strip():
            return _validation_error(["body", "text"], "Field required")
        return None

    async def _http_lines(self, pieces: list[Piece], rate_hz: int):
        offset = 0
        for index, piece in enumerate(pieces):
            if index == self.cut_after_pieces:
                raise ConnectionResetError("fake: stream cut on purpose")  # uvicorn drops the connection
            if index == self.malformed_after_pieces:
                yield b'{"audio_base64": "AAAA", "alignment": {\n'
            if index > 0 and self.hold is not None:
                await asyncio.to_thread(self.hold.wait, 10)
            shift = 0 if self.relative_http_times else offset
            alignment = {
                "characters": piece.chars,
                "character_start_times_seconds": [(shift + s) / rate_hz for s in piece.start_samples],
                "character_end_times_seconds": [(shift + e) / rate_hz for e in piece.end_samples],
            }
            line = {"audio_base64": base64.b64encode(piece.pcm).decode(), "alignment": alignment,
                    "normalized_alignment": alignment}
            self.pieces_sent += 1  # counted before the yield: the client may read it before the generator resumes
            yield (json.dumps(line) + "\n").encode()
            offset += len(piece.pcm) // 2

    async def _tts_websocket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            first = json.loads(await websocket.receive_text())
            key = websocket.headers.get("xi-api-key") or first.get("xi_api_key") or first.get("xi-api-key")
            record = RecordedRequest("WEBSOCKET", websocket.url.path, dict(websocket.query_params),
                                     dict(websocket.headers), [first])
            self.requests.append(record)
            refusal = self._check_websocket(key, websocket, first)
            if refusal:
                await websocket.close(code=1008, reason=refusal)
                return
            rate_hz = int(websocket.query_params["output_format"].split("_")[1])
            await self._speak_websocket(websocket, rate_hz, record.body)
        except WebSocketDisconnect:
            return

    def _check_websocket(self, key: str | None, websocket: WebSocket, first: dict) -> str | None:
        if key != self.api_key:
            return "Invalid API key"
        if websocket.path_params["voice_id"] not in self.voices:
            return f"A voice with voice_id {websocket.path_params['voice_id']} was not found."
        if websocket.query_params.get("output_format") not in OUTPUT_FORMATS or first.get("text") != " ":
            return "Invalid message: the first message must be {\"text\": \" \"} and output_format must be pcm_*"
        return None

    async def _speak_websocket(self, websocket: WebSocket, rate_hz: int, received: list) -> None:
        buffered = ""
        while True:
            message = json.loads(await websocket.receive_text())
            received.append(message)
            text = message.get("text", "")
            buffered += text
            if text and not message.get("flush"):
                continue
            for index, piece in enumerate(synthesize(buffered, rate_hz, self.chars_per_piece)):
                if index == self.cut_after_pieces:
                    await websocket.close(code=1011, reason="fake: stream cut on purpose")
                    return
                if index == self.malformed_after_pieces:
                    await websocket.send_text("{not json")
                alignment = {"chars": piece.chars, "charStartTimesMs": [round(s * 1000 / rate_hz) for s in piece.start_samples],
                             "charDurationsMs": [round((e - s) * 1000 / rate_hz)
                                                 for s, e in zip(piece.start_samples, piece.end_samples, strict=True)]}
                self.pieces_sent += 1
                await websocket.send_text(json.dumps({"audio": base64.b64encode(piece.pcm).decode(), "isFinal": None,
                                                      "normalizedAlignment": alignment, "alignment": alignment}))
            buffered = ""
            if text == "":
                await websocket.send_text(json.dumps({"isFinal": True}))
                await websocket.close(code=1000)
                return

    async def _list_voices(self, request: Request) -> Response:
        await self._record(request, None)
        return self._gate(request) or JSONResponse({"voices": list(self.voices.values())})

    async def _add_voice(self, request: Request) -> Response:
        form = await request.form()
        files = form.getlist("files")
        await self._record(request, {"name": form.get("name"), "description": form.get("description"),
                                     "files": [upload.filename for upload in files]})
        refusal = self._gate(request)
        if refusal:
            return refusal
        if not form.get("name") or not files:
            return _validation_error(["body", "name" if not form.get("name") else "files"], "Field required")
        for upload in files:
            data = await upload.read()
            if not data.startswith(AUDIO_MAGIC):
                return _error(400, "invalid_audio", f"{upload.filename} is not a supported audio file")
            self.added_samples.append((upload.filename, data, upload.content_type))
        voice_id = uuid.uuid4().hex[:20]
        self.voices[voice_id] = {"voice_id": voice_id, "name": form["name"], "category": "cloned",
                                 "labels": {}, "description": form.get("description") or None}
        return JSONResponse({"voice_id": voice_id, "requires_verification": False})


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"detail": {"status": code, "message": message}}, status_code=status)


def _validation_error(location: list[str], message: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": location, "msg": message, "type": "value_error"}]}, status_code=422)
