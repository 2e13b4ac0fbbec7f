"""`photoavatar serve`: the HTTP edge of the live stage (docs/protocol.md is its contract).

Thin by design: routes validate input and authorise, then hand over to `photoavatar.live` (sessions,
transports) and `server.avatars` / `server.jobs` (bundle storage). Every error is JSON {"detail": ...}.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from fastapi import Depends, FastAPI, Header, Request, Response, UploadFile
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from photoavatar import __version__
from photoavatar.live.protocol import LABELS
from photoavatar.live.session import LiveSession, SessionRegistry, SpeechSource
from photoavatar.live.synthesis import SynthesisScheduler
from photoavatar.live.tokens import SessionTokens
from photoavatar.live.transport import LiveError, SessionAccess
from photoavatar.live.transports import Transports
from photoavatar.live.video import session_video_renderer
from photoavatar.server import health, middleware
from photoavatar.server.audio_routes import audio_routes
from photoavatar.server.auth import api_key_refusal
from photoavatar.server.avatars import (
    AvatarNotFound,
    AvatarStore,
    InvalidAvatarId,
    asset_urls,
    check_avatar_id,
)
from photoavatar.server.cleanup import remove_stale_leftovers
from photoavatar.server.config import ServerSettings
from photoavatar.server.files import HeldFileResponse
from photoavatar.server.guards import (
    authorised_session,
    freeze_startup_objects,
    http_error,
    rate_limit,
    single_threaded_blas,
    valid_id,
)
from photoavatar.server.ids import JOB_ID, VOICE_ID
from photoavatar.server.jobs import AvatarJobs, TooManyJobs, new_work_folder
from photoavatar.server.limits import RateLimiter

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
# The warm-up's clause: a first piece as long as they come (FIRST_CHUNK_MAX_WORDS, six words), spoken on every
# worker at once, twice (measured in docs/latency.md, "Stretch sizes: slow start").
WARM_UP_CLAUSE = "I am ready when you are."
WARM_UP_ROUNDS = 2


class SessionRequest(BaseModel):
    avatar_id: str = Field(max_length=200)
    voice_id: str | None = Field(default=None, max_length=200)
    video: bool = False  # also send the avatar as a video track, composed on the server (docs/protocol.md)


class SpeakRequest(BaseModel):
    session_id: str = Field(max_length=200)
    text: str
    barge_in: bool = True


class StopRequest(BaseModel):
    session_id: str = Field(max_length=200)


def engine_speech_source(engine_name: str) -> tuple[SpeechSource, object]:
    """The speech stage as sessions use it: text -> segments (audio + visemes + prosody), plus the engine."""
    from photoavatar.speech.voices import make_engine

    # Piper: PHOTOAVATAR_TTS_MODELS voice instances on PHOTOAVATAR_TTS_THREADS non-spinning onnxruntime threads
    # each, fed by the synthesis scheduler (live/synthesis.py); bench/live_sessions.py measures the choice.
    engine = make_engine(engine_name)

    def speak(text: str, voice_id: str | None):
        from photoavatar.speech.pipeline import LEAD_IN_EVENTS, stream_speech

        # the first closure starts before the first sample (negative event times), not after added silence
        return stream_speech(engine, text, voice_id=voice_id, lead_in=LEAD_IN_EVENTS)

    return speak, engine


def create_app(settings: ServerSettings | None = None, speech: SpeechSource | None = None,
               voices: list | None = None) -> FastAPI:
    """The server. `speech` and `voices` default to the configured engine (PHOTOAVATAR_ENGINE)."""
    settings = settings or ServerSettings.from_settings()
    state = _ServerState(settings, speech, voices)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        with state.transports.running():  # the process-wide ICE mode, for as long as the server runs
            single_threaded_blas()
            remove_stale_leftovers(settings.avatars_dir)
            lag_probe = asyncio.create_task(state.loop_lag.probe_forever())
            reaper = asyncio.create_task(state.sessions.reap_forever())
            asyncio.get_running_loop().run_in_executor(None, state.warm_up)
            try:
                yield
            finally:
                reaper.cancel()
                lag_probe.cancel()
                await state.sessions.close_all()
                state.scheduler.close()

    app = FastAPI(title="photoavatar", version=__version__, lifespan=lifespan,
                  description="A live, lip-synced talking avatar from one photo. Protocol: docs/protocol.md.")
    app.state.photoavatar = state
    middleware.install(app, limits=settings.limits, api_key=settings.api_key, stats=state.request_stats)
    app.include_router(health.health_routes(state.metrics, started_at_s=time.monotonic()))
    _add_session_routes(app, state)
    app.include_router(audio_routes(state))  # /speak-audio and the audio-stream WebSocket
    _add_avatar_routes(app, state)
    if WEB_DIR.is_dir():
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app


class _ServerState:
    def __init__(self, settings: ServerSettings, speech: SpeechSource | None, voices: list | None):
        self.settings = settings
        engine = None
        if speech is None:
            speech, engine = engine_speech_source(settings.engine)
            voices = voices if voices is not None else engine.voices()
        self._engine = engine
        self.voices = voices or []
        self.speech = speech
        self.request_stats = middleware.RequestStats()
        self.loop_lag = health.LoopLag()
        self.session_totals = health.SessionTotals()
        limits = settings.limits
        # one model run per worker, by deadline across sessions; a worker per voice instance (PHOTOAVATAR_TTS_MODELS)
        self.scheduler = SynthesisScheduler(settings.tts_models,
                                            max_streams=settings.tts_models * settings.tts_streams_per_model)
        self.sessions = SessionRegistry(speech, self.scheduler, settings.max_sessions, settings.session_ttl_s,
                                        min(settings.connect_timeout_s, limits.unconnected_timeout_s),
                                        max_per_owner=limits.sessions_per_address,
                                        max_unconnected=limits.max_unconnected_sessions,
                                        on_close=self.session_totals.retire)
        self.transports = Transports(settings.transport)
        self.tokens = SessionTokens(settings.session_secret)
        self.avatars = AvatarStore(settings.avatars_dir)
        self.jobs = AvatarJobs(limits.max_avatar_jobs, limits.avatar_job_workers, limits.max_upload_pixels,
                               limits.avatar_job_memory_mb, limits.avatar_job_timeout_s)
        self.session_rate = RateLimiter(settings.sessions_per_minute)
        self.request_rate = RateLimiter(settings.requests_per_minute)

    def metrics(self) -> list[health.Metric]:
        return health.server_metrics(self.sessions, self.jobs, self.request_stats, self.scheduler, self.loop_lag,
                                     self.session_totals)

    def load_voice(self, voice_id: str) -> None:
        """Load (and warm up) a session's voice as it opens, so its first /speak does not pay for it."""
        try:
            if hasattr(self._engine, "loaded_voice"):
                self._engine.loaded_voice(voice_id)
        except Exception as error:  # its first /speak reports it to the client
            log.warning("loading voice %s failed: %s", voice_id, error)

    def warm_up(self) -> None:
        """Load the voice and run the model on the synthesis workers, so the first /speak does not pay for it
        (about 0.3 s) and the scheduler knows what a first step costs; then freeze what start-up made, so
        garbage collection never stalls the audio for it."""
        try:
            self.scheduler.run_to_end([self.speech("Hello.", None)], _segment_duration_s)
            # Sessions that start together meet first steps with every worker busy: learnt from "Hello." alone
            # (37 ms) the cost was half what they took (55-85 ms), and the first ones' covers fell short.
            for _ in range(WARM_UP_ROUNDS):
                self.scheduler.run_to_end([self.speech(WARM_UP_CLAUSE, None) for _ in range(self.scheduler.workers)],
                                          _segment_duration_s)
        except Exception as error:  # the first /speak will report it to the client
            log.warning("speech warm-up failed: %s", error)
        freeze_startup_objects()


