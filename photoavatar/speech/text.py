"""Text checks and clean-up before synthesis: what the voice is given is plain, speakable, in its language.

espeak-ng (inside Piper) already reads plain numbers, decimals, ordinals, percentages and clock times, so this
module only fills its gaps: currency amounts (it says "dollar five"), decades ("1990s"), abbreviations whose
period it takes for the end of a sentence ("Dr.", "Mr."), and markup, which it would spell out ("slash bee").
Markup is never interpreted: tags and template braces are dropped and their inner text is read as words.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from photoavatar.speech.engine import SpeechError

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 5000  # one request; longer text is streamed with split_sentences()
# One model run synthesises at most this much (bound_sentence): Piper's memory grows with the sentence it is
# given (about 19 MB per second of audio, 4.6 MB per word; a 4,800-character run-on took 8.7 GB), and a long
# run delays every other session's next chunk. 20 words is about 5.5 s of speech, a peak of about 100 MB
# per run and 0.25 s of synthesis on 2 threads (bench/stretches.py prints the cost), and still one natural phrase.
MAX_WORDS_PER_RUN = 20
MAX_CHARS_PER_RUN = 140  # long words and numbers: espeak reads "123456789" as many words

# Abbreviations read as words. Each ends with a period that would otherwise end the sentence.
ABBREVIATIONS: dict[str, str] = {
    "dr.": "Doctor", "mr.": "Mister", "mrs.": "Missus", "ms.": "Miz", "prof.": "Professor",
    "jr.": "Junior", "sr.": "Senior", "st.": "Saint", "mt.": "Mount", "vs.": "versus",
    "e.g.": "for example", "i.e.": "that is", "etc.": "et cetera", "approx.": "approximately",
    "apt.": "apartment", "dept.": "department", "inc.": "Incorporated",
    "ltd.": "Limited", "co.": "Company", "fig.": "figure", "jan.": "January", "feb.": "February",
    "mar.": "March", "apr.": "April", "jun.": "June", "jul.": "July", "aug.": "August",
    "sep.": "September", "sept.": "September", "oct.": "October", "nov.": "November", "dec.": "December",
}
_ABBREVIATION_RE = re.compile(
    r"(?<![\w.])(" + "|".join(re.escape(a) for a in sorted(ABBREVIATIONS, key=len, reverse=True)) + r")(?=\W|$)",
    re.IGNORECASE,
)
# Titles come before a name, so a capitalised word after them does not start a new sentence.
_TITLES = frozenset({"dr.", "mr.", "mrs.", "ms.", "prof.", "st.", "mt."})
# "No." is "number" only before a digit; elsewhere it is the word "no" ending a sentence.
_NUMBER_SIGN_RE = re.compile(r"(?<![\w.])no\.(?=\s*\d)", re.IGNORECASE)
# espeak ends a sentence at an initial's period ("J. R. R. Tolkien"); without the period it spells the letter.
_INITIAL_PERIOD_RE = re.compile(r"(?<![\w.])([A-Z])\.(?=\s+[A-Z])")

_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
               "€": ("euro", "euros", "cent", "cents"), "¥": ("yen", "yen", "sen", "sen")}
_CURRENCY_RE = re.compile(
    r"([$£€¥])\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?(?:\s?(thousand|million|billion|trillion)\b)?",
    re.IGNORECASE,
)
_DECADE_RE = re.compile(r"\b(1[0-9]|20)([1-9])0s\b|(?<![\w])'([1-9])0s\b")
_TAG_RE = re.compile(r"</?[A-Za-z][\w:.-]*(?:\s[^<>]*)?/?>")
_TEMPLATE_RE = re.compile(r"\{\{|\}\}|\{%|%\}")
_ELLIPSIS_RE = re.compile(r"\.\.\.+|…")

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_TENS_PLURAL = "_ tens twenties thirties forties fifties sixties seventies eighties nineties".split()

# Scripts of the letters a voice's language is written in (first word of the Unicode character name).
_LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {
    "ru": frozenset({"CYRILLIC"}), "uk": frozenset({"CYRILLIC"}), "bg": frozenset({"CYRILLIC"}),
    "sr": frozenset({"CYRILLIC", "LATIN"}), "kk": frozenset({"CYRILLIC"}), "mk": frozenset({"CYRILLIC"}),
    "el": frozenset({"GREEK"}), "ar": frozenset({"ARABIC"}), "fa": frozenset({"ARABIC"}),
    "he": frozenset({"HEBREW"}), "hi": frozenset({"DEVANAGARI"}), "ne": frozenset({"DEVANAGARI"}),
    "th": frozenset({"THAI"}), "ka": frozenset({"GEORGIAN"}), "zh": frozenset({"CJK"}),
    "ja": frozenset({"CJK", "HIRAGANA", "KATAKANA"}), "ko": frozenset({"HANGUL", "CJK"}),
}
_LANGUAGE_NAMES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian",
                   "pt": "Portuguese", "nl": "Dutch", "pl": "Polish", "ru": "Russian", "uk": "Ukrainian",
                   "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "ar": "Arabic", "el": "Greek"}
_SCRIPT_NAMES = {"CJK": "Chinese/Japanese characters", "HIRAGANA": "Japanese kana", "KATAKANA": "Japanese kana",
                 "HANGUL": "Korean hangul"}


@dataclass(frozen=True)
class PreparedText:
    """Text ready for a voice, and what was changed or skipped on the way (for the user to see)."""

    text: str
    notes: tuple[str, ...] = ()


def prepare_text(text: str, language: str = "en-US") -> PreparedText:
    """Validate and normalise TEXT for a voice speaking LANGUAGE; raise SpeechError if it cannot be spoken."""
    if not isinstance(text, str):
        raise SpeechError(f"text must be a string, got {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise SpeechError(
            f"text is {len(text)} characters, over the limit of {MAX_TEXT_CHARS}; "
            "split it into sentences (photoavatar.speech.text.split_sentences) and speak them one by one"
        )
    if not text.strip():
        raise SpeechError("text is empty: give at least one word to speak")
    notes: list[str] = []
    cleaned = _remove_markup(_remove_unspeakable(text, notes), notes)
    check_language(cleaned, language)
    cleaned = _expand_for_speech(cleaned)
    cleaned = re.sub(r"\s+([,.!?;:])", r"\1", re.sub(r"\s+", " ", cleaned)).strip()
    if not any(ch.isalnum() for ch in cleaned):
        raise SpeechError(f"nothing to speak in {text[:60]!r}: it has no words or numbers left once "
                          "symbols are skipped; give some words")
    for note in notes:
        log.info("text: %s", note)
    return PreparedText(cleaned, tuple(notes))


def _remove_unspeakable(text: str, notes: list[str]) -> str:
    """Drop control characters (silently) and emoji or unknown symbols (with a note each)."""
    kept: list[str] = []
    skipped: dict[str, None] = {}
    for ch in text:
        category = unicodedata.category(ch)
        if ch in "\n\t\r":
            kept.append(" " if ch != "\n" else "\n")
        elif category in ("Cc", "Cf", "Cs"):
            continue  # control and format characters (zero-width joiners, BOM): not speech
        elif category in ("So", "Co", "Cn") or ch in "\ufe0e\ufe0f":
            if ch not in "\ufe0e\ufe0f":
                skipped[ch] = None
        else:
            kept.append(ch)
    for ch in skipped:
        name = unicodedata.name(ch, f"U+{ord(ch):04X}").lower()
        notes.append(f"skipped {ch} ({name}): symbols and emoji are not spoken")
    return "".join(kept)


def _remove_markup(text: str, notes: list[str]) -> str:
    """Tags, template braces and Piper's [[phoneme]] blocks are plain text: drop the markup, keep the words."""
    without_tags, tag_count = _TAG_RE.subn(" ", text)
    without_braces, brace_count = _TEMPLATE_RE.subn(" ", without_tags)
    if tag_count:
        notes.append(f"ignored {tag_count} markup tag(s) such as <b> or SSML: text is spoken as plain words")
    if brace_count:
        notes.append("ignored template braces {{ }}: text is spoken as plain words")
    # Brackets are never spoken; removing them keeps "[[...]]" from reaching Piper's raw-phoneme syntax.
    return without_braces.replace("[", " ").replace("]", " ")


