"""The wire protocol: messages built from real speech validate, encode to compact JSON, and match docs/protocol.md
field for field (every documented field is produced, nothing undocumented is sent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from photoavatar.live import protocol
from photoavatar.live.protocol import MessageError, encode, validate
from photoavatar.speech.types import VisemeEvent

REPO = Path(__file__).resolve().parents[2]
TEXT = "Bob bought a big blue paper map. My mom made maple muffins. Pam picked a pumpkin."


@pytest.fixture(scope="module")
def segments(speech):
    source, _ = speech
    return list(source(TEXT, None))


def produced_messages(segments) -> list[protocol.Message]:
    """One of each message as a session sends them, with real timelines and the optional error field."""
    return [protocol.UtteranceStart("u_1", 4_000_000_000, TEXT, "rtp", server_s=0.062),
            *(protocol.visemes("u_1", s.visemes) for s in segments),
            *(protocol.prosody("u_1", s.prosody) for s in segments), protocol.UtteranceGap("u_1", 1.2345, 0.02),
            protocol.UtteranceEnd("u_1", "done"), protocol.UtteranceEnd("u_2", "error", "the voice failed")]


def test_messages_validate_and_round_trip_as_compact_json(segments):
    for message in produced_messages(segments):
        text = encode(message)
        assert " " not in text.replace("utterance_id", "")[:40]
        assert json.loads(text) == message.to_json()
    first = protocol.visemes("u", segments[0].visemes).to_json()
    assert set(first["events"][0]) == {"viseme", "start_s", "end_s", "weight"}
    assert set(protocol.prosody("u", segments[0].prosody).to_json()["frames"][0]) == {
        "time_s", "loudness_db", "pitch_hz", "accent"}


@pytest.mark.parametrize(("message", "complaint"), [
    ({"type": "viseme", "utterance_id": "u"}, "lacks events"),
    ({"type": "viseme", "utterance_id": "u", "events": [{"viseme": "Smile", "start_s": 0, "end_s": 1, "weight": 1}]},
     r"events\[0\].viseme must be one of"),
    ({"type": "viseme", "utterance_id": "u", "events": [{"viseme": "AI", "start_s": float("nan"), "end_s": 1,
                                                         "weight": 1}]}, "finite"),
    ({"type": "viseme", "utterance_id": "u", "events": [{"viseme": "MBP", "start_s": -0.6, "end_s": 0.1,
                                                         "weight": 1}]}, r"start_s must be >= -0.5"),
    ({"type": "prosody", "utterance_id": "", "frames": []}, "non-empty string"),
    ({"type": "prosody", "utterance_id": "u", "frames": [{"time_s": 0, "loudness_db": 3, "pitch_hz": 0,
                                                          "accent": 0}]}, "<= 0"),
    ({"type": "prosody", "utterance_id": "u", "frames": [], "extra": 1}, "unknown field"),
    ({"type": "hello"}, "with type 'utterance_start', 'viseme', 'prosody', 'utterance_gap' or 'utterance_end'"),
    ({"type": "utterance_gap", "utterance_id": "u", "at_s": 1.0}, "lacks gap_s"),
    ({"type": "utterance_gap", "utterance_id": "u", "at_s": -0.1, "gap_s": 0.02}, "at_s must be >= 0"),
    ({"type": "utterance_start", "utterance_id": "u", "rtp_timestamp": 2**32, "rtp_clock_hz": 48000, "text": "",
      "anchor": "rtp"}, r"rtp_timestamp must be <= 4294967295"),
    ({"type": "utterance_start", "utterance_id": "u", "rtp_timestamp": 1.5, "rtp_clock_hz": 48000, "text": "",
      "anchor": "rtp"}, "whole number"),
    ({"type": "utterance_end", "utterance_id": "u", "reason": "bored"}, "reason must be one of"),
])
def test_bad_messages_are_refused_naming_the_field(message, complaint):
    with pytest.raises(MessageError, match=complaint):
        validate(message)


def test_the_encoder_refuses_what_no_client_could_read():
    with pytest.raises(MessageError, match="anchor must be one of"):
        encode(protocol.UtteranceStart("u", 0, "hi", "wallclock"))
    with pytest.raises(ValueError, match="reason must be one of"):
        protocol.UtteranceEnd("u", "bored")


# -- docs/protocol.md is the contract ----------------------------------------------------------------

def documented_fields() -> dict[str, dict[str, tuple[str, str, bool, str]]]:
    """type -> field -> (label, JSON type, required, values) from the Messages table of docs/protocol.md."""
    doc = (REPO / "docs" / "protocol.md").read_text(encoding="utf-8")
    section = doc.split("## Messages", 1)[1].split("\n## ", 1)[0]
    table: dict[str, dict] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 6 or not cells[0].startswith("`"):
            continue
        kind, label, name = (cell.strip("`") for cell in cells[:3])
        assert cells[4] in ("yes", "no"), line
        table.setdefault(kind, {})[name] = (label, cells[3], cells[4] == "yes", cells[5])
    return table


def schema_fields(schema: dict, prefix: str = "") -> dict[str, tuple[str, bool, dict]]:
    """field path -> (JSON type, required, leaf schema), nested lists of objects as `events[].viseme`."""
    fields = {}
    for name, sub in schema["properties"].items():
        path = f"{prefix}{name}"
        if path == "type":
            continue
        json_type = sub.get("type") or type(sub.get("const", (sub.get("enum") or [""])[0])).__name__
        json_type = {"str": "string", "int": "integer"}.get(json_type, json_type)
        fields[path] = (json_type, name in schema.get("required", []), sub)
        if sub.get("type") == "array":
            fields.update(schema_fields(sub["items"], f"{path}[]."))
    return fields


def test_the_documented_messages_are_exactly_the_schema():
    documented = documented_fields()
    assert set(documented) == set(protocol.SCHEMAS), "message types in docs/protocol.md vs live/protocol.py"
    for kind, schema in protocol.SCHEMAS.items():
        fields = schema_fields(schema)
        assert set(documented[kind]) == set(fields), f"{kind}: documented vs sent fields"
        for name, (json_type, required, leaf) in fields.items():
            _, doc_type, doc_required, values = documented[kind][name]
            assert (doc_type, doc_required) == (json_type, required), f"{kind}.{name}"
            for value in leaf.get("enum", []) + ([leaf["const"]] if "const" in leaf else []):
                assert str(value) in values, f"{kind}.{name}: the doc does not list {value!r}"


def test_every_documented_field_is_produced_on_its_label(segments):
    documented = documented_fields()
    sent: dict[str, set[str]] = {}
    for message in produced_messages(segments):
        as_json = json.loads(encode(message))
        assert all(label == message.label for label, *_ in documented[as_json["type"]].values())
        paths = sent.setdefault(as_json["type"], set())
        for key, value in as_json.items():
            if key != "type":
                paths.add(key)
            if isinstance(value, list):
                paths.update(f"{key}[].{inner}" for item in value for inner in item)
    assert sent == {kind: set(fields) for kind, fields in documented.items()}



def test_after_gaps_moves_a_time_by_every_gap_at_or_before_it():
    gaps = [protocol.UtteranceGap("u", 0.4, 0.02), protocol.UtteranceGap("u", 0.4, 0.02),
            protocol.UtteranceGap("u", 1.0, 0.005)]
    assert protocol.after_gaps(0.3, gaps) == 0.3
    assert protocol.after_gaps(0.4, gaps) == pytest.approx(0.44)
    assert protocol.after_gaps(1.2, gaps) == pytest.approx(1.245)


def test_an_event_that_spans_a_gap_stops_at_it_and_goes_on_after_it():
    gaps = [protocol.UtteranceGap("u", 0.4, 0.1), protocol.UtteranceGap("u", 0.4, 0.1)]
    placed = protocol.events_after_gaps([VisemeEvent("AI", 0.1, 0.4, 1.0), VisemeEvent("E", 0.3, 0.6, 0.5),
                                         VisemeEvent("O", 0.4, 0.7, 1.0)], gaps)
    assert [(e.viseme, round(e.start_s, 6), round(e.end_s, 6), e.weight) for e in placed] == [
        ("AI", 0.1, 0.4, 1.0), ("E", 0.3, 0.4, 0.5), ("E", 0.6, 0.8, 0.5), ("O", 0.6, 0.9, 1.0)]
