// Puts utterance audio time on the page's clock, so visemes move when their sound plays.
//
// Direct WebRTC: RTCRtpReceiver.getSynchronizationSources() says which RTP timestamp (`rtpTimestamp`) was played
// out when (`timestamp`). Chromium, Firefox and (since 2026) WebKit give `timestamp` as wall-clock ms since the
// Unix epoch (comparable to performance.timeOrigin + performance.now()), while the spec's wording allows a
// timeOrigin-relative value; ssrcTimeToPerfMs accepts both. The session timeline is then RTP time in seconds,
// unwrapped past 2^32, and an utterance's s = 0 sits at its `utterance_start.rtp_timestamp`.
// Never getStats(): its values are sampled, averaged and delayed.
//
// Behind an SFU (LiveKit) RTP timestamps are rewritten, so the timeline is performance.now() in seconds and an
// utterance is anchored where its first audio after silence is heard (OnsetDetector), minus the time of the
// first loud prosody frame (the audio may begin with a little silence).

import { RTP_CLOCK_HZ } from "./protocol.js";

// Speech starts at −40 dBFS (docs/client.md): the onset detector and the prosody lead-in use the same level.
export const ONSET_THRESHOLD_DB = -40;
const TWO_32 = 2 ** 32;
const EPOCH_MS_THRESHOLD = 1e11; // no page lives 3 years, so larger values are epoch milliseconds

/** a − b for 32-bit RTP timestamps, in (−2^31, 2^31]: the short way round the wrap. */
export function rtpDelta(a, b) {
  let delta = (((a - b) % TWO_32) + TWO_32) % TWO_32;
  if (delta > TWO_32 / 2) delta -= TWO_32;
  return delta;
}

/** Turns 32-bit RTP timestamps into a continuous count; every value must be within 2^31 of the previous one. */
export class RtpUnwrapper {
  constructor() {
    this.lastRaw = null;
    this.lastUnwrapped = 0;
  }

  unwrap(rtpTimestamp) {
    if (this.lastRaw === null) {
      this.lastRaw = rtpTimestamp >>> 0;
      return 0;
    }
    this.lastUnwrapped += rtpDelta(rtpTimestamp >>> 0, this.lastRaw);
    this.lastRaw = rtpTimestamp >>> 0;
    return this.lastUnwrapped;
  }
}

/** A synchronization source's `timestamp` on the performance.now() clock (see the note at the top). */
export function ssrcTimeToPerfMs(timestamp, timeOriginMs) {
  return timestamp > EPOCH_MS_THRESHOLD ? timestamp - timeOriginMs : timestamp;
}

/**
 * Maps RTP time (seconds, unwrapped) to performance.now() from playout observations.
 * offsetMs = perf − rtpSeconds·1000 is smoothed (playout jitter is a few ms) and snaps on a jump
 * (the sender paused its clock, or the jitter buffer was reset).
 */
export class RtpPlayoutClock {
  constructor({ clockHz = RTP_CLOCK_HZ, smoothing = 0.1, snapMs = 80, outputLatencyMs = 0 } = {}) {
    this.clockHz = clockHz;
    // `timestamp` is when the receiver handed the audio to the output; it is heard outputLatencyMs later
    // (the page sets it from AudioContext.outputLatency + baseLatency, the same device as the <audio> element).
    this.outputLatencyMs = outputLatencyMs;
    this.smoothing = smoothing;
    this.snapMs = snapMs;
    this.unwrapper = new RtpUnwrapper();
    this.offsetMs = null;
    this.lastSourceTimestamp = null;
    this.observations = 0;
  }

  /** Session seconds of an RTP timestamp (an utterance_start or a played-out packet). */
  secondsOf(rtpTimestamp) {
    return this.unwrapper.unwrap(rtpTimestamp) / this.clockHz;
  }

