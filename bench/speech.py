"""Speech benchmark: time to first audio chunk, real-time factor, voice loading, visemes + prosody cost.

Run: .venv/bin/python bench/speech.py [--runs 5]
Targets: first chunk <= 150 ms for a sentence of 8-10 words, real-time factor <= 0.15.
Synthesis durations are sampled by the model, so every figure is a median over several runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from photoavatar.speech.piper_engine import PiperEngine, _patch_for_alignment, aligned_model, bundled_voice

SHORT = "The quick brown fox jumps over the lazy dog today."  # 10 words
PARAGRAPH = (
    "When the morning sun rose over the quiet hills, the farmers walked slowly to their fields, and the "
    "children ran after them laughing. The air was cool and smelled of rain. By noon the work was done, "
    "and everyone gathered under the old oak tree to share bread, cheese and stories about the year gone by. "
    "Nobody wanted the day to end."
)


def median_s(measure: Callable[[], float], runs: int) -> float:
    measure()  # warm-up: first run pays for lazy allocations
    return statistics.median(measure() for _ in range(runs))


def first_chunk_s(engine: PiperEngine, text: str) -> float:
    start = time.perf_counter()
    stream = engine.synthesize(text)
    next(stream)
    elapsed = time.perf_counter() - start
    stream.close()
    return elapsed


def real_time_factor(engine: PiperEngine, text: str) -> float:
    start = time.perf_counter()
    audio_s = sum(chunk.duration_s for chunk in engine.synthesize(text))
    return (time.perf_counter() - start) / audio_s


def synthesis_rows(engine: PiperEngine, runs: int) -> list[tuple[str, str]]:
    threads = f"{engine.threads} thread{'s' if engine.threads > 1 else ''}"
    first_short = median_s(lambda: first_chunk_s(engine, SHORT), runs)
    first_paragraph = median_s(lambda: first_chunk_s(engine, PARAGRAPH), runs)
    rtf = median_s(lambda: real_time_factor(engine, PARAGRAPH), runs)
    return [(f"first chunk, 10-word sentence, {threads}", f"{first_short * 1000:.0f} ms"),
            (f"first chunk, paragraph, {threads}", f"{first_paragraph * 1000:.0f} ms"),
            (f"real-time factor, paragraph, {threads}", f"{rtf:.3f}")]


def load_rows(runs: int) -> list[tuple[str, str]]:
    import onnxruntime

    voice = bundled_voice()
    cached = aligned_model(voice)  # makes sure the cached copy exists

    def from_cache() -> float:
        start = time.perf_counter()
        onnxruntime.InferenceSession(cached, providers=["CPUExecutionProvider"])
        return time.perf_counter() - start

    def in_memory() -> float:
        start = time.perf_counter()
        onnxruntime.InferenceSession(_patch_for_alignment(voice.model_path), providers=["CPUExecutionProvider"])
        return time.perf_counter() - start

    return [("load voice: cached patched model", f"{median_s(from_cache, runs) * 1000:.0f} ms"),
            ("load voice: patch in memory", f"{median_s(in_memory, runs) * 1000:.0f} ms")]


def timeline_row(engine: PiperEngine, runs: int) -> tuple[str, str]:
    try:
        from photoavatar.speech.prosody import analyze_prosody
        from photoavatar.speech.timeline import build_viseme_events
    except ImportError as error:
        return ("visemes + prosody per s of audio", f"skipped ({error})")
    chunks = list(engine.synthesize(PARAGRAPH))
    phonemes = [p for chunk in chunks for p in chunk.phonemes]
    audio = np.concatenate([chunk.samples for chunk in chunks])
    rate = chunks[0].sample_rate_hz

    def measure() -> float:
        start = time.perf_counter()
        build_viseme_events(phonemes, rate)
        analyze_prosody(audio, rate, 0, phonemes)
        return (time.perf_counter() - start) / (len(audio) / rate)

    return ("visemes + prosody per s of audio", f"{median_s(measure, runs) * 1000:.2f} ms")


def prosody_row(runs: int, duration_s: float = 10.0, sample_rate_hz: int = 22050) -> tuple[str, str]:
    """analyze_prosody alone on a voiced-like signal (a gliding tone with harmonics), as a fraction of real time."""
    from photoavatar.speech.prosody import analyze_prosody

    t = np.arange(int(duration_s * sample_rate_hz)) / sample_rate_hz
    phase = 2 * np.pi * np.cumsum(120 + 30 * np.sin(2 * np.pi * 0.5 * t)) / sample_rate_hz
    signal = (0.3 * np.sin(phase) + 0.1 * np.sin(2 * phase) + 0.05 * np.sin(3 * phase)).astype(np.float32)

    def measure() -> float:
        start = time.perf_counter()
        analyze_prosody(signal, sample_rate_hz)
        return (time.perf_counter() - start) / duration_s

    return ("prosody alone per s of audio (gliding tone)", f"{median_s(measure, runs) * 1000:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median reported)")
    runs = max(5, parser.parse_args().runs)

    rows: list[tuple[str, str]] = []
    engine = None
    for threads in (1, 2):
        engine = PiperEngine(threads=threads)
        rows += synthesis_rows(engine, runs)
    rows += load_rows(runs)
    rows.append(timeline_row(engine, runs))
    rows.append(prosody_row(runs))

    width = max(len(name) for name, _ in rows)
    print(f"speech benchmark (median of {runs} runs; targets: first chunk <= 150 ms, RTF <= 0.15)")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


if __name__ == "__main__":
    main()
