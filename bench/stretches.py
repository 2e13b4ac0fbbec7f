"""Streamed Piper runs: is a phrase rendered in the engine's stretches the phrase rendered whole, and what does it cost?

1. Exactness: for each sentence, one sentence stage (`LoadedVoice.begin`) rendered whole and rendered in the
   stretches the engine yields (photoavatar.speech.piper_engine.stretch_edges, from the same first frame); the
   largest |stretched - whole| in int16 steps over all samples and within 5 ms of each join. Equal samples
   mean equal loudness and pitch at every join. For contrast, "naive": two separate model runs split at the second
   word gap (the head words alone, then the rest alone) against the unsplit run: the pause at the join (ms,
   naive minus unsplit) and the F0 jump across it (semitones, naive minus unsplit).
2. Cost, at each thread count (PiperEngine(threads=N, models=1)), medians over sentences x repeats: the sentence
   stage, the first stretch, the whole render, the sum of the stretch renders (and its ratio to the whole), and
   the first audio of the first piece (speech_pieces' clause) streamed (begin + first stretch) against the old
   path (begin + whole render).
Run: .venv/bin/python bench/stretches.py [--repeats 3] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import numpy as np

from photoavatar.speech.ipa import SILENCE
from photoavatar.speech.piper_engine import (
    FIRST_CHUNK_MAX_WORDS,
    PiperEngine,
    bound_phonemes,
    phrase_timings,
    rest_stretch,
    stretch_edges,
)
from photoavatar.speech.prosody import analyze_prosody
from photoavatar.speech.text import speech_pieces

SENTENCES = [
    "Hello, how are you doing today?",
    "Thanks for asking about the weather this morning.",
    "Sure, I can help you with that right away.",
    "Papa bought a bright blue bicycle for the boys.",
    "Could you tell me where the nearest train station is?",
    "We need eggs, milk, flour, butter and two lemons.",
    "The meeting starts at 9:45 on March 3rd, in room 212.",
    "Brilliant, that is exactly what I was hoping to hear!",
    "Do you want the red one, the green one, or the blue one?",
    "Keep going straight for about three hundred meters, then turn left at the bakery.",
    "It costs $19.99, which is 40 percent less than last year.",
    "Good morning everyone, and welcome back to the show, where today we talk about sleep.",
]
JOIN_WINDOW_S = 0.005
PAUSE_DB = -45.0  # a 10 ms frame quieter than this is pause
NEAR_S = 0.03  # the pause is looked for this close to the join
PITCH_SPAN_S = 0.15  # F0 either side: the median voiced pitch this far before and after the pause


def stretch_bounds(voice, phrase) -> list[int]:
    """The frames where the engine's stretches of PHRASE start and end, as an utterance's first phrase (as decided
    before its first stretch is rendered: once that stretch's inaudible start is known, the engine decides the
    later ones again, each as long as the audio kept; any edges are the whole run's audio)."""
    timings, cut = phrase_timings(phrase, 0, voice.sample_rate_hz)
    return stretch_edges(timings, 0, cut, voice.hop_samples, voice.sample_rate_hz)


def phrases_of(voice, text: str) -> list[list[str]]:
    return [run for sentence in voice.phonemize(text) for run in bound_phonemes(sentence) if run]


def exactness_row(voice, text: str) -> tuple[int, int, int, int]:
    """(frames, stretches, max |difference| over all samples, max |difference| near the joins)."""
    hop, near = voice.hop_samples, round(JOIN_WINDOW_S * voice.sample_rate_hz)
    phrase = voice.begin(phrases_of(voice, text)[0])
    bounds = stretch_bounds(voice, phrase)
    whole = voice.render(phrase, 0, phrase.frames)[bounds[0] * hop:].astype(np.int32)
    stretched = np.concatenate(list(voice.render_stretches(phrase, bounds, rest_stretch(0)))).astype(np.int32)
    difference = np.abs(stretched - whole)
    joins = [(b - bounds[0]) * hop for b in bounds[1:-1]]
    at_joins = max((int(difference[max(0, j - near):j + near].max()) for j in joins), default=0)
    return phrase.frames, len(bounds) - 1, int(difference.max()), at_joins


def naive_row(voice, text: str) -> tuple[float, float | None]:
    """(pause ms, F0 jump st) of head-alone + rest-alone against the unsplit run, at the second word gap."""
    phonemes = phrases_of(voice, text)[0]
    split = [i for i, symbol in enumerate(phonemes) if symbol == SILENCE][1]
    head, rest, whole = (voice.speak(p) for p in (phonemes[:split], phonemes[split + 1:], phonemes))
    naive_audio = np.concatenate([head[0], rest[0]])
    symbols, id_samples = whole[1], whole[2]
    gap_id = [i for i, symbol in enumerate(symbols) if symbol == SILENCE][1]
    a = join_features(naive_audio, len(head[0]), voice.sample_rate_hz)
    b = join_features(whole[0], int(id_samples[:gap_id].sum()), voice.sample_rate_hz)
    jump = a[1] - b[1] if a[1] is not None and b[1] is not None else None
    return a[0] - b[0], jump


def join_features(audio: np.ndarray, join: int, rate: int) -> tuple[float, float | None]:
    """(the quiet stretch at JOIN in ms, the F0 just after it over just before in semitones)."""
    frames = analyze_prosody(audio, rate)
    times = np.array([f.time_s for f in frames])
    loud = np.array([f.loudness_db for f in frames])
    pitch = np.array([f.pitch_hz for f in frames])
    near = np.flatnonzero(np.abs(times - join / rate) <= NEAR_S)
    lo = hi = centre = int(near[np.argmin(loud[near])])
    while lo > 0 and loud[lo - 1] < PAUSE_DB:
        lo -= 1
    while hi < len(loud) - 1 and loud[hi] < PAUSE_DB:
        hi += 1
    pause_ms = (hi - lo) * 10.0 if loud[centre] < PAUSE_DB else 0.0
    before = voiced_median(pitch, times, times[lo] - PITCH_SPAN_S, times[lo])
    after = voiced_median(pitch, times, times[hi], times[hi] + PITCH_SPAN_S)
    return pause_ms, 12 * math.log2(after / before) if before and after else None


def voiced_median(pitch: np.ndarray, times: np.ndarray, start_s: float, end_s: float) -> float | None:
    values = pitch[(times >= start_s) & (times < end_s) & (pitch > 0)]
    return float(np.median(values)) if len(values) else None


def timed(make):
    start = time.perf_counter()
    result = make()
    return result, (time.perf_counter() - start) * 1000


def cost_sample(voice, text: str) -> dict[str, float]:
    """Milliseconds of one sentence's stages, and the first audio of its first piece, streamed and old."""
    phrase, begin_ms = timed(lambda: voice.begin(phrases_of(voice, text)[0]))
    bounds = stretch_bounds(voice, phrase)
    stretches = voice.render_stretches(phrase, bounds, rest_stretch(0))
    stretch_ms = [timed(lambda: next(stretches))[1] for _ in bounds[1:]]
    _, whole_ms = timed(lambda: voice.render(phrase, 0, phrase.frames))
    first_piece = phrases_of(voice, next(speech_pieces(text, FIRST_CHUNK_MAX_WORDS)))[0]
    head, head_begin_ms = timed(lambda: voice.begin(first_piece))
    head_bounds = stretch_bounds(voice, head)
    _, head_first_ms = timed(lambda: next(voice.render_stretches(head, head_bounds, rest_stretch(0))))
    _, head_whole_ms = timed(lambda: voice.render(head, 0, head.frames))
    return {"audio_s": phrase.frames * voice.hop_samples / voice.sample_rate_hz, "begin": begin_ms,
            "first": stretch_ms[0], "whole": whole_ms, "sum": sum(stretch_ms), "ratio": sum(stretch_ms) / whole_ms,
            "new_first_audio": head_begin_ms + head_first_ms, "old_first_audio": head_begin_ms + head_whole_ms}


def show_exactness(voice, repeats: int) -> None:
    print("1. exactness: whole render vs the engine's stretches (int16 steps; the voice's noise is drawn once per "
          "sentence stage, so both render the same latent)")
    print(f"{'sentence':<44} {'frames':>6} {'parts':>5} {'max|d|':>6} {'joins':>6} {'naive pause ms':>14} "
          f"{'naive F0 st':>11}")
    pauses, all_jumps = [], []
    for text in SENTENCES:
        frames, parts, overall, at_joins = exactness_row(voice, text)
        naive = [naive_row(voice, text) for _ in range(repeats)]
        pauses.append(statistics.median(p for p, _ in naive))
        jumps = [j for _, j in naive if j is not None]
        all_jumps += [abs(j) for j in jumps]
        jump = f"{statistics.median(jumps):+.2f}" if jumps else "-"
        print(f"{text[:44]:<44} {frames:>6} {parts:>5} {overall:>6} {at_joins:>6} {pauses[-1]:>+14.0f} {jump:>11}")
    jump = f"{statistics.median(all_jumps):.2f}" if all_jumps else "-"
    print(f"{'median (F0: of |jump|)':<64} {statistics.median(pauses):>+14.0f} {jump:>11}")
    print("   equal samples: loudness and pitch across each stretch join are the whole run's; naive: medians of "
          f"{repeats} runs, naive minus unsplit at the second word gap (F0 -: no voiced frames beside it)\n")


def show_costs(threads: list[int], repeats: int) -> None:
    print(f"2. cost: ms, medians of {len(SENTENCES)} sentences x {repeats} repeats (models=1)")
    keys = ["begin", "first", "whole", "sum", "ratio", "new_first_audio", "old_first_audio"]
    print(f"{'threads':>7} {'audio s':>7} {'begin':>7} {'1st str':>7} {'whole':>7} {'sum str':>7} {'sum/wh':>6} "
          f"{'1st audio new':>13} {'old':>7}")
    for count in threads:
        voice = PiperEngine(threads=count, models=1).loaded_voice()
        samples = [cost_sample(voice, text) for _ in range(repeats) for text in SENTENCES]
        median = {key: statistics.median(s[key] for s in samples) for key in ["audio_s", *keys]}
        print(f"{count:>7} {median['audio_s']:>7.2f} {median['begin']:>7.1f} {median['first']:>7.1f} "
              f"{median['whole']:>7.1f} {median['sum']:>7.1f} {median['ratio']:>6.2f} "
              f"{median['new_first_audio']:>13.1f} {median['old_first_audio']:>7.1f}")
    print("   1st audio: the first piece's sentence stage + its first stretch (new) or its whole render (old)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per sentence (costs, naive joins)")
    parser.add_argument("--threads", default="1,2", help="onnxruntime thread counts to time, comma-separated")
    args = parser.parse_args()
    threads = [int(n) for n in args.threads.split(",")]
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)\n")
    show_exactness(PiperEngine(threads=threads[0], models=1).loaded_voice(), args.repeats)
    show_costs(threads, args.repeats)


if __name__ == "__main__":
    main()
