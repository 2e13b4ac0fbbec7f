"""A picture of a timeline for people who would rather look than read: waveform, mixed viseme weights, prosody."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from photoavatar.animate.mixer import mix
from photoavatar.visemes import REST, VISEMES

PLOT_RATE_HZ = 200


def plot_timeline(spoken, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    duration_s = spoken.duration_s
    times = np.arange(0.0, duration_s, 1.0 / PLOT_RATE_HZ)
    frames = mix(spoken.visemes, spoken.prosody, times)
    figure, (wave, weights, prosody) = plt.subplots(3, 1, figsize=(max(8.0, duration_s * 3.0), 7.5), sharex=True,
                                                    gridspec_kw={"height_ratios": [1, 2, 1.2]})
    audio_t = np.arange(len(spoken.samples)) / spoken.sample_rate_hz
    wave.plot(audio_t, spoken.samples / 32768.0, linewidth=0.4, color="0.3")
    wave.set_ylabel("audio")
    wave.set_title(spoken.text[:120])
    colours = plt.get_cmap("tab20")
    for index, name in enumerate(v for v in VISEMES if v != REST):
        curve = np.array([frame.weights.get(name, 0.0) for frame in frames])
        if curve.max() > 0.02:
            weights.plot(times, curve, label=name, color=colours(index), linewidth=1.2)
            peak = int(np.argmax(curve))
            weights.annotate(name, (times[peak], curve[peak]), fontsize=7, color=colours(index))
    weights.set_ylim(0, 1.05)
    weights.set_ylabel("viseme weight (mixed)")
    weights.legend(ncol=6, fontsize=7, loc="upper right")
    _plot_prosody(prosody, spoken.prosody)
    prosody.set_xlabel("seconds of audio")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def _plot_prosody(axis, frames) -> None:
    if not frames:
        return
    t = np.array([f.time_s for f in frames])
    axis.plot(t, [f.loudness_db for f in frames], color="tab:blue", linewidth=0.8)
    axis.set_ylabel("loudness dB", color="tab:blue")
    axis.set_ylim(-70, 0)
    pitch_axis = axis.twinx()
    pitch = np.array([f.pitch_hz if f.pitch_hz > 0 else np.nan for f in frames])
    pitch_axis.plot(t, pitch, color="tab:red", linewidth=0.8)
    pitch_axis.set_ylabel("F0 Hz", color="tab:red")
    for frame in frames:
        if frame.accent > 0:
            axis.axvline(frame.time_s, color="tab:green", alpha=0.3 + 0.5 * frame.accent, linewidth=1.0)
