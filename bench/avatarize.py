"""Benchmark `photoavatar avatarize` over every shared test portrait, and measure what it made.

Prints: median seconds per photo and per stage; then, for each bundle, every viseme composed on idle frame 0
as a client shows it and measured by photoavatar.avatar.legibility (landmarks found again): the legibility
table (inner-lip aperture / mouth width vs Rest) and the texture table (Laplacian variance of the chin and
upper-lip patches vs Rest). Photos with several similar faces are built with --face 0, as a user would after
the error that lists them.

Run: .venv/bin/python bench/avatarize.py [--runs 3] [--faces ../shared/testdata/faces]
Target: median <= 5 s per photo on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from photoavatar.avatar.native_logs import quiet_environment

quiet_environment()

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from photoavatar.avatar.build import STAGES, avatarize  # noqa: E402
from photoavatar.avatar.bundle import AvatarBundle  # noqa: E402
from photoavatar.avatar.legibility import VisemeMeasure, measure_bundle  # noqa: E402

DEFAULT_FACES = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "faces"
SEVERAL_FACES = ("two_people.jpg", "two_small_faces.jpg")


def time_one(photo: Path, out: Path) -> tuple[dict[str, float], AvatarBundle]:
    """Seconds per stage of one avatarize run (stage boundaries come from its progress callback)."""
    marks: list[tuple[str, float]] = []
    started = time.perf_counter()
    bundle = avatarize(photo, out, force=True, face_index=0 if photo.name in SEVERAL_FACES else None,
                       progress=lambda stage, *_: marks.append((stage, time.perf_counter())))
    marks.append(("end", time.perf_counter()))
    stages = {name: end - begin for (name, begin), (_, end) in zip(marks, marks[1:], strict=False) if name != "done"}
    stages["total"] = marks[-1][1] - started
    return stages, bundle


def _measure_table(title: str, measured: dict[str, dict[str, VisemeMeasure]], cell) -> Table:
    visemes = list(next(iter(measured.values())))
    table = Table(title=title)
    table.add_column("photo")
    for viseme in visemes:
        table.add_column(viseme, justify="right")
    for name, measures in measured.items():
        table.add_row(name, *(cell(measures[v]) for v in visemes))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    photos = sorted(args.faces.glob("*.jpg"))
    columns = [*STAGES, "total"]
    timing = Table(title=f"avatarize, median of {args.runs} runs (seconds; warm model, 12 visemes, 512 px)")
    timing.add_column("photo")
    for column in columns:
        timing.add_column(column, justify="right")
    totals, measured = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-avatarize-") as folder:
        time_one(photos[0], Path(folder) / "warmup")  # loads the landmark model once
        for photo in photos:
            runs = [time_one(photo, Path(folder) / photo.stem) for _ in range(args.runs)]
            medians = {c: statistics.median(stages.get(c, 0.0) for stages, _ in runs) for c in columns}
            totals.append(medians["total"])
            timing.add_row(photo.name, *(f"{medians[c]:.2f}" for c in columns))
            measured[photo.name] = measure_bundle(runs[-1][1])
    console = Console(width=200)
    console.print(timing)
    print(f"median per photo: {statistics.median(totals):.2f} s (target <= 5 s); load average at the end: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    console.print(_measure_table("legibility on idle frame 0: aperture / width vs Rest", measured,
                                 lambda m: f"{m.aperture:.2f}/{m.width_ratio:.2f}"))
    console.print(_measure_table("texture kept vs Rest: chin / upper lip (target >= 0.8)", measured,
                                 lambda m: f"{m.chin_texture:.2f}/{m.upper_lip_texture:.2f}"))


if __name__ == "__main__":
    main()
