"""Why `say` opens the mouth less than the live page: the issue's score on each stage of the offline render.

The score (issue 10, part 2): an independent aligner (pocketsphinx forced alignment, ARPAbet phones) on the
audio, MediaPipe's inner-lip aperture on every frame; the median aperture of frames inside open vowels minus
the median inside bilabials (M, B, P). Each row changes one thing, so the row that moves the score is the cause:

- encoded MP4, phones from the MP4's own audio (what the issue scored)
- encoded MP4, phones from the synthesised audio (the audio track's timing taken out)
- composed frames, not encoded (the encoder taken out)
- composed at 60 fps (frame sampling taken out)
- without the loudness rule
- sampled at the middle of each frame's display interval (the half-frame lag of sampling at its start)

Run: .venv/bin/python bench/say_mouth.py [--avatar BUNDLE] [--photo grace_hopper.jpg]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from scipy.signal import resample_poly

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "testdata" / "faces"
SENTENCE = "My father bought five fine violins and put them above the piano."
OPEN_VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY"}
BILABIALS = {"M", "B", "P"}
PHONE_FRAME_S = 0.01


@dataclass(frozen=True)
class Phone:
    name: str
    start_s: float
    end_s: float


def align_phones(samples: np.ndarray, rate_hz: int, text: str) -> list[Phone]:
    """Two-pass pocketsphinx forced alignment of int16 mono audio to TEXT."""
    import pocketsphinx

    audio_16k = resample_poly(samples.astype(np.float32), 16000, rate_hz)
    pcm = np.clip(audio_16k, -32768, 32767).astype(np.int16).tobytes()
    decoder = pocketsphinx.Decoder(lm=None, bestpath=False, loglevel="FATAL")
    decoder.set_align_text(" ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split()))
    for pass_index in range(2):
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        if pass_index == 0:
            decoder.set_alignment()
    return [Phone(p.name, p.start * PHONE_FRAME_S, (p.start + p.duration) * PHONE_FRAME_S)
            for word in decoder.get_alignment() for p in word]


def mouth_apertures(frames) -> list[float]:
    from photoavatar.avatar.landmarks import detect_faces, mouth_metrics

    out = []
    for frame in frames:
        faces = detect_faces(frame)
        out.append(mouth_metrics(faces[0]).aperture if faces else float("nan"))
    return out


def score(times_s: list[float], apertures: list[float], phones: list[Phone]) -> tuple[float, float, float]:
    """(median open-vowel aperture, median bilabial aperture, their difference)."""
    def inside(names: set[str]) -> list[float]:
        spans = [p for p in phones if p.name in names]
        return [a for t, a in zip(times_s, apertures, strict=True)
                if not np.isnan(a) and any(p.start_s <= t < p.end_s for p in spans)]

    open_, closed = inside(OPEN_VOWELS), inside(BILABIALS)
    if not open_ or not closed:
        return float("nan"), float("nan"), float("nan")
    return statistics.median(open_), statistics.median(closed), statistics.median(open_) - statistics.median(closed)


def read_mp4_with_audio(path: Path) -> tuple[list[float], np.ndarray, np.ndarray, int]:
    """Frame times (s), RGB frames, the audio as int16 mono and its rate, as a player presents them."""
    with av.open(str(path)) as container:
        frames, times = [], []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.pts * frame.time_base))
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks, first_pts_s = [], None
        resampler = av.AudioResampler(format="s16", layout="mono", rate=stream.rate)
        for frame in container.decode(audio=0):
            if first_pts_s is None:
                first_pts_s = float(frame.pts * frame.time_base)
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        audio = np.concatenate(chunks)
        # A player starts the audio at its first presentation time: a negative pts (encoder priming) is cut.
        skip = int(round(-first_pts_s * stream.rate)) if first_pts_s < 0 else 0
        pad = int(round(first_pts_s * stream.rate)) if first_pts_s > 0 else 0
        audio = np.concatenate([np.zeros(pad, np.int16), audio[skip:]])
        return times, np.stack(frames), audio, stream.rate


def composed(bundle, spoken, fps: float, *, loudness_rule: bool = True, sample_offset_s: float = 0.0):
    """Frames composed exactly as `say` composes them, at FPS, the mixer sampled at t + SAMPLE_OFFSET_S."""
    from photoavatar.animate import render
    from photoavatar.avatar import compose
    from photoavatar.avatar.video import read_mp4

    assets = compose.load_assets(bundle)
    idle = read_mp4(bundle.idle_video)
    idle_fps = float(bundle.manifest["fps"])
    mixer = render.VisemeMixer()
    mixer.add_events(spoken.visemes)
    mixer.add_prosody(spoken.prosody)
    times, frames = [], []
    for index in range(int(np.ceil((spoken.duration_s + render.TAIL_S) * fps))):
        t = index / fps
        mixed = mixer.advance_to(max(0.0, t + sample_offset_s))
        weights = compose.jaw_weights(mixed.weights, mixed.loudness) if loudness_rule else mixed.weights
        frame_index = int(np.floor(t * idle_fps + 1e-4)) % len(idle)
        frames.append(compose.compose_frame(idle[frame_index], assets, frame_index, weights,
                                            nod_px=mixed.nod * render.NOD_MAX_PX))
        times.append(t)
    return times, frames


def rows(bundle, spoken, folder: Path) -> list[tuple[str, Callable[[], tuple]]]:
    from photoavatar.animate.render import write_talk_video

    source_phones = align_phones(spoken.samples, spoken.sample_rate_hz, spoken.text)
    mp4 = folder / "say.mp4"
    write_talk_video(bundle, spoken, mp4)
    times, frames, audio, rate = read_mp4_with_audio(mp4)
    fps = float(bundle.manifest["fps"])
    mp4_apertures = mouth_apertures(frames)
    mp4_phones = align_phones(audio, rate, spoken.text)
    half = 0.5 / fps

    def of(result):
        times_s, picture = result
        return times_s, mouth_apertures(picture)

    return [
        ("say MP4, phones from the MP4's audio", lambda: (times, mp4_apertures, mp4_phones)),
        ("say MP4, phones from the synthesised audio", lambda: (times, mp4_apertures, source_phones)),
        ("composed 25 fps, not encoded", lambda: (*of(composed(bundle, spoken, fps)), source_phones)),
        ("composed 25 fps, mixer at mid-frame", lambda: (*of(composed(bundle, spoken, fps, sample_offset_s=half)),
                                                         source_phones)),
        ("composed 25 fps, no loudness rule", lambda: (*of(composed(bundle, spoken, fps, loudness_rule=False)),
                                                       source_phones)),
        ("composed 60 fps, not encoded", lambda: (*of(composed(bundle, spoken, 60.0)), source_phones)),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--avatar", type=Path, help="an avatar bundle (default: build one from --photo)")
    parser.add_argument("--photo", default="grace_hopper.jpg", help="a portrait in shared/testdata/faces")
    parser.add_argument("--text", default=SENTENCE)
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)")
    sys.path.insert(0, str(ROOT))
    from photoavatar.animate.render import speak_text
    from photoavatar.avatar.build import avatarize
    from photoavatar.avatar.bundle import load_bundle

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bundle = load_bundle(args.avatar) if args.avatar else avatarize(FACES / args.photo, folder / "avatar")
        spoken = speak_text(args.text)
        print(f"\n{'render':<46} {'open':>6} {'MBP':>6} {'open-MBP':>9}")
        for label, measure in rows(bundle, spoken, folder):
            open_, closed, difference = score(*measure())
            print(f"{label:<46} {open_:>6.3f} {closed:>6.3f} {difference:>9.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
