// Composes one avatar frame on a canvas 2D context, as docs/bundle.md says:
// idle frame i, then Σ w[v]·atlas[v] through mask.png, placed at atlas.json `placement` and moved by
// roi.json head_track[i] (plus a nod of at most NOD_MAX_PX down, from prosody).
//
// Why an ImageData accumulation rather than canvas 'lighter' blending: every sprite drawn with globalAlpha
// rounds to 8 bits on its own, so a 4-way blend can be off by several levels and drift in colour; summing
// floats once and rounding once is exact to ±0.5 and costs about a millisecond for a 200x150 mouth.
// The pure functions (blendSprites, jawWeights, headTransform, idleFrameIndex) run in node for the tests.

export const NOD_MAX_PX = 1.5; // a strong accent drops the mouth region this far (pixels of the idle frame)
// Loudness rule: quiet speech opens the jaw a little less. An open viseme keeps its weight at full loudness
// and gives up to QUIET_JAW_CLOSE·openness of it to Rest at silence; the blend stays convex (no extrapolation).
export const QUIET_JAW_CLOSE = 0.2;
export const JAW_OPENNESS = Object.freeze({ AI: 1.0, O: 0.8, E: 0.5, U: 0.4, CH: 0.3, TH: 0.3, L: 0.3, R: 0.3, WQ: 0.3 });
export const MIN_SPRITE_WEIGHT = 1e-3; // lighter sprites change no pixel by more than 0.25 levels

export class BundleError extends Error {
  get name() { return "BundleError"; }
}

/** Checks atlas.json, roi.json and (optionally) avatar.json against each other; returns the layout. */
export function readLayout(atlas, roi, manifest = null) {
  const fail = (what) => { throw new BundleError(`the avatar bundle is not usable: ${what}; re-run photoavatar avatarize`); };
  if (!atlas || atlas.format_version !== 1) fail("atlas.json is missing or not format_version 1");
  if (!roi || roi.format_version !== 1) fail("roi.json is missing or not format_version 1");
  const [spriteW, spriteH] = atlas.sprite_size ?? [];
  if (!(spriteW > 0 && spriteH > 0)) fail("atlas.json has no positive sprite_size");
  if (!atlas.sprites?.Rest) fail("atlas.json has no Rest sprite");
  for (const [name, rect] of Object.entries(atlas.sprites)) {
    if (rect.w !== spriteW || rect.h !== spriteH) fail(`sprite ${name} is ${rect.w}x${rect.h}, not sprite_size`);
  }
  if (!Array.isArray(roi.head_track) || roi.head_track.length === 0) fail("roi.json has no head_track");
  if (roi.head_track.length !== roi.frame_count) fail(`roi.json has ${roi.head_track.length} head_track rows for ${roi.frame_count} frames`);
  if (manifest && manifest.frame_count !== roi.frame_count) fail("avatar.json and roi.json disagree on frame_count");
  return {
    spriteW, spriteH,
    placement: { x: atlas.placement.x, y: atlas.placement.y },
    sprites: atlas.sprites,
    pivot: roi.pivot,
    mouth: roi.mouth ?? null,
    headTrack: roi.head_track,
    fps: roi.fps ?? 25,
    frameCount: roi.frame_count,
    frameSize: manifest?.frame_size ?? null,
  };
}

/** The idle frame shown at media time t of the looping idle video (frame k spans [k/fps, (k+1)/fps)). */
export function idleFrameIndex(mediaTimeS, fps, frameCount) {
  const index = Math.floor(mediaTimeS * fps + 1e-4);
  return ((index % frameCount) + frameCount) % frameCount;
}

/** Canvas transform [a, b, c, d, e, f] that maps a base point p to pivot + s·(p − pivot) + (dx, dy + nod). */
export function headTransform(layout, frameIndex, nodPx = 0) {
  const [dx, dy, scale] = layout.headTrack[frameIndex % layout.frameCount];
  const [px, py] = layout.pivot;
  return [scale, 0, 0, scale, px - scale * px + dx, py - scale * py + dy + nodPx];
}

/** The mixer's weights with the loudness rule applied (see QUIET_JAW_CLOSE); still sums to the same total. */
export function jawWeights(weights, loudness) {
  const quiet = 1 - Math.min(1, Math.max(0, loudness));
  const out = { ...weights };
  let released = 0;
  for (const [name, openness] of Object.entries(JAW_OPENNESS)) {
    if (!out[name]) continue;
    const give = out[name] * QUIET_JAW_CLOSE * openness * quiet;
    out[name] -= give;
    released += give;
  }
  out.Rest = (out.Rest ?? 0) + released;
  return out;
}

/** Sprites worth drawing: [{name, weight}] over known sprites, light ones dropped, renormalised to sum 1. */
export function activeSprites(weights, spriteNames) {
  const kept = spriteNames.filter((name) => (weights[name] ?? 0) >= MIN_SPRITE_WEIGHT)
    .map((name) => ({ name, weight: weights[name] }));
  const total = kept.reduce((sum, sprite) => sum + sprite.weight, 0);
  if (total <= 0) return [{ name: "Rest", weight: 1 }];
  return kept.map((sprite) => ({ name: sprite.name, weight: sprite.weight / total }));
}

/**
 * out (RGBA bytes) = Σ weight·sprite RGB, alpha = mask. sprites: [{data: RGBA bytes, weight}];
 * mask: one byte per pixel; scratch: a Float32Array of 3 per pixel, reused between frames.
 */
