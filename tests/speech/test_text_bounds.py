"""Bounded work per model run: any text becomes pieces of at most MAX_WORDS_PER_RUN words / MAX_CHARS_PER_RUN."""

from __future__ import annotations

import pytest

from photoavatar.speech.text import (
    MAX_CHARS_PER_RUN,
    MAX_TEXT_CHARS,
    MAX_WORDS_PER_RUN,
    bound_sentence,
    prepare_text,
    speech_pieces,
)

RUN_ON = ("and the quick brown fox jumps over the lazy dog " * 100)[:4800].strip()


def _bounded(pieces: list[str]) -> bool:
    return all(len(p) <= MAX_CHARS_PER_RUN and len(p.split()) <= MAX_WORDS_PER_RUN for p in pieces)


def test_a_run_on_sentence_is_cut_into_bounded_pieces_that_keep_every_word():
    pieces = list(speech_pieces(RUN_ON))
    assert len(pieces) > 40 and _bounded(pieces)
    assert " ".join(pieces).split() == RUN_ON.split()
    # cut before "and", so each piece is a phrase ("and the quick brown fox ... dog"), not a window
    assert sum(p.startswith("and ") for p in pieces) >= len(pieces) - 2


def test_clause_boundaries_come_before_word_boundaries():
    sentence = ("When the rain stopped, we walked along the river past the old mill and the bakery and the "
                "school, then we sat on the bench by the water; it was late.")
    # clauses are packed while they fit; the one clause too long is cut before a conjunction
    assert bound_sentence(sentence, max_words=12) == [
        "When the rain stopped,", "we walked along the river past the old mill", "and the bakery and the school,",
        "then we sat on the bench by the water; it was late."]


def test_a_short_sentence_is_one_piece():
    assert bound_sentence("Hello there, how are you today?") == ["Hello there, how are you today?"]


def test_a_word_longer_than_a_run_is_cut_into_parts():
    word = "x" * (3 * MAX_CHARS_PER_RUN + 5)
    pieces = bound_sentence(f"Say {word} now.")
    assert _bounded(pieces) and "".join(pieces).replace(" ", "") == f"Say{word}now."


def test_the_first_sentence_is_still_cut_short_at_its_clauses():
    pieces = list(speech_pieces("Well, to be honest with you, I never thought about it that way at all. Thanks."))
    assert pieces[0].split()[0] == "Well," and len(pieces[0].split()) <= 10 and pieces[-1] == "Thanks."


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match="room for a word"):
        bound_sentence("a b c", max_words=0)


N = MAX_TEXT_CHARS - 10
ADVERSARIAL = {
    "run-on": RUN_ON,
    "digits": "9" * N,
    "one long word": "a" * N,
    "money": ("$1,000,000.99 " * 400)[:N],
    "money with scale": ("$5 trillion " * 500)[:N],
    "decades": ("1990s " * 900)[:N],
    "abbreviations": ("e.g. Dr. i.e. No. 5 etc. " * 220)[:N],
    "initials": ("J. " * 1700)[:N],
    "ellipses": ("a..." * 1300)[:N],
    "repeated exclamation": "Hi" + "!" * (N - 2),
    "repeated commas": "a" + "," * (N - 1),
    "dashes": ("a - " * 1300)[:N],
    "tags": ("<a " * 1700)[:N],
    "braces": ("{{x}}" * 1000)[:N],
    "big numbers": ("123456789012345 " * 320)[:N],
    "url": ("http://example.com/a/b?c=d " * 200)[:N],
}


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_no_normaliser_explodes_and_every_piece_is_bounded(name):
    """Expansions (currency, decades, abbreviations) at most triple the text; the pieces stay bounded."""
    text = ADVERSARIAL[name]
    prepared = prepare_text(text).text
    assert len(prepared) <= 3 * len(text)
    pieces = list(speech_pieces(prepared))
    assert pieces and _bounded(pieces)
    assert "".join(pieces).replace(" ", "") == prepared.replace(" ", "")  # nothing dropped or repeated


def test_espeak_expansions_are_bounded_per_model_run_too(piper_engine):
    """espeak reads "123456789012345" as about 85 phonemes: a 140-character piece of them is one minute of speech."""
    from photoavatar.speech.piper_engine import MAX_PHONEMES_PER_RUN, bound_phonemes

    voice = piper_engine.loaded_voice()
    piece = next(speech_pieces(prepare_text(ADVERSARIAL["big numbers"]).text))
    phonemes = [p for sentence in voice.phonemize(piece) for p in sentence]
    assert len(phonemes) > 3 * MAX_PHONEMES_PER_RUN
    runs = bound_phonemes(phonemes)
    assert all(0 < len(run) <= MAX_PHONEMES_PER_RUN for run in runs)
    assert " ".join("".join(run) for run in runs) == "".join(phonemes)  # cut at word gaps, nothing lost
    unbroken = list("x" * (2 * MAX_PHONEMES_PER_RUN + 7))
    assert [len(r) for r in bound_phonemes(unbroken)] == [MAX_PHONEMES_PER_RUN, MAX_PHONEMES_PER_RUN, 7]


def test_a_run_on_is_synthesised_in_bounded_chunks(piper_engine):
    chunks = piper_engine.synthesize(RUN_ON)
    first = [next(chunks) for _ in range(4)]
    chunks.close()
    assert all(c.duration_s < 8.0 for c in first)  # 20 words at most: about 6 s, whatever the text
