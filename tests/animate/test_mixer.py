"""The Python mixer: equal to the shared vectors (the JS twin's contract), frame-rate independent, exact."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from photoavatar.animate.mixer import MixerConfig, mix
from photoavatar.speech.types import ProsodyFrame, VisemeEvent
from photoavatar.spring import spring_step

VECTORS = sorted((Path(__file__).resolve().parents[1] / "vectors").glob("mixer_*.json"))
SENTENCE = [VisemeEvent("MBP", 0.05, 0.18), VisemeEvent("AI", 0.16, 0.32), VisemeEvent("E", 0.28, 0.40, 0.6),
            VisemeEvent("FV", 0.38, 0.47), VisemeEvent("O", 0.42, 0.66, 0.8), VisemeEvent("WQ", 0.40, 0.55, 0.5),
            VisemeEvent("U", 0.7, 1.02)]
PROSODY = [ProsodyFrame(0.01 * i, -60 + 45 * math.sin(math.pi * i / 100) ** 2, 120.0, 0.8 if i == 30 else 0.0)
           for i in range(110)]


def test_there_are_vectors():
    assert len(VECTORS) >= 4


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_python_mixer_equals_the_shared_vectors(path):
    case = json.loads(path.read_text())
    frames = mix([VisemeEvent.from_json(e) for e in case["events"]],
                 [ProsodyFrame.from_json(p) for p in case["prosody"]],
                 case["frame_times_s"], MixerConfig.from_json(case["config"]))
    assert len(frames) == len(case["frames"])
    for got, want in zip(frames, case["frames"], strict=True):
        assert got.time_s == want["time_s"]
        for name, value in want["weights"].items():
            assert abs(got.weights[name] - value) <= 1e-9, (path.stem, got.time_s, name)
        for key in ("loudness", "nod", "brow"):
            assert abs(getattr(got, key) - want[key]) <= 1e-9, (path.stem, got.time_s, key)


def test_frame_rate_does_not_change_the_result():
    by_rate = {}
    for fps in (25, 60, 1000):
        times = [i / fps for i in range(int(1.2 * fps) + 1)]
        by_rate[fps] = {round(f.time_s, 9): f for f in mix(SENTENCE, PROSODY, times)}
    shared = sorted(set(by_rate[25]) & set(by_rate[60]) & set(by_rate[1000]))
    assert len(shared) >= 6
    for t in shared:
        for name in MixerConfig().visemes:
            values = [by_rate[fps][t].weights[name] for fps in by_rate]
            assert max(values) - min(values) < 1e-9, (t, name)
        assert max(by_rate[fps][t].loudness for fps in by_rate) - min(by_rate[fps][t].loudness for fps in by_rate) < 1e-9


def test_a_single_step_follows_the_critically_damped_formula():
    config = MixerConfig()
    omega = config.omega("AI")
    times = np.linspace(0.0, 0.5, 251)
    frames = mix([VisemeEvent("AI", 0.1, 10.0)], [], times, config)
    for frame in frames:
        u = max(0.0, omega * (frame.time_s - 0.1))
        assert frame.weights["AI"] == pytest.approx(1 - (1 + u) * math.exp(-u), abs=1e-12)


def test_no_overshoot_from_rest():
    x, v, previous = 0.0, 0.0, 0.0
    for _ in range(2000):
        x, v = spring_step(x, v, 1.0, MixerConfig().omega("AI"), 0.0005)
        assert previous - 1e-15 <= x <= 1.0
        previous = x
    frames = mix([VisemeEvent("O", 0.0, 0.5), VisemeEvent("U", 0.1, 0.6, 0.7)], [], np.linspace(0, 1, 501))
    for frame in frames:
        assert all(0.0 <= w <= 1.0 for w in frame.weights.values())


def test_weights_always_sum_to_one():
    for frame in mix(SENTENCE, PROSODY, np.linspace(0, 1.3, 400)):
        assert sum(frame.weights.values()) == pytest.approx(1.0, abs=1e-12)
        assert 0.0 <= frame.loudness <= 1.0 and 0.0 <= frame.nod <= 1.0 and 0.0 <= frame.brow <= 1.0