def check_language(text: str, language: str) -> None:
    """Raise SpeechError when the letters of TEXT are mostly in a script the voice's LANGUAGE does not use."""
    code = language.split("-")[0].split("_")[0].lower()
    expected = _LANGUAGE_SCRIPTS.get(code, frozenset({"LATIN"}))
    counts: dict[str, int] = {}
    for ch in text:
        if ch.isalpha():
            script = unicodedata.name(ch, "UNKNOWN").split()[0]
            counts[script] = counts.get(script, 0) + 1
    letters = sum(counts.values())
    foreign = {script: n for script, n in counts.items() if script not in expected}
    if letters and sum(foreign.values()) > letters / 2:
        script = max(foreign, key=foreign.__getitem__)
        written_in = _SCRIPT_NAMES.get(script, f"{script.title()} letters")
        raise SpeechError(
            f"this voice speaks {_LANGUAGE_NAMES.get(code, code)} ({language}) but the text is written in "
            f"{written_in}; give text in that language or choose a voice for that language (photoavatar voice list)"
        )


def _expand_for_speech(text: str) -> str:
    text = _ELLIPSIS_RE.sub(", ", text)
    text = _CURRENCY_RE.sub(_say_currency, text)
    text = _DECADE_RE.sub(_say_decade, text)
    text = _NUMBER_SIGN_RE.sub("number", text)
    text = _ABBREVIATION_RE.sub(_say_abbreviation, text)
    return _INITIAL_PERIOD_RE.sub(r"\1", text)


