// The bundled web page: pick an avatar and a voice, connect, type, watch it speak.
// Data flow per animation frame: playout clock (sync.js) -> mixer (mixer.js) -> canvas (compose.js).
// `window.photoavatar` exposes state and measurements for the browser tests and for curious users.

import { Compositor, idleFrameIndex } from "./compose.js";
import { MixerConfig, REST, VisemeMixer } from "./mixer.js";
import * as server from "./protocol.js";
import { ServerVideoView } from "./server_video.js";
import { StreamOnsetListener, UtteranceScheduler } from "./sync.js";

const $ = (id) => document.getElementById(id);
const base = new URL(".", location.href).href;
const HISTORY = 20; // readouts show the median of the last HISTORY measurements

const page = {
  state: "idle", detail: "", session: null, link: null, scheduler: null, compositor: null,
  listener: null, audioContext: null, context: null, mediaTimeS: 0, lastFrame: null, pendingSpeakMs: null, pendingServerMs: null,
  restSnapshot: null, mouthBox: null,
  view: null, // server-video mode (server_video.js): the server composes, a <video> plays; no canvas
};
const stats = {
  frames: 0, fps: 0, drawMs: 0, blendMs: 0, outputLatencyMs: 0,
  speakToFirstAudioMs: [], serverMs: [], networkMs: [], avOffsetMs: [], syncObservations: 0,
  messages: 0, badMessages: 0, lastError: null,
  gaps: 0, gapMs: 0, // utterance_gap: silent frames a busy server sent mid-utterance, and their length
  // The scheduler decides the mode (and may switch it on an utterance_start anchor): read it, never copy it.
  get mode() { return page.scheduler?.mode ?? null; },
};

window.photoavatar = {
  get state() { return page.state; },
  get detail() { return page.detail; },
  get session() { return page.session && { session_id: page.session.session_id, transport: page.session.transport }; },
  get mixerFrame() { return page.lastFrame; },
  stats,
  mouthDifference,
};

