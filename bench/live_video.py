"""Server-rendered video measured in a real browser: lip sync of the played <video>, bilabial closures, frames
delivered, and what a video session costs.

Starts the real server on loopback (Piper, aiortc) with an avatarized portrait and opens headless Chromium. A
small in-page client (the protocol of docs/protocol.md, as any plain WebRTC app would speak it) asks for
`"video": true`, plays the stream (voice + avatar video, one MediaStream) in a <video> element and records:
- every presented video frame (requestVideoFrameCallback: expected display time, RTP timestamp) and its picture
  (drawn to a canvas, sent back as JPEG);
- the audio receiver's synchronization sources (which RTP timestamp was played out when) and the output latency;
- the data-channel messages (utterance_start's rtp_timestamp, the viseme events).

Measures, per utterance (+ = picture late):
- transport A/V offset: when each frame is displayed minus when the audio of the stream time it carries is
  played out (RTP timestamps of both tracks against the server's stream clock);
- lip-sync offset from the picture: MediaPipe's lip aperture on the captured frames against the mouth the
  utterance's timeline predicts for the audio played at each frame's display time, best lag by correlation.
  Both against the audio *heard* (the audio receiver's SSRC playout timestamp plus AudioContext.outputLatency +
  baseLatency, as the page's own A/V read-out; the target row) and as *played out* (the SSRC timestamp alone:
  the browser's synchronisation aligns the picture to its estimate of the device delay, which a headless
  Chromium's fake audio device reports loosely, so the truth for a real device lies near the "heard" rows);
- bilabial closures: every MBP event must show a frame with aperture <= CLOSED_APERTURE while it is heard.
Then N video sessions at once (and N audio-only sessions, the client-rendered kind, for the ratio): frames per
second delivered (server sent / browser decoded), server CPU per session (compose + encode), late audio frames,
underruns and concealed audio.

Run: .venv/bin/python bench/live_video.py [--utterances 6] [--sessions 1,2,3]
"""

from __future__ import annotations

import base64
import dataclasses
import io
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from live import running_server  # bench/live.py: the real server in a thread, per-minute limits lifted
from PIL import Image

from photoavatar.testing.bench import bench_parser, load_average_line
from photoavatar.testing.browser import CHROMIUM, MISSING_CHROMIUM, launch

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "testdata" / "faces"
TEXTS = (  # bilabials after open vowels, so closures and openings alternate
    "My father bought five fine violins and put them above the piano.",
    "Bobby brought bread and butter to the picnic, but the birds took most of it.",
    "Papa made a map of the big blue bay, and we put it by the lamp.",
    "Maybe Bob can buy a bigger boat before the summer market opens.",
)
SESSION_TEXT = "The quick brown fox jumps over the lazy dog, and then it runs all the way home again."
CLOSED_APERTURE = 0.05  # as tests/avatar/test_legibility.py: a closed MBP mouth
LAGS_MS = np.arange(-200, 201, 2)
TIMEOUT_MS = 60_000

