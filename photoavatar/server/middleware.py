"""The guard in front of every route: what can be refused before a body is read, is.

In order, for each HTTP request: the API key of avatar writes (a 240 MB upload without a key is refused at
once, unread), the declared Content-Length against the endpoint's cap, then the body itself as it arrives
(a chunked body past the cap, or a client that stops sending for PHOTOAVATAR_BODY_TIMEOUT_S, ends the
request). JSON bodies are parsed strictly: NaN and Infinity are not JSON (RFC 8259), so they get a 400
that says so instead of reaching validation. Validation errors repeat at most a short excerpt of the input.
The guard also counts responses by status class for /metrics.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from dataclasses import dataclass, field

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from photoavatar.server.auth import API_KEY_HEADER, api_key_refusal
from photoavatar.server.ids import excerpt
from photoavatar.server.limits import Limits
from photoavatar.speech.audio_input import MAX_FILE_BYTES as MAX_AUDIO_FILE_BYTES

log = logging.getLogger(__name__)

MULTIPART_OVERHEAD_BYTES = 16 * 1024  # boundaries, part headers and the avatar_id field around the photo
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass
class RequestStats:
    """Responses by status class ("2xx", "4xx", "5xx", ...), for /metrics."""

    responses: Counter = field(default_factory=Counter)
    in_flight: int = 0

    def count(self, status: int) -> None:
        self.responses[f"{status // 100}xx"] += 1


@dataclass(frozen=True)
class _BodyRule:
    cap_bytes: int
    what: str  # names the body in the 413 message


class RequestGuard:
    """Pure ASGI middleware (it must see the request before anything reads the body)."""

    def __init__(self, app, *, limits: Limits, api_key: str | None, stats: RequestStats):
        self.app = app
        self.limits = limits
        self.api_key = api_key
        self.stats = stats

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.stats.in_flight += 1
        status_seen: list[int] = []

        async def counting_send(message) -> None:
            if message["type"] == "http.response.start":
                status_seen.append(message["status"])
                self.stats.count(message["status"])
            await send(message)

        try:
            await self._guarded(scope, receive, counting_send)
        except Exception:
            if not status_seen:  # the server's error handler answers 500 outside this middleware
                self.stats.count(500)
            raise
        finally:
            self.stats.in_flight -= 1

    async def _guarded(self, scope, receive, send) -> None:
        method, path = scope["method"], scope["path"]
        headers = _headers(scope)
        refusal = self._refusal_before_body(method, path, headers)
        if refusal is not None:
            await _respond(send, *refusal)
            return
        rule = self._body_rule(method, path)
        receive = _BoundedBody(receive, rule, self.limits.body_timeout_s)
        if method in _BODY_METHODS and _is_json(headers.get("content-type")):
            try:
                receive = await _strict_json(receive)
            except HTTPException as error:
                await _respond(send, error.status_code, error.detail)
                return
        await self.app(scope, receive, send)

    def _refusal_before_body(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, str] | None:
        if method in _BODY_METHODS and (path == "/avatars" or path.startswith("/avatars/")):
            refusal = api_key_refusal(self.api_key, headers.get(API_KEY_HEADER))
            if refusal is not None:
                return refusal
        declared = headers.get("content-length")
        if declared is None:
            return None
        if not declared.isdigit():
            return 400, f"Content-Length {excerpt(declared)} is not a number of bytes"
        rule = self._body_rule(method, path)
        if int(declared) > rule.cap_bytes:
            return 413, _too_large(rule, int(declared))
        return None

    def _body_rule(self, method: str, path: str) -> _BodyRule:
        if method == "POST" and path.rstrip("/") == "/avatars":
            upload = self.limits.max_upload_bytes
            return _BodyRule(upload + MULTIPART_OVERHEAD_BYTES, f"a photo upload (at most {_mib(upload)})")
        if method == "POST" and path.rstrip("/") == "/speak-audio":
            return _BodyRule(MAX_AUDIO_FILE_BYTES + MULTIPART_OVERHEAD_BYTES,
                             f"an audio upload (at most {_mib(MAX_AUDIO_FILE_BYTES)})")
        if method == "POST" and path.rstrip("/") == "/speak-audio":  # audio_routes.py; the transcript rides along
            return _BodyRule(MAX_AUDIO_FILE_BYTES + MULTIPART_OVERHEAD_BYTES + self.limits.max_json_bytes,
                             f"an audio upload (at most {_mib(MAX_AUDIO_FILE_BYTES)})")
        if method == "POST" and path.startswith("/sessions/") and path.endswith("/offer"):
            return _BodyRule(self.limits.max_sdp_bytes, "an SDP offer")
        return _BodyRule(self.limits.max_json_bytes, "a request body")


class _BoundedBody:
    """The request's `receive`, ending the request when the body passes its cap or stalls."""

    def __init__(self, receive, rule: _BodyRule, idle_timeout_s: float):
        self._receive = receive
        self._rule = rule
        self._idle_timeout_s = idle_timeout_s
        self._received_bytes = 0
        self._body_done = False

    async def __call__(self):
        if self._body_done:  # afterwards, receive only reports a disconnect, which may take any time
            return await self._receive()
        try:
            message = await asyncio.wait_for(self._receive(), self._idle_timeout_s)
        except TimeoutError:
            raise HTTPException(408, f"the request body stopped arriving for {self._idle_timeout_s} s: "
                                     "send the whole body without pausing") from None
        if message["type"] == "http.request":
            self._received_bytes += len(message.get("body", b""))
            if self._received_bytes > self._rule.cap_bytes:
                raise HTTPException(413, _too_large(self._rule, None))
            self._body_done = not message.get("more_body", False)
        else:
            self._body_done = True
        return message


