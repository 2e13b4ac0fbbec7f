"""The LiveKit video (live/livekit_video.py) up to the SDK boundary: real rtc sources and AVSynchronizer, the
room's participant replaced by a recorder (no LiveKit server runs here)."""

from __future__ import annotations

import asyncio

import numpy as np
from livekit import rtc

from photoavatar.animate.frames import FrameRenderer
from photoavatar.live.audio import FRAME_SAMPLES, SAMPLE_RATE_HZ
from photoavatar.live.livekit_video import LiveKitVideo
from photoavatar.live.video import SpeechOnVideo


class RecordingParticipant:
    def __init__(self):
        self.tracks = []

    async def publish_track(self, track, options):
        self.tracks.append((track, options))


async def pump_silence(video: LiveKitVideo, stop: asyncio.Event) -> None:
    silence = np.zeros(FRAME_SAMPLES, np.int16).tobytes()
    while not stop.is_set():
        await video.push_audio(rtc.AudioFrame(silence, SAMPLE_RATE_HZ, 1, FRAME_SAMPLES))


async def test_video_is_published_as_a_camera_and_pushed_on_the_audio_clock(synthetic_bundle):
    audio_source = rtc.AudioSource(SAMPLE_RATE_HZ, 1, queue_size_ms=150)
    video = LiveKitVideo(SpeechOnVideo(FrameRenderer(synthetic_bundle), lambda rtp: rtp / SAMPLE_RATE_HZ))
    participant = RecordingParticipant()
    await video.publish(participant, audio_source)
    [(track, options)] = participant.tracks
    assert isinstance(track, rtc.LocalVideoTrack) and options.source == rtc.TrackSource.SOURCE_CAMERA
    stop = asyncio.Event()
    audio = asyncio.create_task(pump_silence(video, stop))
    pictures = asyncio.create_task(video.pump_video())
    lags = []
    try:
        for _ in range(40):
            await asyncio.sleep(0.05)
            if video.frames_sent:
                lags.append(video.playing_s - video.sync.last_video_time)
    finally:
        stop.set()
        pictures.cancel()
        await asyncio.gather(audio, pictures, return_exceptions=True)
        await video.aclose()
        await audio_source.aclose()
    elapsed_s = video.playing_s
    assert video.frames_sent >= 0.8 * elapsed_s * video.fps, (video.frames_sent, elapsed_s)
    # the frame pushed last shows the stream time the audio capture is at: never ahead, typically within a frame
    # or two (loose: a loaded machine renders late, and the pump then skips frames rather than fall behind)
    assert min(lags) >= -0.005, lags
    assert np.median(lags) <= 2 / video.fps, lags


async def test_a_video_session_publishes_voice_and_camera_and_cuts_both(synthetic_bundle, vector_sentence):
    """LiveKitTransport with video, published on a recording participant: real SDK sources, the audio pump going
    through the synchroniser, and a barge-in that empties the voice's queue and cuts the mouth at once."""
    from photoavatar.live.livekit import LiveKitTransport
    from photoavatar.live.protocol import UtteranceEnd, UtteranceStart, Visemes

    events, _ = vector_sentence
    transport = LiveKitTransport("ws://127.0.0.1:7880", "devkey", "a-secret-that-is-long-enough-for-hs256-0123",
                                 "room-v", video=FrameRenderer(synthetic_bundle))
    participant = RecordingParticipant()
    participant.publish_data = _ignore_data
    await transport.publish(participant)
    try:
        kinds = sorted(type(track).__name__ for track, _ in participant.tracks)
        assert kinds == ["LocalAudioTrack", "LocalVideoTrack"]
        transport.send(UtteranceStart("u1", 0, "hello", "onset"))
        transport.send(Visemes("u1", events))
        await asyncio.sleep(1.0)
        video = transport.video
        assert video.frames_sent >= 0.8 * video.playing_s * video.fps > 0
        assert transport.frames_sent >= 40, "the voice went through the synchroniser, 20 ms a frame"
        transport.send(UtteranceEnd("u1", "barge_in"))
        assert video.speech.cuts == 1
    finally:
        await transport.close()


async def _ignore_data(payload, *, reliable=True, topic=""):
    return None