const median = (values) => {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const remember = (list, value) => { list.push(value); if (list.length > HISTORY) list.shift(); };
const ms = (value) => (value === null ? "–" : `${Math.round(value)} ms`);

function setState(state, detail = "") {
  page.state = state;
  page.detail = detail;
  const status = $("status");
  status.dataset.state = state;
  status.textContent = {
    idle: "choose an avatar and connect", connecting: `connecting… ${detail}`, ready: "ready",
    speaking: "speaking", error: `error: ${detail}`,
  }[state];
  // An utterance that failed leaves the session usable: keep the controls while connected.
  const live = state === "ready" || state === "speaking" || (state === "error" && page.link !== null);
  for (const id of ["text", "speak", "stop"]) $(id).disabled = !live;
  $("connect").disabled = state === "connecting";
  $("connect").textContent = live ? "Reconnect" : "Connect";
}

function showError(error) {
  console.error(error);
  stats.lastError = error.message;
  setState("error", error.message);
}

async function fillPickers() {
  try {
    const [avatars, voices] = await Promise.all([server.listAvatars(base), server.listVoices(base)]);
    $("avatar-select").replaceChildren(...avatars.map((id) => new Option(id, id)));
    $("voice-select").append(...voices.map((v) => new Option(`${v.name} (${v.language}, ${v.engine})`, v.voice_id)));
    if (!avatars.length) showError(new Error("the server has no avatars yet; run `photoavatar demo` or POST a photo to /avatars"));
    applyLimits(await server.callApi(base, "/limits"));
  } catch (error) {
    showError(error);
  }
}

/** The server's own limits (GET /limits): the text box takes no more than /speak accepts. */
function applyLimits(limits) {
  $("text").maxLength = limits.max_text_chars;
}

function loadScript(url) {
  return new Promise((resolve, reject) => {
    const script = Object.assign(document.createElement("script"), { src: url, onload: resolve });
    script.onerror = () => reject(new Error(`cannot load ${url}`));
    document.head.append(script);
  });
}

function onChannelMessage(label, text) {
  try {
    const message = server.parseMessage(text);
    stats.messages += 1;
    page.scheduler?.handle(message);
    if (message.type === "utterance_start" && Number.isFinite(message.server_s)) page.pendingServerMs = message.server_s * 1000;
    if (message.type === "utterance_gap") { stats.gaps += 1; stats.gapMs += message.gap_s * 1000; }
    if (message.type === "utterance_end" && message.reason === "error") showError(new Error(message.error ?? "the server could not speak that"));
  } catch (error) {
    stats.badMessages += 1;
    console.warn(`ignored a ${label} message:`, error.message);
  }
}

async function startIdleVideo(url) {
  const video = $("idle");
  video.src = url;
  await video.play();
  const follow = (now, metadata) => { page.mediaTimeS = metadata.mediaTime; video.requestVideoFrameCallback(follow); };
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(follow);
  if (video.readyState < 2) await new Promise((resolve) => video.addEventListener("loadeddata", resolve, { once: true }));
  return video;
}

function sizeCanvas(manifest, video) {
  const [width, height] = manifest?.frame_size ?? [video.videoWidth, video.videoHeight];
  const canvas = $("avatar");
  canvas.width = width;
  canvas.height = height;
  page.context = canvas.getContext("2d", { willReadFrequently: false });
}

async function connect(event) {
  event.preventDefault();
  // Created inside the click so it may start; the onset listener needs it in both transports.
  page.audioContext ??= new AudioContext({ latencyHint: "interactive" });
  page.audioContext.resume();
  await disconnect();
  setState("connecting", "creating a session");
  try {
    const serverVideo = $("server-video").checked;
    const session = await server.createSession(base, $("avatar-select").value, $("voice-select").value || null,
      { video: serverVideo });
    page.session = session;
    setState("connecting", "loading the avatar");
    const { compositor, manifest } = serverVideo ? { compositor: null, manifest: null } : await Compositor.load(session.assets);
    page.compositor = compositor;
    $("avatar").hidden = serverVideo;
    if (!serverVideo) sizeCanvas(manifest, await startIdleVideo(session.assets.idle));
    setState("connecting", `joining (${session.transport})`);
    const options = { onMessage: onChannelMessage, iceServers: session.ice_servers ?? [], loadScript };
    page.link = session.transport === "livekit" ? await server.connectLiveKit(session, options) : await server.connectWebRtc(session, options);
    watchConnection(page.link);
    if (serverVideo) page.view = await ServerVideoView.start($("server-view"), page.link.stream, session.assets.roi);
    else await playRemoteAudio(page.link.stream);
    page.listener = new StreamOnsetListener(page.audioContext, page.link.stream);
    // In server-video mode the mixer only tells speaking from ready (the server draws the mouth).
    const config = new MixerConfig(compositor ? { visemes: manifest?.visemes ?? Object.keys(compositor.layout.sprites) } : {});
    page.scheduler = new UtteranceScheduler((startS) => new VisemeMixer(config, startS),
      { mode: session.transport === "livekit" ? "onset" : "rtp" });
    setState("ready");
    requestAnimationFrame(renderLoop);
  } catch (error) {
    await disconnect();
    showError(error);
  }
}

async function playRemoteAudio(stream) {
  const audio = $("voice");
  audio.srcObject = stream;
  try {
    await audio.play();
  } catch {
    // Autoplay refused: the stream still decodes once the user clicks anywhere.
    document.addEventListener("click", () => audio.play(), { once: true });
  }
}

function watchConnection(link) {
  const pc = link.pc;
  if (pc) {
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "failed" || pc.connectionState === "closed") {
        if (page.link === link) showError(new Error("the connection to the server was lost; press Connect to start again"));
      }
    });
  }
  link.room?.on?.("disconnected", () => {
    if (page.link === link) showError(new Error("the LiveKit room closed; press Connect to start again"));
  });
}

async function disconnect() {
  const link = page.link;
  page.link = null;
  page.scheduler = null;
  page.listener?.close();
  page.listener = null;
  page.restSnapshot = null;
  page.view?.close();
  page.view = null;
  if (link) await link.close();
}

/** How long after the receiver plays audio out it is heard: the output device's latency (docs/client.md). */
function outputLatencyMs() {
  const context = page.audioContext;
  return ((context?.outputLatency ?? 0) + (context?.baseLatency ?? 0)) * 1000;
}

function observePlayout() {
  const receiver = page.link?.receiver;
  if (page.scheduler.mode !== "rtp" || !receiver?.getSynchronizationSources) return;
  page.scheduler.clock.outputLatencyMs = outputLatencyMs();
  for (const source of receiver.getSynchronizationSources()) {
    if (page.scheduler.clock.observe(source, performance.timeOrigin)) stats.syncObservations += 1;
  }
}

function listenForOnset() {
  const onsetMs = page.listener?.poll();
  if (onsetMs == null) return;
  if (page.pendingSpeakMs !== null && onsetMs > page.pendingSpeakMs) {
    remember(stats.speakToFirstAudioMs, onsetMs - page.pendingSpeakMs);
    if (page.pendingServerMs !== null) {  // where it went: the server's part, the rest is network + jitter buffer
      remember(stats.serverMs, page.pendingServerMs);
      remember(stats.networkMs, onsetMs - page.pendingSpeakMs - page.pendingServerMs);
    }
    page.pendingSpeakMs = null;
    page.pendingServerMs = null;
  }
  const before = page.scheduler.lastAvOffsetMs;
  page.scheduler.onset(onsetMs);
  if (page.scheduler.lastAvOffsetMs !== before) remember(stats.avOffsetMs, page.scheduler.lastAvOffsetMs);
}

