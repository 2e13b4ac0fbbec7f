"""The one small interface every text-to-speech engine implements."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from photoavatar.speech.types import AudioChunk, VoiceInfo


class SpeechError(Exception):
    """A clear, user-facing reason why text could not be spoken (bad text, engine failure, bad key...)."""


@runtime_checkable
class SpeechEngine(Protocol):
    name: str

    def voices(self) -> list[VoiceInfo]:
        """The voices this engine can speak with."""
        ...

    def synthesize(self, text: str, voice_id: str | None = None) -> Iterator[AudioChunk]:
        """Yield audio chunks as soon as each is ready; chunk i+1 starts where chunk i ended.

        Closing the iterator early cancels the rest of the work. Raises SpeechError for text or a
        voice it cannot speak; the error may also come mid-stream (a cut connection).
        """
        ...