  /** Feed one RTCRtpSynchronizationSource; returns true when it was a new playout observation. */
  observe(source, timeOriginMs) {
    if (!source || typeof source.rtpTimestamp !== "number" || source.timestamp === this.lastSourceTimestamp) return false;
    this.lastSourceTimestamp = source.timestamp;
    const heardMs = ssrcTimeToPerfMs(source.timestamp, timeOriginMs) + this.outputLatencyMs;
    const raw = heardMs - this.secondsOf(source.rtpTimestamp) * 1000;
    const jumped = this.offsetMs === null || Math.abs(raw - this.offsetMs) > this.snapMs;
    this.offsetMs = jumped ? raw : this.offsetMs + this.smoothing * (raw - this.offsetMs);
    this.observations += 1;
    return true;
  }

  get ready() {
    return this.offsetMs !== null;
  }

  /** Session seconds playing at performance time perfMs (null until the first observation). */
  secondsAt(perfMs) {
    return this.offsetMs === null ? null : (perfMs - this.offsetMs) / 1000;
  }

  /** performance.now() at which session second `seconds` plays. */
  perfMsOf(seconds) {
    return this.offsetMs === null ? null : this.offsetMs + seconds * 1000;
  }
}

/**
 * Finds the first audio after silence in successive analyser windows (they may overlap).
 * feed(samples, windowStartPerfMs, sampleRateHz) returns the onset's performance time, or null.
 */
export class OnsetDetector {
  constructor({ thresholdDb = ONSET_THRESHOLD_DB, silenceMs = 200 } = {}) {
    this.threshold = 10 ** (thresholdDb / 20);
    this.silenceMs = silenceMs;
    this.lastLoudMs = null;
  }

  feed(samples, windowStartPerfMs, sampleRateHz) {
    let first = -1;
    let last = -1;
    for (let i = 0; i < samples.length; i += 1) {
      if (Math.abs(samples[i]) > this.threshold) {
        if (first < 0) first = i;
        last = i;
      }
    }
    if (first < 0) return null;
    const msPerSample = 1000 / sampleRateHz;
    const firstMs = windowStartPerfMs + first * msPerSample;
    const isOnset = this.lastLoudMs === null || firstMs - this.lastLoudMs >= this.silenceMs;
    this.lastLoudMs = Math.max(this.lastLoudMs ?? -Infinity, windowStartPerfMs + last * msPerSample);
    return isOnset ? firstMs : null;
  }
}

/**
 * When utterance audio time T plays after the utterance's GAPS ({atS, gapS}, docs/protocol.md utterance_gap):
 * later by every gap at or before it. The twin of live/protocol.py's after_gaps.
 */
export function afterGaps(t, gaps) {
  let moved = t;
  for (const { atS, gapS } of gaps) if (atS <= t) moved += gapS;
  return moved;
}

/**
 * EVENTS at the times their audio plays: an event that spans a gap stops at it and goes on after it, so the
 * mouth rests while the voice does. The twin of live/protocol.py's events_after_gaps.
 */
export function eventsAfterGaps(events, gaps) {
  if (!gaps.length) return events;
  const cuts = [...new Set(gaps.map((g) => g.atS))].sort((a, b) => a - b);
  return events.flatMap((e) => {
    const edges = [e.start_s, ...cuts.filter((at) => e.start_s < at && at < e.end_s), e.end_s];
    return edges.slice(1).map((hi, i) => {
      const movedBy = afterGaps(edges[i], gaps) - edges[i];
      return { ...e, start_s: edges[i] + movedBy, end_s: hi + movedBy };
    });
  });
}

/** Seconds of utterance audio of the first prosody frame at least as loud as the onset threshold (0 if none). */
export function firstLoudTimeS(prosodyFrames, thresholdDb = ONSET_THRESHOLD_DB) {
  let first = null;
  for (const frame of prosodyFrames) {
    if (frame.loudness_db >= thresholdDb && (first === null || frame.time_s < first)) first = frame.time_s;
  }
  return first ?? 0;
}

/**
 * Listens to a received audio stream through an AnalyserNode and reports onsets on the performance clock.
 * Chromium feeds a remote WebRTC stream into Web Audio only while an <audio> element plays it.
 */
