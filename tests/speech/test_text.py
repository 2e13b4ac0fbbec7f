"""Text validation and normalisation, checked against what espeak-ng (inside Piper) actually says."""

from __future__ import annotations

import types

import pytest

from photoavatar.speech.engine import SpeechError
from photoavatar.speech.text import (
    MAX_TEXT_CHARS,
    check_language,
    prepare_text,
    split_clauses,
    split_sentences,
)


def spoken(engine, text: str) -> list[str]:
    """The phonemes the voice speaks for TEXT, one string per sentence."""
    return ["".join(s) for s in engine.loaded_voice().phonemize(text)]


@pytest.mark.parametrize("written, said", [
    ("Dr. Smith is here.", "Doctor Smith is here."),
    ("Mr. and Mrs. Jones came.", "Mister and Missus Jones came."),
    ("It costs $5.50 today.", "It costs five dollars and fifty cents today."),
    ("It costs $1 today.", "It costs one dollar today."),
    ("Only $0.99 each.", "Only ninety nine cents each."),
    ("About £20 or €3 million.", "About twenty pounds or three million euros."),
    ("Music of the 1990s and the '80s.", "Music of the nineteen nineties and the eighties."),
    ("We need eggs, e.g. six, etc. Then go.", "We need eggs, for example six, et cetera. Then go."),
    ("See No. 5 here.", "See number five here."),
    ("J. R. R. Tolkien wrote it.", "J R R Tolkien wrote it."),
])
def test_gaps_in_espeak_are_filled(piper_engine, written, said):
    assert spoken(piper_engine, prepare_text(written).text) == spoken(piper_engine, said)


@pytest.mark.parametrize("text, words", [
    ("On the 3rd of May", "On the third of May"),
    ("50% of 1,000,000", "fifty percent of one million"),
    ("At 10:30 it was 35 degrees", "At ten thirty it was thirty five degrees"),
])
def test_what_espeak_already_reads_is_left_alone(piper_engine, text, words):
    assert prepare_text(text).text == text
    assert spoken(piper_engine, text) == spoken(piper_engine, words)


def test_no_at_the_end_of_a_sentence_stays_the_word_no():
    assert prepare_text("I said no. Then he left.").text == "I said no. Then he left."
    assert list(split_sentences("I said no. Then he left.")) == ["I said no.", "Then he left."]


def test_emoji_and_symbols_are_skipped_with_notes():
    prepared = prepare_text("I \u2764\ufe0f you \U0001F600!")
    assert prepared.text == "I you!"
    assert len(prepared.notes) == 2
    assert "grinning face" in prepared.notes[1]


def test_control_characters_are_removed():
    assert prepare_text("Hel\x00lo\x07 wor\u200bld\x1b").text == "Hello world"


def test_markup_is_plain_text_never_instructions():
    prepared = prepare_text("<speak><break time='10s'/>Hi <b>there</b> {{name}} [[ hh ]]</speak>")
    assert prepared.text == "Hi there name hh"
    assert any("markup" in note for note in prepared.notes)
    assert any("template" in note for note in prepared.notes)


def test_limits_and_empty_text():
    assert MAX_TEXT_CHARS == 5000
    prepare_text("a " * (MAX_TEXT_CHARS // 2))  # exactly at the limit is fine
    with pytest.raises(SpeechError, match=r"5001 characters.*limit of 5000.*split_sentences"):
        prepare_text("a" * 5001)
    for empty in ("", " ", "\n\n\t"):
        with pytest.raises(SpeechError, match="empty"):
            prepare_text(empty)
    with pytest.raises(SpeechError, match="must be a string"):
        prepare_text(None)


@pytest.mark.parametrize("text, script", [
    ("Привет, как у тебя дела?", "Cyrillic"),
    ("你好，世界，今天天气很好", "Chinese"),
    ("こんにちは、お元気ですか", "Japanese"),
    ("안녕하세요 여러분", "Korean"),
])
def test_text_in_another_script_names_the_voice_language(text, script):
    with pytest.raises(SpeechError, match=rf"speaks English \(en-US\).*{script}"):
        check_language(text, "en-US")


def test_a_few_foreign_letters_are_fine_and_scripts_follow_the_voice():
    check_language("The café in Zürich sells π pies, said Дмитрий.", "en-US")
    check_language("Привет, как у тебя дела?", "ru-RU")
    with pytest.raises(SpeechError, match="Russian"):
        check_language("Hello there my friend", "ru-RU")


def test_sentences_are_split_lazily_and_abbreviations_do_not_end_them():
    text = 'Dr. Smith went home. He was tired!  Really? "Yes." he said.\n\nA new paragraph\nwith a line break'
    sentences = split_sentences(text)
    assert isinstance(sentences, types.GeneratorType)
    assert list(sentences) == ["Dr. Smith went home.", "He was tired!", "Really?", '"Yes." he said.',
                               "A new paragraph\nwith a line break"]


def test_long_text_streams_sentence_by_sentence():
    text = "This is one sentence. " * 10_000  # 220 000 characters: far over the per-request limit
    sentences = split_sentences(text)
    assert next(sentences) == "This is one sentence."
    assert sum(1 for _ in sentences) == 9_999


def test_clause_splitting_keeps_short_sentences_whole():
    assert split_clauses("Hello there, my friend.") == ["Hello there, my friend."]
    long = ("When the morning sun rose over the quiet hills, the farmers walked slowly to their fields, "
            "and the children ran after them laughing.")
    pieces = split_clauses(long, max_words=10)
    assert " ".join(pieces) == long
    assert pieces[0] == "When the morning sun rose over the quiet hills,"
    assert all(len(piece.split()) <= 10 for piece in pieces)


def test_clause_splitting_falls_back_to_a_conjunction():
    text = "The quick brown fox jumps over the lazy dog and then runs far away into the dark woods"
    assert split_clauses(text, max_words=10) == [
        "The quick brown fox jumps over the lazy dog", "and then runs far away into the dark woods"]
    dashed = "Our plan is simple enough for everyone here to follow \u2014 we walk to the station together"
    assert split_clauses(dashed, max_words=10)[0].endswith("\u2014")
