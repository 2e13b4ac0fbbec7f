"""What the bench/ scripts share: their common options and the load average every table is read against."""

from __future__ import annotations

import argparse
import os


def counts(text: str) -> list[int]:
    """A comma-separated list of positive counts ("1,5,10"); "" is none. For argparse's type=."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(f"every count must be at least 1, got {text!r}")
    return values


def bench_parser(description: str, utterances: int, sessions: str, utterances_help: str) -> argparse.ArgumentParser:
    """The options of the browser benchmarks: --utterances N and --sessions 1,5,10 (a list, '' to skip)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--utterances", type=int, default=utterances, help=utterances_help)
    parser.add_argument("--sessions", type=counts, default=counts(sessions),
                        help=f"comma-separated session counts (default {sessions}; '' to skip)")
    return parser


def load_average_line() -> str:
    """The machine's load average, for the head of a table: timings mean little without it."""
    one, five, fifteen = os.getloadavg()
    return f"load average at start: {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"
