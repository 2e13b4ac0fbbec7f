"""Is the join of a short head and the whole sentence audible? Pause, pitch, loudness and click at the join.

For each sentence, the spliced audio (photoavatar.speech.splice: head run played to the gap after word 2,
then the whole run) is compared with the unsplit whole run at the same word gap:
- pause: the quiet stretch (10 ms frames under PAUSE_DB) around the join, spliced minus unsplit, in ms;
- F0 step: pitch just after the gap minus just before (semitones), spliced minus unsplit;
- head F0: median pitch of the played head words against the same words in the unsplit run (semitones);
- dip: the quietest 10 ms frame within 30 ms of the join, spliced minus unsplit (dB);
- click: the largest sample step within 3 ms of the join over the run's 99.9th-percentile step.
Variants: `splice` (look-ahead 1, the default), `splice-L0` (no look-ahead), `naive` (head alone, then
the rest of the sentence alone: the seam the splice avoids) and `oracle` (a second whole run as the head: the
run-to-run variation of Piper itself, the floor any head can reach). It also prints what a model run costs.
Run: .venv/bin/python bench/seam.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

from photoavatar.speech import splice
from photoavatar.speech.piper_engine import PiperEngine, group_phonemes
from photoavatar.speech.prosody import analyze_prosody
from photoavatar.speech.types import AudioChunk

SENTENCES = [
    "Hello there, how are you doing today?",
    "Thanks for asking about the weather this morning.",
    "Sure, I can help you with that right away.",
    "Papa bought a bright blue bicycle for the boys.",
    "The quick brown fox jumps over the lazy dog.",
    "Well, let me think about that for a moment.",
    "I would love to tell you more about our new menu.",
    "Maybe we should meet again next Monday morning.",
]
PAUSE_DB = -45.0
NEAR_S = 0.03
PITCH_SPAN_S = 0.06


def run(voice, phonemes: list[str], start_sample: int = 0) -> AudioChunk:
    samples, symbols, id_samples = voice.speak(phonemes)
    return AudioChunk(samples, voice.sample_rate_hz, start_sample,
                      tuple(group_phonemes(symbols, id_samples, start_sample)))


def spliced(voice, phonemes: list[str], lookahead: int) -> tuple[np.ndarray, int, AudioChunk, int]:
    """(spliced audio, join sample in it, the whole run, join sample in the whole run)."""
    head = splice.head_phonemes(phonemes, splice.HEAD_WORDS, lookahead)
    part = splice.play_head(run(voice, head))
    whole = run(voice, phonemes)
    rest = splice.continue_from_whole(part, whole)
    audio = np.concatenate([part.chunk.samples, rest.samples])
    # the gap after the head's last word starts at the same point of the words in both: compare there
    return audio, part.gap_start_sample, whole, splice.word_gaps(whole.phonemes)[part.gap_index][0]


def oracle(voice, phonemes: list[str]) -> tuple[np.ndarray, int, AudioChunk, int]:
    first, second = run(voice, phonemes), run(voice, phonemes)
    gap_a, gap_b = splice.word_gaps(first.phonemes)[1], splice.word_gaps(second.phonemes)[1]
    audio = np.concatenate([first.samples[:gap_a[0]], second.samples[gap_b[0]:]])
    return audio, gap_a[0], second, gap_b[0]


def naive(voice, phonemes: list[str]) -> tuple[np.ndarray, int, AudioChunk, int]:
    spaces = [i for i, s in enumerate(phonemes) if s == splice.SILENCE]
    head, tail = run(voice, phonemes[:spaces[1]]), run(voice, phonemes[spaces[1] + 1:])
    whole = run(voice, phonemes)
    return np.concatenate([head.samples, tail.samples]), len(head.samples), whole, splice.word_gaps(whole.phonemes)[1][0]


def measures(audio: np.ndarray, join: int, reference: np.ndarray, ref_join: int, rate: int) -> dict:
    a, b = _features(audio, join, rate), _features(reference, ref_join, rate)
    head_f0 = _semitones(a["head_f0"], b["head_f0"])
    return {"pause_ms": a["pause_ms"] - b["pause_ms"], "f0_step_st": _diff(a["step"], b["step"]),
            "head_f0_st": head_f0, "dip_db": a["dip_db"] - b["dip_db"], "click": a["click"]}


def _features(audio: np.ndarray, join: int, rate: int) -> dict:
    frames = analyze_prosody(audio, rate)
    times = np.array([f.time_s for f in frames])
    loud = np.array([f.loudness_db for f in frames])
    pitch = np.array([f.pitch_hz for f in frames])
    t = join / rate
    centre = int(np.argmin(np.abs(times - t)))
    lo = hi = centre
    while lo > 0 and loud[lo - 1] < PAUSE_DB:
        lo -= 1
    while hi < len(loud) - 1 and loud[hi] < PAUSE_DB:
        hi += 1
    pause_ms = (hi - lo) * 10.0 if loud[centre] < PAUSE_DB else 0.0
    before = _voiced(pitch, times, times[lo] - PITCH_SPAN_S, times[lo])
    after = _voiced(pitch, times, times[hi], times[hi] + PITCH_SPAN_S)
    near = np.abs(times - t) <= NEAR_S
    steps = np.abs(np.diff(audio.astype(np.float64)))
    window = steps[max(0, join - rate * 3 // 1000):join + rate * 3 // 1000]
    return {"pause_ms": pause_ms, "step": _semitones(after, before), "head_f0": _voiced(pitch, times, 0, times[lo]),
            "dip_db": float(loud[near].min()), "click": float(window.max() / max(1.0, np.percentile(steps, 99.9)))}


def _voiced(pitch, times, start_s, end_s) -> float | None:
    values = pitch[(times >= start_s) & (times < end_s) & (pitch > 0)]
    return float(np.median(values)) if len(values) else None


def _semitones(a: float | None, b: float | None) -> float | None:
    return 12 * math.log2(a / b) if a and b else None


def _diff(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def run_costs(voice) -> list[tuple[str, float, float]]:
    rows = []
    for text in ["Hello", "Hello there", "Hello there, how are", SENTENCES[4], " ".join(SENTENCES[:3])]:
        phonemes = [p for sentence in voice.phonemize(text) for p in sentence]
        best, audio_s = float("inf"), 0.0
        for _ in range(3):
            start = time.perf_counter()
            samples, _, _ = voice.speak(phonemes)
            best = min(best, time.perf_counter() - start)
            audio_s = len(samples) / voice.sample_rate_hz
        rows.append((text[:40], best * 1000, audio_s))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per sentence and variant")
    args = parser.parse_args()
    voice = PiperEngine(threads=2).loaded_voice()
    rate = voice.sample_rate_hz
    variants = {"splice": lambda p: spliced(voice, p, 1), "splice-L0": lambda p: spliced(voice, p, 0),
                "naive": lambda p: naive(voice, p), "oracle": lambda p: oracle(voice, p)}
    results: dict[str, list[dict]] = {name: [] for name in variants}
    for text in SENTENCES:
        phonemes = voice.phonemize(text)[0]
        for _ in range(args.repeats):
            for name, make in variants.items():
                audio, join, whole, whole_join = make(phonemes)
                results[name].append(measures(audio, join, whole.samples, whole_join, rate))
    print(f"{len(SENTENCES)} sentences x {args.repeats} runs; medians of |spliced - unsplit| at the join "
          "(p90 in brackets)")
    print(f"{'variant':<10} {'pause ms':>14} {'F0 step st':>14} {'head F0 st':>14} {'dip dB':>14} {'click':>12}")
    for name, rows in results.items():
        cells = [_stat([abs(r[key]) for r in rows if r[key] is not None])
                 for key in ("pause_ms", "f0_step_st", "head_f0_st", "dip_db")]
        clicks = _stat([r["click"] for r in rows])
        print(f"{name:<10} " + " ".join(f"{c:>14}" for c in cells) + f" {clicks:>12}")
    print("\nmodel run cost (2 threads, best of 3):")
    for text, ms, audio_s in run_costs(voice):
        print(f"  {ms:6.1f} ms for {audio_s:4.2f} s of audio  {text!r}")


def _stat(values: list[float]) -> str:
    if not values:
        return "-"
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
    return f"{statistics.median(values):.2f} ({p90:.2f})"


if __name__ == "__main__":
    main()
