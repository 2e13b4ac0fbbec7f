"""The live probe: installed in the page before it loads, it times what the page receives; never touches app.js.

- it subclasses RTCPeerConnection to see the page's peer and its data-channel messages (with arrival times),
- it wraps fetch() to time every request and to learn the session's Bearer token from the offer,
- it polls the audio receiver's synchronization sources (`timestamp`: when each 20 ms packet was played out,
  `rtpTimestamp`, `audioLevel` from aiortc's ssrc-audio-level header extension), and
- it taps the received stream with an AudioWorklet: spans of 128-sample blocks at or above -40 dBFS RMS
  (speech) and -70 dBFS (anything but the server's digital silence), timed on the performance clock through
  AudioContext.getOutputTimestamp() (when the sample is heard through Web Audio).
tests/web/test_e2e_live.py asserts behaviour with it; bench/live.py measures the targets over many utterances.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from photoavatar.live.protocol import RTP_CLOCK_HZ
from photoavatar.testing.browser import connect

LOUD_DBFS = -40.0  # the page's onset threshold (docs/client.md), for the worklet and the SSRC level alike
LOUD_LEVEL = 10 ** (LOUD_DBFS / 20)
# Not silent: the server sends digital zeros between utterances, speech pauses stay well above this.
SOUND_DBFS = -70.0
SOUND_LEVEL = 10 ** (SOUND_DBFS / 20)
PROBE_JS = r"""
(() => {
  const probe = window.__liveProbe = {
    peers: [], messages: [], fetches: [], ssrc: [], sounds: [], nonsilent: [], mouth: [], session: null, context: null, started: false,
  };
  const now = () => performance.now();

  const NativePeerConnection = window.RTCPeerConnection;
  window.RTCPeerConnection = class ProbedPeerConnection extends NativePeerConnection {
    constructor(...args) { super(...args); probe.peers.push(this); }
    createDataChannel(label, options) {
      const channel = super.createDataChannel(label, options);
      channel.addEventListener('message', (event) => {
        try { probe.messages.push({ at_ms: now(), label, ...JSON.parse(event.data) }); } catch { /* the page reports it */ }
      });
      return channel;
    }
  };

  const nativeFetch = window.fetch.bind(window);
  window.fetch = async (input, init = {}) => {
    const url = new URL(typeof input === 'string' ? input : input.url, location.href);
    const record = { path: url.pathname, start_ms: now(), end_ms: null, status: null };
    probe.fetches.push(record);
    const offer = url.pathname.match(/^\/sessions\/([^/]+)\/offer$/);
    const auth = init.headers?.Authorization;
    if (offer && auth) probe.session = { session_id: offer[1], token: auth.replace(/^Bearer /, '') };
    const response = await nativeFetch(input, init);
    record.end_ms = now();
    record.status = response.status;
    return response;
  };

  // One 128-sample block per call; reports stretches [start, end] (context seconds) of blocks whose RMS is at
  // or above each threshold: "loud" (onsets, speech) and "sound" (anything but silence, for /stop).
  const WORKLET = `
    class SoundSpans extends AudioWorkletProcessor {
      constructor(options) {
        super();
        this.thresholds = options.processorOptions.thresholds;
        this.holdFrames = options.processorOptions.holdFrames;
        this.spans = {};
      }
      process(inputs) {
        const channel = inputs[0] && inputs[0][0];
        if (!channel) return true;
        let squares = 0, peak = 0;
        for (let i = 0; i < channel.length; i += 1) { squares += channel[i] * channel[i]; peak = Math.max(peak, Math.abs(channel[i])); }
        const rms = Math.sqrt(squares / channel.length);
        const start = currentFrame, end = currentFrame + channel.length;
        for (const [kind, threshold] of Object.entries(this.thresholds)) {
          const span = this.spans[kind];
          if (rms >= threshold) {
            if (!span) this.spans[kind] = { start, end, peak, rms };
            else { span.end = end; span.peak = Math.max(span.peak, peak); span.rms = Math.max(span.rms, rms); }
          } else if (span && start - span.end >= this.holdFrames) {
            this.port.postMessage({ kind, start_s: span.start / sampleRate, end_s: span.end / sampleRate, peak: span.peak, rms: span.rms });
            this.spans[kind] = null;
          }
        }
        return true;
      }
    }
    registerProcessor('sound-spans', SoundSpans);`;

  const perfOfContext = (context, seconds) => {
    const stamp = context.getOutputTimestamp();
    if (stamp.performanceTime > 0) return stamp.performanceTime + (seconds - stamp.contextTime) * 1000;
    return now() - (context.currentTime - seconds) * 1000;
  };
  const ssrcPerfMs = (timestamp) => (timestamp > 1e11 ? timestamp - performance.timeOrigin : timestamp);

  probe.start = async (thresholds) => {
    if (probe.started) return;
    probe.started = true;
    const receiver = probe.peers.at(-1).getReceivers().find((r) => r.track.kind === 'audio');
    probe.receiver = receiver;
    let last = null;
    probe.timer = setInterval(() => {
      for (const source of receiver.getSynchronizationSources()) {
        if (source.timestamp === last) continue;
        last = source.timestamp;
        probe.ssrc.push({ perf_ms: ssrcPerfMs(source.timestamp), rtp: source.rtpTimestamp, level: source.audioLevel ?? null });
      }
    }, 4);
    const context = probe.context = new AudioContext({ latencyHint: 'interactive' });
    await context.resume();
    await context.audioWorklet.addModule(URL.createObjectURL(new Blob([WORKLET], { type: 'text/javascript' })));
    const source = context.createMediaStreamSource(document.getElementById('voice').srcObject);
    const spans = new AudioWorkletNode(context, 'sound-spans', {
      processorOptions: { thresholds, holdFrames: Math.round(0.03 * context.sampleRate) } });
    const mute = context.createGain();
    mute.gain.value = 0;
    source.connect(spans).connect(mute).connect(context.destination);
    spans.port.onmessage = ({ data }) => (data.kind === 'loud' ? probe.sounds : probe.nonsilent).push({
      start_ms: perfOfContext(context, data.start_s), end_ms: perfOfContext(context, data.end_s), peak: data.peak, rms: data.rms });
  };

  // The mouth as the page draws it, once per animation frame (mouthDifference: 0 = the rest frame).
  probe.watchMouth = () => {
    const sample = () => {
      probe.mouth.push({ perf_ms: now(), difference: window.photoavatar.mouthDifference(), state: window.photoavatar.state });
      if (probe.watchingMouth) requestAnimationFrame(sample);
    };
    probe.watchingMouth = true;
    requestAnimationFrame(sample);
  };

  // A request as the page makes it (same token), timed right before fetch() is called.
  probe.call = async (path, body) => {
    const started = now();
    const response = await window.fetch(path, { method: 'POST', headers: {
      'Content-Type': 'application/json', Authorization: `Bearer ${probe.session.token}` },
      body: JSON.stringify({ session_id: probe.session.session_id, ...body }) });
    return { start_ms: started, end_ms: now(), status: response.status, body: await response.json() };
  };

  probe.outputLatencyMs = () => ((probe.context?.outputLatency ?? 0) + (probe.context?.baseLatency ?? 0)) * 1000;

  probe.receiverStats = async () => {
    const stats = await probe.receiver.getStats();
    for (const report of stats.values()) {
      if (report.type === 'inbound-rtp' && report.jitterBufferEmittedCount) {
        return { delay_s: report.jitterBufferDelay, samples_emitted: report.jitterBufferEmittedCount,
                 concealed_samples: report.concealedSamples, silent_concealed_samples: report.silentConcealedSamples,
                 concealment_events: report.concealmentEvents };
      }
    }
    return null;
  };

  probe.drain = () => {
    const taken = { messages: probe.messages, ssrc: probe.ssrc, sounds: probe.sounds, fetches: probe.fetches,
                    nonsilent: probe.nonsilent, mouth: probe.mouth, output_latency_ms: probe.outputLatencyMs(), now_ms: now() };
    probe.messages = []; probe.ssrc = []; probe.sounds = []; probe.fetches = []; probe.mouth = []; probe.nonsilent = [];
    return taken;
  };
})();
"""


@dataclass
class Capture:
    """What the probe saw in one stretch of time; all times are performance.now() milliseconds."""

    messages: list[dict]
    ssrc: list[dict]  # played-out frames: perf_ms, rtp, level (linear, 0..1)
    sounds: list[dict]  # spans of heard sound at or above LOUD_DBFS: start_ms, end_ms, peak, rms
    nonsilent: list[dict]  # spans of heard audio at or above SOUND_DBFS
    fetches: list[dict]
    mouth: list[dict]  # perf_ms, difference (mouthDifference(), 0-255), state
    output_latency_ms: float
    now_ms: float

    def of_type(self, kind: str, utterance_id: str | None = None) -> list[dict]:
        return [m for m in self.messages if m["type"] == kind and utterance_id in (None, m["utterance_id"])]

    def loud_frames(self, after_ms: float = float("-inf"), level: float = LOUD_LEVEL) -> list[dict]:
        return [f for f in self.ssrc if f["level"] is not None and f["level"] >= level and f["perf_ms"] > after_ms]


@dataclass
class StoppedUtterance:
    """One utterance /stop-ped while loud: the two calls, the receiver's counters around the stop, the capture."""

    speak: dict
    stop: dict
    before: dict | None
    after: dict | None
    capture: Capture

    @property
    def utterance_id(self) -> str:
        return self.speak["body"]["utterance_id"]

    @property
    def jitter_buffer_ms(self) -> float:
        return jitter_buffer_between(self.before, self.after)


