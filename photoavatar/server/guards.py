"""What every route checks first, in one place for server/app.py and server/audio_routes.py alike.

HTTP errors as JSON {"detail"}, the session token (Bearer) and the session it names, ids by their rules,
the per-key rate limits, and what keeps worker threads off the 20 ms audio pacing's CPU (their lower priority,
single-threaded BLAS).
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading

from fastapi import HTTPException

from photoavatar.live.session import LiveSession
from photoavatar.live.tokens import TokenError
from photoavatar.server.ids import SESSION_ID, IdRule, InvalidId
from photoavatar.server.limits import RateLimiter
from photoavatar.settings import BULK_NICE


def http_error(status: int, detail: str, headers: dict | None = None) -> HTTPException:
    return HTTPException(status_code=status, detail=detail, headers=headers)


def bearer(authorization: str | None) -> str:
    if not authorization:
        raise http_error(401, "missing Authorization header: send 'Authorization: Bearer <token from /session-live>'",
                         {"WWW-Authenticate": "Bearer"})
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise http_error(401, "the Authorization header must be 'Bearer <token from /session-live>'",
                         {"WWW-Authenticate": "Bearer"})
    return token.strip()


def authorised_session(state, session_id: str, authorization: str | None) -> LiveSession:
    """The open session SESSION_ID, if AUTHORIZATION carries its token (STATE: the server's tokens and sessions)."""
    valid_id(SESSION_ID, session_id)
    try:
        token_session = state.tokens.session_of(bearer(authorization))
    except TokenError as error:
        raise http_error(401, str(error), {"WWW-Authenticate": "Bearer"}) from None
    if token_session != session_id:
        raise http_error(403, "this token belongs to another session: use the token returned with this session")
    session = state.sessions.get(session_id)
    if session is None:
        raise http_error(404, "no such session (it ended or expired): start a new one with POST /session-live")
    return session


def valid_id(rule: IdRule, value: str) -> str:
    try:
        return rule.check(value)
    except InvalidId as error:
        raise http_error(400, str(error)) from None


def rate_limit(limiter: RateLimiter, key: str, what: str) -> None:
    if not limiter.allow(key):
        retry = limiter.retry_after_s(key)
        raise http_error(429, f"too many {what}: at most {limiter.max_calls} per {int(limiter.window_s)} s; "
                              f"retry in {retry} s", {"Retry-After": str(retry)})


def yield_cpu_to_audio() -> None:
    """Run this bulk worker thread (file analysis) at BULK_NICE: on a busy CPU live audio and synthesis win.

    Linux gives each thread its own nice value (by native thread id); elsewhere this is a no-op.
    """
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BULK_NICE)


def single_threaded_blas() -> None:
    """numpy's BLAS (OpenBLAS) on one thread for the rest of the process.

    Its helper thread spins after every call it shares; on a live server, whose numpy work is small and spread
    over the synthesis workers, that spinning took 14-25 % of a core from them with ten sessions speaking
    (bench/live_sessions.py, per-thread CPU)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def freeze_startup_objects() -> None:
    """Keep what the server loaded at start (modules, the voice, about 100,000 objects) out of the cyclic garbage
    collector's full passes (gc.freeze).

    A full pass holds the GIL over every tracked object: 60 ms for a bare server on this machine, 72-116 ms in
    bench/live.py's process (which holds the bench too), so the event loop missed its 20 ms audio frames a few
    times a minute and the browser's jitter buffer grew to cover the gaps (docs/latency.md). After the freeze a full pass looks only at objects made
    since: sessions, their peers and messages. Objects that die by reference count are freed as before.
    No full pass first: it would hold the GIL for 45-50 ms on this machine, and this runs after the background
    warm-up, when sessions may already be speaking, and in bench/live_sessions.py's process it found nothing to
    free."""
    gc.freeze()