def _say_abbreviation(match: re.Match) -> str:
    abbreviation = match.group(1).lower()
    word = ABBREVIATIONS[abbreviation]
    following = match.string[match.end():]
    if word == "Saint" and not re.match(r"\s+[A-Z]", following):
        word = "Street"  # "St. Louis" is a saint, "Main St." a street
    return word + ("." if _period_ends_sentence(abbreviation, following) else "")


def _period_ends_sentence(abbreviation: str, following: str) -> bool:
    """An abbreviation's period also ends the sentence at the end of the text or before a new sentence."""
    if not following.strip() or re.match(r"\s*\n\s*\n", following):
        return True
    return abbreviation not in _TITLES and bool(re.match(r"\s+[A-Z]", following))


def _say_currency(match: re.Match) -> str:
    symbol, whole, fraction, scale = match.groups()
    one, many, cent, cents = _CURRENCIES[symbol]
    if scale:
        amount = whole + (f".{fraction}" if fraction else "")
        return f"{amount} {scale.lower()} {many}"
    units = int(whole.replace(",", ""))
    minor = int((fraction or "0").ljust(2, "0"))
    spoken_units = f"{whole} {one if units == 1 else many}"
    if not minor:
        return spoken_units
    spoken_minor = f"{minor} {cent if minor == 1 else cents}"
    return spoken_minor if units == 0 else f"{spoken_units} and {spoken_minor}"


def _say_decade(match: re.Match) -> str:
    century, decade, short_decade = match.groups()
    if short_decade:
        return _TENS_PLURAL[int(short_decade)]
    hundreds = int(century)
    lead = "two thousand" if hundreds == 20 else _number_below_100(hundreds)
    return f"{lead} {_TENS_PLURAL[int(decade)]}"


def _number_below_100(n: int) -> str:
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")


# A sentence ends at . ! ? (and closing quotes/brackets) before whitespace, or at a blank line.
# A lower-case word after the mark continues the sentence ("Yes." he said).
_BOUNDARY_RE = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s+(?![a-z])|\s*$)|\n\s*\n")
_INITIAL_RE = re.compile(r"(?:^|\s)(?:[a-z]|[a-z]\.[a-z])\.$")  # on the lower-cased word


def split_sentences(text: str) -> Iterator[str]:
    """Yield the sentences of TEXT one by one, lazily: the text is scanned once and never copied whole.

    A period after a known abbreviation ("Dr.") or an initial ("J.") does not end a sentence.
    """
    start = 0
    for match in _BOUNDARY_RE.finditer(text):
        if match.group(0).startswith(".") and _is_abbreviation(text, start, match.start() + 1):
            continue
        sentence = text[start:match.end()].strip()
        start = match.end()
        if sentence:
            yield sentence
    rest = text[start:].strip()
    if rest:
        yield rest


def _is_abbreviation(text: str, sentence_start: int, period_end: int) -> bool:
    word_start = max(text.rfind(" ", sentence_start, period_end), text.rfind("\n", sentence_start, period_end)) + 1
    word = text[max(word_start, sentence_start):period_end].lstrip("\"'“‘(").lower()
    following = text[period_end:period_end + 40]
    if word == "no.":
        return bool(re.match(r"\s*\d", following))
    if word in ABBREVIATIONS:
        return not _period_ends_sentence(word, following)
    return bool(_INITIAL_RE.search(" " + word))


_CLAUSE_END_RE = re.compile(r"[,;:]\s+|\s+[-–—]+\s+|[–—]")
_CONJUNCTIONS = frozenset("and but or so because which while when where although though that if".split())


