"""Benchmark `photoavatar avatarize`: median seconds per photo and per stage over the test portraits.

Run: .venv/bin/python bench/avatarize.py [--runs 3] [--faces ../shared/testdata/faces]
Target: <= 5 s per photo on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from photoavatar.avatar.build import STAGES, avatarize  # noqa: E402

PORTRAITS = ("obama.jpg", "biden.jpg", "grace_hopper.jpg", "obama_partial_face.jpg")
DEFAULT_FACES = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "faces"


def time_one(photo: Path, out: Path) -> dict[str, float]:
    """Seconds per stage of one avatarize run (stage boundaries come from its progress callback)."""
    marks: list[tuple[str, float]] = []
    started = time.perf_counter()
    avatarize(photo, out, force=True, progress=lambda stage, *_: marks.append((stage, time.perf_counter())))
    marks.append(("end", time.perf_counter()))
    stages = {name: end - begin for (name, begin), (_, end) in zip(marks, marks[1:], strict=False) if name != "done"}
    stages["total"] = marks[-1][1] - started
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    columns = [*STAGES, "total"]
    table = Table(title=f"avatarize, median of {args.runs} runs (seconds; warm model, 12 visemes, 512 px)")
    table.add_column("photo")
    for column in columns:
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory(prefix="bench-avatarize-") as folder:
        time_one(args.faces / PORTRAITS[0], Path(folder) / "warmup")  # loads the landmark model once
        totals = []
        for name in PORTRAITS:
            runs = [time_one(args.faces / name, Path(folder) / name) for _ in range(args.runs)]
            medians = {c: statistics.median(run.get(c, 0.0) for run in runs) for c in columns}
            totals.append(medians["total"])
            table.add_row(name, *(f"{medians[c]:.2f}" for c in columns))
    Console().print(table)
    print(f"median per photo: {statistics.median(totals):.2f} s (target <= 5 s)")


if __name__ == "__main__":
    main()
