"""Issue 8, in a real browser: a "Papa ..." utterance has no silent lead-in any more, yet the lips still close
fully before the first sound is heard (the closure's events start before the first sample; the page gets them
ahead of the audio its jitter buffer holds)."""

from __future__ import annotations

import pytest

from photoavatar.testing.live_probe import connect_with_probe

pytestmark = pytest.mark.slow

RECORD_MBP_JS = """() => {
  window.__mbp = [];
  const sample = () => {
    window.__mbp.push({ perf_ms: performance.now(), mbp: window.photoavatar.mixerFrame?.weights?.MBP ?? 0 });
    requestAnimationFrame(sample);
  };
  requestAnimationFrame(sample);
}"""


def test_papa_closes_the_lips_before_the_first_sound(live_server, page):
    probe = connect_with_probe(page, live_server)
    page.evaluate(RECORD_MBP_JS)
    page.wait_for_timeout(300)
    for attempt in range(3):  # a few utterances: the check holds for each
        speak = probe.speak("Papa bought a big blue boat.")
        uid = speak["body"]["utterance_id"]
        probe.wait_for_message("utterance_end", uid)
        page.wait_for_timeout(400)
        talk = probe.drain()
        frames = page.evaluate("() => window.__mbp.splice(0)")
        events = [e for m in talk.of_type("viseme", uid) for e in m["events"]]
        assert min(e["start_s"] for e in events) < 0, "the closure starts before the first sample"
        onset_ms = min(s["start_ms"] for s in talk.sounds if s["start_ms"] > speak["start_ms"])
        # drawn on the audio clock: the mouth is shut before the first heard sound. A closure that started only
        # at the first sample would reach 0.9 about when "Pa" is heard, not 15 ms or more before it.
        closed = [f["perf_ms"] for f in frames if f["mbp"] >= 0.9 and f["perf_ms"] > speak["start_ms"]]
        assert closed, f"the lips never closed for 'Papa' (attempt {attempt})"
        assert closed[0] <= onset_ms - 15, (f"the lips closed {closed[0] - onset_ms:.0f} ms after the first sound "
                                            f"(attempt {attempt})")
    assert page.errors == []
