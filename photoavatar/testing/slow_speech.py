"""A speech source that falls behind on purpose, as a server too busy to keep up: for tests of mid-utterance gaps."""

from __future__ import annotations

import time
from collections.abc import Iterator

from photoavatar.live.session import SpeechSource
from photoavatar.speech.types import SpeechSegment


def late_after_the_first_segment(source: SpeechSource, text_to_delay: str, delay_s: float,
                                 kept: list[SpeechSegment] | None = None) -> SpeechSource:
    """SOURCE, with the second segment of TEXT_TO_DELAY DELAY_S late (the steps run on the synthesis workers, so
    the listener hears the first segment, then silence); that text's segments are appended to KEPT. Other texts
    (the server's warm-up speaks through the same source) pass unchanged."""

    def speak(text: str, voice_id: str | None) -> Iterator[SpeechSegment]:
        for index, segment in enumerate(source(text, voice_id)):
            if text == text_to_delay:
                if index == 1:
                    time.sleep(delay_s)
                if kept is not None:
                    kept.append(segment)
            yield segment

    return speak
