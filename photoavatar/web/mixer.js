// The viseme mixer: the JavaScript twin of photoavatar/animate/mixer.py (read its docstring for the model).
//
// Both are held to the JSON vectors in tests/vectors/ (tests/web/test_mixer_js.py) to 1e-9: change one,
// change both, in the same order of floating-point operations. Data use the wire's snake_case field names
// ({viseme, start_s, end_s, weight}, {time_s, loudness_db, pitch_hz, accent}); methods are camelCase.

export const VISEMES = Object.freeze(["Rest", "AI", "E", "U", "O", "MBP", "FV", "L", "WQ", "R", "CH", "TH"]);
export const REST = "Rest";

// A critically damped spring reaches 1 - 1/e of a step at t = RISE_63 / w.
export const RISE_63 = 2.1461932206205825;
export const LOUDNESS_FLOOR_DB = -50.0;
export const LOUDNESS_RANGE_DB = 40.0;
export const PROSODY_HOLD_S = 0.1; // a prosody frame speaks for this long at most
export const NOD_TIME_S = 0.15;
export const BROW_TIME_S = 0.25;
export const BROW_MIN_ACCENT = 0.6;
export const BUMP_HORIZON = 20.0; // bumps older than this many time constants are negligible (< 1e-7)

export class MixerConfig {
  constructor({ timeConstantS = 0.035, timeConstantOverridesS = {}, visemes = VISEMES } = {}) {
    this.timeConstantS = timeConstantS;
    this.timeConstantOverridesS = { ...timeConstantOverridesS };
    this.visemes = [...visemes];
  }

  omega(viseme) {
    const override = this.timeConstantOverridesS[viseme];
    return RISE_63 / (override === undefined ? this.timeConstantS : override);
  }

  toJson() {
    return { time_constant_s: this.timeConstantS, time_constant_overrides_s: { ...this.timeConstantOverridesS }, visemes: [...this.visemes] };
  }

  static fromJson(data) {
    return new MixerConfig({
      timeConstantS: Number(data.time_constant_s ?? 0.035),
      timeConstantOverridesS: Object.fromEntries(
        Object.entries(data.time_constant_overrides_s ?? {}).map(([k, v]) => [k, Number(v)])),
      visemes: data.visemes ?? VISEMES,
    });
  }
}

/** Exact critically damped motion over dt toward a constant target: returns [x, v]. */
export function springStep(x, v, target, omega, dt) {
  const decay = Math.exp(-omega * dt);
  const offset = x - target;
  const drive = v + omega * offset;
  return [target + (offset + drive * dt) * decay, (v - omega * drive * dt) * decay];
}

export function bump(u) {
  return 0.0 <= u && u <= BUMP_HORIZON ? u * Math.exp(1.0 - u) : 0.0;
}

const clip01 = (x) => Math.min(1.0, Math.max(0.0, x));
const sum = (values) => values.reduce((total, value) => total + value, 0);

/** Index of the first frame whose time_s is greater than t (Python's bisect_right on time_s). */
function bisectRight(frames, t) {
  let low = 0;
  let high = frames.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (t < frames[middle].time_s) high = middle;
    else low = middle + 1;
  }
  return low;
}

export class VisemeMixer {
  constructor(config = new MixerConfig(), startTimeS = 0.0) {
    this.config = config;
    this.timeS = startTimeS;
    this._events = [];
    this._prosody = []; // sorted by time_s; equal times keep arrival order (like bisect.insort)
    this._position = Object.fromEntries(config.visemes.map((name) => [name, name === REST ? 1.0 : 0.0]));
    this._velocity = Object.fromEntries(config.visemes.map((name) => [name, 0.0]));
    this._loudness = [0.0, 0.0];
  }

  addEvents(events) {
    for (const event of events) {
      if (event.viseme in this._position && event.end_s > event.start_s) {
        this._events.push({ viseme: event.viseme, start_s: event.start_s, end_s: event.end_s, weight: event.weight ?? 1.0 });
      }
    }
  }

  addProsody(frames) {
    for (const frame of frames) {
      const copy = { time_s: frame.time_s, loudness_db: frame.loudness_db, pitch_hz: frame.pitch_hz, accent: frame.accent ?? 0.0 };
      this._prosody.splice(bisectRight(this._prosody, copy.time_s), 0, copy);
    }
  }

  /** Drop all pending events (barge-in); the mouth relaxes to Rest from where it is. */
  clear() {
    this._events.length = 0;
    this._prosody.length = 0;
  }

