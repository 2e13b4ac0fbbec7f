"""Signed, expiring session tokens: the Bearer a client shows to /speak, /stop and the signalling URL.

HS256 JWTs keyed by a per-server secret (random at start unless PHOTOAVATAR_SESSION_SECRET is set, so that
several workers can share it). A token names exactly one session and dies with its expiry.
"""

from __future__ import annotations

import hashlib
import secrets
import time

import jwt

AUDIENCE = "photoavatar-session"


class TokenError(Exception):
    """The token is missing, malformed, forged or expired."""


class SessionTokens:
    def __init__(self, secret: bytes | str | None = None):
        if not secret:
            secret = secrets.token_bytes(32)
        raw = secret.encode() if isinstance(secret, str) else secret
        self._secret = hashlib.sha256(raw).digest()  # any passphrase becomes a full-length HS256 key

    def mint(self, session_id: str, expires_at_s: float) -> str:
        claims = {"sid": session_id, "exp": int(expires_at_s), "iat": int(time.time()), "aud": AUDIENCE}
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def session_of(self, token: str) -> str:
        """The session id the token was minted for; TokenError when it is not valid now."""
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"], audience=AUDIENCE)
        except jwt.ExpiredSignatureError:
            raise TokenError("the session token has expired: start a new session with POST /session-live") from None
        except jwt.InvalidTokenError as error:
            raise TokenError(f"the session token is not valid ({error}): use the token /session-live returned") from None
        session_id = claims.get("sid")
        if not isinstance(session_id, str):
            raise TokenError("the session token names no session: use the token /session-live returned")
        return session_id
