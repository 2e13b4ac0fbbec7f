"""Visemes from audio we did not synthesise: accuracy against the true timing of Piper audio, and speed.

Run: .venv/bin/python bench/audio_visemes.py
Piper's phoneme durations are the ground truth (they are the synthesiser's own). Each sentence is synthesised,
its audio analysed as a caller's recording would be (with its transcript; without one: recognised words, the
default for English, and the phone loop, used for other languages; streamed in 20 ms frames, phone loop), and the viseme timelines of both timings compared (photoavatar/speech/viseme_accuracy.py).
Targets (issue 10): onset error median <= 25 ms with a transcript, <= 50 ms without; bilabial closures
found >= 90 % / >= 75 %; streamed audio held back <= 150 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from photoavatar.speech.audio_input import checked_audio  # noqa: E402
from photoavatar.speech.audio_speech import time_phonemes  # noqa: E402
from photoavatar.speech.audio_stream import HOLD_BACK_S, MAX_DELAY_S, AudioStreamAnalyser  # noqa: E402
from photoavatar.speech.phone_recognition import recognise_phones  # noqa: E402
from photoavatar.speech.piper_engine import PiperEngine  # noqa: E402
from photoavatar.speech.timeline import build_viseme_events  # noqa: E402
from photoavatar.speech.types import VisemeEvent  # noqa: E402
from photoavatar.speech.viseme_accuracy import Spoken, VisemeAccuracy, compare, speak  # noqa: E402

SENTENCES = (
    "A quick brown fox jumped over two lazy dogs.",
    "Please phone me back when you have a minute to spare.",
    "My brother made a pot of spicy bean soup.",
    "We watched the sun go down behind the purple hills.",
    "The boys played baseball in the park until it was dark.",
    "Warm light bounced off the smooth surface of the lake.",
    "Thanks a million for your patience and all of your help.",
    "Open the window, it is far too warm in here.",
    "My father bought five fine violins and put them above the piano.",
    "Bob baked a batch of plum muffins for the members of the band.",
    "Every morning at seven, the postman brings a bundle of letters.",
    "Maybe we can meet by the pool before lunch, if the weather permits.",
)
STREAM_FRAME_S = 0.02


def offline_events(sample: Spoken, mode: str) -> list[VisemeEvent]:
    if mode == "phone loop":
        phonemes = recognise_phones(sample.samples, sample.sample_rate_hz)
    else:
        audio = checked_audio(sample.samples, sample.sample_rate_hz)
        phonemes = time_phonemes(audio, sample.text if mode == "transcript" else None).phonemes
    return build_viseme_events(phonemes, sample.sample_rate_hz)


WORST_LAG_S: list[float] = []  # how far emitted audio trailed the input, per streamed sentence


def streamed_events(sample: Spoken) -> list[VisemeEvent]:
    analyser = AudioStreamAnalyser(sample.sample_rate_hz)
    step = int(STREAM_FRAME_S * sample.sample_rate_hz)
    segments, worst = [], 0
    for begin in range(0, len(sample.samples), step):
        segments += analyser.push(sample.samples[begin:begin + step])
        worst = max(worst, min(begin + step, len(sample.samples)) - (segments[-1].audio.end_sample if segments else 0))
    segments += analyser.finish()
    WORST_LAG_S.append(worst / sample.sample_rate_hz)
    return [event for segment in segments for event in segment.visemes]


def measure(samples: list[Spoken], mode: str) -> tuple[VisemeAccuracy, float]:
    """Accuracy over all SAMPLES in MODE, and the analysis time per second of audio."""
    total: VisemeAccuracy | None = None
    elapsed = 0.0
    for sample in samples:
        truth = build_viseme_events(sample.phonemes, sample.sample_rate_hz)
        begin = time.perf_counter()
        if mode == "stream":
            estimated = streamed_events(sample)
        else:
            estimated = offline_events(sample, mode)
        elapsed += time.perf_counter() - begin
        accuracy = compare(truth, estimated)
        total = accuracy if total is None else total + accuracy
    audio_s = sum(len(s.samples) / s.sample_rate_hz for s in samples)
    return total, elapsed / audio_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=len(SENTENCES))
    args = parser.parse_args()
    engine = PiperEngine(threads=1)
    samples = [speak(engine, text) for text in SENTENCES[:args.sentences]]
    rows = [("mode", "onset |err| median", "onsets matched", "closures found", "closure precision",
             "analysis time / audio s")]
    targets = {"transcript": (25, 0.90), "no transcript": (50, 0.75), "phone loop": (50, 0.75),
               "stream": (50, 0.75)}
    for mode in targets:
        accuracy, cost = measure(samples, mode)
        limit_ms, recall = targets[mode]
        rows.append((mode, f"{accuracy.onset_median_ms:.1f} ms (<= {limit_ms})", f"{accuracy.onsets_matched:.0%}",
                     f"{accuracy.closures_found}/{accuracy.true_closures} = {accuracy.closure_recall:.0%} "
                     f"(>= {recall:.0%})", f"{accuracy.closure_precision:.0%}", f"{cost:.3f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    onsets = sum(len(s.phonemes) for s in samples)
    print(f"\n{len(samples)} Piper sentences, {onsets} phonemes; streamed in {STREAM_FRAME_S * 1000:.0f} ms frames, "
          f"audio held back at most {max(WORST_LAG_S) * 1000:.0f} ms (stated {MAX_DELAY_S * 1000:.0f} ms: hold-back "
          f"{HOLD_BACK_S * 1000:.0f} + emit step + decoder lag); load average {os.getloadavg()[0]:.2f}")
    print(f"median sentence {statistics.median(len(s.samples) / s.sample_rate_hz for s in samples):.1f} s")


if __name__ == "__main__":
    main()
