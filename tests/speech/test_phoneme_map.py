"""The phoneme -> viseme table covers everything espeak-ng writes for English and German."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from piper.phonemize_espeak import EspeakPhonemizer

from photoavatar.speech.ipa import LIP_NEUTRAL_MARKS, is_silence
from photoavatar.speech.phoneme_map import (
    TRANSPARENT,
    UnknownPhonemeError,
    known_symbols,
    markdown_table,
    shapes_for,
)
from photoavatar.speech.phonemize import group_ipa
from photoavatar.visemes import VISEMES

REPO = Path(__file__).resolve().parents[2]
PANGRAMS = {
    "en-us": [
        "The quick brown fox jumps over the lazy dog.", "Pack my box with five dozen liquor jugs!",
        "Sphinx of black quartz, judge my vow.", "How vexingly quick daft zebras jump; the wizards jump quickly.",
        "Thy measure, azure beige garage: the yellow church choir sang whether or not.",
        "Hour, huge, genre, water, button, little, rhythm, usual, tour, pure, coin, ear, air, thirty, orange.",
        "Mr. Smith paid $42 for a naive cafe in Eyjafjallajokull; uh-oh, I'm singing about Bach's loch.",
    ],
    "de": [
        "Victor jagt zwölf Boxkämpfer quer über den großen Sylter Deich.",
        "Falsches Üben von Xylophonmusik quält jeden größeren Zwerg.",
        "Ich möchte Pfannkuchen und Äpfel, sagte der Bäcker zum Eichhörnchen.",
        "Bayerische Köche, Psychologen, Tschüss, Zeitung, Löwe, Müll, Loch, acht, Chemie.",
        "Buch, Bücher, Öl, Hölle, Pferd, Sport, Leute, Häuser, Maus, Vater, Chaos, Gewürz, Tschechien, Orange, "
        "Genie, Rhythmus, Regen, Lärm, hübsch, Eule, Qualle, Yacht, Uhr, Wasser, Kinder, Garage, Portemonnaie.",
    ],
}


@pytest.fixture(scope="module")
def espeak_ipa() -> dict[str, list[str]]:
    phonemizer = EspeakPhonemizer()
    return {voice: ["".join(sentence) for text in texts for sentence in phonemizer.phonemize(voice, text)]
            for voice, texts in PANGRAMS.items()}


@pytest.mark.parametrize("voice", sorted(PANGRAMS))
def test_every_symbol_espeak_writes_has_a_shape(espeak_ipa, voice):
    symbols = {char for ipa in espeak_ipa[voice] for char in unicodedata.normalize("NFC", ipa)}
    unmapped = {s for s in symbols if not (is_silence(s) or s in LIP_NEUTRAL_MARKS or s in known_symbols())}
    assert not unmapped, f"{voice}: no viseme for {sorted(unmapped)}"
    assert len(symbols & known_symbols()) >= 30  # the pangrams really exercised the table


@pytest.mark.parametrize("voice", sorted(PANGRAMS))
def test_every_grouped_phoneme_maps_to_real_visemes(espeak_ipa, voice):
    phonemes = [phone.ipa for ipa in espeak_ipa[voice] for phone in group_ipa(ipa)]
    assert len(phonemes) > 150
    for phoneme in phonemes:
        shapes = shapes_for(phoneme)
        assert shapes, phoneme
        assert all(s.viseme in VISEMES or s.viseme == TRANSPARENT for s in shapes), phoneme
        assert all(0.0 < s.weight <= 1.0 for s in shapes), phoneme


@pytest.mark.parametrize(("phoneme", "visemes"), [
    ("p", ["MBP"]), ("b", ["MBP"]), ("m", ["MBP"]), ("f", ["FV"]), ("v", ["FV"]), ("θ", ["TH"]), ("ð", ["TH"]),
    ("l", ["L"]), ("w", ["WQ"]), ("ɹ", ["R"]), ("ʁ", ["R"]), ("tʃ", ["CH"]), ("dʒ", ["CH"]), ("ʃ", ["CH"]),
    ("ç", ["CH"]), (unicodedata.normalize("NFD", "ç"), ["CH"]), ("x", ["E"]), ("pf", ["MBP", "FV"]),
    ("ts", ["E"]), ("ʏ", ["U"]), ("yː", ["U"]), ("øː", ["O"]), ("œ", ["O"]), ("uː", ["U"]), ("ɑː", ["AI"]),
    ("aɪ", ["AI", "E"]), ("aʊ", ["AI", "U"]), ("oʊ", ["O", "U"]), ("ɔø", ["O", "U"]), ("ɚ", ["R"]), ("iː", ["E"]),
    ("n̩", ["E"]), ("h", [TRANSPARENT]), ("ʔ", [TRANSPARENT]), ("ˈ", [TRANSPARENT]),
])
def test_shapes_of_english_and_german_sounds(phoneme, visemes):
    assert [s.viseme for s in shapes_for(phoneme)] == visemes


def test_lips_hardly_move_for_tongue_sounds_but_fully_for_closures():
    assert shapes_for("t")[0].weight < 1.0 and shapes_for("k")[0].weight < 1.0
    assert shapes_for("p")[0].weight == 1.0 and shapes_for("f")[0].weight == 1.0


@pytest.mark.parametrize("silence", [" ", ".", ",", "?", "!", "^", "$", "_", "  "])
def test_silence_has_no_shape(silence):
    assert shapes_for(silence) == ()


def test_unknown_symbol_names_itself_and_the_fix():
    with pytest.raises(UnknownPhonemeError, match=r"'ʘ'.*phoneme_map.py"):
        shapes_for("ʘ")


def test_docs_show_the_table_in_use():
    assert markdown_table() in (REPO / "docs" / "timeline.md").read_text(encoding="utf-8")
