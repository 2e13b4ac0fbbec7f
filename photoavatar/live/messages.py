"""The JSON messages of docs/protocol.md, built in one place so every transport sends the same bytes."""

from __future__ import annotations

from collections.abc import Iterable

from photoavatar.speech import events as events_module
from photoavatar.speech.types import ProsodyFrame, VisemeEvent

VISEME_LABEL = "viseme"
PROSODY_LABEL = "prosody"
RTP_CLOCK_HZ = 48000
END_REASONS = ("done", "barge_in", "stop", "error")


def utterance_start(utterance_id: str, rtp_timestamp: int, text: str, anchor: str) -> dict:
    """`anchor` is "rtp" where rtp_timestamp survives to the client, "onset" behind an SFU that rewrites it."""
    return {"type": "utterance_start", "utterance_id": utterance_id, "rtp_timestamp": rtp_timestamp,
            "rtp_clock_hz": RTP_CLOCK_HZ, "text": text, "anchor": anchor}


def visemes(utterance_id: str, events: Iterable[VisemeEvent]) -> dict:
    return events_module.viseme_message(utterance_id, events)  # the speech stage's validated builder


def prosody(utterance_id: str, frames: Iterable[ProsodyFrame]) -> dict:
    return events_module.prosody_message(utterance_id, frames)


def utterance_end(utterance_id: str, reason: str, error: str | None = None) -> dict:
    if reason not in END_REASONS:
        raise ValueError(f"utterance_end reason must be one of {END_REASONS}, got {reason!r}")
    message = {"type": "utterance_end", "utterance_id": utterance_id, "reason": reason}
    if error is not None:
        message["error"] = error
    return message
