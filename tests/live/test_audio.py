"""Playout (what sample goes out when), the 48 kHz resampler, the paced track and session tokens."""

from __future__ import annotations

import asyncio
import time

import av
import numpy as np
import pytest

from photoavatar.live.audio import FRAME_SAMPLES, SILENT_TAIL_FRAMES, PacedAudioTrack, Playout, Resampler48k
from photoavatar.live.interruption import Interruption
from photoavatar.live.tokens import SessionTokens, TokenError


def ramp(n: int, start: int = 1) -> np.ndarray:
    return (np.arange(n) % 30000 + start).astype(np.int16)  # never zero, so silence is unmistakable


def test_playout_sends_an_utterance_whole_and_in_order_then_silence():
    playout, started, drained = Playout(), [], []
    assert not playout.next_frame().any()
    playout.start("u1", Interruption(), started.append, lambda: drained.append("u1"))
    audio = ramp(2500)
    playout.feed("u1", audio[:1000])
    playout.feed("u1", audio[1000:])
    playout.close_input("u1")
    sent = np.concatenate([playout.next_frame() for _ in range(3)])
    assert started == [FRAME_SAMPLES]  # the first frame (index 0) went out as silence before it started
    assert np.array_equal(sent[:2500], audio) and not sent[2500:].any()
    assert drained == ["u1"] and playout.current_utterance is None and playout.underrun_frames == 0
    assert playout.position_samples == 4 * FRAME_SAMPLES


def test_an_interruption_silences_the_very_next_frame_and_ignores_late_audio():
    cuts = []
    playout = Playout(drop_downstream=lambda: cuts.append(True))
    interruption = Interruption()
    playout.start("u1", interruption, lambda _: None, lambda: None)
    playout.feed("u1", ramp(10 * FRAME_SAMPLES))
    assert playout.next_frame().all()
    assert interruption.interrupt("barge_in") and playout.current_utterance is None and cuts == [True]
    playout.feed("u1", ramp(FRAME_SAMPLES))  # the TTS thread's last chunk, arriving after the cut
    assert not playout.next_frame().any()
    assert not interruption.interrupt("stop") and interruption.reason == "barge_in" and cuts == [True]  # once


def test_an_interruption_after_the_utterance_played_out_drops_nothing():
    cuts = []
    playout = Playout(drop_downstream=lambda: cuts.append(True))
    first, second = Interruption(), Interruption()
    playout.start("u1", first, lambda _: None, lambda: None)
    playout.feed("u1", ramp(FRAME_SAMPLES))
    playout.close_input("u1")
    playout.next_frame()
    playout.start("u2", second, lambda _: None, lambda: None)
    playout.feed("u2", ramp(2 * FRAME_SAMPLES))
    first.interrupt("stop")  # late: u1 is over, u2 must keep playing
    assert playout.current_utterance == "u2" and playout.next_frame().all() and cuts == []


def test_the_first_sample_is_fixed_when_audio_is_fed_and_goes_out_in_the_next_frame():
    playout, started = Playout(), []
    for _ in range(3):
        playout.next_frame()
    playout.start("u1", Interruption(), started.append, lambda: None)
    assert playout.first_sample_of("u1") is None  # nothing to send yet: no start to announce
    audio = ramp(2 * FRAME_SAMPLES)
    playout.feed("u1", audio)
    assert playout.first_sample_of("u1") == 3 * FRAME_SAMPLES and started == []  # known before it is sent
    assert np.array_equal(playout.next_frame(), audio[:FRAME_SAMPLES]) and started == [3 * FRAME_SAMPLES]
    assert playout.first_sample_of("other") is None


def test_held_starts_wait_in_silence_and_start_at_the_first_frame_after_the_hold():
    playout, started = Playout(), []
    playout.starts_held = True
    playout.start("u1", Interruption(), started.append, lambda: None)
    playout.feed("u1", ramp(FRAME_SAMPLES))
    assert playout.first_sample_of("u1") is None and not playout.next_frame().any() and started == []
    assert playout.underrun_frames == 0  # waiting to start is not an underrun
    playout.starts_held = False
    assert playout.next_frame().all() and started == [FRAME_SAMPLES]


async def test_the_track_holds_starts_until_its_first_frame_has_gone_out():
    playout, started = Playout(), []
    track = PacedAudioTrack(playout)
    assert playout.starts_held  # no RTP time to stamp a start with yet
    playout.start("u1", Interruption(), started.append, lambda: None)
    playout.feed("u1", ramp(FRAME_SAMPLES))
    packets = [await track.recv() for _ in range(2)]
    assert started == [FRAME_SAMPLES] and packets[1].pts == FRAME_SAMPLES and not playout.starts_held
    track.stop()


