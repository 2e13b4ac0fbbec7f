"""The loudness rule on the mixer's output: quiet speech opens the jaw a little less (twin: web/compose.js).

An open viseme keeps its weight at full loudness and gives up to QUIET_JAW_CLOSE * openness of it to Rest at
silence, so the blend stays convex (no extrapolation). The renderer applies it to each MixerFrame before
composing, as the web client does before drawing.
"""

from __future__ import annotations

from collections.abc import Mapping

from photoavatar.visemes import REST

QUIET_JAW_CLOSE = 0.2
JAW_OPENNESS = {"AI": 1.0, "O": 0.8, "E": 0.5, "U": 0.4, "CH": 0.3, "TH": 0.3, "L": 0.3, "R": 0.3, "WQ": 0.3}


def jaw_weights(weights: Mapping[str, float], loudness: float) -> dict[str, float]:
    """WEIGHTS with open visemes eased toward Rest when speech is quiet (loudness 0..1 from the mixer)."""
    quiet = 1.0 - min(1.0, max(0.0, loudness))
    out = dict(weights)
    released = 0.0
    for name, openness in JAW_OPENNESS.items():
        if not out.get(name):
            continue
        give = out[name] * QUIET_JAW_CLOSE * openness * quiet
        out[name] -= give
        released += give
    out[REST] = out.get(REST, 0.0) + released
    return out
