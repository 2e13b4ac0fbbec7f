// The client side of docs/protocol.md: HTTP calls, the WHEP-style WebRTC connection, LiveKit, and the
// validation of channel messages. Everything here throws errors whose message can be shown to the user.

export const PROTOCOL_VERSION = 1;
export const RTP_CLOCK_HZ = 48000; // utterance_start.rtp_clock_hz (docs/protocol.md; live/protocol.py)
const ICE_GATHERING_TIMEOUT_MS = 5000;
const CONNECT_TIMEOUT_MS = 15000;

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }

  get name() { return "ApiError"; }
}

export class ProtocolError extends Error {
  get name() { return "ProtocolError"; }
}

async function errorDetail(response) {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text);
    if (typeof body.detail === "string") return body.detail;
    if (body.detail) return JSON.stringify(body.detail); // FastAPI validation errors are a list
  } catch { /* not JSON (a proxy's or a static server's page): say where it came from instead */ }
  return `HTTP ${response.status} ${response.statusText} from ${new URL(response.url).pathname}; is this a photoavatar server?`;
}

/** fetch + JSON with the server's {"detail"} as the error message. */
/** The Bearer for /speak, /stop and signalling: `session_token` (LiveKit's `token` is for the room only). */
export function sessionToken(session) {
  return session.session_token ?? session.token;
}

export async function callApi(base, path, { method = "GET", body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(new URL(path, base), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new ApiError(0, `cannot reach the server at ${base} (${error.message}); is \`photoavatar serve\` running?`);
  }
  if (!response.ok) throw new ApiError(response.status, await errorDetail(response));
  return response.status === 204 ? null : response.json();
}

/** GET /avatars answers a list of ids; accept objects with avatar_id/id too. */
export async function listAvatars(base) {
  const answer = await callApi(base, "/avatars");
  const items = Array.isArray(answer) ? answer : answer?.avatars ?? [];
  return items.map((item) => (typeof item === "string" ? item : item.avatar_id ?? item.id)).filter(Boolean);
}

export async function listVoices(base) {
  const answer = await callApi(base, "/voices");
  return Array.isArray(answer) ? answer : answer?.voices ?? [];
}

/** POST /session-live; asset URLs come back resolved against the server. VIDEO asks for the server's video track. */
export async function createSession(base, avatarId, voiceId, { video = false } = {}) {
  const body = { avatar_id: avatarId };
  if (voiceId) body.voice_id = voiceId;
  if (video) body.video = true;
  const session = await callApi(base, "/session-live", { method: "POST", body });
  for (const key of ["session_id", "transport", "url", "token"]) {
    if (!session?.[key]) throw new ProtocolError(`the server's session answer has no ${key}; is the server speaking protocol ${PROTOCOL_VERSION}?`);
  }
  session.url = new URL(session.url, base).href;
  session.assets = Object.fromEntries(Object.entries(session.assets ?? {}).map(([k, url]) => [k, new URL(url, base).href]));
  session.labels = { viseme: "viseme", prosody: "prosody", ...(session.labels ?? {}) };
  return session;
}

export function speak(base, session, text, bargeIn) {
  return callApi(base, "/speak", { method: "POST", token: sessionToken(session), body: { session_id: session.session_id, text, barge_in: bargeIn } });
}

export function stop(base, session) {
  return callApi(base, "/stop", { method: "POST", token: sessionToken(session), body: { session_id: session.session_id } });
}

const finite = (x) => typeof x === "number" && Number.isFinite(x);

/** Parses one channel message; throws ProtocolError for anything the mixer must not see. */
export function parseMessage(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    throw new ProtocolError(`a channel message is not JSON: ${String(text).slice(0, 80)}`);
  }
  const bad = (what) => new ProtocolError(`bad ${message?.type ?? "untyped"} message: ${what}`);
  if (!message || typeof message.type !== "string") throw bad("no type");
  if (message.utterance_id === undefined) throw bad("no utterance_id");
  if (message.type === "utterance_start") {
    if (!Number.isInteger(message.rtp_timestamp) || message.rtp_timestamp < 0 || message.rtp_timestamp >= 2 ** 32) throw bad("rtp_timestamp is not a 32-bit integer");
    if ((message.rtp_clock_hz ?? RTP_CLOCK_HZ) !== RTP_CLOCK_HZ) throw bad(`rtp_clock_hz ${message.rtp_clock_hz} is not ${RTP_CLOCK_HZ}`);
  } else if (message.type === "viseme") {
    if (!Array.isArray(message.events)) throw bad("events is not a list");
    message.events = message.events.filter((e) => typeof e.viseme === "string" && finite(e.start_s) && finite(e.end_s))
      .map((e) => ({ viseme: e.viseme, start_s: e.start_s, end_s: e.end_s, weight: finite(e.weight) ? e.weight : 1.0 }));
  } else if (message.type === "prosody") {
    if (!Array.isArray(message.frames)) throw bad("frames is not a list");
    message.frames = message.frames.filter((f) => finite(f.time_s) && finite(f.loudness_db))
      .map((f) => ({ time_s: f.time_s, loudness_db: f.loudness_db, pitch_hz: finite(f.pitch_hz) ? f.pitch_hz : 0, accent: finite(f.accent) ? f.accent : 0 }));
  } else if (message.type === "utterance_gap") {
    if (!finite(message.at_s) || message.at_s < 0 || !finite(message.gap_s) || message.gap_s < 0) throw bad("at_s and gap_s must be seconds >= 0");
  } else if (message.type !== "utterance_end") {
    throw bad("unknown type");
  }
  return message;
}

