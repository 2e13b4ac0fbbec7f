"""Issue 4, in a real browser: audio energy, rendered visemes, /stop and barge-in silence the old speech; and
a gap in the audio (an engine that falls behind) holds the mouth with the voice.

The real server on loopback (aiortc, Piper), the bundled page in headless Chromium, watched by the live probe
(photoavatar/testing/live_probe.py). The bounds here are loose (about 5x the targets): they catch broken
behaviour, not a slow machine. bench/live.py measures the targets themselves (/stop and barge-in within 100 ms,
A/V offset within 20 ms) over many utterances and prints whether each is met.
"""

from __future__ import annotations

import pytest

from photoavatar.live.protocol import RTP_CLOCK_HZ
from photoavatar.testing.live_probe import (
    LOUD_LEVEL,
    SOUND_LEVEL,
    av_offset_ms,
    connect_with_probe,
    jitter_buffer_between,
    playout_clock,
    rtp_delta,
    stop_to_silence_ms,
)

pytestmark = pytest.mark.slow

STOP_BOUND_MS = 500  # 5x the 100 ms target of /stop and barge-in (bench/live.py measures the target)
GAP_TEXT = "Hello there, this reply waits for a slow engine after its first sounds."
GAP_DELAY_S = 0.8  # the engine's second step this late: about half a second of silence after the first sounds
MIXER_SETTLE_MS = 150  # the mixer's release after a sound, and its anticipation of the next (coarticulation)
LONG_TEXT = ("This is a long sentence that keeps going for quite a while, so that there is plenty of time "
             "to interrupt it somewhere in the middle of all these words.")


@pytest.fixture(scope="module")
def late_server(tmp_path_factory, faces_dir):
    """The real server whose engine falls behind on GAP_TEXT: its second step GAP_DELAY_S late."""
    from photoavatar.server.app import create_app, engine_speech_source
    from photoavatar.server.config import ServerSettings
    from photoavatar.testing.bundles import write_test_bundle
    from photoavatar.testing.servers import server_in_thread
    from photoavatar.testing.slow_speech import late_after_the_first_segment

    avatars = tmp_path_factory.mktemp("avatars")
    write_test_bundle(avatars / "grace", faces_dir / "grace_hopper.jpg")
    source, engine = engine_speech_source("piper")
    late = late_after_the_first_segment(source, GAP_TEXT, GAP_DELAY_S)
    app = create_app(ServerSettings.from_settings(avatars_dir=avatars), speech=late, voices=engine.voices())
    with server_in_thread(app) as base_url:
        yield base_url


# -- the tests -------------------------------------------------------------------------------------------------


def test_audio_arrives_and_the_mouth_moves_with_it(live_server, page):
    probe = connect_with_probe(page, live_server)
    probe.page.evaluate("() => window.__liveProbe.watchMouth()")
    page.wait_for_timeout(500)
    idle = probe.drain()
    speak = probe.speak("Hello there, I am a talking photo. Nice to meet you!")
    uid = speak["body"]["utterance_id"]
    probe.wait_for_message("utterance_end", uid)
    page.wait_for_function("window.photoavatar.state === 'ready'", timeout=15000)
    page.wait_for_timeout(1000)
    talk = probe.drain()

    assert not idle.loud_frames() and not idle.sounds, "the track is silent before /speak"
    assert [m["reason"] for m in talk.of_type("utterance_end", uid)] == ["done"]
    heard_s = sum(s["end_ms"] - s["start_ms"] for s in talk.sounds) / 1000
    assert heard_s > 1.0 and max(s["rms"] for s in talk.sounds) > 0.05, f"only {heard_s:.2f} s of sound heard"
    assert len(talk.loud_frames()) * 0.02 > 1.0, "the receiver's audio level shows speech"
    events = [e for m in talk.of_type("viseme", uid) for e in m["events"]]
    assert len(events) > 10 and {"MBP", "AI"} <= {e["viseme"] for e in events}, events[:5]
    offset_ms = av_offset_ms(talk, uid, at_track=True)  # bench/live.py holds the 20 ms target over many
    assert offset_ms is not None and abs(offset_ms) < 80, f"first loud frame vs RTP schedule: {offset_ms} ms"

    rest = max(m["difference"] for m in idle.mouth)
    first, last = talk.sounds[0]["start_ms"], talk.sounds[-1]["end_ms"]
    open_frames = [m for m in talk.mouth if m["difference"] > rest + 5]
    assert len(open_frames) > 20, f"the mouth barely moved: rest {rest:.1f}, max {max(m['difference'] for m in talk.mouth):.1f}"
    # Rendered on the audio clock: the mouth opens only while there is sound (plus the mixer's release).
    with_sound = [m for m in open_frames if first - 150 <= m["perf_ms"] <= last + 300]
    assert len(with_sound) >= 0.95 * len(open_frames), (first, last, [m["perf_ms"] for m in open_frames][:5])
    after = [m["difference"] for m in talk.mouth if m["perf_ms"] > last + 600]
    assert after and max(after) <= rest + 2, f"the mouth returns to rest: {after[-5:]}"
    assert page.errors == []


