"""Phonemisation with the espeak-ng that ships in piper-tts, and spreading phonemes over a word's time."""

import pytest

from photoavatar.speech.engine import SpeechError
from photoavatar.speech.ipa import SILENCE
from photoavatar.speech.phonemize import (
    Phone,
    _phonemize_cached,
    espeak_voice_for,
    group_ipa,
    phonemize_word,
    silence,
    spread_over_span,
)


def ipa_and_stress(phones):
    return [(phone.ipa, phone.stress) for phone in phones]


def test_stress_marks_merge_into_the_following_sound():
    assert ipa_and_stress(group_ipa("ɐhˈɛd")) == [("ɐ", 0), ("h", 0), ("ɛ", 1), ("d", 0)]
    assert ipa_and_stress(group_ipa("ˌʌndɚstˈænd")) == [
        ("ʌ", 2), ("n", 0), ("d", 0), ("ɚ", 0), ("s", 0), ("t", 0), ("æ", 1), ("n", 0), ("d", 0)]


def test_length_marks_diacritics_and_tie_bars_stay_on_their_sound():
    assert [phone.ipa for phone in group_ipa("wˈɜːld")] == ["w", "ɜː", "l", "d"]
    assert [phone.ipa for phone in group_ipa("bˈʌʔn̩")] == ["b", "ʌ", "ʔ", "n̩"]
    assert [phone.ipa for phone in group_ipa("t͡ʃˈɪn")] == ["t͡ʃ", "ɪ", "n"]


def test_diphthongs_and_affricates_are_one_phoneme():
    assert ipa_and_stress(group_ipa("tʃˈaɪld")) == [("tʃ", 0), ("aɪ", 1), ("l", 0), ("d", 0)]
    assert [phone.ipa for phone in group_ipa("dʒˈoʊk")] == ["dʒ", "oʊ", "k"]
    assert [phone.ipa for phone in group_ipa("pfˈaɪfə")] == ["p", "f", "aɪ", "f", "ə"]  # as the Piper engine


@pytest.mark.parametrize("voice, text", [
    ("en-us", "Church judge, the hour! Button player cats, idea; poor fire."),
    ("de", "Die Zeit heute, das Mädchen über Pferde."),
])
def test_same_phonemes_as_the_piper_engine(voice, text):
    # Both engines must hand the viseme table the same symbols for the same espeak output.
    import unicodedata

    import numpy as np
    from piper import espeakbridge

    from photoavatar.speech.piper_engine import group_phonemes

    phonemize_word("warm-up", voice)  # initialises espeak-ng
    espeakbridge.set_voice(voice)
    ipa = " ".join(phonemes + terminator for phonemes, terminator, _ in espeakbridge.get_phonemes(text))
    symbols = list(unicodedata.normalize("NFD", ipa))
    piper = [(t.phoneme, t.stress) for t in group_phonemes(symbols, np.ones(len(symbols), dtype=int))
             if t.phoneme != SILENCE and not unicodedata.category(t.phoneme[0]).startswith("P")]
    assert ipa_and_stress(group_ipa(ipa)) == piper


def test_spaces_punctuation_and_language_flags_are_not_phonemes():
    assert [phone.ipa for phone in group_ipa("(en)hˈaɪ(de), jˈaː.")] == ["h", "aɪ", "j", "aː"]


def test_english_words_through_espeak():
    assert ipa_and_stress(phonemize_word("church", "en-US")) == [("tʃ", 0), ("ɜː", 1), ("tʃ", 0)]
    assert [phone.ipa for phone in phonemize_word("judge")] == ["dʒ", "ʌ", "dʒ"]
    # numbers are spelled out, as the speaker says them
    assert [phone.ipa for phone in phonemize_word("42")][:3] == ["f", "ɔː", "ɹ"]


def test_german_words_through_espeak():
    assert [phone.ipa for phone in phonemize_word("Zeit", "de-DE")] == ["t", "s", "aɪ", "t"]
    # like Piper, phonemes are in NFD form: "ç" is "c" + a combining cedilla
    assert [phone.ipa for phone in phonemize_word("Mädchen", "de")] == ["m", "ɛː", "d", "c\u0327", "ə", "n"]


def test_language_tags_map_to_espeak_voices():
    assert espeak_voice_for("en-US") == "en-us"
    assert espeak_voice_for("en") == "en-us"
    assert espeak_voice_for("en_GB") == "en-gb"
    assert espeak_voice_for("de-DE") == "de"


def test_an_unknown_language_is_a_clear_error():
    with pytest.raises(SpeechError, match="no voice 'zz'.*en-us or de"):
        phonemize_word("hello", "zz-ZZ")
    with pytest.raises(SpeechError, match="no language"):
        phonemize_word("hello", " ")


def test_each_call_sets_its_own_voice_whatever_another_engine_chose():
    # espeak-ng has one global voice that the Piper engine also sets; every call must choose its own.
    from piper import espeakbridge

    phonemize_word("Zeit", "de")
    espeakbridge.set_voice("en-us")
    _phonemize_cached.cache_clear()
    assert [phone.ipa for phone in phonemize_word("Zeit", "de")] == ["t", "s", "aɪ", "t"]
    assert [phone.ipa for phone in phonemize_word("Zeit", "en-us")] != ["t", "s", "aɪ", "t"]


def test_spread_tiles_the_span_and_gives_vowels_more_time():
    phones = phonemize_word("church")
    timings = spread_over_span(phones, 1000, 2000)
    assert [t.phoneme for t in timings] == ["tʃ", "ɜː", "tʃ"]
    assert timings[0].start_sample == 1000 and timings[-1].end_sample == 2000
    assert all(a.end_sample == b.start_sample for a, b in zip(timings, timings[1:], strict=False))
    assert timings[1].duration_samples > 2 * timings[0].duration_samples  # long vowel vs consonant
    assert timings[1].stress == 1


def test_spread_of_nothing_and_silence_spans():
    assert spread_over_span([], 0, 100) == []
    assert spread_over_span([Phone("a")], 100, 100) == []
    assert silence(5, 5) == []
    (gap,) = silence(5, 30)
    assert (gap.phoneme, gap.start_sample, gap.duration_samples) == (SILENCE, 5, 25)
