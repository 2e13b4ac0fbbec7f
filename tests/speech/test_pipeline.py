"""Text -> segments with real Piper audio: one clock for audio, visemes and prosody; lazy; cancellable.
(The data-channel messages built from them: tests/live/test_protocol.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from photoavatar.animate.mixer import mix
from photoavatar.speech.engine import SpeechError
from photoavatar.speech.phoneme_map import shapes_for
from photoavatar.speech.pipeline import LEAD_IN_EVENTS, stream_speech
from photoavatar.speech.timeline import closure_window_s

REPO = Path(__file__).resolve().parents[2]
TEXT = "Bob bought a big blue paper map. My mom made maple muffins. Pam picked a pumpkin."


@pytest.fixture(scope="module")
def segments(piper_engine):
    return list(stream_speech(piper_engine, TEXT))


def test_segments_share_one_clock_and_tile_the_audio(segments):
    assert len(segments) >= 3
    position = 0
    for segment in segments:
        chunk = segment.audio
        assert chunk.start_sample == position
        assert sum(p.duration_samples for p in chunk.phonemes) == len(chunk.samples)
        assert chunk.phonemes[0].start_sample == chunk.start_sample
        phrase = chunk.phrase or chunk.phonemes
        if phrase[0].start_sample == chunk.start_sample:  # a phrase's first stretch brings all its events
            assert round(max(e.end_s for e in segment.visemes) * chunk.sample_rate_hz) == phrase[-1].end_sample
        else:
            assert segment.visemes == ()
        assert segment.prosody[0].time_s == pytest.approx(chunk.start_sample / chunk.sample_rate_hz)
        assert segment.prosody[-1].time_s < chunk.end_sample / chunk.sample_rate_hz
        position = chunk.end_sample


def test_the_first_closure_has_room_thanks_to_a_silent_lead_in(segments):
    first = segments[0].audio
    release = next(p.end_sample for p in first.phonemes if shapes_for(p.phoneme))
    assert release / first.sample_rate_hz >= closure_window_s() - 1e-9
    assert not np.any(first.samples[: first.phonemes[0].duration_samples])


def test_live_lead_in_closes_the_lips_before_time_zero_without_added_silence(piper_engine, segments):
    """LEAD_IN_EVENTS: the same closure as with the silent lead-in, but the first sound starts at once."""
    live = list(stream_speech(piper_engine, TEXT, lead_in=LEAD_IN_EVENTS))
    first, rate = live[0].audio, live[0].audio.sample_rate_hz
    silent_lead = segments[0].audio.phonemes[0].duration_samples
    assert first.phonemes[0].duration_samples < silent_lead  # only the model's own short pad
    release_s = next(p.end_sample for p in first.phonemes if shapes_for(p.phoneme)) / rate
    events = [e for s in live for e in s.visemes]
    start_s = min(e.start_s for e in events)
    assert start_s < 0  # the closure starts before the first sample ...
    times = np.arange(start_s, release_s, 0.001)
    weights = np.array([f.weights["MBP"] for f in mix(events, [], times)])
    assert weights[times >= release_s - 0.04].min() >= 0.9  # ... and is closed for 40 ms before "Bob" opens


def test_every_bilabial_of_the_whole_utterance_closes(segments):
    rate = segments[0].audio.sample_rate_hz
    events = [e for s in segments for e in s.visemes]
    end_s = segments[-1].audio.end_sample / rate
    times = np.arange(0.0, end_s, 0.001)
    weights = np.array([f.weights["MBP"] for f in mix(events, [], times)])
    releases = [p.end_sample / rate for s in segments for p in s.audio.phonemes
                if shapes_for(p.phoneme) and shapes_for(p.phoneme)[-1].viseme == "MBP"]
    assert len(releases) >= 15
    for release_s in releases:
        assert weights[(times >= release_s - 0.04) & (times < release_s)].min() >= 0.9, release_s


def test_it_is_lazy_and_errors_come_at_the_first_segment(piper_engine):
    stream = stream_speech(piper_engine, "Hello.", voice_id="no-such-voice")
    with pytest.raises(SpeechError, match="unknown Piper voice"):
        next(stream)


class RecordingEngine:
    """A real engine (Piper underneath) that records how far its chunk stream was consumed."""

    name = "recording"

    def __init__(self, inner):
        self.inner, self.yielded, self.closed = inner, 0, False

    def voices(self):
        return self.inner.voices()

    def synthesize(self, text, voice_id=None):
        try:
            for chunk in self.inner.synthesize(text, voice_id):
                self.yielded += 1
                yield chunk
        finally:
            self.closed = True


def test_closing_the_stream_cancels_synthesis(piper_engine):
    engine = RecordingEngine(piper_engine)
    stream = stream_speech(engine, "One sentence here. Another one. And a third. And a fourth one too.")
    next(stream)
    stream.close()
    assert engine.closed and engine.yielded == 1