const REST_FRAME = { weights: { [REST]: 1 }, loudness: 0, nod: 0, brow: 0 };

function renderLoop(perfMs) {
  if (!page.scheduler) return;
  const started = performance.now();
  observePlayout();
  listenForOnset();
  const frame = page.scheduler.advance(performance.now()) ?? REST_FRAME;
  page.lastFrame = frame;
  if (page.compositor) {
    const { fps, frameCount } = page.compositor.layout;
    const index = idleFrameIndex(page.mediaTimeS || $("idle").currentTime, fps, frameCount);
    page.compositor.draw(page.context, $("idle"), index, frame);
    page.restSnapshot ??= captureMouth();
  }
  if (page.state === "ready" || page.state === "speaking") setState(page.scheduler.speaking ? "speaking" : "ready");
  stats.frames += 1;
  stats.drawMs = performance.now() - started;
  stats.blendMs = page.compositor?.blendMs ?? 0;
  updateReadout(perfMs);
  requestAnimationFrame(renderLoop);
}

let fpsWindow = { start: 0, frames: 0 };
function updateReadout(perfMs) {
  fpsWindow.frames += 1;
  if (perfMs - fpsWindow.start < 1000) return;
  stats.fps = (fpsWindow.frames * 1000) / (perfMs - fpsWindow.start);
  stats.outputLatencyMs = outputLatencyMs();
  fpsWindow = { start: perfMs, frames: 0 };
  $("latency").textContent = `${ms(median(stats.speakToFirstAudioMs))} (server ${ms(median(stats.serverMs))}, ` +
    `network + jitter buffer ${ms(median(stats.networkMs))}, then output ${ms(stats.outputLatencyMs)})`;
  $("av-offset").textContent = ms(median(stats.avOffsetMs));
  $("gaps").textContent = stats.gaps ? `${stats.gaps} (${ms(stats.gapMs)} of silence: the server fell behind; the mouth waits with the voice)` : "none";
  $("sync-mode").textContent = stats.mode === "rtp" ? `RTP clock (${stats.syncObservations} playout observations)` : "first audio after silence";
  $("render").textContent = page.view ? `server video, ${(page.view.fps ?? 0).toFixed(0)} fps shown`
    : `${stats.fps.toFixed(0)} fps, ${stats.drawMs.toFixed(1)} ms/frame`;
}

/** The mouth rectangle on the canvas (roi.json `mouth` at the untransformed frame), for mouthDifference. */
function mouthBox() {
  const { x, y, w, h } = page.compositor.layout.mouth ?? {};
  if (w > 0) return { x: Math.floor(x), y: Math.floor(y), w: Math.ceil(w), h: Math.ceil(h) };
  const { placement, spriteW, spriteH } = page.compositor.layout;
  return { x: placement.x, y: placement.y, w: spriteW, h: spriteH };
}

function captureMouth() {
  page.mouthBox = mouthBox();
  const { x, y, w, h } = page.mouthBox;
  return page.context.getImageData(x, y, w, h).data;
}

/** Mean absolute difference (0-255) between the mouth drawn now and the mouth drawn at rest on connecting. */
function mouthDifference() {
  if (page.view) return page.view.mouthDifference();
  if (!page.restSnapshot) return null;
  const now = captureMouth();
  let total = 0;
  for (let i = 0; i < now.length; i += 4) {
    total += Math.abs(now[i] - page.restSnapshot[i]) + Math.abs(now[i + 1] - page.restSnapshot[i + 1]) + Math.abs(now[i + 2] - page.restSnapshot[i + 2]);
  }
  return total / ((now.length / 4) * 3);
}

async function onSpeak(event) {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  page.pendingSpeakMs = performance.now();
  page.pendingServerMs = null;
  if (page.state === "error") setState("ready");
  try {
    await server.speak(base, page.session, text, $("barge-in").checked);
  } catch (error) {
    page.pendingSpeakMs = null;
    showError(error);
  }
}

async function onStop() {
  try {
    await server.stop(base, page.session);
  } catch (error) {
    showError(error);
  }
}

$("connect-form").addEventListener("submit", connect);
$("speak-form").addEventListener("submit", onSpeak);
$("stop").addEventListener("click", onStop);
setState("idle");
fillPickers();
