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