def test_stop_silences_the_received_audio(live_server, page):
    stopped = connect_with_probe(page, live_server).stop_while_loud(LONG_TEXT, speak_for_ms=600, settle_ms=800)
    capture, stop = stopped.capture, stopped.stop

    assert stop["body"]["stopped"] == [stopped.utterance_id]
    assert [m["reason"] for m in capture.of_type("utterance_end", stopped.utterance_id)] == ["stop"]
    played_ms, heard_ms = stop_to_silence_ms(capture, stop)
    jitter_ms = stopped.jitter_buffer_ms
    print(f"\n/stop -> last non-silent frame played out {played_ms:.0f} ms, heard {heard_ms:.0f} ms; "
          f"jitter buffer {jitter_ms:.0f} ms, output latency {capture.output_latency_ms:.0f} ms")
    assert capture.loud_frames(stop["start_ms"] - 60), "it was speaking when stopped"
    # Audio already queued in the receiver's jitter buffer cannot be recalled: the server's part is what is
    # left once that delay is taken off. Target 100 ms (bench/live.py); 5x that means the stop is broken.
    assert played_ms - jitter_ms <= STOP_BOUND_MS, \
        f"{played_ms:.0f} ms to silence at the track, {jitter_ms:.0f} ms of it jitter buffer"
    assert not capture.loud_frames(stop["start_ms"] + 400, SOUND_LEVEL), "silence stays"


