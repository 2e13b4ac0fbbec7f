"""A beep through a WebRTC loopback link inside one page, heard by the page's own sync.js.

A tone is gated on after 1.2 s of silence and sent from one RTCPeerConnection to another in the same page;
sync.js's RtpPlayoutClock follows the receiver and its StreamOnsetListener reports when the beep is heard.
tests/web/test_page_browser.py checks the behaviour with it; bench/live.py times the onset against its target.
"""

from __future__ import annotations

ONSET_TARGET_MS = 400  # beep -> onset on a loopback link (the page's onset listener); bench/live.py reports it

LOOPBACK_BEEP_JS = """async (listenMs) => {
  const { RtpPlayoutClock, StreamOnsetListener, ssrcTimeToPerfMs } = await import('/sync.js');
  const context = new AudioContext();
  await context.resume();
  const tone = context.createOscillator();
  const gate = context.createGain();
  gate.gain.value = 0;
  const out = context.createMediaStreamDestination();
  tone.connect(gate).connect(out);
  tone.start();
  const sender = new RTCPeerConnection(), receiver = new RTCPeerConnection();
  sender.onicecandidate = (e) => e.candidate && receiver.addIceCandidate(e.candidate);
  receiver.onicecandidate = (e) => e.candidate && sender.addIceCandidate(e.candidate);
  const got = new Promise((resolve) => { receiver.ontrack = (e) => resolve(e); });
  sender.addTrack(out.stream.getAudioTracks()[0], out.stream);
  await sender.setLocalDescription(await sender.createOffer());
  await receiver.setRemoteDescription(sender.localDescription);
  await receiver.setLocalDescription(await receiver.createAnswer());
  await sender.setRemoteDescription(receiver.localDescription);
  const track = await got;
  const stream = new MediaStream([track.track]);
  const audio = new Audio(); audio.srcObject = stream; audio.muted = true; await audio.play();
  const listener = new StreamOnsetListener(context, stream);
  const clock = new RtpPlayoutClock();
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const poll = async (ms) => {
    const onsets = []; const until = performance.now() + ms;
    while (performance.now() < until) {
      const sources = track.receiver.getSynchronizationSources();
      for (const s of sources) clock.observe(s, performance.timeOrigin);
      const onset = listener.poll(); if (onset !== null) onsets.push(onset);
      await new Promise(requestAnimationFrame);
    }
    return onsets;
  };
  await poll(1200);  // silence first: connection, jitter buffer
  const beepAt = performance.now();
  gate.gain.setValueAtTime(0.5, context.currentTime);
  const onsets = await poll(listenMs);
  const source = track.receiver.getSynchronizationSources()[0];
  const now = performance.now();
  const result = { beepAt, onsets, now, rawTimestamp: source?.timestamp ?? null, rtpTimestamp: source?.rtpTimestamp ?? null,
    sourcePerf: source ? ssrcTimeToPerfMs(source.timestamp, performance.timeOrigin) : null,
    observations: clock.observations, clockNowS: clock.secondsAt(now), clockLaterS: clock.secondsAt(now + 1000) };
  sender.close(); receiver.close(); context.close();
  return result;
}"""


def beep_onset(page, listen_ms: float) -> dict:
    """Run the loopback beep in PAGE (any page of the web client's origin), listening LISTEN_MS after it."""
    return page.evaluate(LOOPBACK_BEEP_JS, listen_ms)
