"""Array pieces that schedules are joined from.

Every piece is a pure function of the local index inside the piece and returns a
float64 array.  Decays follow the step convention of docs/schedules.md: a decay of length ``n``
starts at its top value at local index 0 and stops one step short of its floor
(the point ``u = 1`` belongs to a step that is never taken).
"""

from __future__ import annotations

import numpy as np

DECAY_SHAPES = ("linear", "1-sqrt", "cosine", "exp")


def warmup(n: int, peak: float, start: float) -> np.ndarray:
    """Linear warmup over ``n`` updates from ``start * peak`` up to ``peak``.

    ``lr[i] = peak * (start + (1 - start) * i / (n - 1))`` for ``i < n``: update 1 runs at
    ``start * peak`` and update ``n`` (the last of the warmup) at ``peak``.
    """
    if n == 1:
        return np.array([float(peak)])
    i = np.arange(n, dtype=np.float64)
    out = np.minimum(peak * (start + (1.0 - start) * i / max(n - 1, 1)), peak)
    out[-1:] = peak  # exactly: the rounding of the ramp's last value can miss it by an ulp
    return out


def constant(n: int, value: float) -> np.ndarray:
    return np.full(n, float(value))


def decay_factor(u: np.ndarray, shape: str, floor: float) -> np.ndarray:
    """Multiplier in [floor, 1] of a decay at progress ``u`` in [0, 1)."""
    if shape == "linear":
        g = 1.0 - u
    elif shape == "1-sqrt":
        g = 1.0 - np.sqrt(u)
    elif shape == "cosine":
        g = 0.5 * (1.0 + np.cos(np.pi * u))
    elif shape == "exp":
        if floor <= 0:
            raise ValueError("shape=exp needs min > 0 (a geometric decay never reaches 0)")
        return floor**u
    else:
        raise ValueError(f"shape must be one of {', '.join(DECAY_SHAPES)}, got {shape!r}")
    return floor + (1.0 - floor) * g


def decay(n: int, top: float, shape: str, floor_ratio: float) -> np.ndarray:
    """``n`` steps decaying from ``top`` toward ``floor_ratio * top`` with ``shape``."""
    u = np.arange(n, dtype=np.float64) / max(n, 1)
    return top * decay_factor(u, shape, floor_ratio)


def ramp(n: int, low: float, high: float) -> np.ndarray:
    """Linear ramp from ``low`` toward ``high`` over ``n`` steps (``high`` is the next step)."""
    i = np.arange(n, dtype=np.float64)
    return low + (high - low) * i / max(n, 1)


def join(pieces: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in pieces]) if pieces else np.zeros(0)