class LiveProbe:
    """Drives one page through the probe: install before connecting, then speak, stop and collect."""

    def __init__(self, page):
        self.page = page
        page.add_init_script(PROBE_JS)

    def start(self) -> None:
        self.page.evaluate("(thresholds) => window.__liveProbe.start(thresholds)", {"loud": LOUD_LEVEL, "sound": SOUND_LEVEL})

    def speak(self, text: str, barge_in: bool = True) -> dict:
        answer = self.page.evaluate("([text, barge_in]) => window.__liveProbe.call('/speak', {text, barge_in})",
                                    [text, barge_in])
        assert answer["status"] == 202, answer
        return answer

    def stop(self) -> dict:
        answer = self.page.evaluate("() => window.__liveProbe.call('/stop', {})")
        assert answer["status"] == 200, answer
        return answer

    def drain(self) -> Capture:
        return Capture(**self.page.evaluate("() => window.__liveProbe.drain()"))

    def wait_for_message(self, kind: str, utterance_id: str, timeout_s: float = 20.0) -> None:
        self.page.wait_for_function(
            "([kind, id]) => window.__liveProbe.messages.some((m) => m.type === kind && m.utterance_id === id)",
            arg=[kind, utterance_id], timeout=timeout_s * 1000, polling=20)

    def wait_for_sound_after(self, start_ms: float, timeout_s: float = 20.0) -> None:
        self.page.wait_for_function(
            "([t, loud]) => window.__liveProbe.ssrc.some((f) => f.perf_ms > t && f.level >= loud)",
            arg=[start_ms, LOUD_LEVEL], timeout=timeout_s * 1000, polling=10)

    def wait_until_loud_now(self, timeout_s: float = 10.0) -> None:
        """Until the frame playing out right now is loud: a stop then cuts speech, not a pause between words."""
        self.page.wait_for_function("(loud) => (window.__liveProbe.ssrc.at(-1)?.level ?? 0) >= loud",
                                    arg=LOUD_LEVEL, timeout=timeout_s * 1000, polling=5)

    def receiver_stats(self) -> dict | None:
        """The receiver's inbound-rtp counters (getStats: fine for counts, never for timing)."""
        return self.page.evaluate("() => window.__liveProbe.receiverStats()")

    def stop_while_loud(self, text: str, speak_for_ms: float, settle_ms: float,
                        timeout_s: float = 20.0) -> StoppedUtterance:
        """Speak TEXT, /stop it SPEAK_FOR_MS after its first loud frame (on a loud frame), collect SETTLE_MS later."""
        speak = self.speak(text)
        self.wait_for_sound_after(speak["start_ms"], timeout_s)
        self.page.wait_for_timeout(speak_for_ms)
        before = self.receiver_stats()
        self.wait_until_loud_now()
        stop = self.stop()
        self.page.wait_for_timeout(settle_ms)
        after = self.receiver_stats()
        return StoppedUtterance(speak, stop, before, after, self.drain())


