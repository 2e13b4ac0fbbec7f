"""The critically damped spring the mixer moves every weight with, and what the timeline plans around.

One owner, below both stages that use it (speech/timeline.py plans closures long enough for the spring to settle;
animate/mixer.py runs it; web/mixer.js is its JavaScript twin, held to the same numbers by tests/vectors/).

A weight x follows its target g as x'' = -w^2 (x - g) - 2 w x': no overshoot from rest, no jumps. The time
constant is the 63 % rise time: from rest, a step is 1 - 1/e of the way there after `time_constant_s`.
"""

from __future__ import annotations

import math

# A critically damped spring reaches 1 - 1/e of a step at t = RISE_63 / w: u where 1 - (1+u)e^-u = 1 - 1/e.
RISE_63 = 2.1461932206205825
DEFAULT_TIME_CONSTANT_S = 0.035  # short enough for MBP/FV to close fully (speech/timeline.py)
SETTLE_LEVEL = 0.9  # "settled": 0.9 of the way to the target


def omega(time_constant_s: float) -> float:
    """The spring's angular frequency w for a 63 % rise time."""
    return RISE_63 / time_constant_s


def spring_step(x: float, v: float, target: float, omega: float, dt: float) -> tuple[float, float]:
    """Exact critically damped motion over dt toward a constant target: the new (position, velocity)."""
    decay = math.exp(-omega * dt)
    offset = x - target
    drive = v + omega * offset
    return target + (offset + drive * dt) * decay, (v - omega * drive * dt) * decay


def _solve_rise_u(level: float) -> float:
    """u where a critically damped step from rest reaches LEVEL: 1 - (1+u)e^-u = level (Newton's method)."""
    u = 4.0
    for _ in range(50):
        u -= (1.0 - (1.0 + u) * math.exp(-u) - level) / (u * math.exp(-u))
    return u


SETTLE_U = _solve_rise_u(SETTLE_LEVEL)


def settle_time_s(time_constant_s: float = DEFAULT_TIME_CONSTANT_S) -> float:
    """How long the spring takes to bring a weight from 0 to SETTLE_LEVEL (and another from 1 to 1 - it)."""
    return SETTLE_U / omega(time_constant_s)
