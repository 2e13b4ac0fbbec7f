"""The API key that guards avatar writes: one check, used before a body is read and again by the routes."""

from __future__ import annotations

import hmac

API_KEY_HEADER = "x-api-key"


def api_key_refusal(configured_key: str | None, given_key: str | None) -> tuple[int, str] | None:
    """(HTTP status, what is wrong and what to do), or None when the key is right."""
    if not configured_key:
        return 403, "creating and deleting avatars is disabled: set PHOTOAVATAR_API_KEY on the server"
    if given_key is None:
        return 401, "missing X-API-Key header: creating and deleting avatars needs the server's API key"
    if not hmac.compare_digest(given_key.encode(), configured_key.encode()):
        return 401, "wrong X-API-Key: use the key set in PHOTOAVATAR_API_KEY"
    return None