  /**
   * Forget what can no longer change the output after the current time (not in the Python mixer, which
   * renders finite timelines; a live page runs for hours). Events that have ended and prosody frames past
   * both their hold and the bump horizon contribute nothing to any later frame.
   */
  prune() {
    const t = this.timeS;
    this._events = this._events.filter((event) => event.end_s > t);
    const horizonS = Math.max(PROSODY_HOLD_S, BUMP_HORIZON * Math.max(NOD_TIME_S, BROW_TIME_S));
    const latest = bisectRight(this._prosody, t) - 1; // the frame that sets the loudness target now
    this._prosody = this._prosody.filter((frame, index) => index >= latest || t - frame.time_s <= horizonS);
  }

  get pendingCount() {
    return this._events.length + this._prosody.length;
  }

  targets(t) {
    let targets = Object.fromEntries(this.config.visemes.map((name) => [name, 0.0]));
    for (const event of this._events) {
      if (event.viseme !== REST && event.start_s <= t && t < event.end_s) {
        targets[event.viseme] = Math.max(targets[event.viseme], event.weight);
      }
    }
    let total = sum(Object.values(targets));
    if (total > 1.0) {
      targets = Object.fromEntries(Object.entries(targets).map(([name, value]) => [name, value / total]));
      total = 1.0;
    }
    if (REST in targets) targets[REST] = 1.0 - total;
    return targets;
  }

  loudnessTarget(t) {
    const index = bisectRight(this._prosody, t) - 1;
    if (index < 0 || t - this._prosody[index].time_s > PROSODY_HOLD_S) return 0.0;
    const level = (this._prosody[index].loudness_db - LOUDNESS_FLOOR_DB) / LOUDNESS_RANGE_DB;
    return Math.min(1.0, Math.max(0.0, level));
  }

  /** Move the springs to time t (seconds, never backwards) and return the frame there. */
  advanceTo(t) {
    if (t < this.timeS) throw new RangeError(`the mixer cannot go back in time: at ${this.timeS}, asked for ${t}`);
    for (const [start, end] of this._pieces(this.timeS, t)) this._step(start, end);
    this.timeS = t;
    return this.frame();
  }

  frame() {
    const t = this.timeS;
    const clipped = Object.fromEntries(Object.entries(this._position).map(([name, x]) => [name, clip01(x)]));
    const total = sum(Object.values(clipped));
    const weights = total < 1e-9
      ? Object.fromEntries(Object.keys(clipped).map((name) => [name, name === REST ? 1.0 : 0.0]))
      : Object.fromEntries(Object.entries(clipped).map(([name, value]) => [name, value / total]));
    return {
      time_s: t,
      weights,
      loudness: clip01(this._loudness[0]),
      nod: this._bumpSum(t, NOD_TIME_S, 0.0),
      brow: this._bumpSum(t, BROW_TIME_S, BROW_MIN_ACCENT),
    };
  }

  _pieces(start, end) {
    const cuts = new Set([start, end]);
    const addInside = (x) => { if (start < x && x < end) cuts.add(x); };
    for (const event of this._events) { addInside(event.start_s); addInside(event.end_s); }
    for (const frame of this._prosody) { addInside(frame.time_s); addInside(frame.time_s + PROSODY_HOLD_S); }
    const ordered = [...cuts].sort((a, b) => a - b);
    return ordered.slice(1).map((cut, index) => [ordered[index], cut]);
  }

  _step(start, end) {
    const dt = end - start;
    const targets = this.targets(start);
    for (const name of this.config.visemes) {
      [this._position[name], this._velocity[name]] = springStep(
        this._position[name], this._velocity[name], targets[name], this.config.omega(name), dt);
    }
    const [x, v] = this._loudness;
    this._loudness = springStep(x, v, this.loudnessTarget(start), this.config.omega(REST), dt);
  }

  _bumpSum(t, timeConstantS, minAccent) {
    let total = 0.0;
    for (const frame of this._prosody) {
      if (frame.accent > 0.0 && frame.accent >= minAccent) total += frame.accent * bump((t - frame.time_s) / timeConstantS);
    }
    return Math.min(1.0, total);
  }
}

/** Run a mixer over a whole timeline and sample it at the given (increasing) times. */
export function mix(events, prosody, frameTimesS, config = new MixerConfig()) {
  const times = [...frameTimesS];
  const mixer = new VisemeMixer(config, times.length ? Math.min(...times) : 0.0);
  mixer.addEvents(events);
  mixer.addProsody(prosody);
  return times.map((t) => mixer.advanceTo(t));
}