function waitForIceGathering(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", done); resolve(); } };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, ICE_GATHERING_TIMEOUT_MS); // send what we have: host candidates come first
  });
}

function waitForOpen(channel) {
  if (channel.readyState === "open") return Promise.resolve();
  return new Promise((resolve, reject) => {
    channel.addEventListener("open", resolve, { once: true });
    channel.addEventListener("close", () => reject(new ProtocolError(`the ${channel.label} channel closed before it opened`)), { once: true });
  });
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new ProtocolError(what)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The embedded transport: recvonly audio (+ video when session.video) + the two data channels, non-trickle offer
 * POSTed to session.url. onMessage(label, text) gets every channel message. Returns {pc, receiver, stream, close};
 * with video, the stream holds both tracks (one element plays them in sync).
 */
export async function connectWebRtc(session, { onMessage, iceServers = [] }) {
  // The server lists ICE servers as URL strings ("stun:host:3478") or as RTCIceServer objects.
  const servers = iceServers.map((server) => (typeof server === "string" ? { urls: server } : server));
  const pc = new RTCPeerConnection({ iceServers: servers });
  try {
    const transceiver = pc.addTransceiver("audio", { direction: "recvonly" });
    const video = session.video ? pc.addTransceiver("video", { direction: "recvonly" }) : null;
    const channels = [session.labels.viseme, session.labels.prosody].map((label) => {
      const channel = pc.createDataChannel(label, { ordered: true });
      channel.addEventListener("message", (event) => onMessage(label, event.data));
      return channel;
    });
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc);
    const response = await fetch(session.url, {
      method: "POST",
      headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${sessionToken(session)}` },
      body: pc.localDescription.sdp,
    });
    if (!response.ok) throw new ApiError(response.status, await errorDetail(response));
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    await withTimeout(Promise.all(channels.map(waitForOpen)), CONNECT_TIMEOUT_MS,
      "the WebRTC connection did not open within 15 s; a firewall may block UDP between you and the server");
    const receiver = transceiver.receiver;
    const tracks = [receiver.track, ...(video ? [video.receiver.track] : [])];
    return { pc, receiver, stream: new MediaStream(tracks), close: () => pc.close() };
  } catch (error) {
    pc.close();
    throw error;
  }
}

/**
 * The LiveKit transport (vendor/livekit-client.umd.js, loaded on demand): join with url + token, take the first
 * remote audio track (and, when session.video, the avatar's video track), and read `viseme`/`prosody` data by
 * topic. Returns {room, receiver, stream, close}.
 */
export async function connectLiveKit(session, { onMessage, loadScript }) {
  if (!globalThis.LivekitClient) await loadScript(new URL("./vendor/livekit-client.umd.js", import.meta.url).href);
  const { Room, RoomEvent, Track } = globalThis.LivekitClient;
  const room = new Room({ adaptiveStream: false, dynacast: false });
  const decoder = new TextDecoder();
  const topics = new Set([session.labels.viseme, session.labels.prosody]);
  room.on(RoomEvent.DataReceived, (payload, participant, kind, topic) => {
    if (topics.has(topic)) onMessage(topic, decoder.decode(payload));
  });
  const subscribed = (kind) => new Promise((resolve) => {
    room.on(RoomEvent.TrackSubscribed, (track) => { if (track.kind === kind) resolve(track); });
  });
  const audio = subscribed(Track.Kind.Audio);
  const video = session.video ? subscribed(Track.Kind.Video) : null;
  try {
    await room.connect(session.url, session.token, { autoSubscribe: true });
    const track = await withTimeout(audio, CONNECT_TIMEOUT_MS, "no avatar audio arrived from the LiveKit room within 15 s");
    const tracks = [track.mediaStreamTrack];
    if (video) tracks.push((await withTimeout(video, CONNECT_TIMEOUT_MS, "no avatar video arrived from the LiveKit room within 15 s")).mediaStreamTrack);
    return { room, receiver: track.receiver, stream: new MediaStream(tracks), close: () => room.disconnect() };
  } catch (error) {
    await room.disconnect();
    throw error;
  }
}