def connect_with_probe(page, base: str) -> LiveProbe:
    probe = LiveProbe(page)
    connect(page, base)
    probe.start()
    page.wait_for_timeout(300)  # a few played-out frames for the RTP clock
    probe.drain()
    return probe


# -- measurements -----------------------------------------------------------------

def rtp_delta(a: int, b: int) -> int:
    """a - b for 32-bit RTP timestamps, the short way round the wrap."""
    return (a - b + 2**31) % 2**32 - 2**31


def first_audio_ms(capture: Capture, speak: dict, utterance_id: str) -> tuple[float | None, float | None]:
    """(/speak fetch() -> first loud frame played out at the receiver, -> first sound heard) in ms."""
    start = capture.of_type("utterance_start", utterance_id)
    if not start:
        return None, None
    rtp0 = start[0]["rtp_timestamp"]
    played = [f for f in capture.loud_frames(speak["start_ms"]) if rtp_delta(f["rtp"], rtp0) >= -960]
    heard = [s for s in capture.sounds if s["start_ms"] > speak["start_ms"]]
    return ((played[0]["perf_ms"] - speak["start_ms"]) if played else None,
            (heard[0]["start_ms"] - speak["start_ms"]) if heard else None)


def lead_in_s(capture: Capture, utterance_id: str) -> float | None:
    """Seconds of utterance audio before its first frame at or above LOUD_DBFS, as the server's prosody says."""
    frames = [f for m in capture.of_type("prosody", utterance_id) for f in m["frames"] if f["loudness_db"] >= LOUD_DBFS]
    return min(f["time_s"] for f in frames) if frames else None