CLIENT_JS = r"""
async ({count, video, capture}) => {
  // COUNT sessions, each one peer connection with recvonly audio (+ video) and the two channels, played in a
  // <video> element. Frames and playout observations are recorded on window.videoBench.
  const bench = window.videoBench = window.videoBench ?? { links: [] };
  const now = () => performance.now();
  const ssrcPerfMs = (t) => (t > 1e11 ? t - performance.timeOrigin : t);
  bench.context ??= new AudioContext({ latencyHint: 'interactive' });
  await bench.context.resume();
  for (let i = 0; i < count; i += 1) {
    const answer = await fetch('/session-live', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ avatar_id: 'grace', video }) });
    if (!answer.ok) throw new Error('session-live: ' + answer.status + ' ' + await answer.text());
    const session = await answer.json();
    const pc = new RTCPeerConnection({ iceServers: [] });
    const link = { session, pc, messages: [], frames: [], ssrc: [], capture, ended: [] };
    const audio = pc.addTransceiver('audio', { direction: 'recvonly' });
    const pictures = video ? pc.addTransceiver('video', { direction: 'recvonly' }) : null;
    for (const label of ['viseme', 'prosody']) {
      const channel = pc.createDataChannel(label, { ordered: true });
      channel.onmessage = (event) => {
        const message = JSON.parse(event.data);
        link.messages.push({ at_ms: now(), ...message });
        if (message.type === 'utterance_end') link.ended.push(message.reason);
      };
    }
    await pc.setLocalDescription(await pc.createOffer());
    if (pc.iceGatheringState !== 'complete') {
      await new Promise((resolve) => { pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve(); });
    }
    const offer = await fetch(session.url, { method: 'POST', headers: { 'Content-Type': 'application/sdp',
      Authorization: 'Bearer ' + (session.session_token ?? session.token) }, body: pc.localDescription.sdp });
    if (!offer.ok) throw new Error('offer: ' + offer.status + ' ' + await offer.text());
    await pc.setRemoteDescription({ type: 'answer', sdp: await offer.text() });
    const tracks = [audio.receiver.track, ...(pictures ? [pictures.receiver.track] : [])];
    const element = link.element = document.createElement('video');
    element.muted = count > 1;  // one session is heard; the others still play out (muted is enough)
    element.playsInline = true;
    element.srcObject = new MediaStream(tracks);
    document.body.append(element);
    await element.play();
    link.audioReceiver = audio.receiver;
    link.videoReceiver = pictures?.receiver ?? null;
    let last = null;
    link.timer = setInterval(() => {
      for (const source of audio.receiver.getSynchronizationSources()) {
        if (source.timestamp === last) continue;
        last = source.timestamp;
        link.ssrc.push({ perf_ms: ssrcPerfMs(source.timestamp), rtp: source.rtpTimestamp });
      }
    }, 4);
    if (video) {
      const canvas = document.createElement('canvas');
      const onFrame = (t, meta) => {
        const frame = { display_ms: meta.expectedDisplayTime, rtp: meta.rtpTimestamp ?? null, presented: meta.presentedFrames };
        if (link.capture && link.recording) {
          // toBlob copies the picture now and encodes it off the callback (toDataURL here slowed the page's
          // own frame presentation enough to move the measurement)
          canvas.width = element.videoWidth;
          canvas.height = element.videoHeight;
          canvas.getContext('2d').drawImage(element, 0, 0);
          canvas.toBlob((blob) => { frame.blob = blob; }, 'image/jpeg', 0.95);
        }
        link.frames.push(frame);
        element.requestVideoFrameCallback(onFrame);
      };
      element.requestVideoFrameCallback(onFrame);
    }
    bench.links.push(link);
  }
  await new Promise((resolve) => setTimeout(resolve, 1500));  // jitter buffers settle, the first frames arrive
  return bench.links.map((link) => link.session.session_id);
}
"""

SPEAK_JS = r"""
async ([text, timeoutMs]) => {
  const bench = window.videoBench;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const inbound = async (receiver) => {
    if (!receiver) return null;
    for (const report of (await receiver.getStats()).values()) if (report.type === 'inbound-rtp') return report;
    return null;
  };
  const before = await Promise.all(bench.links.map(async (l) => [await inbound(l.audioReceiver), await inbound(l.videoReceiver)]));
  for (const link of bench.links) { link.ended = []; link.recording = true; }
  const startMs = performance.now();
  await Promise.all(bench.links.map((link) => fetch('/speak', { method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + (link.session.session_token ?? link.session.token) },
    body: JSON.stringify({ session_id: link.session.session_id, text, barge_in: true }) })));
  while (bench.links.some((l) => !l.ended.length) && performance.now() - startMs < timeoutMs) await sleep(50);
  await sleep(600);  // the tail: the last frames and audio play out
  const after = await Promise.all(bench.links.map(async (l) => [await inbound(l.audioReceiver), await inbound(l.videoReceiver)]));
  const elapsedS = (performance.now() - startMs) / 1000;
  const asBase64 = (blob) => new Promise((resolve) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(',')[1]);
    reader.readAsDataURL(blob);
  });
  for (const link of bench.links) {
    for (const frame of link.frames) if (frame.blob) { frame.jpeg = await asBase64(frame.blob); delete frame.blob; }
  }
  const result = bench.links.map((link, i) => {
    const [a0, v0] = before[i], [a1, v1] = after[i];
    const taken = { ends: link.ended, messages: link.messages, frames: link.frames, ssrc: link.ssrc,
      output_latency_ms: ((bench.context.outputLatency ?? 0) + (bench.context.baseLatency ?? 0)) * 1000,
      elapsed_s: elapsedS,
      concealed_ms: ((a1.concealedSamples - a1.silentConcealedSamples) - (a0.concealedSamples - a0.silentConcealedSamples)) / 48,
      decoded_fps: v1 && v0 ? (v1.framesDecoded - v0.framesDecoded) / elapsedS : null,
      dropped_frames: v1 && v0 ? (v1.framesDropped ?? 0) - (v0.framesDropped ?? 0) : null,
      codec: v1?.codecId ?? null };
    link.messages = []; link.frames = []; link.ssrc = []; link.recording = false;
    return taken;
  });
  return result;
}
"""