def test_barge_in_replaces_the_utterance_and_never_plays_two(live_server, page):
    probe = connect_with_probe(page, live_server)
    first = probe.speak(LONG_TEXT)
    probe.wait_for_sound_after(first["start_ms"])
    page.wait_for_timeout(500)
    before = probe.receiver_stats()
    probe.wait_until_loud_now()
    second = probe.speak("Never mind that.")  # two barge-ins in a row: only the last one may play
    third = probe.speak("Papa bought a big blue boat.")
    ids = [answer["body"]["utterance_id"] for answer in (first, second, third)]
    probe.wait_for_message("utterance_end", ids[2])
    page.wait_for_timeout(400)
    after = probe.receiver_stats()
    capture = probe.drain()

    reasons = [(m["utterance_id"], m["reason"]) for m in capture.of_type("utterance_end")]
    assert reasons == [(ids[0], "barge_in"), (ids[1], "barge_in"), (ids[2], "done")], reasons
    order = [(m["type"], m["utterance_id"]) for m in capture.messages if m["type"].startswith("utterance_")]
    assert order.index(("utterance_end", ids[0])) < order.index(("utterance_start", ids[2])), order
    if ("utterance_start", ids[1]) in order:  # it may have been cut before its audio began
        assert order.index(("utterance_end", ids[1])) < order.index(("utterance_start", ids[2])), order

    # Audio of the last utterance is RTP time from its utterance_start on (less one packet: the Opus look-ahead).
    rtp_start = capture.of_type("utterance_start", ids[2])[0]["rtp_timestamp"] - 960
    end_s = max(e["end_s"] for m in capture.of_type("viseme", ids[2]) for e in m["events"])
    sounding = capture.loud_frames(level=SOUND_LEVEL)
    old = [f for f in sounding if rtp_delta(f["rtp"], rtp_start) < 0]
    new = [f for f in sounding if rtp_delta(f["rtp"], rtp_start) >= 0]
    assert len([f for f in new if f["level"] >= LOUD_LEVEL]) * 0.02 > 0.5, "the replacement plays"
    assert all(rtp_delta(f["rtp"], rtp_start) <= (end_s + 0.1) * RTP_CLOCK_HZ for f in new), \
        "nothing of the first utterance plays after the replacement ends"
    # Never two at once: digital silence separates the cut utterance from the one that replaced it.
    cut_ms, resumed_ms = max(f["perf_ms"] for f in old), min(f["perf_ms"] for f in new)
    assert any(cut_ms < f["perf_ms"] < resumed_ms and f["level"] == 0 for f in capture.ssrc), (cut_ms, resumed_ms)
    jitter_ms = jitter_buffer_between(before, after)
    print(f"\nbarge-in: first utterance sounded {cut_ms - second['start_ms']:.0f} ms on, jitter buffer {jitter_ms:.0f} ms, "
          f"replacement after {resumed_ms - second['start_ms']:.0f} ms")
    assert cut_ms - second["start_ms"] - jitter_ms <= STOP_BOUND_MS, \
        f"the first utterance went on {cut_ms - second['start_ms']:.0f} ms after the barge-in ({jitter_ms:.0f} ms jitter buffer)"
    page.wait_for_function("window.photoavatar.state === 'ready'", timeout=5000)
    assert page.errors == []


def test_a_gap_in_the_audio_holds_the_mouth_with_the_voice(late_server, page):
    probe = connect_with_probe(page, late_server)
    probe.page.evaluate("() => window.__liveProbe.watchMouth()")
    page.wait_for_timeout(500)
    rest = max(m["difference"] for m in probe.drain().mouth)
    uid = probe.speak(GAP_TEXT)["body"]["utterance_id"]
    probe.wait_for_message("utterance_end", uid)
    page.wait_for_timeout(1000)
    talk = probe.drain()

    gaps = talk.of_type("utterance_gap", uid)
    assert gaps, "the engine was late: the server says where the silence went"
    stats = page.evaluate("() => window.photoavatar.stats")
    assert stats["gaps"] == len(gaps) and stats["badMessages"] == 0, stats
    at_s, gap_s = gaps[0]["at_s"], sum(g["gap_s"] for g in gaps if g["at_s"] == gaps[0]["at_s"])
    assert gap_s > 0.4, gaps
    # When the silence is heard, from the receiver's own playout clock (as the page maps RTP time).
    start = talk.of_type("utterance_start", uid)[0]
    offset, reference = playout_clock(talk, start["at_ms"] + at_s * 1000)
    silence_ms = [offset + (rtp_delta(start["rtp_timestamp"], reference) / RTP_CLOCK_HZ + s) * 1000
                  for s in (at_s, at_s + gap_s)]
    talking = sorted(m["difference"] for m in talk.mouth if m["difference"] > rest)
    still = [m["difference"] for m in talk.mouth
             if silence_ms[0] + MIXER_SETTLE_MS < m["perf_ms"] < silence_ms[1] - MIXER_SETTLE_MS]
    print(f"\ngap of {gap_s * 1000:.0f} ms at {at_s:.3f} s: mouth in it {max(still):.1f} (rest {rest:.1f}, "
          f"talking p90 {talking[int(0.9 * len(talking))]:.1f})")
    assert len(still) > 5, "frames drawn during the silence"
    # The mouth rests while the voice does; a page that ignored the gap would go on talking through it.
    assert max(still) <= rest + 0.3 * (talking[int(0.9 * len(talking))] - rest), still
    assert page.errors == []
