"""The wire protocol of docs/protocol.md: the five data-channel messages, their schema and the one encoder.

Sessions build typed messages (`UtteranceStart`, `Visemes`, `Prosody`, `UtteranceGap`, `UtteranceEnd`); every
transport turns them into bytes with `encode`, so WebRTC data channels and LiveKit data topics carry the same
text. `SCHEMAS` (JSON Schema, draft 2020-12 subset) is what docs/protocol.md prints and a test holds the two
equal; `validate` checks any message against them without extra dependencies, with an error that names the
offending field. `after_gaps` and `events_after_gaps` say when an utterance's times play once it has had gaps.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import ClassVar

from photoavatar.speech.types import ProsodyFrame, VisemeEvent
from photoavatar.visemes import VISEMES

VISEME_LABEL = "viseme"  # data channel (WebRTC) / data topic (LiveKit) of utterance_start, viseme, utterance_end
PROSODY_LABEL = "prosody"
LABELS = (VISEME_LABEL, PROSODY_LABEL)
RTP_CLOCK_HZ = 48000
RTP_MODULO = 2**32
ANCHORS = ("rtp", "onset")  # rtp: map rtp_timestamp; onset: anchor to the first audio after silence (SFU)
END_REASONS = ("done", "barge_in", "stop", "error")


@dataclass(frozen=True)
class UtteranceStart:
    """The utterance's first sample plays at RTP time `rtp_timestamp` (see `anchor`)."""

    label: ClassVar[str] = VISEME_LABEL
    utterance_id: str
    rtp_timestamp: int
    text: str
    anchor: str
    server_s: float | None = None  # /speak -> first sample handed to the stream: the server's part of first audio

    def to_json(self) -> dict:
        message = {"type": "utterance_start", "utterance_id": self.utterance_id, "rtp_timestamp": self.rtp_timestamp,
                   "rtp_clock_hz": RTP_CLOCK_HZ, "text": self.text, "anchor": self.anchor}
        if self.server_s is not None:
            message["server_s"] = round(self.server_s, 4)
        return message


@dataclass(frozen=True)
class Visemes:
    label: ClassVar[str] = VISEME_LABEL
    utterance_id: str
    events: tuple[VisemeEvent, ...]

    def to_json(self) -> dict:
        return {"type": "viseme", "utterance_id": self.utterance_id, "events": [_viseme_json(e) for e in self.events]}


@dataclass(frozen=True)
class Prosody:
    label: ClassVar[str] = PROSODY_LABEL
    utterance_id: str
    frames: tuple[ProsodyFrame, ...]

    def to_json(self) -> dict:
        return {"type": "prosody", "utterance_id": self.utterance_id, "frames": [_prosody_json(f) for f in self.frames]}


@dataclass(frozen=True)
class UtteranceGap:
    """The utterance's audio paused for GAP_S of silence at its audio time AT_S (the engine was late mid-utterance),
    so everything it plays from AT_S on plays GAP_S later: a client moves those events and frames by GAP_S (and by
    every gap before them), whether they came before this message or after it; an event that spans AT_S stops
    there and goes on after the silence (`events_after_gaps`)."""

    label: ClassVar[str] = VISEME_LABEL
    utterance_id: str
    at_s: float
    gap_s: float

    def to_json(self) -> dict:
        return {"type": "utterance_gap", "utterance_id": self.utterance_id, "at_s": round(max(self.at_s, 0.0), 4),
                "gap_s": round(max(self.gap_s, 0.0), 4)}


@dataclass(frozen=True)
class UtteranceEnd:
    """The utterance is over: played out (`done`), interrupted (`barge_in`, `stop`) or failed (`error`)."""

    label: ClassVar[str] = VISEME_LABEL
    utterance_id: str
    reason: str
    error: str | None = None

    def __post_init__(self) -> None:
        if self.reason not in END_REASONS:
            raise ValueError(f"utterance_end reason must be one of {END_REASONS}, got {self.reason!r}")

    def to_json(self) -> dict:
        message = {"type": "utterance_end", "utterance_id": self.utterance_id, "reason": self.reason}
        if self.error is not None:
            message["error"] = self.error
        return message


Message = UtteranceStart | Visemes | Prosody | UtteranceGap | UtteranceEnd


def after_gaps(time_s: float, gaps: Iterable[UtteranceGap]) -> float:
    """When utterance audio time TIME_S plays, given the utterance's GAPS: later by every gap at or before it."""
    return time_s + sum(gap.gap_s for gap in gaps if gap.at_s <= time_s)


