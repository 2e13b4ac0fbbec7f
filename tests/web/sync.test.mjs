// node:test suite for web/sync.js, run by test_sync_js.py. Uses the real mixer, no fakes of our code.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  OnsetDetector, RtpPlayoutClock, RtpUnwrapper, UtteranceScheduler, afterGaps, eventsAfterGaps, firstLoudTimeS, rtpDelta, ssrcTimeToPerfMs,
} from "../../photoavatar/web/sync.js";
import { MixerConfig, VisemeMixer } from "../../photoavatar/web/mixer.js";

const TWO_32 = 2 ** 32;

test("rtpDelta takes the short way round the 32-bit wrap", () => {
  assert.equal(rtpDelta(100, 40), 60);
  assert.equal(rtpDelta(40, 100), -60);
  assert.equal(rtpDelta(5, TWO_32 - 10), 15);
  assert.equal(rtpDelta(TWO_32 - 10, 5), -15);
});

test("the unwrapper counts on past 2^32", () => {
  const unwrapper = new RtpUnwrapper();
  const start = TWO_32 - 48000; // one second before the wrap
  const got = [0, 24000, 48000, 96000, 72000].map((step) => unwrapper.unwrap((start + step) % TWO_32));
  assert.deepEqual(got, [0, 24000, 48000, 96000, 72000]);
});

test("synchronization-source timestamps: epoch ms and timeOrigin-relative ms both land on performance time", () => {
  const timeOrigin = 1_790_000_000_000.25;
  assert.equal(ssrcTimeToPerfMs(timeOrigin + 1234.5, timeOrigin), 1234.5);
  assert.equal(ssrcTimeToPerfMs(1234.5, timeOrigin), 1234.5);
});

test("the playout clock maps RTP to performance time across the wrap, smooths jitter and snaps on a jump", () => {
  const clock = new RtpPlayoutClock({ smoothing: 0.1, snapMs: 80 });
  const timeOrigin = 1_790_000_000_000;
  const startRtp = TWO_32 - 4800; // 100 ms before the wrap
  const utteranceS = clock.secondsOf(startRtp + 9600); // an utterance starting 200 ms into the stream
  let jitter = 1;
  for (let k = 0; k < 50; k += 1) { // 20 ms packets played at perf = 5000 + 20 k (± 1 ms)
    jitter = -jitter;
    const observed = clock.observe({ rtpTimestamp: (startRtp + 960 * k) % TWO_32, timestamp: timeOrigin + 5000 + 20 * k + jitter }, timeOrigin);
    assert.equal(observed, true);
  }
  assert.equal(clock.observe({ rtpTimestamp: (startRtp + 960 * 49) % TWO_32, timestamp: timeOrigin + 5980 + jitter }, timeOrigin), false);
  assert.ok(Math.abs(clock.perfMsOf(utteranceS) - 5200) < 1.5, `utterance plays at ${clock.perfMsOf(utteranceS)}`);
  assert.ok(Math.abs(clock.secondsAt(5500) - (utteranceS + 0.3)) < 0.002);
  clock.observe({ rtpTimestamp: (startRtp + 960 * 50) % TWO_32, timestamp: timeOrigin + 6000 + 500 }, timeOrigin);
  assert.ok(Math.abs(clock.perfMsOf(utteranceS) - 5700) < 1e-6, "a 500 ms jump is taken at once");
});

test("onset: the first loud sample after 200 ms of silence, found inside overlapping windows", () => {
  const rate = 48000;
  const detector = new OnsetDetector({ thresholdDb: -40, silenceMs: 200 });
  const signal = new Float32Array(rate); // 1 s: silence, tone from 0.5 s to 0.7 s, gap of 0.1 s, tone again at 0.8 s
  for (let i = 0; i < rate; i += 1) {
    const t = i / rate;
    if ((t >= 0.5 && t < 0.7) || t >= 0.8) signal[i] = 0.3 * Math.sin(2 * Math.PI * 220 * t + 0.5);
  }
  const onsets = [];
  for (let end = 2048; end <= rate; end += 800) { // 2048-sample windows every 16.7 ms, as an analyser at 60 fps
    const startMs = 1000 + ((end - 2048) / rate) * 1000;
    const onset = detector.feed(signal.subarray(end - 2048, end), startMs, rate);
    if (onset !== null) onsets.push(onset);
  }
  assert.equal(onsets.length, 1, `onsets ${onsets}`); // the 100 ms gap is not silence enough
  assert.ok(Math.abs(onsets[0] - 1500) < 0.1, `onset at ${onsets[0]}`);
});