def playout_clock(capture: Capture, near_ms: float, span_ms: float = 1500.0) -> tuple[float, int] | None:
    """The page's RTP clock, re-derived: perf_ms heard = rtp/48 + offset (median over frames near NEAR_MS).

    Like the page (sync.js RtpPlayoutClock), a frame is heard output_latency_ms after its `timestamp`.
    Returns (offset_ms, reference_rtp): the offset holds for RTP timestamps taken relative to reference_rtp.
    """
    frames = [f for f in capture.ssrc if abs(f["perf_ms"] - near_ms) < span_ms]
    if len(frames) < 5:
        return None
    reference = frames[0]["rtp"]
    return statistics.median(f["perf_ms"] + capture.output_latency_ms - rtp_delta(f["rtp"], reference) * 1000 / RTP_CLOCK_HZ
                             for f in frames), reference


def av_offset_ms(capture: Capture, utterance_id: str, at_track: bool = False) -> float | None:
    """Onset minus the time the RTP schedule gives the utterance's first loud sample (positive: sound late).

    The onset is the first loud block heard through the Web Audio tap (which adds its own input buffering, so
    this errs late), or with AT_TRACK the first loud frame the receiver played out plus the output latency
    (the page's own model of "heard"; quantised to the 20 ms of an Opus packet, so it errs early).
    """
    start = capture.of_type("utterance_start", utterance_id)
    lead = lead_in_s(capture, utterance_id)
    if not start or lead is None:
        return None
    after_ms = start[0]["at_ms"] - 200  # the announcement leaves with the first sample, before it plays
    if at_track:
        onsets = [f["perf_ms"] + capture.output_latency_ms for f in capture.loud_frames(after_ms)]
    else:
        onsets = [s["start_ms"] for s in capture.sounds if s["start_ms"] > after_ms]
    clock = playout_clock(capture, onsets[0]) if onsets else None
    if clock is None:
        return None
    offset, reference = clock
    scheduled_ms = offset + (rtp_delta(start[0]["rtp_timestamp"], reference) / RTP_CLOCK_HZ + lead) * 1000
    return onsets[0] - scheduled_ms


def stop_to_silence_ms(capture: Capture, stop: dict) -> tuple[float, float]:
    """(/stop fetch() -> last non-silent frame played out, -> last non-silent audio heard) in ms.

    Non-silent is above SOUND_DBFS, not LOUD_DBFS: a stop that lands in a quiet stretch of speech must still
    wait for the real silence. 0 when nothing was non-silent after the call.
    """
    played = capture.loud_frames(stop["start_ms"], SOUND_LEVEL)
    heard = [s for s in capture.nonsilent if s["end_ms"] > stop["start_ms"]]
    return (max([f["perf_ms"] for f in played], default=stop["start_ms"]) - stop["start_ms"],
            max([s["end_ms"] for s in heard], default=stop["start_ms"]) - stop["start_ms"])


def jitter_buffer_between(before: dict, after: dict) -> float:
    """Mean jitter-buffer delay (ms) of the audio played out between two receiver_stats() snapshots."""
    frames = after["samples_emitted"] - before["samples_emitted"]
    return 1000 * (after["delay_s"] - before["delay_s"]) / frames if frames else float("nan")