def _segment_duration_s(segment) -> float:
    return segment.audio.duration_s


def _utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise http_error(400, f"the SDP offer is not UTF-8 text (byte {error.start} is {body[error.start]:#04x}): "
                         "send the offer exactly as createOffer made it") from None


def _add_session_routes(app: FastAPI, state: _ServerState) -> None:
    @app.post("/session-live", summary="open a live session for an avatar")
    async def session_live(body: SessionRequest, request: Request) -> dict:
        client = request.client.host if request.client else "unknown"
        rate_limit(state.session_rate, client, "new sessions from this address")
        try:
            folder = state.avatars.existing(body.avatar_id)
        except InvalidAvatarId as error:
            raise http_error(400, str(error)) from None
        except AvatarNotFound as error:
            raise http_error(404, str(error)) from None
        known_voices = {voice.voice_id for voice in state.voices}
        if body.voice_id is not None and valid_id(VOICE_ID, body.voice_id) not in known_voices:
            raise http_error(400, f"unknown voice {body.voice_id!r}: GET /voices lists the voices "
                             f"({', '.join(sorted(known_voices)) or 'none'})")
        try:
            video = await asyncio.to_thread(session_video_renderer, folder) if body.video else None
            session = state.sessions.open(body.avatar_id, body.voice_id,
                                          lambda: state.transports.new(room_hint=body.avatar_id, video=video),
                                          owner=client)
        except LiveError as error:
            raise http_error(error.http_status, str(error)) from None
        if body.voice_id is not None:
            asyncio.get_running_loop().run_in_executor(None, state.load_voice, body.voice_id)
        return await _session_answer(state, session, request)

    @app.post("/sessions/{session_id}/offer", status_code=201, summary="WHEP-style signalling: SDP offer in, answer out",
              response_class=Response)
    async def offer(session_id: str, request: Request, authorization: str | None = Header(None)) -> Response:
        session = authorised_session(state, session_id, authorization)
        if not request.headers.get("content-type", "").startswith("application/sdp"):
            raise http_error(415, "send the SDP offer as the body with Content-Type: application/sdp")
        body = await request.body()  # at most limits.max_sdp_bytes: the request guard ends larger ones
        try:
            answer = await session.transport.answer(_utf8(body))
        except LiveError as error:
            raise http_error(error.http_status, str(error)) from None
        return Response(answer, status_code=201, media_type="application/sdp",
                        headers={"Location": str(request.url)})

    @app.post("/speak", status_code=202, summary="speak text in a session (barge_in cuts what plays)")
    async def speak(body: SpeakRequest, authorization: str | None = Header(None)) -> dict:
        session = authorised_session(state, body.session_id, authorization)
        rate_limit(state.request_rate, session.session_id, "requests in this session")
        text = body.text.strip()
        if not text:
            raise http_error(400, "text is empty: send something to say")
        if len(text) > state.settings.max_text_chars:
            raise http_error(413, f"text is {len(text)} characters; the limit is {state.settings.max_text_chars}: "
                             "split it into several /speak calls with barge_in false")
        queue_limit = state.settings.limits.max_queued_utterances
        if not body.barge_in and session.queued_utterances >= queue_limit:
            raise http_error(429, f"{queue_limit} utterances are already waiting in this session: wait for some to "
                             "play, or send this one with barge_in true to replace them", {"Retry-After": "5"})
        return {"utterance_id": session.speak(text, barge_in=body.barge_in)}

    @app.post("/stop", summary="cut what is playing and empty the queue")
    async def stop(body: StopRequest, authorization: str | None = Header(None)) -> dict:
        session = authorised_session(state, body.session_id, authorization)  # never rate-limited: stopping
        return {"stopped": session.stop()}  # must always work, whatever /speak has spent

    @app.delete("/sessions/{session_id}", status_code=204, summary="end a session now")
    async def end_session(session_id: str, authorization: str | None = Header(None)) -> Response:
        authorised_session(state, session_id, authorization)
        await state.sessions.close(session_id)
        state.request_rate.forget(session_id)
        return Response(status_code=204)

    @app.get("/voices", summary="the voices sessions can use")
    async def voices() -> list[dict]:
        return [{"voice_id": v.voice_id, "name": v.name, "language": v.language, "engine": v.engine}
                for v in state.voices]

    @app.get("/limits", summary="the limits this server enforces (the page sizes its text box from them)")
    async def limits() -> dict:
        settings = state.settings
        return {"max_text_chars": settings.max_text_chars, "requests_per_minute": settings.requests_per_minute,
                "sessions_per_minute": settings.sessions_per_minute, "max_sessions": settings.max_sessions,
                "session_ttl_s": settings.session_ttl_s, "max_photo_bytes": settings.limits.max_upload_bytes}