CLOSE_JS = r"""
async () => {
  const bench = window.videoBench;
  for (const link of bench?.links ?? []) {
    clearInterval(link.timer);
    link.element.srcObject = null;
    link.element.remove();
    link.pc.close();
    await fetch('/sessions/' + link.session.session_id, { method: 'DELETE',
      headers: { Authorization: 'Bearer ' + (link.session.session_token ?? link.session.token) } });
  }
  if (bench) bench.links = [];
}
"""


# -- the server -----------------------------------------------------------------------------------------

def cpu_s() -> float:
    """CPU seconds of this process: the server runs in one of its threads (the browser is another process)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- clocks ---------------------------------------------------------------------------------------------

def unwrap(values: list[int], reference: int) -> np.ndarray:
    """32-bit RTP timestamps as signed distances from REFERENCE (all within 2^31 of it)."""
    delta = (np.asarray(values, dtype=np.int64) - reference) % 2**32
    return np.where(delta > 2**31, delta - 2**32, delta)


@dataclasses.dataclass(frozen=True)
class AudioClock:
    """When audio RTP time is heard: perf_ms = offset_ms + (rtp - reference) / 48 (ms)."""

    reference_rtp: int
    offset_ms: float

    @classmethod
    def fit(cls, ssrc: list[dict], output_latency_ms: float) -> AudioClock:
        reference = ssrc[0]["rtp"]
        rtp_ms = unwrap([s["rtp"] for s in ssrc], reference) / 48.0
        played_ms = np.array([s["perf_ms"] for s in ssrc])
        # playout observations lag by up to a packet when polled: the earliest ones describe the clock best
        offsets = played_ms - rtp_ms
        return cls(reference, float(np.percentile(offsets, 10)) + output_latency_ms)

    def heard_ms(self, rtp: int) -> float:
        return self.offset_ms + float(unwrap([rtp], self.reference_rtp)[0]) / 48.0


# -- the mouth in the pictures ----------------------------------------------------------------------------

def apertures(frames: list[dict]) -> list[float]:
    from photoavatar.avatar.landmarks import detect_faces, mouth_metrics

    out = []
    for frame in frames:
        picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(frame["jpeg"]))).convert("RGB"))
        faces = detect_faces(picture)
        out.append(mouth_metrics(faces[0]).aperture if faces else float("nan"))
    return out


def viseme_apertures(bundle) -> dict[str, float]:
    """MediaPipe's aperture of each viseme's own sprite on the idle frame (the mouth model's scale)."""
    from photoavatar.animate.frames import decoded_bundle
    from photoavatar.avatar.compose import compose_frame
    from photoavatar.avatar.landmarks import detect_faces, mouth_metrics

    idle, assets = decoded_bundle(bundle)
    found = {}
    for name in assets.sprites:
        faces = detect_faces(compose_frame(idle[0], assets, 0, {name: 1.0}))
        found[name] = mouth_metrics(faces[0]).aperture if faces else 0.0
    return found


def predicted_opening(messages: list[dict], utterance_id: str, times_s: np.ndarray, scale: dict[str, float]):
    """The aperture the utterance's timeline predicts at utterance times TIMES_S (the mixer, the loudness rule,
    each sprite's aperture weighted by its share)."""
    from photoavatar.animate.jaw import jaw_weights
    from photoavatar.animate.mixer import mix
    from photoavatar.speech.types import ProsodyFrame, VisemeEvent

    events = [VisemeEvent.from_json(e) for m in messages if m["type"] == "viseme" and m["utterance_id"] == utterance_id
              for e in m["events"]]
    prosody = [ProsodyFrame.from_json(f) for m in messages if m["type"] == "prosody" and m["utterance_id"] == utterance_id
               for f in m["frames"]]
    order = np.argsort(times_s)
    mixed = mix(events, prosody, [max(0.0, float(t)) for t in times_s[order]])
    opening = np.empty(len(times_s))
    for position, frame in zip(order, mixed, strict=True):
        weights = jaw_weights(frame.weights, frame.loudness)
        opening[position] = sum(w * scale.get(name, 0.0) for name, w in weights.items())
    return opening, events


def best_lag_ms(measured: np.ndarray, heard_s: np.ndarray, model) -> float | None:
    """The lag L (ms) maximising the correlation of the measured apertures with model(heard - L)."""
    keep = ~np.isnan(measured)
    if keep.sum() < 10 or np.std(measured[keep]) < 1e-3:
        return None
    scores = []
    for lag in LAGS_MS:
        predicted = model(heard_s[keep] - lag / 1000.0)
        scores.append(np.corrcoef(measured[keep], predicted)[0, 1] if np.std(predicted) > 0 else -1)
    best = int(np.argmax(scores))
    # refine between the neighbours (a parabola through three scores)
    if 0 < best < len(LAGS_MS) - 1:
        left, middle, right = scores[best - 1], scores[best], scores[best + 1]
        curvature = left - 2 * middle + right
        shift = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
        return float(LAGS_MS[best] + shift * (LAGS_MS[1] - LAGS_MS[0]))
    return float(LAGS_MS[best])


def analyse_utterance(taken: dict, app, session_id: str, scale: dict[str, float]) -> dict:
    """Transport A/V offset, picture lip-sync offset and closures of the one utterance in TAKEN."""
    [start] = [m for m in taken["messages"] if m["type"] == "utterance_start"]
    clock = AudioClock.fit(taken["ssrc"], taken["output_latency_ms"])
    s0_heard_ms = clock.heard_ms(start["rtp_timestamp"])
    transport = app.state.photoavatar.sessions.get(session_id).transport
    frames = [f for f in taken["frames"] if f.get("jpeg") and f["rtp"] is not None]
    display_ms = np.array([f["display_ms"] for f in frames])
    frame_s = 1.0 / transport.video.track.fps
    mid_display_ms = display_ms + 500 * frame_s  # a frame is on screen for 1/fps and shows its middle
    # Transport: the stream time frame k starts at, from its RTP timestamp and the server's video origin;
    # the same stream time's audio RTP is the audio origin + look-ahead + samples (WebRtcTransport).
    video_zero = transport.video.track.rtp_timestamp_of(0.0)
    stream_s = unwrap([f["rtp"] for f in frames], video_zero) / 90000.0
    audio_rtp = [transport.rtp_timestamp_at(int(round(s * 48000))) for s in stream_s]
    transport_offsets = display_ms - np.array([clock.heard_ms(r) for r in audio_rtp])
    heard_s = (mid_display_ms - s0_heard_ms) / 1000.0  # utterance time heard at each frame's middle
    measured = np.array(apertures(frames))

    def model(times_s: np.ndarray) -> np.ndarray:
        return predicted_opening(taken["messages"], start["utterance_id"], times_s, scale)[0]

    _, events = predicted_opening(taken["messages"], start["utterance_id"], np.array([0.0]), scale)
    closures = []
    for event in (e for e in events if e.viseme == "MBP"):
        during = (heard_s >= event.start_s - frame_s) & (heard_s <= event.end_s + frame_s)
        closures.append(bool(np.any(measured[during] <= CLOSED_APERTURE)) if during.any() else False)
    lip_sync_ms = best_lag_ms(measured, heard_s, model)
    latency_ms = taken["output_latency_ms"]
    # Both against the audio as played out (the receiver's SSRC timestamp: what its A/V sync aligns to) and as
    # heard (plus the output device's latency, which a headless Chromium's fake device may not tell WebRTC).
    return {"transport_offset_ms": float(np.median(transport_offsets)) + latency_ms,
            "transport_offset_heard_ms": float(np.median(transport_offsets)),
            "lip_sync_ms": None if lip_sync_ms is None else lip_sync_ms + latency_ms,
            "lip_sync_heard_ms": lip_sync_ms, "output_latency_ms": latency_ms,
            "bilabials": len(closures), "closed": sum(closures), "frames": len(frames)}


# -- rounds -----------------------------------------------------------------------------------------------

def measure_sync(browser, base: str, app, bundle, count: int) -> list[dict]:
    scale = viseme_apertures(bundle)
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(base + "server_video.js")  # any page of the origin
        [session_id] = page.evaluate(CLIENT_JS, {"count": 1, "video": True, "capture": True})
        # Record every utterance first, analyse after: MediaPipe in this process (the server's) between utterances
        # starved the server's pacing and the browser, and the A/V sync took seconds to recover (measured).
        recorded = [page.evaluate(SPEAK_JS, [TEXTS[i % len(TEXTS)], TIMEOUT_MS])[0] for i in range(count)]
        rows = []
        for i, taken in enumerate(recorded):
            row = analyse_utterance(taken, app, session_id, scale)
            rows.append(row)
            print(f"  utterance {i + 1}/{count}: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                                             for k, v in row.items()), file=sys.stderr, flush=True)
        page.evaluate(CLOSE_JS)
        return rows
    finally:
        context.close()


def measure_sessions(browser, base: str, app, count: int, video: bool) -> dict:
    registry = app.state.photoavatar.sessions
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(base + "server_video.js")
        sessions = [registry.get(sid) for sid in page.evaluate(CLIENT_JS, {"count": count, "video": video, "capture": False})]
        for session in sessions:
            session.transport.track.late_frames = 0
            session.transport.playout.underrun_frames = 0
        sent_before = [s.transport.video.track.frames_sent if video else 0 for s in sessions]
        skipped_before = [s.transport.video.track.skipped_frames if video else 0 for s in sessions]
        late_before = [s.transport.video.track.late_frames if video else 0 for s in sessions]
        cpu_before, wall_before = cpu_s(), time.monotonic()
        taken = page.evaluate(SPEAK_JS, [SESSION_TEXT, TIMEOUT_MS])
        cpu, wall = cpu_s() - cpu_before, time.monotonic() - wall_before
        result = {"sessions": count, "video": video, "cpu_per_session": cpu / wall / count,
                  "late_audio": sum(s.transport.track.late_frames for s in sessions),
                  "underruns": sum(s.transport.playout.underrun_frames for s in sessions),
                  "concealed_ms": sum(t["concealed_ms"] for t in taken),
                  "done": sum(t["ends"] == ["done"] for t in taken)}
        if video:
            result["sent_fps"] = min((s.transport.video.track.frames_sent - b) / wall for s, b in zip(sessions, sent_before, strict=True))
            result["decoded_fps"] = min(t["decoded_fps"] for t in taken)
            result["skipped"] = sum(s.transport.video.track.skipped_frames - b for s, b in zip(sessions, skipped_before, strict=True))
            result["late_video"] = sum(s.transport.video.track.late_frames - b for s, b in zip(sessions, late_before, strict=True))
            result["render_ms"] = statistics.median(s.transport.video.track.render_s * 1000 for s in sessions)
            result["encode_ms"] = statistics.median(s.transport.video.track.encode_s * 1000 for s in sessions)
        page.evaluate(CLOSE_JS)
        return result
    finally:
        context.close()


# -- tables -----------------------------------------------------------------------------------------------

def print_sync_table(rows: list[dict]) -> None:
    def column(key):
        return [r[key] for r in rows if r[key] is not None]

    bilabials, closed = sum(r["bilabials"] for r in rows), sum(r["closed"] for r in rows)
    print(f"\n{'measure (+ = picture late)':<62} {'n':>3} {'median':>8} {'min':>7} {'max':>7}  target")
    for label, key, target in (
            ("transport A/V: frame shown - its audio played out (ms)", "transport_offset_ms", ""),
            ("lip sync from the picture (landmarks) vs audio played out (ms)", "lip_sync_ms", ""),
            ("transport A/V: frame shown - its audio heard (ms)", "transport_offset_heard_ms", ""),
            ("lip sync from the picture vs audio heard (+ output latency, ms)", "lip_sync_heard_ms", "|median| <= 20"),
            ("output latency (AudioContext outputLatency + baseLatency, ms)", "output_latency_ms", "")):
        values = column(key)
        if not values:
            print(f"{label:<62} {0:>3} {'-':>8}")
            continue
        verdict = "" if not target else ("met" if abs(statistics.median(values)) <= 20 else "NOT met")
        print(f"{label:<62} {len(values):>3} {statistics.median(values):>8.1f} {min(values):>7.1f} "
              f"{max(values):>7.1f}  {target} {verdict}")
    print(f"{'bilabials closed on the played video':<62} {bilabials:>3} {closed:>8}/{bilabials:<7}        every one "
          f"{'met' if closed == bilabials else 'NOT met'}")


SESSION_HEADER = (f"{'kind':>6} {'n':>3} {'CPU/session':>11} {'sent fps':>8} {'decoded fps':>11} {'skipped':>7} {'late':>5} "
                  f"{'render ms':>9} {'encode ms':>9} {'late audio':>10} {'underruns':>9} {'concealed ms':>12} {'done':>4}")


def print_session_row(r: dict) -> None:
    video = r["video"]

    def value(key, spec):
        return format(r[key], spec) if video and r.get(key) is not None else "-"

    print(f"{'video' if video else 'audio':>6} {r['sessions']:>3} {100 * r['cpu_per_session']:>10.0f}% "
          f"{value('sent_fps', '8.1f'):>8} {value('decoded_fps', '11.1f'):>11} {value('skipped', 'd'):>7} "
          f"{value('late_video', 'd'):>5} "
          f"{value('render_ms', '9.1f'):>9} {value('encode_ms', '9.1f'):>9} {r['late_audio']:>10} {r['underruns']:>9} "
          f"{r['concealed_ms']:>12.0f} {r['done']:>4}", flush=True)


def holds(r: dict) -> bool:
    """At least 25 fps sent and decoded, no audio underrun and no audio frame sent late, every session done
    (the browser's concealed audio is in the table: on a shared machine it counts the browser's own starvation)."""
    fps_ok = not r["video"] or (r["sent_fps"] >= 24.5 and (r["decoded_fps"] or 0) >= 24.5)
    return fps_ok and r["underruns"] == 0 and r["late_audio"] == 0 and r["done"] == r["sessions"]


def main() -> int:
    parser = bench_parser(__doc__.splitlines()[0], utterances=6, sessions="1,2,3",
                          utterances_help="utterances for the lip-sync measurement (0: none)")
    parser.add_argument("--photo", default="grace_hopper.jpg", help="the portrait (shared/testdata/faces)")
    args = parser.parse_args()
    if CHROMIUM is None:
        print(MISSING_CHROMIUM, file=sys.stderr)
        return 2
    print(load_average_line())
    from playwright.sync_api import sync_playwright

    from photoavatar.avatar.build import avatarize

    with tempfile.TemporaryDirectory() as folder:
        bundle = avatarize(FACES / args.photo, Path(folder) / "grace", progress=lambda *_: None)
        with running_server(Path(folder), max(args.sessions, default=1) + 2) as (base, app), \
                sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                if args.utterances:
                    print_sync_table(measure_sync(browser, base, app, bundle, args.utterances))
                rows = []
                if args.sessions:
                    print("\n" + SESSION_HEADER, flush=True)
                for n in args.sessions:
                    for video in (True, False):
                        try:
                            rows.append(measure_sessions(browser, base, app, n, video))
                            print_session_row(rows[-1])
                        except Exception as error:  # an overloaded round is a result too
                            print(f"{'video' if video else 'audio':>6} {n:>3} failed: {str(error).splitlines()[0][:100]}")
                print_capacity(rows)
            finally:
                browser.close()
    print(load_average_line().replace("at start", "at end"))
    return 0


def print_capacity(rows: list[dict]) -> None:
    held_video = [r["sessions"] for r in rows if r["video"] and holds(r)]
    held_audio = [r["sessions"] for r in rows if not r["video"] and holds(r)]
    video_cpu = [r["cpu_per_session"] for r in rows if r["video"]]
    audio_cpu = [r["cpu_per_session"] for r in rows if not r["video"]]
    if not rows:
        return
    print(f"\nvideo sessions held at >= 25 fps, no audio underrun or late audio: {max(held_video, default=0)} of those tried "
          f"(target >= 2); audio-only (client-rendered) sessions held: {max(held_audio, default=0)} of those tried")
    if video_cpu and audio_cpu:
        print(f"CPU per session: video {100 * statistics.median(video_cpu):.0f} % of a core, client-rendered "
              f"{100 * statistics.median(audio_cpu):.0f} %: a video session costs "
              f"{statistics.median(video_cpu) / max(statistics.median(audio_cpu), 1e-6):.1f}x; "
              f"this machine ({os.cpu_count()} cores) fits about {os.cpu_count() / statistics.median(video_cpu):.0f} "
              f"video or {os.cpu_count() / max(statistics.median(audio_cpu), 1e-6):.0f} client-rendered sessions by CPU")


if __name__ == "__main__":
    sys.exit(main())
