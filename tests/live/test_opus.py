"""The track's Opus encoder (live/opus.py): what it sends decodes to what was said, settled silence is sent
again without running the encoder, the RFC 6464 level reaches the receiver in each RTP packet, and after a
sound's silent tail no packet is sent (DTX) while a real receiver still plays that sound to its end; after a cut,
the next frame holds the sound's last look-ahead samples, then only the codec's fading tail."""

from __future__ import annotations

import asyncio
import math

import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import compute_audio_level_dbov

from photoavatar.live.audio import PacedAudioTrack, Playout
from photoavatar.live.interruption import Interruption
from photoavatar.live.opus import (
    FRAME_SAMPLES,
    LOOKAHEAD_SAMPLES,
    MIN_LEVEL_DBOV,
    OpusFrames,
    level_dbov,
    rms_dbov,
)

RATE_HZ = 48_000


def voiced(frames: int, seed: int = 0) -> np.ndarray:
    """A vowel-like sound: a 140 Hz buzz through two formants, with a little noise."""
    t = np.arange(frames * FRAME_SAMPLES) / RATE_HZ
    rng = np.random.default_rng(seed)
    buzz = sum(np.sin(2 * np.pi * 140 * k * t) / k * (1.5 if k in (5, 8) else 1.0) for k in range(1, 20))
    return (buzz / np.abs(buzz).max() * 9000 + rng.normal(0, 200, len(t))).astype(np.int16)


def encode_all(encoder: OpusFrames, samples: np.ndarray) -> list[av.Packet]:
    return [encoder.encode(samples[i:i + FRAME_SAMPLES], i)[0] for i in range(0, len(samples), FRAME_SAMPLES)]


def decode(packets: list[av.Packet]) -> np.ndarray:
    decoder = av.CodecContext.create("libopus", "r")
    decoder.layout, decoder.format, decoder.sample_rate = "mono", "s16", RATE_HZ
    return np.concatenate([f.to_ndarray().reshape(-1) for p in packets for f in decoder.decode(p)])


