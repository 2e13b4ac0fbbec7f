// Runs web/mixer.js over mixer vector files and compares every number with the Python mixer's output.
// Usage: node check_mixer_vectors.mjs TOLERANCE MODE FILE...; prints one JSON line per file; exit 1 on any mismatch.
// MODE "mix" runs mix(); MODE "live" feeds a long-lived mixer the way the page does: prune() after every frame.
import { readFileSync } from "node:fs";
import { MixerConfig, VisemeMixer, mix } from "../../photoavatar/web/mixer.js";

function mixLive(events, prosody, times, config) {
  const mixer = new VisemeMixer(config, Math.min(...times));
  mixer.addEvents(events);
  mixer.addProsody(prosody);
  return times.map((t) => { const frame = mixer.advanceTo(t); mixer.prune(); return frame; });
}

function compareFrame(expected, actual, where, problems, tolerance) {
  const close = (a, b) => typeof a === "number" && typeof b === "number" && Math.abs(a - b) <= tolerance;
  for (const key of ["time_s", "loudness", "nod", "brow"]) {
    if (!close(expected[key], actual[key])) problems.push(`${where}.${key}: expected ${expected[key]}, got ${actual[key]}`);
  }
  const names = Object.keys(expected.weights);
  if (names.join() !== Object.keys(actual.weights).join()) problems.push(`${where}.weights: names differ`);
  for (const name of names) {
    if (!close(expected.weights[name], actual.weights[name])) {
      problems.push(`${where}.weights.${name}: expected ${expected.weights[name]}, got ${actual.weights[name]}`);
    }
  }
}

const [tolerance, mode, ...files] = process.argv.slice(2);
let failed = false;
for (const file of files) {
  const vector = JSON.parse(readFileSync(file, "utf8"));
  const run = mode === "live" ? mixLive : mix;
  const frames = run(vector.events, vector.prosody, vector.frame_times_s, MixerConfig.fromJson(vector.config));
  const problems = [];
  if (frames.length !== vector.frames.length) problems.push(`frame count: expected ${vector.frames.length}, got ${frames.length}`);
  let compared = 0;
  vector.frames.forEach((expected, index) => {
    if (frames[index]) { compareFrame(expected, frames[index], `frames[${index}]`, problems, Number(tolerance)); compared += 1; }
  });
  failed ||= problems.length > 0;
  console.log(JSON.stringify({ file, frames: compared, problems: problems.slice(0, 5), problem_count: problems.length }));
}
process.exit(failed ? 1 : 0);
