"""The limits that protect the machine from one visitor, and the sliding-window rate limiter.

`Limits` holds the edge's limits (request bodies, uploads, avatar jobs, sessions per address, timeouts);
each field names its setting (environment variable or settings-file key) and says why it has its value.
The per-session and per-server limits that predate it (PHOTOAVATAR_MAX_SESSIONS, _MAX_TEXT_CHARS,
_REQUESTS_PER_MINUTE, _SESSIONS_PER_MINUTE, _TTS_THREADS) stay in ServerSettings; docs/limits.md lists all.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields

from photoavatar.settings import setting


@dataclass(frozen=True)
class Limits:
    # A /speak body at the text limit (5,000 characters, each up to 6 bytes as a JSON escape) is ~30 KB.
    max_json_bytes: int = 64 * 1024  # PHOTOAVATAR_MAX_JSON_BYTES
    max_sdp_bytes: int = 64 * 1024  # PHOTOAVATAR_MAX_SDP_BYTES: a browser offer is 3-6 KB
    max_upload_bytes: int = 20 * 1024 * 1024  # PHOTOAVATAR_MAX_UPLOAD_BYTES: the photo of POST /avatars
    # Pixels decide an upload's memory, not bytes (a 144 MP PNG is 0.5 MB): 40 MP covers every phone and
    # most cameras. One job at this cap peaks at 0.52 GB resident (RGBA PNG; 16-bit gray 0.45 GB).
    max_upload_pixels: int = 40_000_000  # PHOTOAVATAR_MAX_UPLOAD_PIXELS
    max_avatar_jobs: int = 4  # PHOTOAVATAR_MAX_AVATAR_JOBS: queued + running; more are refused (429)
    avatar_job_workers: int = 1  # PHOTOAVATAR_AVATAR_JOB_WORKERS: avatarize processes at once (nice 19)
    # The kernel's cap on one job's data memory (RLIMIT_DATA); a 40 MP RGBA PNG peaks at 0.52 GB resident.
    avatar_job_memory_mb: int = 1536  # PHOTOAVATAR_AVATAR_JOB_MEMORY_MB
    avatar_job_timeout_s: int = 600  # PHOTOAVATAR_AVATAR_JOB_TIMEOUT_S: a job still running then is killed
    sessions_per_address: int = 4  # PHOTOAVATAR_SESSIONS_PER_ADDRESS: open sessions one client address holds
    max_unconnected_sessions: int = 8  # PHOTOAVATAR_MAX_UNCONNECTED_SESSIONS: opened, no client connected yet
    unconnected_timeout_s: int = 15  # PHOTOAVATAR_UNCONNECTED_TIMEOUT_S: free a session nobody connected to
    max_queued_utterances: int = 16  # PHOTOAVATAR_MAX_QUEUED_UTTERANCES: per session, waiting to be spoken
    header_timeout_s: int = 10  # PHOTOAVATAR_HEADER_TIMEOUT_S: a request's head must arrive within this
    body_timeout_s: int = 15  # PHOTOAVATAR_BODY_TIMEOUT_S: longest pause while a request body arrives
    keep_alive_s: int = 5  # PHOTOAVATAR_KEEP_ALIVE_S: idle keep-alive connections are closed after this
    # Past this many open HTTP connections (or requests in progress) uvicorn answers 503 at once: file
    # descriptors and memory per connection stay bounded whatever a crowd of clients does.
    max_connections: int = 1000  # PHOTOAVATAR_MAX_CONNECTIONS
    # One WebSocket message (the audio stream's PCM: 1 s of 16 kHz int16 is 32 KB); uvicorn's default is 16 MiB.
    max_ws_message_bytes: int = 1024 * 1024  # PHOTOAVATAR_MAX_WS_MESSAGE_BYTES

    @classmethod
    def from_settings(cls) -> Limits:
        values = {}
        for item in fields(cls):
            name = f"PHOTOAVATAR_{item.name.upper()}"
            raw = setting(name)
            if raw is None:
                continue
            try:
                values[item.name] = int(raw)
            except ValueError:
                raise ValueError(f"setting {name} must be a whole number, got {raw!r}") from None
            if values[item.name] < 1:
                raise ValueError(f"setting {name} must be at least 1, got {raw!r}")
        return cls(**values)


class RateLimiter:
    """At most N calls per key within the last window_s seconds; keys with no recent call are forgotten."""

    def __init__(self, max_calls: int, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.max_calls = max_calls
        self.window_s = window_s
        self._clock = clock
        self._calls: dict[str, deque[float]] = {}
        self._next_sweep_s = clock() + window_s

    def allow(self, key: str) -> bool:
        """Record a call for KEY and say whether it is within the limit (refused calls are not counted)."""
        now = self._clock()
        self._sweep(now)
        calls = self._calls.setdefault(key, deque())
        _expire(calls, now - self.window_s)
        if len(calls) >= self.max_calls:
            return False
        calls.append(now)
        return True

    def retry_after_s(self, key: str) -> int:
        calls = self._calls.get(key)
        if not calls:
            return 0
        return max(1, int(calls[0] + self.window_s - self._clock()) + 1)

    def forget(self, key: str) -> None:
        self._calls.pop(key, None)

    def __len__(self) -> int:
        """Keys remembered (bounded by the keys seen within about two windows)."""
        return len(self._calls)

    def _sweep(self, now: float) -> None:
        # Every address or session that ever called would otherwise stay in memory for the server's life.
        if now < self._next_sweep_s:
            return
        self._next_sweep_s = now + self.window_s
        for key in [k for k, calls in self._calls.items() if not calls or calls[-1] <= now - self.window_s]:
            del self._calls[key]


def _expire(calls: deque[float], before_s: float) -> None:
    while calls and calls[0] <= before_s:
        calls.popleft()
