"""Character-timed speech (what cloud engines such as ElevenLabs report) turned into phoneme timings.

Transports deliver `RawChunk`s: PCM bytes and per-character times. `CharacterAligner` groups the characters
into words, phonemises each word with espeak-ng and spreads its phonemes over the word's time span
(`phonemize.py`); `assemble_chunks` turns the pieces into AudioChunks the speech pipeline takes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from photoavatar.speech.engine import SpeechError
from photoavatar.speech.phonemize import phonemize_word, silence, spread_over_span
from photoavatar.speech.types import AudioChunk, PhonemeTiming


@dataclass(frozen=True)
class RawChunk:
    """One piece of a stream as a transport delivers it: PCM bytes and character times in utterance seconds."""

    pcm: bytes
    characters: tuple[str, ...] = ()
    char_starts_s: tuple[float, ...] = ()
    char_ends_s: tuple[float, ...] = ()


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char in "'’-"


@dataclass
class _TimedChar:
    char: str
    start_sample: int
    end_sample: int


class CharacterAligner:
    """Turns character timings, arriving piece by piece, into phoneme timings as soon as each word is complete.

    A word is complete when a non-word character (space, punctuation) follows it, or when every character of
    the text has arrived. Gaps between words, spaces and punctuation become silence, so the timings tile the
    audio from 0 to the last character's end.
    """

    def __init__(self, text: str, language: str, sample_rate_hz: int):
        self._language = language
        self._rate_hz = sample_rate_hz
        self._visible_chars_expected = sum(not char.isspace() for char in text)
        self._visible_chars_seen = 0
        self._pending: list[_TimedChar] = []
        self._cursor_sample = 0  # end of the last timing handed out
        self._last_char_end_sample = 0

    def add(self, chunk: RawChunk) -> None:
        if not (len(chunk.characters) == len(chunk.char_starts_s) == len(chunk.char_ends_s)):
            raise SpeechError("ElevenLabs sent an alignment whose lists differ in length; please report this")
        for char, start_s, end_s in zip(chunk.characters, chunk.char_starts_s, chunk.char_ends_s, strict=True):
            start = max(0, round(start_s * self._rate_hz))
            end = max(start, round(end_s * self._rate_hz))
            self._pending.append(_TimedChar(char, start, end))
            self._visible_chars_seen += not char.isspace()
            self._last_char_end_sample = max(self._last_char_end_sample, end)

    def take_ready(self, final: bool = False) -> tuple[PhonemeTiming, ...]:
        """The timings of every word completed since the last call (at the end, FINAL, of everything left)."""
        everything_arrived = final or self._visible_chars_seen >= self._visible_chars_expected
        timings: list[PhonemeTiming] = []
        consumed = 0
        while consumed < len(self._pending):
            word_end = self._run_end(consumed)
            if word_end == consumed:  # a space or punctuation: its time becomes silence before the next word
                consumed += 1
                continue
            if word_end == len(self._pending) and not everything_arrived:
                break  # the word may go on in the next piece
            timings += self._word_timings(self._pending[consumed:word_end])
            consumed = word_end
        del self._pending[:consumed]
        if everything_arrived and not self._pending:
            timings += silence(self._cursor_sample, self._last_char_end_sample)
            self._cursor_sample = max(self._cursor_sample, self._last_char_end_sample)
        return tuple(timings)

    def _run_end(self, begin: int) -> int:
        end = begin
        while end < len(self._pending) and _is_word_char(self._pending[end].char):
            end += 1
        return end

    def _word_timings(self, chars: list[_TimedChar]) -> list[PhonemeTiming]:
        start = max(self._cursor_sample, chars[0].start_sample)
        end = max(start, max(char.end_sample for char in chars))
        word = "".join(char.char for char in chars)
        spoken = spread_over_span(phonemize_word(word, self._language), start, end) or silence(start, end)
        timings = silence(self._cursor_sample, start) + spoken
        self._cursor_sample = end
        return timings


def assemble_chunks(pieces: Iterator[RawChunk], text: str, language: str, sample_rate_hz: int) -> Iterator[AudioChunk]:
    """AudioChunks from a transport's pieces: int16 samples, utterance positions and the phonemes completed so far.

    An odd byte (half a sample) is carried to the next piece. A transport error propagates after every piece
    that arrived has been yielded, so the consumer can end the utterance with an error event.
    """
    aligner = CharacterAligner(text, language, sample_rate_hz)
    carry = b""
    start_sample = 0
    for piece in pieces:
        aligner.add(piece)
        data = carry + piece.pcm
        usable = len(data) - len(data) % 2
        carry = data[usable:]
        samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)
        phonemes = aligner.take_ready()
        if len(samples) or phonemes:
            yield AudioChunk(samples, sample_rate_hz, start_sample, phonemes, "".join(piece.characters))
            start_sample += len(samples)
    leftover = aligner.take_ready(final=True)
    if leftover:  # words whose end we only learnt from the end of the stream
        yield AudioChunk(np.zeros(0, dtype=np.int16), sample_rate_hz, start_sample, leftover)