export class StreamOnsetListener {
  constructor(audioContext, stream, options = {}) {
    this.context = audioContext;
    this.analyser = audioContext.createAnalyser();
    this.analyser.fftSize = 2048; // 43 ms at 48 kHz: longer than a frame, so no onset falls between two polls
    this.source = audioContext.createMediaStreamSource(stream);
    this.source.connect(this.analyser);
    this.samples = new Float32Array(this.analyser.fftSize);
    this.detector = new OnsetDetector(options);
  }

  /** Call once per animation frame; returns the performance time of a new onset, or null. */
  poll() {
    this.analyser.getFloatTimeDomainData(this.samples);
    const stamp = this.context.getOutputTimestamp?.();
    const endContextS = this.context.currentTime;
    // The window ends at the context's current time; getOutputTimestamp ties context time to performance time.
    const perfOfContext = (s) => (stamp && stamp.performanceTime > 0
      ? stamp.performanceTime + (s - stamp.contextTime) * 1000
      : performance.now() - (endContextS - s) * 1000);
    const startS = endContextS - this.samples.length / this.context.sampleRate;
    return this.detector.feed(this.samples, perfOfContext(startS), this.context.sampleRate);
  }

  close() {
    this.source.disconnect();
  }
}

/**
 * Keeps the utterances the server announced and feeds their events to the mixer on the session timeline:
 * RTP seconds ("rtp" mode) or performance seconds ("onset" mode, behind an SFU). Messages may arrive in any
 * order across the two channels, so an utterance is created by whichever message names it first.
 */
export class UtteranceScheduler {
  constructor(createMixer, { mode = "rtp", clock = new RtpPlayoutClock(), onsetThresholdDb = ONSET_THRESHOLD_DB } = {}) {
    this.createMixer = createMixer; // (startTimeS) => VisemeMixer
    this.mode = mode;
    this.clock = clock;
    this.onsetThresholdDb = onsetThresholdDb;
    this.mixer = null;
    this.utterances = new Map();
    this.recentOnsetsMs = [];
    this.lastAvOffsetMs = null;
  }

  _utterance(id) {
    if (!this.utterances.has(id)) {
      this.utterances.set(id, { id, baseS: null, started: false, events: [], prosody: [], gaps: [], endS: 0, ended: false, onsetMs: null });
    }
    return this.utterances.get(id);
  }

  handle(message) {
    const utterance = this._utterance(message.utterance_id);
    if (message.type === "utterance_start") this._start(utterance, message);
    else if (message.type === "viseme") this._add(utterance, message.events, []);
    else if (message.type === "prosody") this._add(utterance, [], message.frames);
    else if (message.type === "utterance_gap") this._gap(utterance, message);
    else if (message.type === "utterance_end") this._end(utterance, message.reason);
  }

  _start(utterance, message) {
    utterance.started = true;
    if ((message.anchor === "rtp" || message.anchor === "onset") && message.anchor !== this.mode) this._switchMode(message.anchor);
    if (this.mode === "rtp") this._anchor(utterance, this.clock.secondsOf(message.rtp_timestamp));
    else this._claimRecentOnset(utterance);
  }

  /** The server knows best whether RTP time survives to us (docs/protocol.md `anchor`); timelines restart. */
  _switchMode(mode) {
    this.mode = mode;
    this.mixer = null;
    for (const utterance of this.utterances.values()) utterance.baseS = null;
  }

  _add(utterance, events, frames) {
    utterance.events.push(...events);
    utterance.prosody.push(...frames);
    for (const event of events) utterance.endS = Math.max(utterance.endS, event.end_s);
    if (utterance.baseS !== null && this.mixer) this._feed(utterance, events, frames);
  }

  /**
   * The server's audio paused (docs/protocol.md, utterance_gap): everything the utterance plays from at_s on plays
   * gap_s later, the events already fed too, so the mixer is fed again.
   */
  _gap(utterance, { at_s: atS, gap_s: gapS }) {
    utterance.gaps.push({ atS, gapS });
    if (utterance.baseS !== null) this._refeedMixer();
  }

