"""A 4,800-character run-on sentence: memory per model run, RSS afterwards, fairness to another session, stop.

Issue 11: one such /speak took the server from 363 MB to 8.7 GB (16 GB held after a second), delayed another
session's first audio by 58-66 s and kept synthesising 67-78 s after /stop. Here, with the real Piper engine,
the real pipeline and the server's synthesis scheduler (live/synthesis.py), no network:
1. memory: RSS after warm-up, the peak while the whole run-on is synthesised (bounded runs: text.speech_pieces,
   piper_engine.bound_phonemes), and RSS after it; the same for one unbounded run of --unbounded-chars;
2. fairness: the run-on plays in one stream; another stream asks for "Hello there, ..." --other-after-s later
   and the time to its first chunk is printed (at most one chunk's run behind, whatever the run-on's length);
3. stop: the run-on is cancelled --stop-after-s after it started; printed: how long until no model run of it
   is in flight, and how many runs it made after the cancel (at most the one running).
Run: .venv/bin/python bench/run_on.py [--chars 4800] [--unbounded-chars 500]
"""

from __future__ import annotations

import argparse
import threading
import time

RUN_ON_WORDS = "and the quick brown fox jumps over the lazy dog".split()
OTHER = "Hello there, how are you doing today?"


def run_on_text(chars: int) -> str:
    words = (RUN_ON_WORDS * (chars // 40 + 2))
    return " ".join(words)[:chars].rsplit(" ", 1)[0]


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process, MB."""
    fields = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            fields[name] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def memory(engine, chars: int, unbounded_chars: int) -> None:
    from photoavatar.speech.pipeline import stream_speech

    for _ in stream_speech(engine, "Hello there, warming up."):
        pass
    base, _ = rss_mb()
    started = time.perf_counter()
    audio_s = sum(s.audio.duration_s for s in stream_speech(engine, run_on_text(chars)))
    after, peak = rss_mb()
    print(f"bounded run-on, {chars} characters: {audio_s:.0f} s of speech in {time.perf_counter() - started:.1f} s; "
          f"RSS {base:.0f} MB before, peak {peak:.0f} MB (+{peak - base:.0f}), after {after:.0f} MB "
          f"(+{after - base:.0f})")
    if unbounded_chars:
        voice = engine.loaded_voice()
        phonemes = [p for sentence in voice.phonemize(run_on_text(unbounded_chars)) for p in sentence]
        voice.speak(phonemes)
        after_unbounded, peak_unbounded = rss_mb()
        print(f"one unbounded run of {unbounded_chars} characters (what the server did before): peak "
              f"{peak_unbounded:.0f} MB (+{peak_unbounded - base:.0f}), after {after_unbounded:.0f} MB")


def fairness_and_stop(engine, chars: int, other_after_s: float, stop_after_s: float) -> None:
    from photoavatar.live.synthesis import END, SynthesisScheduler
    from photoavatar.speech.pipeline import stream_speech

    scheduler = SynthesisScheduler(engine.models)
    runs_after_cancel = []
    cancelled_at: list[float] = []
    other_first: list[float] = []
    other_done = threading.Event()

    def run_on_deliver(item) -> None:
        if cancelled_at:
            runs_after_cancel.append(time.monotonic() - cancelled_at[0])

    def other_deliver(item) -> None:
        if not other_first:
            other_first.append(time.monotonic())
        if item is END:
            other_done.set()

    def seconds(segment) -> float:
        return segment.audio.duration_s

    run_on = scheduler.submit(stream_speech(engine, run_on_text(chars)), seconds, run_on_deliver)
    time.sleep(other_after_s)
    asked = time.monotonic()
    scheduler.submit(stream_speech(engine, OTHER), seconds, other_deliver)
    other_done.wait(60)
    print(f"another session asking {other_after_s:.1f} s into the run-on: first chunk after "
          f"{(other_first[0] - asked) * 1000:.0f} ms")
    time.sleep(max(0.0, stop_after_s - other_after_s - (time.monotonic() - asked)))
    cancelled_at.append(time.monotonic())
    scheduler.cancel(run_on)
    while scheduler.running() or run_on.running:
        time.sleep(0.005)
    idle_ms = (time.monotonic() - cancelled_at[0]) * 1000
    print(f"run-on cancelled at {stop_after_s:.1f} s: no run of it in flight {idle_ms:.0f} ms later; "
          f"{len(runs_after_cancel)} chunk(s) finished after the cancel (discarded), {run_on.runs} runs in all")
    scheduler.close()


def main() -> None:
    from photoavatar.speech.piper_engine import PiperEngine
    from photoavatar.speech.text import MAX_CHARS_PER_RUN, MAX_WORDS_PER_RUN
    from photoavatar.testing.bench import load_average_line

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=4800, help="length of the run-on sentence")
    parser.add_argument("--unbounded-chars", type=int, default=500, help="one unbounded run for comparison (0: skip)")
    parser.add_argument("--other-after-s", type=float, default=1.0)
    parser.add_argument("--stop-after-s", type=float, default=1.5)
    args = parser.parse_args()
    print(load_average_line())
    engine = PiperEngine()
    print(f"engine: {engine.models} voice instances x {engine.threads} threads; runs of at most {MAX_WORDS_PER_RUN} "
          f"words / {MAX_CHARS_PER_RUN} characters")
    fairness_and_stop(engine, args.chars, args.other_after_s, args.stop_after_s)
    memory(engine, args.chars, args.unbounded_chars)
    print(load_average_line().replace("at start", "at end"))


if __name__ == "__main__":
    main()
