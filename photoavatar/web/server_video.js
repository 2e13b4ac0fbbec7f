// "Server video" mode: the server composes the avatar (the same mixer and compose as `photoavatar say`) and sends
// it as a video track beside the voice, in one MediaStream. The page only plays that stream in a <video>; the
// browser's own A/V synchronisation lines picture and sound up from the two tracks' RTCP sender reports, which
// the server derives from one clock (docs/protocol.md "Video"). No atlas, mask, mixer or clock mapping here:
// this is what any plain WebRTC or LiveKit client does.

/** Plays the session's stream (voice + avatar video) in ELEMENT; resolves when it plays or autoplay refused it. */
export async function playServerVideo(element, stream) {
  element.srcObject = stream;
  element.muted = false;
  try {
    await element.play();
  } catch {
    // Autoplay refused: the stream still plays once the user clicks anywhere.
    document.addEventListener("click", () => element.play(), { once: true });
  }
}

/** Frames presented per second by ELEMENT, counted with requestVideoFrameCallback (null where unsupported). */
export class PresentedFrameRate {
  constructor(element) {
    this.element = element;
    this.fps = 0;
    this.presented = 0;
    this.windowStart = null;
    this.windowFrames = 0;
    this.stopped = false;
    if (element.requestVideoFrameCallback) element.requestVideoFrameCallback((now, meta) => this._onFrame(now, meta));
    else this.fps = null;
  }

  _onFrame(now, metadata) {
    if (this.stopped) return;
    this.presented = metadata.presentedFrames;
    if (this.windowStart === null) this.windowStart = { now, presented: metadata.presentedFrames };
    else if (now - this.windowStart.now >= 1000) {
      this.fps = ((metadata.presentedFrames - this.windowStart.presented) * 1000) / (now - this.windowStart.now);
      this.windowStart = { now, presented: metadata.presentedFrames };
    }
    this.element.requestVideoFrameCallback((t, meta) => this._onFrame(t, meta));
  }

  stop() {
    this.stopped = true;
  }
}

/** Mean absolute difference (0-255) of BOX {x, y, w, h} between ELEMENT's current frame and REFERENCE pixels. */
export function frameDifference(element, box, reference, scratch = document.createElement("canvas")) {
  const pixels = framePixels(element, box, scratch);
  if (!pixels || !reference) return { pixels, difference: null };
  let total = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    total += Math.abs(pixels[i] - reference[i]) + Math.abs(pixels[i + 1] - reference[i + 1]) + Math.abs(pixels[i + 2] - reference[i + 2]);
  }
  return { pixels, difference: total / ((pixels.length / 4) * 3) };
}

/** BOX's RGBA bytes of ELEMENT's current frame, at the video's own size (null before the first frame). */
export function framePixels(element, box, scratch) {
  if (!element.videoWidth) return null;
  scratch.width = element.videoWidth;
  scratch.height = element.videoHeight;
  const context = scratch.getContext("2d", { willReadFrequently: true });
  context.drawImage(element, 0, 0);
  return context.getImageData(box.x, box.y, box.w, box.h).data;
}

/**
 * The page's server-video mode in one object: plays the stream in ELEMENT, counts presented frames, and measures
 * the mouth (roi.json's `mouth` box) against the first frame it showed, like the canvas mode's mouthDifference.
 */
export class ServerVideoView {
  static async start(element, stream, roiUrl, fetchImpl = fetch) {
    const roi = await (await fetchImpl(roiUrl)).json().catch(() => null);
    const view = new ServerVideoView(element, roi?.mouth ?? null);
    element.hidden = false;
    await playServerVideo(element, stream);
    return view;
  }

  constructor(element, mouth) {
    this.element = element;
    this.box = mouth && { x: Math.floor(mouth.x), y: Math.floor(mouth.y), w: Math.ceil(mouth.w), h: Math.ceil(mouth.h) };
    this.rate = new PresentedFrameRate(element);
    this.scratch = document.createElement("canvas");
    this.rest = null;
  }

  get fps() { return this.rate.fps; }

  /** Mean absolute difference (0-255) of the mouth now against the first frame seen (null before it). */
  mouthDifference() {
    const box = this.box ?? { x: 0, y: 0, w: this.element.videoWidth, h: this.element.videoHeight };
    if (!this.rest) {
      this.rest = framePixels(this.element, box, this.scratch);
      return null;
    }
    return frameDifference(this.element, box, this.rest, this.scratch).difference;
  }

  close() {
    this.rate.stop();
    this.element.srcObject = null;
    this.element.hidden = true;
  }
}