def events_after_gaps(events: Iterable[VisemeEvent], gaps: Iterable[UtteranceGap]) -> list[VisemeEvent]:
    """EVENTS at the times their audio plays: an event that spans a gap stops at it and goes on after it, so the
    mouth rests while the voice does."""
    gaps = tuple(gaps)
    cuts = sorted({gap.at_s for gap in gaps})
    placed = []
    for event in events:
        edges = [event.start_s, *(at for at in cuts if event.start_s < at < event.end_s), event.end_s]
        for lo, hi in itertools.pairwise(edges):
            moved_by = after_gaps(lo, gaps) - lo
            placed.append(replace(event, start_s=lo + moved_by, end_s=hi + moved_by))
    return placed


def frames_after_gaps(frames: Iterable[ProsodyFrame], gaps: Iterable[UtteranceGap]) -> list[ProsodyFrame]:
    gaps = tuple(gaps)
    return [replace(f, time_s=after_gaps(f.time_s, gaps)) for f in frames]


def visemes(utterance_id: str, events: Iterable[VisemeEvent]) -> Visemes:
    return Visemes(utterance_id, tuple(events))


def prosody(utterance_id: str, frames: Iterable[ProsodyFrame]) -> Prosody:
    return Prosody(utterance_id, tuple(frames))


def encode(message: Message) -> str:
    """The message as compact JSON text, validated against SCHEMAS: what every transport sends."""
    as_json = message.to_json()
    validate(as_json)
    return json.dumps(as_json, separators=(",", ":"), allow_nan=False)


def encode_pieces(message: Message, max_bytes: int) -> list[str]:
    """The message encoded as one or more messages of at most MAX_BYTES each (UTF-8): what transports send.

    A peer refuses a data-channel message over its SCTP max-message-size (64 KiB by default) and LiveKit a
    data packet over 15 KiB, so a long utterance's timeline is split: viseme and prosody messages into
    consecutive messages of the same type and utterance (clients append them), and the informational
    `text` of utterance_start or `error` of utterance_end shortened with an ellipsis.
    """
    text = encode(message)
    if len(text.encode()) <= max_bytes:
        return [text]
    if isinstance(message, Visemes | Prosody):
        items = message.events if isinstance(message, Visemes) else message.frames
        if len(items) < 2:
            raise ValueError(f"one {message.to_json()['type']} item is larger than {max_bytes} bytes")
        half = len(items) // 2
        return [*encode_pieces(replace(message, **{_ITEMS[type(message)]: items[:half]}), max_bytes),
                *encode_pieces(replace(message, **{_ITEMS[type(message)]: items[half:]}), max_bytes)]
    return [_shortened(message, "text" if isinstance(message, UtteranceStart) else "error", max_bytes)]


_ITEMS = {Visemes: "events", Prosody: "frames"}


def _shortened(message: Message, field_name: str, max_bytes: int) -> str:
    """MESSAGE with the longest prefix of its FIELD_NAME text (+ an ellipsis) that fits in MAX_BYTES."""
    value = getattr(message, field_name) or ""

    def encoded(keep: int) -> str:
        return encode(replace(message, **{field_name: value[:keep] + "\u2026"}))

    if len(encoded(0).encode()) > max_bytes:
        raise ValueError(f"a {message.to_json()['type']} message cannot fit in {max_bytes} bytes")
    shortest, longest = 0, len(value)
    while shortest < longest:  # binary search: JSON escapes make bytes per character uneven
        middle = (shortest + longest + 1) // 2
        shortest, longest = (middle, longest) if len(encoded(middle).encode()) <= max_bytes else (shortest, middle - 1)
    return encoded(shortest)


def _viseme_json(event: VisemeEvent) -> dict:
    """The event as speech/types.py writes it, times clamped to what the schema allows."""
    # Round to 0.1 ms: plenty for 25-60 fps, and half the bytes on the wire.
    return replace(event, start_s=round(max(event.start_s, -MAX_LEAD_S), 4), end_s=round(max(event.end_s, 0.0), 4),
                   weight=round(event.weight, 4)).to_json()


def _prosody_json(frame: ProsodyFrame) -> dict:
    return replace(frame, time_s=round(max(frame.time_s, 0.0), 4), loudness_db=round(frame.loudness_db, 2),
                   pitch_hz=round(frame.pitch_hz, 2), accent=round(frame.accent, 3)).to_json()


# -- the schemas (docs/protocol.md prints them) ----------------------------------------------------

_TIME = {"type": "number", "minimum": 0}
# An utterance's first events may start before its first sample (a closure formed before "Papa" is heard):
# the client gets them ahead of the audio, which waits in its jitter buffer. Never earlier than this.
MAX_LEAD_S = 0.5
_EVENT_START = {"type": "number", "minimum": -MAX_LEAD_S}
_UTTERANCE_ID = {"type": "string", "minLength": 1}