export function blendSprites(out, sprites, mask, scratch = new Float32Array(mask.length * 3)) {
  const pixels = mask.length;
  scratch.fill(0, 0, pixels * 3);
  for (const { data, weight } of sprites) {
    for (let p = 0, q = 0; p < pixels; p += 1, q += 4) {
      scratch[3 * p] += weight * data[q];
      scratch[3 * p + 1] += weight * data[q + 1];
      scratch[3 * p + 2] += weight * data[q + 2];
    }
  }
  for (let p = 0, q = 0; p < pixels; p += 1, q += 4) {
    out[q] = scratch[3 * p]; // Uint8ClampedArray rounds to nearest and clamps
    out[q + 1] = scratch[3 * p + 1];
    out[q + 2] = scratch[3 * p + 2];
    out[q + 3] = mask[p];
  }
  return out;
}

function makeCanvas(width, height) {
  if (typeof OffscreenCanvas !== "undefined") return new OffscreenCanvas(width, height);
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  return canvas;
}

async function decodePng(url, fetchImpl) {
  const response = await fetchImpl(url);
  if (!response.ok) throw new BundleError(`cannot load ${url}: HTTP ${response.status}`);
  // No colour management or premultiplication: sprite and mask bytes must reach the blend unchanged.
  return createImageBitmap(await response.blob(), { colorSpaceConversion: "none", premultiplyAlpha: "none" });
}

function pixelsOf(bitmap, x = 0, y = 0, w = bitmap.width, h = bitmap.height) {
  const canvas = makeCanvas(w, h);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, x, y, w, h, 0, 0, w, h);
  return context.getImageData(0, 0, w, h).data;
}

export class Compositor {
  /** layout from readLayout; spritePixels {name: RGBA bytes}; maskBytes: one byte per sprite pixel. */
  constructor(layout, spritePixels, maskBytes) {
    this.layout = layout;
    this.spritePixels = spritePixels;
    this.spriteNames = Object.keys(spritePixels);
    this.mask = maskBytes;
    this.scratch = new Float32Array(maskBytes.length * 3);
    this.spriteCanvas = makeCanvas(layout.spriteW, layout.spriteH);
    this.spriteContext = this.spriteCanvas.getContext("2d");
    this.spriteImage = this.spriteContext.createImageData(layout.spriteW, layout.spriteH);
    this.lastKey = "";
    this.blendMs = 0; // time of the last blend that had to run (for the page's stats)
  }

  /** Loads atlas.png, mask.png and the JSON files from the session's asset URLs. */
  static async load(assets, fetchImpl = fetch) {
    const getJson = async (url) => {
      const response = await fetchImpl(url);
      if (!response.ok) throw new BundleError(`cannot load ${url}: HTTP ${response.status}`);
      return response.json();
    };
    const [atlasJson, roi, manifest, atlas, mask] = await Promise.all([
      getJson(assets.atlas_json), getJson(assets.roi), assets.manifest ? getJson(assets.manifest) : null,
      decodePng(assets.atlas, fetchImpl), decodePng(assets.mask, fetchImpl)]);
    const layout = readLayout(atlasJson, roi, manifest);
    if (mask.width !== layout.spriteW || mask.height !== layout.spriteH) {
      throw new BundleError(`mask.png is ${mask.width}x${mask.height} but sprites are ${layout.spriteW}x${layout.spriteH}; re-run photoavatar avatarize`);
    }
    const sprites = {};
    for (const [name, rect] of Object.entries(layout.sprites)) sprites[name] = pixelsOf(atlas, rect.x, rect.y, rect.w, rect.h);
    const maskRgba = pixelsOf(mask);
    const maskBytes = new Uint8Array(maskRgba.length / 4);
    for (let p = 0; p < maskBytes.length; p += 1) maskBytes[p] = maskRgba[4 * p]; // grey: R = G = B
    return { compositor: new Compositor(layout, sprites, maskBytes), manifest };
  }

  /** Redraws the blended sprite only when the active weights changed (idle frames reuse it). */
  updateSprite(weights) {
    const active = activeSprites(weights, this.spriteNames);
    const key = active.map((s) => `${s.name}:${s.weight.toFixed(4)}`).join(",");
    if (key === this.lastKey) return;
    const started = performance.now();
    const sprites = active.map((s) => ({ data: this.spritePixels[s.name], weight: s.weight }));
    blendSprites(this.spriteImage.data, sprites, this.mask, this.scratch);
    this.spriteContext.putImageData(this.spriteImage, 0, 0);
    this.lastKey = key;
    this.blendMs = performance.now() - started;
  }

  /** Draws idle frame `frameIndex` (from `idle`, any drawable) with the mouth for mixer frame `mix`. */
  draw(context, idle, frameIndex, mix) {
    const { width, height } = context.canvas;
    this.updateSprite(jawWeights(mix.weights, mix.loudness ?? 0));
    context.setTransform(1, 0, 0, 1, 0, 0);
    context.globalCompositeOperation = "source-over";
    context.globalAlpha = 1;
    context.drawImage(idle, 0, 0, width, height);
    context.setTransform(...headTransform(this.layout, frameIndex, NOD_MAX_PX * (mix.nod ?? 0)));
    context.drawImage(this.spriteCanvas, this.layout.placement.x, this.layout.placement.y);
    context.setTransform(1, 0, 0, 1, 0, 0);
  }
}
