r"""The momentum law (scaling law with LR annealing, Tissue et al., arXiv 2408.11029).

.. math::

    L(s) = L_0 + A \, S_1(s)^{-\alpha} - C \, S_2(s)

    S_1(s) = \sum_{i<s} \eta_i \quad\text{(forward area)}

    m_i = \lambda m_{i-1} + (\eta_{i-1} - \eta_i), \qquad S_2(s) = \sum_{i<s} m_i
    \quad\text{(annealing area)}

Warmup steps count as if the LR were already at its peak (as in the paper), so warmup
adds no negative annealing area; a later re-warm does (``S_2 < 0``), which predicts the
loss bump of continual pre-training.  ``S_2`` is a first-order IIR filter of the LR
differences followed by a cumulative sum: O(T).
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np
from scipy import optimize, signal

from lrtune.curves import Curve
from lrtune.laws._base import Law

__all__ = ["MomentumLaw", "forward_area", "annealing_area", "flatten_warmup"]


def flatten_warmup(lr: np.ndarray) -> np.ndarray:
    """The LR array with its initial warmup replaced by the LR it warms up to.

    The warmup is the initial non-decreasing stretch of the schedule, up to the first
    step where it reaches its top.
    """
    if lr.size < 2:
        return lr
    down = np.flatnonzero(np.diff(lr) < 0)
    end = int(down[0]) + 1 if down.size else lr.size
    top = int(np.argmax(lr[:end]))
    if top == 0:
        return lr
    out = lr.copy()
    out[:top] = lr[top]
    return out


def forward_area(lr: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """S1 at each step: the sum of the LRs of the first ``s`` updates."""
    return np.cumsum(lr)[steps - 1]


def annealing_area(lr: np.ndarray, steps: np.ndarray, decay: float) -> np.ndarray:
    """S2 at each step with momentum ``decay`` (the paper's lambda)."""
    d = lr[:-1] - lr[1:]
    m = signal.lfilter([1.0], [1.0, -decay], d)
    cum = np.concatenate([[0.0], np.cumsum(m)])
    return cum[steps - 1]


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))


class MomentumLaw(Law):
    """Momentum law ``L = L0 + A*S1^-alpha - C*S2``.

    Args:
        decay: the momentum ``lambda`` of the annealing area, in [0.9, 0.9999].
        huber_delta: Huber threshold on log-loss residuals of the fit.
    """

    name: ClassVar[str] = "momentum"
    param_names: ClassVar[tuple[str, ...]] = ("L0", "A", "alpha", "C")

    def __init__(self, decay: float = 0.999, huber_delta: float = 1e-3) -> None:
        if not 0.9 <= decay < 1:
            raise ValueError(f"decay must be in [0.9, 1), got {decay}")
        if not huber_delta > 0:
            raise ValueError(f"huber_delta must be > 0, got {huber_delta}")
        self.decay = decay
        self.huber_delta = huber_delta

    def get_config(self) -> dict[str, Any]:
        return {"decay": self.decay, "huber_delta": self.huber_delta}

    def _features(self, lr: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flat = flatten_warmup(lr)
        return forward_area(flat, steps), annealing_area(flat, steps, self.decay)

    def _predict_params(self, params: dict[str, float], lr: np.ndarray, steps: np.ndarray,
                        model_size: float | None) -> np.ndarray:
        s1, s2 = self._features(lr, steps)
        return params["L0"] + params["A"] * s1 ** (-params["alpha"]) - params["C"] * s2

    def _fit_params(self, curves: Sequence[Curve]) -> dict[str, float]:
        feats = [self._features(c.lr, c.steps) for c in curves]
        s1 = np.concatenate([f[0] for f in feats])
        s2 = np.concatenate([f[1] for f in feats])
        y = np.log(np.concatenate([c.loss for c in curves]))
        delta = self.huber_delta
        lo = float(np.exp(y).min())

        def objective(x: np.ndarray) -> float:
            L0, logA, alpha, C = x
            pred = L0 + np.exp(logA) * s1 ** (-alpha) - C * s2
            if np.any(pred <= 0):
                return 1e6
            return float(np.sum(_huber(np.log(pred) - y, delta)))

        scale_c = 1.0 / max(float(np.abs(s2).max()), 1e-12)
        bounds = [(0.0, lo), (-10.0, 10.0), (0.01, 3.0), (0.0, 1e3 * scale_c * lo)]
        best = None
        for L0 in (0.3 * lo, 0.6 * lo, 0.85 * lo):
            for alpha in (0.2, 0.5, 1.0):
                for c in (0.0, 0.1 * lo * scale_c, 0.5 * lo * scale_c):
                    x0 = np.array([L0, np.log(max(lo - L0, 1e-3)) + alpha * np.log(np.median(s1)), alpha, c])
                    res = optimize.minimize(objective, x0, method="L-BFGS-B", bounds=bounds)
                    if best is None or res.fun < best.fun - 1e-15:
                        best = res
        L0, logA, alpha, C = best.x
        return {"L0": L0, "A": float(np.exp(logA)), "alpha": alpha, "C": C}