def _message_schema(kind: str, required: list[str], properties: dict) -> dict:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": f"{kind} message",
            "type": "object", "required": ["type", "utterance_id", *required], "additionalProperties": False,
            "properties": {"type": {"const": kind}, "utterance_id": _UTTERANCE_ID, **properties}}


def _list_of(required: list[str], properties: dict) -> dict:
    return {"type": "array", "items": {"type": "object", "required": required, "additionalProperties": False,
                                       "properties": properties}}


SCHEMAS: dict[str, dict] = {
    "utterance_start": _message_schema("utterance_start", ["rtp_timestamp", "rtp_clock_hz", "text", "anchor"], {
        "rtp_timestamp": {"type": "integer", "minimum": 0, "maximum": RTP_MODULO - 1},
        "rtp_clock_hz": {"const": RTP_CLOCK_HZ}, "text": {"type": "string"}, "anchor": {"enum": list(ANCHORS)},
        "server_s": _TIME}),
    "viseme": _message_schema("viseme", ["events"], {"events": _list_of(
        ["viseme", "start_s", "end_s", "weight"],
        {"viseme": {"enum": list(VISEMES)}, "start_s": _EVENT_START, "end_s": _TIME,
         "weight": {"type": "number", "minimum": 0, "maximum": 1}})}),
    "prosody": _message_schema("prosody", ["frames"], {"frames": _list_of(
        ["time_s", "loudness_db", "pitch_hz", "accent"],
        {"time_s": _TIME, "loudness_db": {"type": "number", "minimum": -100, "maximum": 0},
         "pitch_hz": {"type": "number", "minimum": 0}, "accent": {"type": "number", "minimum": 0, "maximum": 1}})}),
    "utterance_gap": _message_schema("utterance_gap", ["at_s", "gap_s"], {"at_s": _TIME, "gap_s": _TIME}),
    "utterance_end": _message_schema("utterance_end", ["reason"], {
        "reason": {"enum": list(END_REASONS)}, "error": {"type": "string"}}),
}


class MessageError(ValueError):
    pass


def validate(message: object) -> None:
    """Raise MessageError unless MESSAGE (decoded JSON) is a valid protocol message."""
    if not isinstance(message, dict) or message.get("type") not in SCHEMAS:
        known = ", ".join(f"'{kind}'" for kind in SCHEMAS)
        raise MessageError(f"a data-channel message must be an object with type {_or(known)}, got "
                           f"{str(message)[:80]!r}")
    _check(message, SCHEMAS[message["type"]], "message")


def _or(listed: str) -> str:
    head, _, last = listed.rpartition(", ")
    return f"{head} or {last}" if head else last


def _check(value: object, schema: dict, where: str) -> None:
    if "const" in schema and value != schema["const"]:
        raise MessageError(f"{where} must be {schema['const']!r}, got {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        raise MessageError(f"{where} must be one of {', '.join(map(str, schema['enum']))}; got {value!r}")
    kind = schema.get("type")
    if kind == "object":
        _check_object(value, schema, where)
    elif kind == "array":
        if not isinstance(value, list):
            raise MessageError(f"{where} must be a list, got {type(value).__name__}")
        for index, item in enumerate(value):
            _check(item, schema["items"], f"{where}[{index}]")
    elif kind in ("number", "integer"):
        _check_number(value, schema, where)
    elif kind == "string" and (not isinstance(value, str) or len(value) < schema.get("minLength", 0)):
        raise MessageError(f"{where} must be a {'non-empty ' if schema.get('minLength') else ''}string, got {value!r}")


def _check_object(value: object, schema: dict, where: str) -> None:
    if not isinstance(value, dict):
        raise MessageError(f"{where} must be an object, got {type(value).__name__}")
    missing = [key for key in schema.get("required", []) if key not in value]
    if missing:
        raise MessageError(f"{where} lacks {', '.join(missing)}")
    extra = [key for key in value if key not in schema["properties"]]
    if extra and schema.get("additionalProperties") is False:
        raise MessageError(f"{where} has unknown field(s) {', '.join(extra)}")
    for key, sub in schema["properties"].items():
        if key in value:
            _check(value[key], sub, f"{where}.{key}")


def _check_number(value: object, schema: dict, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MessageError(f"{where} must be a finite number, got {value!r}")
    if schema["type"] == "integer" and not isinstance(value, int):
        raise MessageError(f"{where} must be a whole number, got {value!r}")
    if "minimum" in schema and value < schema["minimum"]:
        raise MessageError(f"{where} must be >= {schema['minimum']}, got {value}")
    if "maximum" in schema and value > schema["maximum"]:
        raise MessageError(f"{where} must be <= {schema['maximum']}, got {value}")
