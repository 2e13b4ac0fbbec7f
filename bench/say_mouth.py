"""Why `say` opens the mouth less than the live page: the issue's score on each stage of the offline render.

The score (issue 10, part 2): an independent aligner (pocketsphinx forced alignment, ARPAbet phones) on the
audio, MediaPipe's inner-lip aperture on every frame; the median aperture of frames inside open vowels minus
the median inside bilabials (M, B, P). Each row changes one thing, so the row that moves the score is the cause:

- encoded MP4, phones from the MP4's own audio (what the issue scored)
- encoded MP4, phones from the synthesised audio (the audio track's timing taken out)
- composed frames, not encoded (the encoder taken out)
- the mixer at the start of each frame (the old `say`) instead of its middle (animate/frames.py)
- without the loudness rule
- composed at 60 fps (frame sampling taken out)
Then the same score over several syntheses of the sentence: Piper draws new noise every time, so each run is a
different timeline, and the spread between runs is the score's own uncertainty.

Finding (grace_hopper.jpg, 2026-12-02): the encoder, the MP4's audio timing and the loudness rule move the score
by less than the spread between syntheses (0.12 to 0.25 for one renderer); the open-vowel frames are bimodal
(E-like mouths for the AY diphthongs, about 0.13; AI/O-like, about 0.37), so the median jumps between the two
clusters. 0.25 is their midpoint. The one systematic difference was the mixer sampled at the start of each
40 ms frame, a 20 ms average lag behind the sound; frames.py samples the middle.

Run: .venv/bin/python bench/say_mouth.py [--avatar BUNDLE] [--photo grace_hopper.jpg] [--syntheses 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

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
    """Two-pass pocketsphinx forced alignment of int16 mono audio to TEXT, with pocketsphinx's own dictionary
    (CMUdict, ARPAbet): independent of our phonemiser and timeline."""
    from photoavatar.speech import sphinx

    alignment = sphinx.align_to_dictionary(samples, rate_hz, text)
    return [Phone(p.name, p.start * PHONE_FRAME_S, (p.start + p.duration) * PHONE_FRAME_S)
            for word in alignment for p in word]


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


def composed(bundle, spoken, fps: float, *, loudness_rule: bool = True, at_frame_start: bool = False):
    """Frames of animate/frames.py (the mixer at mid-frame), or with one thing changed, at FPS."""
    from photoavatar.animate import frames, render
    from photoavatar.animate.jaw import jaw_weights
    from photoavatar.animate.mixer import VisemeMixer
    from photoavatar.avatar.compose import compose_frame

    if loudness_rule and not at_frame_start and fps == bundle.manifest.fps:
        rendered = list(frames.talk_frames(bundle, spoken.visemes, spoken.prosody, spoken.duration_s + render.TAIL_S))
        return [f.time_s - 0.5 / fps for f in rendered], [f.picture for f in rendered]
    idle, assets = frames.decoded_bundle(bundle)
    mixer = VisemeMixer()
    mixer.add_events(spoken.visemes)
    mixer.add_prosody(spoken.prosody)
    times, pictures = [], []
    for index in range(int(np.ceil((spoken.duration_s + render.TAIL_S) * fps))):
        start_s = index / fps  # when the frame goes on screen
        mixed = mixer.advance_to(start_s if at_frame_start else start_s + 0.5 / fps)
        weights = jaw_weights(mixed.weights, mixed.loudness) if loudness_rule else mixed.weights
        idle_index = int(np.floor(start_s * bundle.manifest.fps + 1e-4)) % len(idle)
        pictures.append(compose_frame(idle[idle_index], assets, idle_index, weights, nod_px=mixed.nod * frames.NOD_MAX_PX))
        times.append(start_s)
    return times, pictures


def rows(bundle, spoken, folder: Path) -> list[tuple[str, Callable[[], tuple]]]:
    from photoavatar.animate.render import write_talk_video

    source_phones = align_phones(spoken.samples, spoken.sample_rate_hz, spoken.text)
    mp4 = folder / "say.mp4"
    write_talk_video(bundle, spoken, mp4)
    times, frames, audio, rate = read_mp4_with_audio(mp4)
    fps = float(bundle.manifest.fps)
    mp4_apertures = mouth_apertures(frames)
    mp4_phones = align_phones(audio, rate, spoken.text)

    of = _measured
    return [
        ("say MP4, phones from the MP4's audio", lambda: (times, mp4_apertures, mp4_phones)),
        ("say MP4, phones from the synthesised audio", lambda: (times, mp4_apertures, source_phones)),
        ("composed (frames.py), not encoded", lambda: (*of(composed(bundle, spoken, fps)), source_phones)),
        ("composed, mixer at the frame's start (old say)",
         lambda: (*of(composed(bundle, spoken, fps, at_frame_start=True)), source_phones)),
        ("composed, no loudness rule", lambda: (*of(composed(bundle, spoken, fps, loudness_rule=False)), source_phones)),
        ("composed at 60 fps", lambda: (*of(composed(bundle, spoken, 60.0)), source_phones)),
    ]


def spread(bundle, text: str, count: int) -> None:
    """The score of one renderer over COUNT syntheses of TEXT: mid-frame (frames.py) and frame-start sampling."""
    from photoavatar.animate.render import speak_text

    fps = float(bundle.manifest.fps)
    print(f"\n{'synthesis':<10} {'duration s':>10} {'mid-frame':>10} {'frame start':>12}")
    for run in range(count):
        spoken = speak_text(text)
        phones = align_phones(spoken.samples, spoken.sample_rate_hz, spoken.text)
        mid = score(*_measured(composed(bundle, spoken, fps)), phones)[2]
        start = score(*_measured(composed(bundle, spoken, fps, at_frame_start=True)), phones)[2]
        print(f"{run + 1:<10} {spoken.duration_s:>10.2f} {mid:>10.3f} {start:>12.3f}", flush=True)


def _measured(result):
    times_s, pictures = result
    return times_s, mouth_apertures(pictures)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--avatar", type=Path, help="an avatar bundle (default: build one from --photo)")
    parser.add_argument("--photo", default="grace_hopper.jpg", help="a portrait in shared/testdata/faces")
    parser.add_argument("--text", default=SENTENCE)
    parser.add_argument("--syntheses", type=int, default=5, help="syntheses for the spread table (0: none)")
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
        if args.syntheses:
            spread(bundle, args.text, args.syntheses)
    return 0


if __name__ == "__main__":
    sys.exit(main())
