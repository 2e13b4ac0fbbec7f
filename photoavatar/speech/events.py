"""The `viseme` and `prosody` data-channel messages (docs/protocol.md), their JSON schema and a validator.

The schemas are plain JSON Schema (draft 2020-12 subset) and docs/timeline.md prints them; `validate`
checks a message against them without extra dependencies, with an error that names the offending field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

from photoavatar.speech.types import ProsodyFrame, VisemeEvent
from photoavatar.visemes import VISEMES

_TIME = {"type": "number", "minimum": 0}
VISEME_MESSAGE_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "viseme message",
    "type": "object",
    "required": ["type", "utterance_id", "events"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "viseme"},
        "utterance_id": {"type": "string", "minLength": 1},
        "events": {"type": "array", "items": {
            "type": "object",
            "required": ["viseme", "start_s", "end_s", "weight"],
            "additionalProperties": False,
            "properties": {"viseme": {"enum": list(VISEMES)}, "start_s": _TIME, "end_s": _TIME,
                           "weight": {"type": "number", "minimum": 0, "maximum": 1}},
        }},
    },
}
PROSODY_MESSAGE_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "prosody message",
    "type": "object",
    "required": ["type", "utterance_id", "frames"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "prosody"},
        "utterance_id": {"type": "string", "minLength": 1},
        "frames": {"type": "array", "items": {
            "type": "object",
            "required": ["time_s", "loudness_db", "pitch_hz", "accent"],
            "additionalProperties": False,
            "properties": {"time_s": _TIME, "loudness_db": {"type": "number", "minimum": -100, "maximum": 0},
                           "pitch_hz": {"type": "number", "minimum": 0},
                           "accent": {"type": "number", "minimum": 0, "maximum": 1}},
        }},
    },
}
SCHEMAS = {"viseme": VISEME_MESSAGE_SCHEMA, "prosody": PROSODY_MESSAGE_SCHEMA}


class MessageError(ValueError):
    pass


def viseme_message(utterance_id: str, events: Iterable[VisemeEvent]) -> dict:
    message = {"type": "viseme", "utterance_id": utterance_id, "events": [_viseme_json(e) for e in events]}
    validate(message)
    return message


def prosody_message(utterance_id: str, frames: Iterable[ProsodyFrame]) -> dict:
    message = {"type": "prosody", "utterance_id": utterance_id, "frames": [_prosody_json(f) for f in frames]}
    validate(message)
    return message


def encode(message: dict) -> str:
    """Compact JSON text for a data channel (validated)."""
    validate(message)
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


def _viseme_json(event: VisemeEvent) -> dict:
    # Round to 0.1 ms: plenty for 25-60 fps, and half the bytes on the wire.
    return {"viseme": event.viseme, "start_s": round(max(event.start_s, 0.0), 4),
            "end_s": round(max(event.end_s, 0.0), 4), "weight": round(event.weight, 4)}


def _prosody_json(frame: ProsodyFrame) -> dict:
    return {"time_s": round(max(frame.time_s, 0.0), 4), "loudness_db": round(frame.loudness_db, 2),
            "pitch_hz": round(frame.pitch_hz, 2), "accent": round(frame.accent, 3)}


def validate(message: object) -> None:
    """Raise MessageError unless MESSAGE is a valid `viseme` or `prosody` message."""
    if not isinstance(message, dict) or message.get("type") not in SCHEMAS:
        raise MessageError(f"a data-channel message must be an object with type 'viseme' or 'prosody', got "
                           f"{str(message)[:80]!r}")
    _check(message, SCHEMAS[message["type"]], "message")


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
    elif kind == "number":
        _check_number(value, schema, where)
    elif kind == "string" and (not isinstance(value, str) or len(value) < schema.get("minLength", 0)):
        raise MessageError(f"{where} must be a non-empty string, got {value!r}")


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
    if "minimum" in schema and value < schema["minimum"]:
        raise MessageError(f"{where} must be >= {schema['minimum']}, got {value}")
    if "maximum" in schema and value > schema["maximum"]:
        raise MessageError(f"{where} must be <= {schema['maximum']}, got {value}")
