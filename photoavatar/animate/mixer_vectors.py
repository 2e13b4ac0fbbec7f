"""Writes the mixer's shared test vectors (tests/vectors/mixer_*.json) for the Python and JS mixers.

Run `python -m photoavatar.animate.mixer_vectors [folder]` after a deliberate change to the mixer.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from photoavatar.animate.mixer import MixerConfig, mix
from photoavatar.speech.types import ProsodyFrame, VisemeEvent


def _frames(rate_hz: float, duration_s: float, jitter_s: float = 0.0) -> list[float]:
    count = int(duration_s * rate_hz)
    return [round(i / rate_hz + jitter_s * math.sin(i * 1.7), 6) if i else 0.0 for i in range(count + 1)]


def _cases() -> dict[str, dict]:
    sentence = [
        VisemeEvent("MBP", 0.05, 0.18), VisemeEvent("AI", 0.16, 0.32), VisemeEvent("E", 0.28, 0.40, 0.6),
        VisemeEvent("FV", 0.38, 0.47), VisemeEvent("O", 0.42, 0.66, 0.8), VisemeEvent("WQ", 0.40, 0.55, 0.5),
        VisemeEvent("L", 0.64, 0.70), VisemeEvent("TH", 0.69, 0.74), VisemeEvent("R", 0.73, 0.80, 0.7),
        VisemeEvent("CH", 0.80, 0.88), VisemeEvent("U", 0.86, 1.02),
    ]
    prosody = [ProsodyFrame(round(0.01 * i, 2), -60.0 + 45.0 * math.sin(math.pi * i / 100) ** 2,
                            120.0 + 20.0 * math.sin(i / 9.0) if 10 <= i <= 95 else 0.0,
                            0.8 if i == 30 else (0.4 if i == 70 else 0.0)) for i in range(110)]
    return {
        "step": {"config": MixerConfig(), "events": [VisemeEvent("AI", 0.1, 0.5)], "prosody": [],
                 "times": _frames(25, 0.8)},
        "sentence_60fps": {"config": MixerConfig(), "events": sentence, "prosody": prosody,
                           "times": _frames(60, 1.3)},
        "jittery_frames_with_overrides": {
            "config": MixerConfig(0.05, {"MBP": 0.02, "FV": 0.025}), "events": sentence, "prosody": prosody,
            "times": _frames(59.94, 1.3, jitter_s=0.004)},
        "overlap_over_one": {"config": MixerConfig(), "times": _frames(30, 0.6), "prosody": [],
                             "events": [VisemeEvent("O", 0.0, 0.3), VisemeEvent("U", 0.1, 0.4),
                                        VisemeEvent("WQ", 0.15, 0.35, 0.7)]},
    }


def write_vectors(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, case in _cases().items():
        frames = mix(case["events"], case["prosody"], case["times"], case["config"])
        document = {
            "name": name,
            "config": case["config"].to_json(),
            "events": [e.to_json() for e in case["events"]],
            "prosody": [p.to_json() for p in case["prosody"]],
            "frame_times_s": case["times"],
            "frames": [f.to_json() for f in frames],
        }
        path = folder / f"mixer_{name}.json"
        path.write_text(json.dumps(document, indent=1) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "tests" / "vectors"
    for path in write_vectors(target):
        print(path)