def test_an_engine_late_mid_utterance_counts_as_underrun_and_says_where_the_silence_went():
    playout, gaps = Playout(), []
    playout.start("u1", Interruption(), lambda _: None, lambda: None, lambda *gap: gaps.append(gap))
    playout.feed("u1", ramp(FRAME_SAMPLES + 100))
    playout.next_frame()
    partial = playout.next_frame()
    assert partial[:100].all() and not partial[100:].any() and playout.underrun_frames == 1
    assert gaps == [(FRAME_SAMPLES + 100, FRAME_SAMPLES - 100)]
    assert not playout.next_frame().any()  # still nothing: a whole frame of silence at the same place
    playout.feed("u1", ramp(FRAME_SAMPLES))
    assert playout.next_frame().all()
    playout.close_input("u1")
    assert not playout.next_frame().any()  # the end of the utterance is no gap
    assert gaps == [(FRAME_SAMPLES + 100, FRAME_SAMPLES - 100), (FRAME_SAMPLES + 100, FRAME_SAMPLES)]
    assert playout.underrun_frames == 2


def test_resampling_to_48k_keeps_pitch_and_joins_chunks_seamlessly():
    rate = 22050
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.int16)
    whole = Resampler48k(rate)
    one_go = np.concatenate([whole.push(tone), whole.flush()])
    chunked_resampler = Resampler48k(rate)
    chunked = np.concatenate([chunked_resampler.push(c) for c in np.array_split(tone, 7)] + [chunked_resampler.flush()])
    assert abs(len(one_go) - 48000) <= 64 and np.array_equal(one_go, chunked)
    spectrum = np.abs(np.fft.rfft(one_go[2000:2000 + 32768]))
    assert abs(np.argmax(spectrum) * 48000 / 32768 - 440) < 3


def test_resampler_refuses_a_nonsense_rate():
    with pytest.raises(ValueError, match="positive"):
        Resampler48k(0)


async def test_the_track_paces_frames_in_real_time_with_consecutive_pts():
    track = PacedAudioTrack(Playout(), dtx=False)
    started = time.monotonic()
    count = SILENT_TAIL_FRAMES + 15  # without DTX, silence too goes out frame after frame
    packets = [await track.recv() for _ in range(count)]
    assert time.monotonic() - started >= (count - 1) * 0.02 - 0.005  # never faster than real time
    assert [p.pts for p in packets] == [i * FRAME_SAMPLES for i in range(count)]
    decoder = av.CodecContext.create("libopus", "r")
    decoder.layout, decoder.format, decoder.sample_rate = "mono", "s16", 48000
    assert {f.samples for p in packets for f in decoder.decode(p)} == {FRAME_SAMPLES}  # 20 ms Opus each
    assert track.rtp_timestamp_at(5000) == 5000  # no RTP sender: stream time is the clock
    track.stop()


async def test_a_long_silence_sends_no_packets_and_the_next_sound_keeps_its_place_on_the_stream_clock():
    playout, starts = Playout(), []
    track = PacedAudioTrack(playout, dtx=True)

    def speak(frames: int) -> None:
        playout.start("u", Interruption(), starts.append, lambda: None)
        playout.feed("u", ramp(frames * FRAME_SAMPLES))
        playout.close_input("u")

    asyncio.get_running_loop().call_later(0.6, speak, 5)  # 30 frames of stream time from now
    before = [await track.recv()]
    while before[-1].pts < 29 * FRAME_SAMPLES:
        before.append(await asyncio.wait_for(track.recv(), timeout=2))
    silent, sound = before[:-1], before[-1]
    assert len(silent) == SILENT_TAIL_FRAMES  # the tail of silence, then nothing
    assert [p.pts for p in silent] == [i * FRAME_SAMPLES for i in range(len(silent))]
    assert sound.pts == starts[0] >= 29 * FRAME_SAMPLES  # RTP time leaps over the pause, as the clock did

    after = [await track.recv() for _ in range(4)]  # the rest of the sound
    for _ in range(3 * SILENT_TAIL_FRAMES):
        try:
            after.append(await asyncio.wait_for(track.recv(), timeout=0.3))
        except TimeoutError:
            break
    else:
        pytest.fail("packets kept coming in the pause after the sound")
    assert [p.pts for p in after] == [sound.pts + i * FRAME_SAMPLES for i in range(1, len(after) + 1)]
    assert len(after) == 4 + SILENT_TAIL_FRAMES  # the rest of the sound, its silent tail
    assert track.packets_sent == len(before) + len(after)
    track.stop()


def test_session_tokens_name_their_session_and_expire():
    tokens = SessionTokens("server secret")
    token = tokens.mint("s_1", time.time() + 60)
    assert tokens.session_of(token) == "s_1"
    with pytest.raises(TokenError, match="expired"):
        tokens.session_of(tokens.mint("s_1", time.time() - 1))
    with pytest.raises(TokenError, match="not valid"):
        SessionTokens("another secret").session_of(token)
    with pytest.raises(TokenError, match="not valid"):
        tokens.session_of(token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"))