test("firstLoudTimeS skips the quiet lead-in of an utterance", () => {
  const frames = [{ time_s: 0.02, loudness_db: -70 }, { time_s: 0.06, loudness_db: -30 }, { time_s: 0.04, loudness_db: -38 }];
  assert.equal(firstLoudTimeS(frames, -40), 0.04);
  assert.equal(firstLoudTimeS([], -40), 0);
});

const makeMixer = (startS) => new VisemeMixer(new MixerConfig(), startS);
const viseme = (id, events) => ({ type: "viseme", utterance_id: id, events });

test("rtp mode: events play at the RTP time the utterance starts at, whatever order the messages came in", () => {
  const clock = new RtpPlayoutClock();
  const scheduler = new UtteranceScheduler(makeMixer, { mode: "rtp", clock });
  scheduler.handle(viseme("u1", [{ viseme: "AI", start_s: 0.1, end_s: 0.4, weight: 1 }])); // before its start
  scheduler.handle({ type: "utterance_start", utterance_id: "u1", rtp_timestamp: 48000 * 10, anchor: "rtp" });
  assert.equal(scheduler.advance(1000), null, "no clock before playout is seen");
  clock.observe({ rtpTimestamp: 48000 * 9, timestamp: 2000 }, 0); // RTP second 9 plays at perf 2000 ms
  assert.equal(scheduler.advance(2500).weights.AI, 0); // utterance starts at perf 3000
  assert.equal(scheduler.advance(3099).weights.AI, 0);
  assert.ok(scheduler.advance(3180).weights.AI > 0.8);
  assert.ok(scheduler.speaking);
  scheduler.handle({ type: "utterance_end", utterance_id: "u1", reason: "done" });
  assert.ok(scheduler.advance(3300).weights.AI > 0.99, "done: the queued events still play");
  assert.ok(scheduler.advance(3700).weights.Rest > 0.99);
  assert.equal(scheduler.speaking, false);
});

test("afterGaps moves a time by every gap at or before it; eventsAfterGaps splits an event a gap falls in", () => {
  const gaps = [{ atS: 0.4, gapS: 0.02 }, { atS: 0.4, gapS: 0.02 }, { atS: 1.0, gapS: 0.005 }];
  assert.equal(afterGaps(0.3, gaps), 0.3);
  assert.ok(Math.abs(afterGaps(0.4, gaps) - 0.44) < 1e-12);
  assert.ok(Math.abs(afterGaps(1.2, gaps) - 1.245) < 1e-12);
  const wide = [{ atS: 0.4, gapS: 0.1 }, { atS: 0.4, gapS: 0.1 }]; // the same case as tests/live/test_protocol.py
  const placed = eventsAfterGaps([{ viseme: "AI", start_s: 0.1, end_s: 0.4, weight: 1 },
    { viseme: "E", start_s: 0.3, end_s: 0.6, weight: 0.5 }, { viseme: "O", start_s: 0.4, end_s: 0.7, weight: 1 }], wide);
  const round6 = (x) => Math.round(x * 1e6) / 1e6;
  assert.deepEqual(placed.map((e) => [e.viseme, round6(e.start_s), round6(e.end_s), e.weight]),
    [["AI", 0.1, 0.4, 1], ["E", 0.3, 0.4, 0.5], ["E", 0.6, 0.8, 0.5], ["O", 0.6, 0.9, 1]]);
});