async def _session_answer(state: _ServerState, session: LiveSession, request: Request) -> dict:
    expires = datetime.fromtimestamp(session.expires_at_s, tz=UTC).isoformat().replace("+00:00", "Z")
    session_token = state.tokens.mint(session.session_id, session.expires_at_s)
    access = SessionAccess(session.session_id, session_token,
                           str(request.url_for("offer", session_id=session.session_id)), session.expires_at_s)
    try:
        connect = await session.transport.open(access)
    except LiveError as error:
        await state.sessions.close(session.session_id)
        raise http_error(error.http_status, str(error)) from None
    assets = asset_urls(session.avatar_id)
    return {"session_id": session.session_id, "transport": session.transport.kind, "url": connect.url,
            "video": session.transport.video is not None,
            "token": connect.token, "session_token": session_token,
            "labels": {label: label for label in LABELS}, "assets": assets, "expires_at": expires,
            "ice_servers": state.settings.ice_servers}


def _require_api_key(state: _ServerState, api_key: str | None) -> None:
    refusal = api_key_refusal(state.settings.api_key, api_key)
    if refusal is not None:
        raise http_error(*refusal)


def _add_avatar_routes(app: FastAPI, state: _ServerState) -> None:
    def api_key(x_api_key: str | None = Header(None)) -> None:
        _require_api_key(state, x_api_key)

    @app.get("/avatars", summary="the avatar ids (public)")
    async def list_avatars() -> list[str]:
        return state.avatars.ids()

    @app.get("/avatars/jobs/{job_id}", summary="progress of an avatar creation job")
    async def job(job_id: str, _: None = Depends(api_key)) -> dict:
        found = state.jobs.get(valid_id(JOB_ID, job_id))
        if found is None:
            raise http_error(404, f"no job {job_id!r}: POST /avatars returns the job id")
        return found.to_json()

    @app.get("/avatars/{avatar_id}/{name}", summary="one file of a bundle (public)")
    async def avatar_file(avatar_id: str, name: str) -> HeldFileResponse:
        try:  # opened now, so a concurrent DELETE cannot cut the response (server/files.py)
            handle, media_type = await run_in_threadpool(state.avatars.open, avatar_id, name)
        except InvalidAvatarId as error:
            raise http_error(400, str(error)) from None
        except AvatarNotFound as error:
            raise http_error(404, str(error)) from None
        return HeldFileResponse(handle, media_type=media_type, headers={"Cache-Control": "public, max-age=60"})

    @app.post("/avatars", status_code=202, summary="create an avatar from a photo (X-API-Key)")
    async def create_avatar(photo: UploadFile, avatar_id: str | None = None, _: None = Depends(api_key)) -> dict:
        avatar_id = avatar_id or Path(photo.filename or "avatar").stem.lower().replace(" ", "-")
        try:
            out = state.avatars.folder(check_avatar_id(avatar_id))
        except InvalidAvatarId as error:
            raise http_error(400, str(error)) from None
        if out.exists() or state.jobs.busy_with(avatar_id):
            raise http_error(409, f"avatar {avatar_id!r} already exists: DELETE it first or pick another avatar_id")
        suffix = Path(photo.filename or "photo.jpg").suffix.lower()[:8] or ".jpg"
        saved = await run_in_threadpool(_save_upload, photo.file, suffix, state.settings.limits.max_upload_bytes)
        state.avatars.root.mkdir(parents=True, exist_ok=True)
        try:
            job = state.jobs.start(saved, out, avatar_id)
        except TooManyJobs as error:
            shutil.rmtree(saved.parent, ignore_errors=True)
            raise http_error(429, str(error), {"Retry-After": "30"}) from None
        return {"job_id": job.job_id, "avatar_id": avatar_id}

    @app.delete("/avatars/{avatar_id}", status_code=204, summary="delete an avatar (X-API-Key)")
    async def delete_avatar(avatar_id: str, _: None = Depends(api_key)) -> Response:
        try:
            state.avatars.delete(avatar_id)
        except InvalidAvatarId as error:
            raise http_error(400, str(error)) from None
        except AvatarNotFound as error:
            raise http_error(404, str(error)) from None
        return Response(status_code=204)


