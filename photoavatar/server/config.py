"""The server's configuration, read once from photoavatar.settings (environment, then settings file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from photoavatar.live.transports import TransportSettings
from photoavatar.server.limits import Limits
from photoavatar.settings import (
    DEFAULT_TTS_MODELS,
    DEFAULT_TTS_STREAMS_PER_MODEL,
    DEFAULT_TTS_THREADS,
    setting,
    tts_models,
    tts_streams_per_model,
    tts_threads,
)


def _int(name: str, default: int) -> int:
    raw = setting(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"setting {name} must be a whole number, got {raw!r}") from None


def _flag(name: str, default: bool) -> bool:
    raw = setting(name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"setting {name} must be 1 or 0, got {raw!r}")


@dataclass(frozen=True)
class ServerSettings:
    avatars_dir: Path = Path("avatars")
    api_key: str | None = None  # PHOTOAVATAR_API_KEY: needed to create or delete avatars
    session_secret: str | None = None  # PHOTOAVATAR_SESSION_SECRET: share between workers; random if unset
    engine: str = "piper"  # PHOTOAVATAR_ENGINE
    max_sessions: int = 20  # PHOTOAVATAR_MAX_SESSIONS: open sessions per server
    session_ttl_s: int = 3600  # PHOTOAVATAR_SESSION_TTL_S: a session and its token expire after this
    connect_timeout_s: int = 30  # PHOTOAVATAR_CONNECT_TIMEOUT_S: signalling + ICE must finish within this
    max_text_chars: int = 5000  # PHOTOAVATAR_MAX_TEXT_CHARS
    requests_per_minute: int = 60  # PHOTOAVATAR_REQUESTS_PER_MINUTE: /speak + /stop per session
    sessions_per_minute: int = 30  # PHOTOAVATAR_SESSIONS_PER_MINUTE: /session-live per client address
    tts_threads: int = DEFAULT_TTS_THREADS  # PHOTOAVATAR_TTS_THREADS (settings.py): onnxruntime threads per model run
    tts_models: int = DEFAULT_TTS_MODELS  # PHOTOAVATAR_TTS_MODELS (settings.py): model runs at once (synthesis workers)
    # PHOTOAVATAR_TTS_STREAMS_PER_MODEL (settings.py): utterances in their making at once, per model
    tts_streams_per_model: int = DEFAULT_TTS_STREAMS_PER_MODEL
    ice_servers: list[str] = field(default_factory=list)  # PHOTOAVATAR_ICE_SERVERS: comma-separated URLs
    # PHOTOAVATAR_ICE_LOOPBACK=1: keep media on 127.0.0.1 (tests, and browsers started with
    # --allow-loopback-in-peer-connection); off by default, because browsers ignore loopback candidates
    ice_loopback: bool = False
    # PHOTOAVATAR_AUDIO_DTX=1: no audio packets in a long silence (PacedAudioTrack); off: see docs/latency.md
    audio_dtx: bool = False
    livekit_url: str | None = None  # LIVEKIT_URL (+ LIVEKIT_API_KEY, LIVEKIT_API_SECRET): use LiveKit
    livekit_api_key: str | None = None
    livekit_api_secret: str | None = None
    limits: Limits = field(default_factory=Limits)  # the edge's limits (server/limits.py, docs/limits.md)

    @classmethod
    def from_settings(cls, avatars_dir: Path | str | None = None) -> ServerSettings:
        from photoavatar.speech.text import MAX_TEXT_CHARS

        ice = setting("PHOTOAVATAR_ICE_SERVERS") or ""
        return cls(
            avatars_dir=Path(avatars_dir or setting("PHOTOAVATAR_AVATARS", "avatars")),
            api_key=setting("PHOTOAVATAR_API_KEY"),
            session_secret=setting("PHOTOAVATAR_SESSION_SECRET"),
            engine=setting("PHOTOAVATAR_ENGINE", "piper"),
            max_sessions=_int("PHOTOAVATAR_MAX_SESSIONS", 20),
            session_ttl_s=_int("PHOTOAVATAR_SESSION_TTL_S", 3600),
            connect_timeout_s=_int("PHOTOAVATAR_CONNECT_TIMEOUT_S", 30),
            max_text_chars=_int("PHOTOAVATAR_MAX_TEXT_CHARS", MAX_TEXT_CHARS),
            requests_per_minute=_int("PHOTOAVATAR_REQUESTS_PER_MINUTE", 60),
            sessions_per_minute=_int("PHOTOAVATAR_SESSIONS_PER_MINUTE", 30),
            tts_threads=tts_threads(),
            tts_models=tts_models(),
            tts_streams_per_model=tts_streams_per_model(),
            ice_servers=[url.strip() for url in ice.split(",") if url.strip()],
            ice_loopback=_flag("PHOTOAVATAR_ICE_LOOPBACK", False),
            audio_dtx=_flag("PHOTOAVATAR_AUDIO_DTX", False),
            livekit_url=setting("LIVEKIT_URL"),
            livekit_api_key=setting("LIVEKIT_API_KEY"),
            livekit_api_secret=setting("LIVEKIT_API_SECRET"),
            limits=Limits.from_settings(),
        )

    @property
    def transport(self) -> TransportSettings:
        """What live.transports needs to choose and make each session's transport."""
        return TransportSettings(ice_servers=list(self.ice_servers), ice_loopback=self.ice_loopback,
                                 audio_dtx=self.audio_dtx,
                                 livekit_url=self.livekit_url, livekit_api_key=self.livekit_api_key,
                                 livekit_api_secret=self.livekit_api_secret, join_timeout_s=self.connect_timeout_s)