test("utterance_gap: events after the gap play that much later, fed before the message or after it", () => {
  const clock = new RtpPlayoutClock();
  clock.observe({ rtpTimestamp: 0, timestamp: 1000 }, 0); // RTP 0 plays at perf 1000 ms
  const scheduler = new UtteranceScheduler(makeMixer, { mode: "rtp", clock });
  scheduler.handle({ type: "utterance_start", utterance_id: "u", rtp_timestamp: 0, anchor: "rtp" });
  scheduler.handle(viseme("u", [{ viseme: "AI", start_s: 0.0, end_s: 0.4, weight: 1 },
    { viseme: "MBP", start_s: 0.4, end_s: 0.6, weight: 1 }]));
  scheduler.advance(1000);
  assert.ok(scheduler.advance(1350).weights.AI > 0.9);
  scheduler.handle({ type: "utterance_gap", utterance_id: "u", at_s: 0.4, gap_s: 0.2 }); // 200 ms of silence at 0.4 s
  scheduler.handle(viseme("u", [{ viseme: "O", start_s: 0.6, end_s: 0.9, weight: 1 }])); // the next phrase, after it
  const inGap = scheduler.advance(1550);
  assert.ok(inGap.weights.MBP < 0.05, `the closure waits for its sound: ${JSON.stringify(inGap.weights)}`);
  assert.ok(scheduler.advance(1780).weights.MBP > 0.9, "MBP now at 0.6-0.8 s");
  assert.ok(scheduler.advance(1790).weights.O < 0.1, "O waits for the end of the moved MBP (0.8 s), not 0.6 s");
  assert.ok(scheduler.advance(1990).weights.O > 0.9, "the later phrase moved too: O at 0.8-1.1 s");
  scheduler.handle({ type: "utterance_end", utterance_id: "u", reason: "done" });
  assert.ok(scheduler.speaking, "still speaking until its moved end (1.1 s)");
  scheduler.advance(2050);
  assert.ok(scheduler.speaking);
  scheduler.advance(2300);
  assert.equal(scheduler.speaking, false);
});

test("barge-in: the cut utterance's events are dropped and the next one plays", () => {
  const clock = new RtpPlayoutClock();
  clock.observe({ rtpTimestamp: 0, timestamp: 1000 }, 0);
  const scheduler = new UtteranceScheduler(makeMixer, { mode: "rtp", clock });
  scheduler.handle({ type: "utterance_start", utterance_id: "a", rtp_timestamp: 0 });
  scheduler.handle(viseme("a", [{ viseme: "O", start_s: 0, end_s: 2, weight: 1 }]));
  scheduler.advance(1000);
  assert.ok(scheduler.advance(1300).weights.O > 0.99);
  scheduler.handle({ type: "utterance_end", utterance_id: "a", reason: "barge_in" });
  scheduler.handle({ type: "utterance_start", utterance_id: "b", rtp_timestamp: 48000 * 0.5 });
  scheduler.handle(viseme("b", [{ viseme: "MBP", start_s: 0, end_s: 0.2, weight: 1 }]));
  const frame = scheduler.advance(1550);
  assert.ok(frame.weights.O < 0.05 && frame.weights.MBP > 0.7, JSON.stringify(frame.weights));
});

test("onset mode: an utterance is anchored where its first loud audio is heard", () => {
  const scheduler = new UtteranceScheduler(makeMixer, { mode: "onset" });
  scheduler.advance(10_000);
  scheduler.handle({ type: "utterance_start", utterance_id: "x", rtp_timestamp: 123, anchor: "onset" });
  scheduler.handle({ type: "prosody", utterance_id: "x", frames: [{ time_s: 0.0, loudness_db: -90, pitch_hz: 0, accent: 0 },
    { time_s: 0.05, loudness_db: -20, pitch_hz: 120, accent: 0 }] });
  scheduler.handle(viseme("x", [{ viseme: "AI", start_s: 0.15, end_s: 0.5, weight: 1 }]));
  assert.equal(scheduler.advance(10_400).weights.AI, 0, "nothing before the audio is heard");
  scheduler.onset(10_450); // s = 0.05 heard at 10 450 ms, so s = 0 is 10 400 ms and AI starts at 10 550 ms
  assert.ok(scheduler.advance(10_549).weights.AI < 1e-9);
  assert.ok(scheduler.advance(10_640).weights.AI > 0.9);
});

test("an utterance_start that says anchor=onset switches an rtp scheduler to onset timing", () => {
  const scheduler = new UtteranceScheduler(makeMixer, { mode: "rtp" });
  scheduler.handle({ type: "utterance_start", utterance_id: "y", rtp_timestamp: 5, anchor: "onset" });
  assert.equal(scheduler.mode, "onset");
  assert.notEqual(scheduler.advance(20_000), null, "the onset timeline needs no RTP clock");
});

test("the clock adds the output latency: audio is heard after the receiver hands it over", () => {
  const clock = new RtpPlayoutClock({ outputLatencyMs: 40 });
  clock.observe({ rtpTimestamp: 96000, timestamp: 7000 }, 0);
  assert.equal(clock.perfMsOf(clock.secondsOf(96000 + 4800)), 7000 + 100 + 40);
});
