"""Every id that enters the server (avatar, session, voice, job) is checked here, against one full match.

Why a full match: `re.match("^...$")` accepts a trailing newline (`$` matches before a final "\\n"), and
`\\w` or `\\d` accept Unicode look-alikes; the rules below are ASCII character classes, matched with
`fullmatch` and the ASCII flag, so "evil\\n", "evil\\t" and a Cyrillic "е" are all refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EXCERPT_CHARS = 80  # the most of a bad value an error message repeats back


class InvalidId(ValueError):
    """An id that does not follow its rule; the message names the rule (HTTP 400)."""


@dataclass(frozen=True)
class IdRule:
    kind: str  # "avatar id", ... as the error message names it
    pattern: re.Pattern
    explanation: str  # what a valid id looks like, for the error message

    def check(self, value: object) -> str:
        if not isinstance(value, str) or self.pattern.fullmatch(value) is None:
            raise InvalidId(f"{self.kind} {excerpt(value)} is not valid: {self.explanation}")
        return value

    def accepts(self, value: object) -> bool:
        return isinstance(value, str) and self.pattern.fullmatch(value) is not None


def _rule(kind: str, pattern: str, explanation: str) -> IdRule:
    return IdRule(kind, re.compile(pattern, re.ASCII), explanation)


AVATAR_ID = _rule("avatar id", r"[a-z0-9][a-z0-9_-]{0,63}",
                  "use 1-64 lower-case letters, digits, '-' or '_', starting with a letter or digit")
SESSION_ID = _rule("session id", r"s_[0-9a-f]{32}", "use the session_id that POST /session-live returned")
JOB_ID = _rule("job id", r"j_[0-9a-f]{16}", "use the job_id that POST /avatars returned")
VOICE_ID = _rule("voice id", r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", "GET /voices lists the voice ids")


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """A short, quoted, printable excerpt of untrusted input for an error message (never the whole of it)."""
    text = value if isinstance(value, str) else repr(value)
    shown = repr(text[:limit])
    return shown + (f" (first {limit} of {len(text)} characters)" if len(text) > limit else "")