  _end(utterance, reason) {
    utterance.ended = true;
    utterance.endedPerfMs = performance.now();
    if (reason === "done") return; // its events still play out
    this._drop(utterance);
  }

  /**
   * The client side of an interruption (docs/protocol.md, utterance_end with barge_in, stop or error): the server
   * has already cut the audio, so the utterance's events leave the mixer at once and the mouth relaxes from
   * where it is. The only place an utterance's events are taken back.
   */
  _drop(utterance) {
    this.utterances.delete(utterance.id);
    this._refeedMixer();
  }

  _anchor(utterance, baseS) {
    utterance.baseS = baseS;
    if (this.mixer) this._feed(utterance, utterance.events, utterance.prosody);
  }

  _feed(utterance, events, frames) {
    const base = utterance.baseS;
    this.mixer.addEvents(eventsAfterGaps(events, utterance.gaps).map((e) => ({ ...e, start_s: e.start_s + base, end_s: e.end_s + base })));
    this.mixer.addProsody(frames.map((f) => ({ ...f, time_s: base + afterGaps(f.time_s, utterance.gaps) })));
  }

  /** A mixer holding exactly the anchored utterances' events (after a drop, or when the mixer is first made). */
  _refeedMixer() {
    if (!this.mixer) return;
    this.mixer.clear();
    for (const utterance of this.utterances.values()) {
      if (utterance.baseS !== null) this._feed(utterance, utterance.events, utterance.prosody);
    }
  }

  /** An onset heard on the audio (either mode): anchors the oldest unanchored utterance or checks the A/V offset. */
  onset(perfMs) {
    const waiting = [...this.utterances.values()].find((u) => u.started && u.onsetMs === null && !u.ended);
    if (!waiting) {
      this.recentOnsetsMs = [...this.recentOnsetsMs.filter((t) => perfMs - t < 1000), perfMs];
      return null;
    }
    return this._useOnset(waiting, perfMs);
  }

  _claimRecentOnset(utterance) {
    const now = performance.now();
    this.recentOnsetsMs = this.recentOnsetsMs.filter((t) => now - t < 1000);
    if (this.recentOnsetsMs.length) this._useOnset(utterance, this.recentOnsetsMs.shift());
  }

  _useOnset(utterance, perfMs) {
    utterance.onsetMs = perfMs;
    const loudS = firstLoudTimeS(utterance.prosody, this.onsetThresholdDb);
    if (this.mode === "onset") {
      this._anchor(utterance, perfMs / 1000 - loudS);
    } else if (utterance.baseS !== null && this.clock.ready) {
      this.lastAvOffsetMs = perfMs - this.clock.perfMsOf(utterance.baseS + loudS);
    }
    return utterance;
  }

  /** Session seconds now, or null while the RTP clock has not seen any playout. */
  timelineS(perfMs) {
    return this.mode === "rtp" ? this.clock.secondsAt(perfMs) : perfMs / 1000;
  }

  /** Advances the mixer to the audio playing at perfMs; returns its frame (Rest until there is a clock). */
  advance(perfMs) {
    const now = this.timelineS(perfMs);
    if (now === null) return null;
    if (!this.mixer) {
      this.mixer = this.createMixer(now);
      this._refeedMixer();
    }
    const frame = this.mixer.advanceTo(Math.max(now, this.mixer.timeS)); // a clock snap never runs time backwards
    this.mixer.prune();
    this._forgetFinished(now, perfMs);
    return frame;
  }

  _forgetFinished(nowS, perfMs) {
    for (const [id, u] of this.utterances) {
      const played = u.baseS !== null && nowS > u.baseS + afterGaps(u.endS, u.gaps) + 1;
      const neverHeard = u.baseS === null && perfMs - u.endedPerfMs > 3000; // its audio never came
      if (u.ended && (played || neverHeard)) this.utterances.delete(id);
    }
  }

  get speaking() {
    const now = this.mixer?.timeS;
    return [...this.utterances.values()].some((u) => !u.ended || (u.baseS !== null && now !== undefined && now < u.baseS + afterGaps(u.endS, u.gaps)));
  }
}
