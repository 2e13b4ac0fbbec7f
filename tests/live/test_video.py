"""The server's video track (live/video.py): one clock with the audio, checked on the RTCP sender reports a real
aiortc receiver gets, and the mouth driven by the protocol messages (placement, gaps, barge-in)."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtcpSrPacket

from photoavatar.animate.frames import FrameRenderer
from photoavatar.live import protocol
from photoavatar.live.audio import SAMPLE_RATE_HZ, PacedAudioTrack, Playout
from photoavatar.live.protocol import RTP_MODULO, Prosody, UtteranceEnd, UtteranceStart, Visemes
from photoavatar.live.video import VIDEO_CLOCK_HZ, PacedVideoTrack, SpeechOnVideo

NTP_TO_UNIX_S = 2208988800


def ntp_seconds(ntp: int) -> float:
    return (ntp >> 32) + (ntp & 0xFFFFFFFF) / 2**32


def record_sender_reports(receiver, into: list) -> None:
    """Keep every RTCP sender report this (aiortc library) receiver handles, as (ntp s, rtp timestamp)."""
    handle = receiver._handle_rtcp_packet

    async def recording(packet):
        if isinstance(packet, RtcpSrPacket):
            into.append((ntp_seconds(packet.sender_info.ntp_timestamp), packet.sender_info.rtp_timestamp))
        await handle(packet)

    receiver._handle_rtcp_packet = recording


async def test_sender_reports_of_audio_and_video_describe_one_clock(synthetic_bundle):
    """Each report pairs a wall time with an RTP timestamp; converted to stream time with each track's own origin
    and clock rate, the wall time of stream time 0 must agree between the two tracks (lip sync in the receiver)."""
    playout = Playout()
    audio = PacedAudioTrack(playout)
    speech = SpeechOnVideo(FrameRenderer(synthetic_bundle), lambda rtp: 0.0)
    video = PacedVideoTrack(speech, lambda: audio._started_at_s)
    server, client = RTCPeerConnection(RTCConfiguration(iceServers=[])), RTCPeerConnection(RTCConfiguration(iceServers=[]))
    reports = {"audio": [], "video": []}
    readers = []

    def on_track(track):
        async def drain():
            while True:
                await track.recv()
        readers.append(asyncio.ensure_future(drain()))

    client.on("track", on_track)
    try:
        for kind in ("audio", "video"):
            record_sender_reports(client.addTransceiver(kind, direction="recvonly").receiver, reports[kind])
        await client.setLocalDescription(await client.createOffer())
        await server.setRemoteDescription(RTCSessionDescription(client.localDescription.sdp, "offer"))
        audio.attach_sender(server.addTrack(audio))
        await asyncio.sleep(0.3)  # the video track joins a stream that already runs, as it may in a session
        video.attach_sender(server.addTrack(video))
        await server.setLocalDescription(await server.createAnswer())
        await client.setRemoteDescription(RTCSessionDescription(server.localDescription.sdp, "answer"))
        deadline = asyncio.get_running_loop().time() + 20
        while min(len(r) for r in reports.values()) < 4 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
    finally:
        for reader in readers:
            reader.cancel()
        await client.close()
        await server.close()
    assert min(len(r) for r in reports.values()) >= 4, reports

    def wall_time_of_stream_zero(kind: str) -> list[float]:
        origin, rate = ((audio.rtp_timestamp_at(0), SAMPLE_RATE_HZ) if kind == "audio"
                        else (video.rtp_timestamp_of(0.0), VIDEO_CLOCK_HZ))
        return [ntp - ((rtp - origin) % RTP_MODULO) / rate for ntp, rtp in reports[kind]]

    audio_zero, video_zero = wall_time_of_stream_zero("audio"), wall_time_of_stream_zero("video")
    for values in (audio_zero, video_zero):  # each report of one track agrees with the others (paced sending)
        assert max(values) - min(values) < 0.02, values
    offset_ms = 1000 * (statistics.median(video_zero) - statistics.median(audio_zero))
    print(f"\nvideo - audio, wall time of stream time 0 in the sender reports: {offset_ms:+.1f} ms "
          f"({len(reports['audio'])} audio, {len(reports['video'])} video reports; encode lead "
          f"{video.encode_s * 1000:.1f} ms, render {video.render_s * 1000:.1f} ms)")
    assert abs(offset_ms) <= 10
    # and that one clock is the audio track's pacing: stream time 0 went out when the track started
    started_ntp_s = audio._started_at_s + (time.time() + NTP_TO_UNIX_S - time.monotonic())
    assert abs(statistics.median(audio_zero) - started_ntp_s) < 0.02


def test_messages_place_an_utterance_where_its_first_sample_is_heard(synthetic_bundle, vector_sentence):
    events, prosody = vector_sentence
    rtp_origin = 4_000_000_000  # wraps past 2^32 two seconds into the stream
    to_stream_s = lambda rtp: ((rtp - rtp_origin) % RTP_MODULO) / SAMPLE_RATE_HZ  # noqa: E731
    speech = SpeechOnVideo(FrameRenderer(synthetic_bundle), to_stream_s)
    reference = FrameRenderer(synthetic_bundle)
    reference.add_utterance(3.0, events, prosody)
    # the prosody arrives before utterance_start (two channels: any order), visemes after
    speech.handle(Prosody("u1", prosody))
    speech.handle(UtteranceStart("u1", (rtp_origin + 3 * SAMPLE_RATE_HZ) % RTP_MODULO, "hello", "rtp"))
    speech.handle(Visemes("u1", events))
    for index in range(60, 100):
        assert speech.render(index).mix.weights == pytest.approx(reference.render(index).mix.weights, abs=1e-9)
    speech.handle(UtteranceEnd("u1", "done"))  # done: its events still play out
    assert speech.cuts == 0


def test_a_gap_in_the_audio_moves_the_mouth_after_it_placed_before_the_gap_or_after(synthetic_bundle, vector_sentence):
    events, prosody = vector_sentence
    half = len(events) // 2
    at_s = events[half].start_s
    gaps = [protocol.UtteranceGap("u1", at_s, 0.02), protocol.UtteranceGap("u1", at_s, 0.02),
            protocol.UtteranceGap("u1", at_s + 0.3, 0.005)]
    speech = SpeechOnVideo(FrameRenderer(synthetic_bundle), lambda rtp: rtp / SAMPLE_RATE_HZ)
    reference = FrameRenderer(synthetic_bundle)  # the utterance as its audio plays: 45 ms of silence in it
    reference.add_utterance(1.0, protocol.events_after_gaps(events, gaps), protocol.frames_after_gaps(prosody, gaps))
    speech.handle(UtteranceStart("u1", SAMPLE_RATE_HZ, "hello", "rtp"))
    speech.handle(Visemes("u1", events[:half]))
    speech.handle(Prosody("u1", prosody))
    for gap in gaps:
        speech.handle(gap)
    speech.handle(Visemes("u1", events[half:]))  # the next phrase, sent after the gaps
    fps = reference.fps
    indices = range(round(fps), round((2.0 + events[-1].end_s) * fps))
    assert all(speech.render(k).mix.weights == pytest.approx(reference.render(k).mix.weights, abs=1e-9)
               for k in indices)
    unmoved = FrameRenderer(synthetic_bundle)
    unmoved.add_utterance(1.0, events, prosody)
    assert any(unmoved.render(k).mix.weights != pytest.approx(reference.render(k).mix.weights, abs=0.05)
               for k in indices), "the gaps must change the picture, or this test shows nothing"


def test_barge_in_cuts_the_mouth_and_a_queued_end_does_not(synthetic_bundle, vector_sentence):
    events, prosody = vector_sentence
    speech = SpeechOnVideo(FrameRenderer(synthetic_bundle), lambda rtp: rtp / SAMPLE_RATE_HZ)
    speech.handle(UtteranceStart("u1", 0, "hello", "rtp"))
    speech.handle(Visemes("u1", events))
    speech.handle(Prosody("u1", prosody))
    open_rest = min(speech.render(k).mix.weights["Rest"] for k in range(8))
    assert open_rest < 0.5
    speech.handle(UtteranceEnd("u2", "stop"))  # a queued utterance that never started: nothing on screen changes
    assert speech.cuts == 0
    speech.handle(UtteranceEnd("u1", "barge_in"))
    assert speech.cuts == 1
    rest = [speech.render(k).mix.weights["Rest"] for k in range(8, 16)]
    assert rest == sorted(rest) and rest[-1] > 0.99, rest