def best_aligned(source: np.ndarray, decoded: np.ndarray, max_delay: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """SOURCE and DECODED lined up past the codec's delay (found by cross-correlation)."""
    span = source[:20_000].astype(np.float64)
    delays = range(max_delay)
    delay = max(delays, key=lambda d: float(np.dot(span, decoded[d:d + len(span)].astype(np.float64))))
    length = len(decoded) - delay
    return source[:length], decoded[delay:delay + length]


def band_levels_db(samples: np.ndarray) -> np.ndarray:
    """Energy in third-octave bands from 100 Hz to 6.4 kHz, in dB."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples)))) ** 2
    frequencies = np.fft.rfftfreq(len(samples), 1 / RATE_HZ)
    edges = 100 * 2 ** (np.arange(19) / 3)
    return np.array([10 * np.log10(spectrum[(frequencies >= lo) & (frequencies < hi)].sum() + 1)
                     for lo, hi in zip(edges[:-1], edges[1:], strict=True)])


def harmonic_band_error_db(reference: np.ndarray, other: np.ndarray) -> float:
    """The largest level difference over the bands that hold REFERENCE's harmonics (within 25 dB of its loudest)."""
    expected, got = band_levels_db(reference), band_levels_db(other)
    harmonic = expected > expected.max() - 25
    assert harmonic.sum() >= 8, np.round(expected, 1)
    return float(np.abs(expected - got)[harmonic].max())


def test_speech_comes_back_as_it_was_said():
    """A perceptual codec keeps the spectrum and the loudness, not the waveform: every band that holds the
    sound's harmonics comes back within 2 dB (bands with only the faint noise fill with coding noise)."""
    speech = voiced(50)
    source, decoded = best_aligned(speech, decode(encode_all(OpusFrames(), speech)))
    assert harmonic_band_error_db(source[4000:36000], decoded[4000:36000]) < 2
    assert abs(level_dbov(source[4000:36000]) - level_dbov(decoded[4000:36000])) <= 1


def test_settled_silence_is_sent_without_running_the_encoder_and_decodes_the_same():
    speech, silence = voiced(25), np.zeros(100 * FRAME_SAMPLES, dtype=np.int16)
    stream = np.concatenate([speech, silence, voiced(25, seed=1)])
    encoder = OpusFrames()
    packets = encode_all(encoder, stream)
    # speech, then silence until the encoder settled: CELT codes what its filters still hold for 16-18 frames
    assert encoder.encoder_runs < 50 + 20
    silent_payloads = {bytes(p) for p in packets[45:125]}
    assert len(silent_payloads) == 1 and len(silent_payloads.pop()) < 10
    # the same stream with the encoder run on every frame: settled silence changes nothing one can hear
    reference = OpusFrames()
    every_frame = [reference._run_encoder(stream[i:i + FRAME_SAMPLES], i) for i in range(0, len(stream), FRAME_SAMPLES)]
    ours, theirs = decode(packets), decode([av.Packet(p) for p in every_frame])
    silent = slice(40 * FRAME_SAMPLES, 120 * FRAME_SAMPLES)
    assert np.array_equal(ours[silent], theirs[silent])
    resumed = slice(130 * FRAME_SAMPLES, 150 * FRAME_SAMPLES)  # two encodings of the same sound
    assert harmonic_band_error_db(theirs[resumed], ours[resumed]) < 1


def test_a_receiver_hears_each_sample_its_look_ahead_late():
    stream = np.zeros(10 * FRAME_SAMPLES, dtype=np.int16)
    stream[3 * FRAME_SAMPLES] = 20_000  # a click
    decoded = decode(encode_all(OpusFrames(), stream))  # as a WebRTC receiver decodes: nothing trimmed
    assert abs(int(np.argmax(np.abs(decoded))) - (3 * FRAME_SAMPLES + LOOKAHEAD_SAMPLES)) <= 2


def test_after_a_cut_only_the_first_frames_look_ahead_is_loud():
    # a sound cut off at a frame's end: the next frame, decoded, opens with the sound's last LOOKAHEAD_SAMPLES
    for seed in range(4):
        stream = np.concatenate([voiced(6, seed), np.zeros(4 * FRAME_SAMPLES, dtype=np.int16)])
        after_cut = decode(encode_all(OpusFrames(), stream))[6 * FRAME_SAMPLES:7 * FRAME_SAMPLES]
        assert rms_dbov(after_cut[:LOOKAHEAD_SAMPLES]) > -30  # the sound itself, a frame late
        assert rms_dbov(after_cut[LOOKAHEAD_SAMPLES:]) < -45  # then only the codec's fading tail


def test_the_level_is_rfc_6465s():
    for frame in (voiced(1), (voiced(1) // 50).astype(np.int16), np.zeros(FRAME_SAMPLES, dtype=np.int16),
                  np.full(FRAME_SAMPLES, 32767, dtype=np.int16)):
        reference = av.AudioFrame.from_ndarray(frame[None, :], format="s16", layout="mono")
        assert level_dbov(frame) == compute_audio_level_dbov(reference)  # aiortc's implementation of Appendix A
    assert OpusFrames().encode(np.zeros(FRAME_SAMPLES, dtype=np.int16), 0)[1] == MIN_LEVEL_DBOV


def test_the_unrounded_level_is_the_rms_below_full_scale():
    square = np.where(np.arange(FRAME_SAMPLES) % 2 == 0, 328, -328).astype(np.int16)  # RMS 328: 1 % of full scale
    assert rms_dbov(square) == pytest.approx(20 * math.log10(328 / 32767))
    assert rms_dbov(square) == pytest.approx(-40.0, abs=0.01)
    assert rms_dbov(np.zeros(FRAME_SAMPLES, dtype=np.int16)) == -math.inf
    assert rms_dbov(np.zeros(0, dtype=np.int16)) == -math.inf


def test_a_frame_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="960 samples"):
        OpusFrames().encode(np.zeros(480, dtype=np.int16), 0)


async def test_each_rtp_packet_carries_its_level_and_a_receiver_plays_the_last_word_before_a_pause():
    playout = Playout()
    track = PacedAudioTrack(playout, dtx=True)
    server, client = RTCPeerConnection(RTCConfiguration(iceServers=[])), RTCPeerConnection(RTCConfiguration(iceServers=[]))
    levels: list[int | None] = []
    loud_frames: list[int] = []  # what aiortc's receiver decoded, frame by frame
    receiver = client.addTransceiver("audio", direction="recvonly").receiver
    handle = receiver._handle_rtp_packet

    async def recording(packet, arrival_time_ms):
        levels.append(packet.extensions.audio_level)
        await handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = recording
    client.on("track", lambda t: asyncio.ensure_future(_drain(t, loud_frames)))
    try:
        await client.setLocalDescription(await client.createOffer())
        await server.setRemoteDescription(RTCSessionDescription(client.localDescription.sdp, "offer"))
        track.attach_sender(server.addTrack(track))
        await server.setLocalDescription(await server.createAnswer())
        await client.setRemoteDescription(RTCSessionDescription(server.localDescription.sdp, "answer"))
        await _until(lambda: len(levels) > 5)
        playout.start("u", Interruption(), lambda _: None, lambda: None)
        playout.feed("u", voiced(20))
        playout.close_input("u")
        await _until(lambda: sum(loud_frames) >= 19)  # all the speech, though DTX sends nothing after its tail
        await asyncio.sleep(0.5)
        sent = len(levels)
        await asyncio.sleep(0.5)
    finally:
        await client.close()
        await server.close()
    assert (False, -MIN_LEVEL_DBOV) in levels[:3]  # silence before the speech
    assert sum(1 for level in levels if level is not None and level[1] < 20) >= 15  # the speech: loud
    assert len(levels) == sent  # and in the pause after it, no packet at all


async def _drain(track, loud_frames: list[int]) -> None:
    while True:
        try:
            frame = await track.recv()
        except Exception:
            return
        loud_frames.append(int(np.abs(frame.to_ndarray()).max() > 1000))


async def _until(predicate, timeout_s: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)
