"""The one owner of phonetic conventions: sounds, marks, pauses and stress, for every engine and stage."""

from __future__ import annotations

import pytest

from photoavatar.speech.ipa import SILENCE, group_sounds, is_silence, is_vowel
from photoavatar.speech.phoneme_map import shapes_for
from photoavatar.speech.phonemize import group_ipa
from photoavatar.speech.piper_engine import group_phonemes


def timings(pairs, start_sample=0):
    return [(t.phoneme, t.start_sample, t.duration_samples, t.stress) for t in group_sounds(pairs, start_sample)]


def test_sounds_tile_the_time_exactly_with_stress_time_going_to_the_next_sound():
    pairs = [(" ", 3), ("ˈ", 2), ("a", 5), ("ɪ", 4), ("ː", 1), ("t", 2), ("ʃ", 2), (",", 6), (" ", 1)]
    assert timings(pairs, start_sample=100) == [
        (SILENCE, 100, 3, 0), ("aɪː", 103, 12, 1), ("tʃ", 115, 4, 0), (",", 119, 7, 0)]


def test_a_stress_mark_starts_a_new_syllable_so_nothing_joins_across_it():
    assert [t[0] for t in timings([("t", 1), ("ˈ", 1), ("ʃ", 1), ("a", 1)])] == ["t", "ʃ", "a"]
    assert [phone.ipa for phone in group_ipa("tˈʃa")] == ["t", "ʃ", "a"]


def test_primary_stress_beats_secondary():
    assert timings([("ˌ", 0), ("ˈ", 0), ("a", 1)])[0][3] == 1
    assert timings([("ˈ", 0), ("ˌ", 0), ("a", 1)])[0][3] == 1


def test_pharyngealisation_stays_on_its_sound_in_every_engine_and_keeps_its_shape():
    # The two MODIFIERS sets once disagreed on "ˤ" (in the Piper voice's phoneme ids): the grouping made it a
    # sound of its own (shown with the next vowel's shape, taking half the time of the "s"), the viseme table
    # ignored it. It modifies the sound before it: one sound "sˤ", shaped like "s", with all its time.
    assert timings([("s", 4), ("ˤ", 2), ("a", 3)]) == [("sˤ", 0, 6, 0), ("a", 6, 3, 0)]
    assert [phone.ipa for phone in group_ipa("sˤa")] == ["sˤ", "a"]
    assert shapes_for("sˤ") == shapes_for("s")


@pytest.mark.parametrize("symbol", [" ", "^", "$", "_", ",", "…", "«", "»", "#", "“", "¿", ""])
def test_every_pause_symbol_is_silence_for_the_grouper_and_the_viseme_table(symbol):
    # Piper's id map holds "#", which the grouping called silence and the viseme table did not know.
    assert is_silence(symbol)
    assert shapes_for(symbol) == ()


def test_piper_ids_group_like_espeak_text():
    symbols = ["^", "_", "ˈ", "_", "a", "_", "ɪ", "_", "#", "_", "$"]
    sounds = group_phonemes(symbols, [1] * len(symbols), offset_sample=10)
    assert [(t.phoneme, t.start_sample, t.duration_samples, t.stress) for t in sounds] == [
        (SILENCE, 10, 1, 0), ("aɪ", 11, 6, 1), ("#", 17, 4, 0)]  # a pad belongs to the symbol after it


@pytest.mark.parametrize(("phoneme", "vowel"), [
    ("a", True), ("aɪ", True), ("iː", True), ("ɚ", True), ("n̩", True), ("n", False), ("s", False), (" ", False),
])
def test_one_vowel_rule(phoneme, vowel):
    assert is_vowel(phoneme) == vowel