def _save_upload(source, suffix: str, max_bytes: int) -> Path:
    """Copy the uploaded photo into a new job work folder (in a worker thread: never on the event loop)."""
    folder = new_work_folder()
    photo = folder / f"photo{suffix if suffix.isascii() and suffix[1:].isalnum() else '.img'}"
    with photo.open("wb") as out:
        shutil.copyfileobj(source, out, 1024 * 1024)
    size = photo.stat().st_size
    problem = None if 0 < size <= max_bytes else (
        (400, "the photo is empty: send a portrait JPEG/PNG as the multipart field 'photo'") if size == 0 else
        (413, f"the photo is larger than {max_bytes / 2**20:g} MiB: send a smaller one"))
    if problem is not None:
        shutil.rmtree(folder, ignore_errors=True)
        raise http_error(*problem)
    return photo


def serve(host: str = "127.0.0.1", port: int = 8000, avatars: Path | str = "avatars") -> None:
    """Run the server until interrupted (the `photoavatar serve` command)."""
    import uvicorn

    from photoavatar.server.serving import uvicorn_config

    settings = ServerSettings.from_settings(avatars)
    app = create_app(settings)
    print(f"photoavatar live server: http://{host}:{port}/  (API docs: http://{host}:{port}/docs)")
    uvicorn.Server(uvicorn_config(app, host, port, settings.limits)).run()
