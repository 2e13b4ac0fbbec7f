"""The caller's own speech audio played in a session, with visemes and prosody as for /speak (docs/protocol.md).

- `POST /speak-audio` (multipart: session_id, audio file, optional transcript, language, barge_in): the file is
  decoded and analysed (speech/audio_speech.py) before the answer, so bad audio is a 400 with the reason, then
  the segments are queued like a /speak utterance.
- `WS /sessions/{session_id}/audio-stream`: PCM arriving in real time (a voice agent). The first message is JSON
  {"sample_rate_hz": 16000, "barge_in": true, "text": ""}; then binary messages of mono int16 little-endian PCM;
  then {"type": "end"}. The server answers {"type": "started", "utterance_id": ...} once and
  {"type": "ended", "utterance_id": ..., "seconds": ...} after the end; errors are {"type": "error", "detail": ...}
  and close the socket. The audio is analysed as it comes (speech/audio_stream.py, held back at most
  MAX_DELAY_S) and played on the session's audio track.

A stream's segments arrive only as fast as the caller speaks, so its utterance is scheduled on a scheduler of
its own (one thread per open stream), never on a text-to-speech worker that other sessions wait for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from fastapi import APIRouter, Form, Header, UploadFile, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from photoavatar.live.synthesis import SynthesisScheduler
from photoavatar.server.guards import authorised_session, http_error, rate_limit, yield_cpu_to_audio
from photoavatar.speech.audio_input import MAX_FILE_BYTES, AudioInputError, decode_audio
from photoavatar.speech.audio_speech import speech_segments, time_phonemes
from photoavatar.speech.audio_stream import MAX_DELAY_S, AudioStreamAnalyser
from photoavatar.speech.types import SpeechSegment

_DONE = object()
STREAM_IDLE_TIMEOUT_S = 30.0  # a stream that sends nothing this long is ended
# Segments waiting to play; a stream whose utterance ended (barge-in, /stop) stops being read, and is ended
# when this many (about 20 s of audio) pile up, not left to grow.
MAX_WAITING_SEGMENTS = 500
ANALYSIS_WORKERS = 2  # files analysed at once; more wait their turn


def audio_routes(state) -> APIRouter:
    """The routes, over the server's state (server/app.py registers them with one include_router)."""
    router = APIRouter()
    streams = SynthesisScheduler(max(1, state.settings.max_sessions))
    # Files are analysed (seconds of CPU) at low priority: live audio and synthesis must win.
    analysis = ThreadPoolExecutor(ANALYSIS_WORKERS, "audio-analysis", initializer=yield_cpu_to_audio)

    @router.post("/speak-audio", status_code=202, summary="play speech audio in a session, with visemes")
    async def speak_audio(audio: UploadFile, session_id: str = Form(max_length=200),
                          transcript: str | None = Form(None), language: str = Form("en-us", max_length=20),
                          barge_in: bool = Form(True), authorization: str | None = Header(None)) -> dict:
        session = authorised_session(state, session_id, authorization)
        rate_limit(state.request_rate, session.session_id, "requests in this session")
        if transcript is not None and len(transcript) > state.settings.max_text_chars * 10:
            raise http_error(413, "the transcript is too long for one request: send the audio in pieces")
        data = await audio.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise http_error(413, f"the audio is larger than {MAX_FILE_BYTES // 2**20} MiB: send a compressed or shorter file")
        try:
            decoded, timing, segments = await asyncio.get_running_loop().run_in_executor(
                analysis, _analyse, data, transcript, language)
        except AudioInputError as error:
            raise http_error(400, str(error)) from None
        utterance_id = session.speak(transcript or "", barge_in=barge_in, segments=segments)
        return {"utterance_id": utterance_id, "duration_s": round(decoded.duration_s, 3), "method": timing.method,
                "note": timing.note, "clipped_fraction": round(decoded.clipped_fraction, 4)}

    @router.websocket("/sessions/{session_id}/audio-stream")
    async def audio_stream(socket: WebSocket, session_id: str, token: str | None = None,
                           authorization: str | None = Header(None)) -> None:
        await socket.accept()
        try:
            session = authorised_session(state, session_id, authorization or (f"Bearer {token}" if token else None))
            await _run_stream(socket, session, streams)
        except WebSocketDisconnect:
            return
        except Exception as error:  # HTTPException from auth, AudioInputError, bad JSON: tell the caller, close
            detail = getattr(error, "detail", None) or str(error)
            await socket.send_json({"type": "error", "detail": detail})
            await socket.close(code=1008 if getattr(error, "status_code", 400) in (401, 403) else 1003)

    return router


def _analyse(data: bytes, transcript: str | None, language: str):
    decoded = decode_audio(data)
    timing = time_phonemes(decoded, transcript, language)
    return decoded, timing, list(speech_segments(decoded, timing, transcript or ""))


async def _run_stream(socket: WebSocket, session, streams: SynthesisScheduler) -> None:
    start = json.loads(await asyncio.wait_for(socket.receive_text(), STREAM_IDLE_TIMEOUT_S))
    if not isinstance(start, dict) or "sample_rate_hz" not in start:
        raise AudioInputError('the first message must be JSON {"sample_rate_hz": ..., "barge_in": true}')
    analyser = AudioStreamAnalyser(int(start["sample_rate_hz"]))
    ready: queue.Queue = queue.Queue(MAX_WAITING_SEGMENTS)
    utterance_id = session.speak(str(start.get("text", "")), barge_in=bool(start.get("barge_in", True)),
                                 segments=_queued(ready), scheduler=streams)
    await socket.send_json({"type": "started", "utterance_id": utterance_id, "max_delay_s": MAX_DELAY_S})
    received = 0
    try:
        while True:
            message = await asyncio.wait_for(socket.receive(), STREAM_IDLE_TIMEOUT_S)
            if message.get("type") == "websocket.disconnect":
                break
            if message.get("bytes") is not None:
                received += len(message["bytes"]) // 2
                for segment in await run_in_threadpool(analyser.push, message["bytes"]):
                    _hand_over(ready, segment)
            elif message.get("text") is not None and json.loads(message["text"]).get("type") == "end":
                for segment in await run_in_threadpool(analyser.finish):
                    _hand_over(ready, segment)
                await socket.send_json({"type": "ended", "utterance_id": utterance_id,
                                        "seconds": round(received / analyser.sample_rate_hz, 3)})
                break
    finally:
        with contextlib.suppress(queue.Full):
            ready.put_nowait(_DONE)


def _hand_over(ready: queue.Queue, segment: SpeechSegment) -> None:
    try:
        ready.put_nowait(segment)
    except queue.Full:
        raise AudioInputError("this stream's utterance is no longer playing (barge-in or /stop ended it): "
                              "open a new audio stream for new speech") from None


def _queued(ready: queue.Queue) -> Iterator[SpeechSegment]:
    """The stream's segments as they come (read on the stream scheduler's thread, which may wait for them)."""
    while (item := ready.get()) is not _DONE:
        yield item