async def _strict_json(receive):
    """Read the (capped) JSON body, refuse non-standard literals, and hand the same bytes on."""
    chunks, message = [], {"more_body": True}
    while message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
    body = b"".join(chunks)
    try:
        json.loads(body, parse_constant=_refuse_constant)
    except _NonStandardJson as error:
        raise HTTPException(400, f"the JSON body contains {error}, which is not valid JSON (RFC 8259): "
                                 "send numbers as finite values and text as strings") from None
    except ValueError:
        pass  # malformed JSON: validation reports where (422)
    replayed = False

    async def replay():
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class _NonStandardJson(ValueError):
    pass


def _refuse_constant(name: str):
    raise _NonStandardJson(name)


async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, with each input cut to a short excerpt (and never a float JSON cannot carry)."""
    details = []
    for item in error.errors():
        detail = {"type": item.get("type"), "loc": list(item.get("loc", ())), "msg": item.get("msg")}
        if "input" in item:
            detail["input"] = _short_input(item["input"])
        details.append(detail)
    return JSONResponse({"detail": details}, status_code=422)


def _short_input(value):
    if isinstance(value, str | int | bool) or value is None:
        return value if len(str(value)) <= 80 else excerpt(value)
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return excerpt(value)
    return value if len(text) <= 80 else excerpt(text)


def install(app: FastAPI, *, limits: Limits, api_key: str | None, stats: RequestStats) -> None:
    app.add_middleware(RequestGuard, limits=limits, api_key=api_key, stats=stats)
    app.add_exception_handler(RequestValidationError, validation_error)


def _headers(scope) -> dict[str, str]:
    return {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}


def _is_json(content_type: str | None) -> bool:
    # FastAPI parses a body as JSON when it has no Content-Type, or application/json or application/*+json
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _too_large(rule: _BodyRule, declared_bytes: int | None) -> str:
    size = f" ({declared_bytes} bytes)" if declared_bytes is not None else ""
    return f"the body{size} is larger than this endpoint accepts for {rule.what}: at most {rule.cap_bytes} bytes"


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:g} MiB"


async def _respond(send, status: int, detail: str) -> None:
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    body = json.dumps({"detail": detail}).encode()
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