def split_clauses(sentence: str, max_words: int = 10) -> list[str]:
    """Cut SENTENCE into pieces of at most about MAX_WORDS words, at clause boundaries (, ; : dashes).

    Used on the first sentence only, so the first audio chunk is short and arrives quickly. A first
    clause that is still too long is cut before a conjunction ("and", "because"...) if it has one.
    """
    if len(sentence.split()) <= max_words:
        return [sentence]
    clauses = _cut_after(sentence, _CLAUSE_END_RE)
    pieces: list[str] = []
    for clause in clauses:
        if pieces and len((pieces[-1] + " " + clause).split()) <= max_words:
            pieces[-1] = f"{pieces[-1]} {clause}"
        else:
            pieces.append(clause)
    if len(pieces[0].split()) > max_words:
        pieces[:1] = _cut_before_conjunction(pieces[0], max_words)
    return pieces


def speech_pieces(text: str, first_max_words: int = 10, max_words: int = MAX_WORDS_PER_RUN,
                  max_chars: int = MAX_CHARS_PER_RUN) -> Iterator[str]:
    """The pieces of TEXT, one per model run, lazily: sentences, the first cut at clauses to FIRST_MAX_WORDS
    so it comes quickly, and every piece bounded by bound_sentence whatever the punctuation."""
    sentences = split_sentences(text)
    first = next(sentences, None)
    if first is None:
        return
    for piece in split_clauses(first, first_max_words):
        yield from bound_sentence(piece, max_words, max_chars)
    for sentence in sentences:
        yield from bound_sentence(sentence, max_words, max_chars)


def bound_sentence(sentence: str, max_words: int = MAX_WORDS_PER_RUN, max_chars: int = MAX_CHARS_PER_RUN) -> list[str]:
    """SENTENCE as pieces of at most MAX_WORDS words and MAX_CHARS characters, one model run each.

    Cut at clause boundaries first (, ; : dashes), then before a conjunction, then between words; a word
    longer than MAX_CHARS is cut into parts. The cuts keep phrases whole where the text allows, so each run
    has the prosody of a clause rather than of an arbitrary window.
    """
    if max_words < 1 or max_chars < 2:
        raise ValueError(f"a piece needs room for a word: max_words={max_words}, max_chars={max_chars}")
    if _fits(sentence, max_words, max_chars):
        return [sentence]
    pieces: list[str] = []
    for clause in _cut_after(sentence, _CLAUSE_END_RE):
        if pieces and _fits(f"{pieces[-1]} {clause}", max_words, max_chars):
            pieces[-1] = f"{pieces[-1]} {clause}"
        elif _fits(clause, max_words, max_chars):
            pieces.append(clause)
        else:
            pieces.extend(_cut_between_words(clause, max_words, max_chars))
    return pieces


def _fits(text: str, max_words: int, max_chars: int) -> bool:
    return len(text) <= max_chars and len(text.split()) <= max_words


def _cut_between_words(clause: str, max_words: int, max_chars: int) -> list[str]:
    """Greedy pieces of whole words; a full piece is cut before its last conjunction when it has one late enough."""
    words = [part for word in clause.split() for part in _word_parts(word, max_chars)]
    pieces: list[str] = []
    current: list[str] = []
    for word in words:
        if current and not _fits(" ".join([*current, word]), max_words, max_chars):
            cut = _conjunction_cut(current, max_words)
            pieces.append(" ".join(current[:cut]))
            current = current[cut:]
        current.append(word)
    if current:
        pieces.append(" ".join(current))
    return pieces


def _word_parts(word: str, max_chars: int) -> list[str]:
    return [word[i:i + max_chars] for i in range(0, len(word), max_chars)] if len(word) > max_chars else [word]


def _conjunction_cut(words: list[str], max_words: int) -> int:
    """Where to end a full piece: before the last conjunction in its second half, else after its last word."""
    for index in range(len(words) - 1, max(0, len(words) // 2) - 1, -1):
        if index > 0 and words[index].lower() in _CONJUNCTIONS:
            return index
    return len(words)


def _cut_after(sentence: str, boundary: re.Pattern) -> list[str]:
    clauses, start = [], 0
    for match in boundary.finditer(sentence):
        clause = sentence[start:match.end()].strip()
        if clause:
            clauses.append(clause)
        start = match.end()
    tail = sentence[start:].strip()
    return clauses + ([tail] if tail else [])


def _cut_before_conjunction(clause: str, max_words: int) -> list[str]:
    words = clause.split()
    cut_points = [i for i in range(3, min(len(words) - 2, max_words + 1)) if words[i].lower() in _CONJUNCTIONS]
    if not cut_points:
        return [clause]
    cut = cut_points[-1]
    return [" ".join(words[:cut]), " ".join(words[cut:])]
