r"""The convex-optimisation bound of a learning-rate schedule (Schaipp et al., ICML 2025).

SGD on a convex, G-Lipschitz problem with step sizes :math:`a_t = \gamma \eta_t`
(:math:`\gamma` the base LR, :math:`\eta` the schedule normalised to peak 1),
:math:`D = \|x_1 - x^*\|` and :math:`E\|g_t\|^2 \le G_t^2` has the last-iterate bound
(Defazio et al., arXiv 2310.07831, Theorem 10), at horizon :math:`T`:

.. math::

    \Omega_T = \frac{D^2}{2 \sum_{t=1}^T a_t}
             + \frac{\sum_{t=1}^T a_t^2 G_t^2}{2 \sum_{t=1}^T a_t}
             + \frac12 \sum_{k=1}^{T-1} \frac{a_k}{\sum_{t=k+1}^T a_t}
               \cdot \frac{\sum_{t=k}^T a_t^2 G_t^2}{\sum_{t=k}^T a_t}

With :math:`t_1, t_2, t_3` the three terms at :math:`\gamma = 1`,
:math:`\Omega(\gamma) = t_1/\gamma + \gamma (t_2 + t_3)`, so the optimal base LR is
:math:`\gamma^* = \sqrt{t_1 / (t_2 + t_3)}` and :math:`\Omega^* = 2\sqrt{t_1 (t_2 + t_3)}`.

Conventions:

* ``eta[i]`` is the LR of update ``i + 1`` (lrtune's step convention); the bound at
  horizon ``t`` uses ``eta[:t]``.  A schedule given as a :class:`~lrtune.schedules.Schedule`
  or a spec string is normalised by its peak, so :math:`\gamma^*` is a peak LR.
* The reference code builds a schedule of ``T + 1`` points whose last one is the final
  LR (usually 0) and evaluates the bound at ``T``: the final point is never used.
  :func:`convex_schedule` returns those first ``T`` points.
* Updates with zero LR after the last positive one do not move the iterate, so the bound
  at ``t`` is that of the horizon ending at the last positive LR among ``eta[:t]``.
* Suffix sums are reversed cumulative sums (``np.cumsum(x[::-1])[::-1]``), never
  ``total - cumsum``, which cancels catastrophically in long schedules with small LRs.
* One horizon costs O(T); ``k`` steps of :func:`omega_curve` cost O(k T) in numpy blocks.

>>> from lrtune.bound import convex_schedule, optimal_base_lr
>>> round(optimal_base_lr(convex_schedule("cosine", 400)), 4)
0.0482
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import numpy as np

from lrtune.curves import check_lr, check_steps, show_value
from lrtune.schedules import Schedule, parse_schedule

__all__ = [
    "CONVEX_FAMILIES",
    "COOLDOWN_SHAPES",
    "LrSweepFit",
    "bound_terms",
    "convex_schedule",
    "fit_lr_sweep",
    "normalized_lr",
    "omega",
    "omega_curve",
    "optimal_base_lr",
    "optimal_bound",
    "suffix_sum",
]

CONVEX_FAMILIES = ("constant", "cosine", "linear", "wsd")
COOLDOWN_SHAPES = ("linear", "1-sqrt", "cosine")
_BLOCK_ELEMENTS = 1_000_000  # rows x steps per numpy block in omega_curve


# -- inputs ---------------------------------------------------------------------------

def normalized_lr(schedule: Any) -> np.ndarray:
    """The schedule normalised to peak 1 as a float64 array.

    ``schedule`` is a :class:`~lrtune.schedules.Schedule`, a spec string
    (``"wsd:steps=1000,peak=1e-3,cooldown=0.2"``) or an array of LRs; an array is
    checked (1-d, non-empty, finite, >= 0, not all zero) and returned unscaled, so that
    ``gamma*`` is then a multiplier of the array as given.
    """
    if isinstance(schedule, (str, Schedule)):
        s = parse_schedule(schedule)
        return s.lr() / s.peak
    eta = check_lr(schedule, name="eta")
    if not (eta > 0).any():
        raise ValueError("eta must have at least one LR > 0 (an all-zero schedule never moves)")
    return eta


def _positive_scalar(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number > 0, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    return v


def _squared_steps(eta: np.ndarray, G: Any) -> np.ndarray:
    """a_t^2 G_t^2 at gamma = 1, with G a scalar or an array over steps."""
    if np.ndim(G) == 0:
        return (eta * _positive_scalar("G", G)) ** 2
    g = np.asarray(G, dtype=np.float64)
    if g.ndim != 1 or g.size != eta.size:
        raise ValueError(f"G must be a number or an array with one value per step ({eta.size}), got shape {g.shape}")
    bad = ~(np.isfinite(g) & (g > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"G must be finite and > 0 at every step: G[{i}] (update {i + 1}) is {g[i]}")
    return (eta * g) ** 2


def suffix_sum(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``out[k] = sum(x[k:])`` as a reversed cumulative sum (stable for long arrays)."""
    x = np.asarray(x, dtype=np.float64)
    rev = np.flip(x, axis=axis)
    return np.flip(np.cumsum(rev, axis=axis), axis=axis)


# -- the three terms --------------------------------------------------------------------

def _terms_block(eta: np.ndarray, sq: np.ndarray, D: float, horizons: np.ndarray) -> tuple[np.ndarray, ...]:
    """t1, t2, t3 at each horizon h >= 1 of one block (h is the last positive step)."""
    L = int(horizons.max())
    if horizons.size == 1:  # one horizon: plain 1-d suffix sums
        a, sq = eta[:L], sq[:L]
        P, Q = suffix_sum(a), suffix_sum(sq)
        terms = a[:-1] * Q[:-1]
        terms /= P[1:] * P[:-1]
        t3 = 0.5 * terms.sum()
        return D**2 / (2.0 * P[:1]), Q[:1] / (2.0 * P[:1]), np.array([t3])
    k = np.arange(L)
    inside = k[None, :] < horizons[:, None]
    a = np.where(inside, eta[None, :L], 0.0)
    P = suffix_sum(a)  # P[k] = sum_{t >= k} a_t within the horizon
    Q = suffix_sum(np.where(inside, sq[None, :L], 0.0))
    area = P[:, 0]
    t1 = D**2 / (2.0 * area)
    t2 = Q[:, 0] / (2.0 * area)
    # k = 1..h-1 (0-based 0..h-2): a_k / P_{k+1} * Q_k / P_k; P_{k+1} >= a_{h-1} > 0 there
    used = k[None, : L - 1] < (horizons - 1)[:, None]
    den = np.where(used, P[:, 1:] * P[:, :-1], 1.0)
    t3 = 0.5 * np.sum(np.where(used, a[:, :-1] * Q[:, :-1] / den, 0.0), axis=1)
    return t1, t2, t3


def _terms(eta: np.ndarray, G: Any, D: Any, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    D = _positive_scalar("D", D)
    sq = _squared_steps(eta, G)
    # effective horizon: the last step <= t with a positive LR (0 if none yet)
    positive = np.flatnonzero(eta > 0)
    j = np.searchsorted(positive, steps, side="left") - 1  # last positive index < t
    h = np.where(j >= 0, positive[np.maximum(j, 0)] + 1, 0) if positive.size else np.zeros_like(steps)
    t1 = np.full(h.size, np.inf)
    t2 = np.zeros(h.size)
    t3 = np.zeros(h.size)
    todo = np.flatnonzero(h > 0)
    start = 0
    while start < todo.size:  # blocks of horizons (h is non-decreasing): rows * h <= _BLOCK_ELEMENTS
        stop = start + 1
        while stop < todo.size and (stop - start + 1) * int(h[todo[stop]]) <= _BLOCK_ELEMENTS:
            stop += 1
        idx = todo[start:stop]
        t1[idx], t2[idx], t3[idx] = _terms_block(eta, sq, D, h[idx])
        start = stop
    return t1, t2, t3


def bound_terms(eta: Any, G: Any = 1.0, D: float = 1.0, steps: Any = None):
    """The three terms ``(t1, t2, t3)`` of the bound at ``gamma = 1``.

    ``t1 = D^2 / (2 S)``, ``t2 = sum(eta^2 G^2) / (2 S)`` with ``S = sum(eta)``, and
    ``t3 = 1/2 sum_{k<T} eta_k / P_{k+1} * Q_k / P_k`` with suffix sums
    ``P_k = sum_{t>=k} eta_t`` and ``Q_k = sum_{t>=k} eta_t^2 G_t^2``.

    Args:
        eta: the schedule (``Schedule``, spec string or LR array), see :func:`normalized_lr`.
        G: gradient-norm bound, a number or one value per step (same length as ``eta``).
        D: distance from the start to the solution, > 0.
        steps: horizons ``t`` (ints in 1..len(eta), increasing); ``None`` is the whole
            schedule and returns three floats, otherwise three arrays.  A horizon before
            the first positive LR has ``t1 = inf`` and ``t2 = t3 = 0``.
    """
    eta = normalized_lr(eta)
    st = np.array([eta.size]) if steps is None else check_steps(steps, last=eta.size)
    t1, t2, t3 = _terms(eta, G, D, st)
    if steps is None:
        return float(t1[0]), float(t2[0]), float(t3[0])
    return t1, t2, t3


def omega(eta: Any, gamma: Any, G: Any = 1.0, D: float = 1.0):
    """``Omega(gamma) = t1 / gamma + gamma * (t2 + t3)`` at the whole schedule's horizon.

    ``gamma`` is a base LR > 0 or an array of them (the result has its shape).
    """
    t1, t2, t3 = bound_terms(eta, G, D)
    g = np.asarray(gamma, dtype=np.float64)
    if not np.all(np.isfinite(g) & (g > 0)):
        raise ValueError(f"gamma must be finite and > 0, got {show_value(gamma)}")
    out = t1 / g + g * (t2 + t3)
    return float(out) if out.ndim == 0 else out


def optimal_base_lr(eta: Any, G: Any = 1.0, D: float = 1.0) -> float:
    """``gamma* = sqrt(t1 / (t2 + t3))``: the base LR minimising the bound.

    For a ``Schedule`` or spec this is a peak LR; ratios ``gamma*(s2) / gamma*(s1)``
    carry a tuned peak LR from schedule ``s1`` to ``s2`` (horizon, cooldown, shape).
    O(T): a few milliseconds at T = 1e5 (``benchmarks/results/convex_numbers.md``).  The
    bound depends on ``gamma * eta`` only, so ``eta`` is scaled to a peak of 1 first and
    the result scaled back: an array of LRs of any magnitude gives ``gamma*`` as exactly.
    """
    t1, t2, t3, scale = _peak_one_terms(eta, G, D)
    return math.sqrt(t1 / (t2 + t3)) / scale


def optimal_bound(eta: Any, G: Any = 1.0, D: float = 1.0) -> float:
    """``Omega* = Omega(gamma*) = 2 sqrt(t1 (t2 + t3))`` (the same for ``eta`` at any scale)."""
    t1, t2, t3, _ = _peak_one_terms(eta, G, D)
    return 2.0 * math.sqrt(t1 * (t2 + t3))


def _peak_one_terms(eta: Any, G: Any, D: float) -> tuple[float, float, float, float]:
    """The whole schedule's ``(t1, t2, t3)`` of ``eta`` scaled to peak 1, and that scale."""
    eta = normalized_lr(eta)
    scale = float(np.max(eta))
    t1, t2, t3 = _terms(eta / scale, G, D, np.array([eta.size]))
    return float(t1[0]), float(t2[0]), float(t3[0]), scale


def omega_curve(eta: Any, steps: Any = None, gamma: float | None = None, G: Any = 1.0, D: float = 1.0) -> np.ndarray:
    """``Omega_t(gamma)`` at each step ``t``: the bound of the iterate after ``t`` updates of
    one run, a curve to set beside its loss curve.

    Args:
        eta: the schedule (``Schedule``, spec string or LR array).
        steps: steps ``t`` (ints in 1..len(eta), increasing); ``None`` is every step.
            Costs O(len(steps) * len(eta)): use a few hundred steps for long schedules.
        gamma: base LR; ``None`` uses ``gamma*`` of the whole schedule.
        G, D: as in :func:`bound_terms`.
    """
    eta = normalized_lr(eta)
    st = np.arange(1, eta.size + 1) if steps is None else check_steps(steps, last=eta.size)
    if gamma is None:
        gamma = optimal_base_lr(eta, G, D)
    gamma = _positive_scalar("gamma", gamma)
    t1, t2, t3 = _terms(eta, G, D, st)
    return t1 / gamma + gamma * (t2 + t3)


# -- schedules as in the reference ---------------------------------------------------------

def _cooldown(u: np.ndarray, shape: str) -> np.ndarray:
    if shape == "linear":
        return 1.0 - u
    if shape == "1-sqrt":
        return 1.0 - np.sqrt(u)
    return 0.5 * (1.0 + np.cos(np.pi * u))


def convex_schedule(family: str, horizon: int, cooldown_fraction: float = 0.2, shape: str = "linear",
                    final_lr: float = 0.0) -> np.ndarray:
    """The normalised schedule of the reference code at horizon ``T``: its first ``T`` points.

    The reference builds ``N = T + 1`` points ``i = 0..T`` ending at ``final_lr`` (a
    fraction of the peak; the last point is never used by the bound at ``T``):

    * ``constant``: 1;
    * ``cosine``: ``f + (1 - f) (1 + cos(pi i / T)) / 2``;
    * ``linear``: ``1 - (1 - f) i / T``;
    * ``wsd``: 1 until ``s = floor((1 - c) N)`` (at most ``T - 1``), then a cooldown over
      ``u = (i - s) / (T - s)``
      to ``f`` with ``shape`` (``1 - u``, ``1 - sqrt(u)`` or ``(1 + cos(pi u)) / 2``);
      ``cooldown_fraction = 1`` is a full decay of that shape.  The floor takes a 1e-9
      guard, so ``(1 - 0.8) * 1000`` counts as 200 and not 199.

    Args:
        family: ``constant``, ``cosine``, ``linear`` or ``wsd``.
        horizon: ``T``, the number of updates (the length of the result).
        cooldown_fraction: ``c`` in (0, 1], the fraction of the ``T + 1`` points in the
            cooldown (``wsd`` only).
        shape: cooldown shape of ``wsd``: ``linear``, ``1-sqrt`` or ``cosine``.
        final_lr: the LR of point ``T + 1`` as a fraction of the peak, in [0, 1).
    """
    if family not in CONVEX_FAMILIES:
        raise ValueError(f"family must be one of {', '.join(CONVEX_FAMILIES)}, got {family!r}")
    if not (isinstance(horizon, (int, np.integer)) and horizon >= 1):
        raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
    if not (math.isfinite(final_lr) and 0 <= final_lr < 1):
        raise ValueError(f"final_lr must be a fraction of the peak in [0, 1), got {show_value(final_lr)}")
    n = int(horizon) + 1
    if family == "constant":
        return np.ones(n - 1)
    if family in ("cosine", "linear"):
        family, shape, cooldown_fraction = "wsd", family, 1.0
    if shape not in COOLDOWN_SHAPES:
        raise ValueError(f"shape must be one of {', '.join(COOLDOWN_SHAPES)}, got {shape!r}")
    if isinstance(cooldown_fraction, (bool, str)) or not (isinstance(cooldown_fraction, numbers.Real)
                                                          and math.isfinite(cooldown_fraction)
                                                          and 0 < cooldown_fraction <= 1):
        raise ValueError(f"cooldown_fraction must be in (0, 1], got {show_value(cooldown_fraction)}")
    start = min(int(math.floor((1.0 - cooldown_fraction) * n + 1e-9)), n - 2)
    eta = np.ones(n)
    u = np.linspace(0.0, 1.0, n - start)
    eta[start:] = final_lr + (1.0 - final_lr) * _cooldown(u, shape)
    return eta[:-1]


# -- a base-LR sweep shaped like the bound ---------------------------------------------------

class LrSweepFit(NamedTuple):
    """``loss(gamma) = a / gamma + b * gamma + c`` fitted to a base-LR sweep."""

    a: float
    b: float
    c: float

    @property
    def best_base_lr(self) -> float:
        """``sqrt(a / b)``, the minimiser (``nan`` when the fit has no interior minimum)."""
        return math.sqrt(self.a / self.b) if self.a > 0 and self.b > 0 else float("nan")

    def __call__(self, gamma: Any) -> np.ndarray:
        g = np.asarray(gamma, dtype=np.float64)
        return self.a / g + self.b * g + self.c


def fit_lr_sweep(base_lr: Any, final_loss: Any) -> LrSweepFit:
    """Least-squares fit of ``final_loss = a / base_lr + b * base_lr + c``.

    The shape of ``Omega(gamma) = t1 / gamma + gamma (t2 + t3)``: fitting it to the final
    losses of a base-LR sweep gives the sweep's optimal base LR ``sqrt(a / b)``.
    Needs at least 3 distinct base LRs.
    """
    try:
        g = np.asarray(base_lr, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("base_lr must be numbers: the base LR of each run of the sweep") from None
    if g.ndim != 1 or g.size == 0:
        raise ValueError(f"base_lr must be a non-empty 1-d list, the base LR of each run of the sweep; got shape "
                         f"{g.shape}")
    if not np.all(np.isfinite(g) & (g > 0)):
        i = int(np.argmax(~(np.isfinite(g) & (g > 0))))
        raise ValueError(f"base_lr must be finite and > 0: run {i} has {float(g[i])!r}")
    y = np.asarray(final_loss, dtype=np.float64)
    if y.shape != g.shape:
        raise ValueError(f"final_loss must have one value per base_lr ({g.size}), got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("final_loss must be finite (drop diverged runs)")
    if np.unique(g).size < 3:
        raise ValueError(f"fit_lr_sweep needs at least 3 distinct base LRs, got {np.unique(g).size}")
    X = np.stack([1.0 / g, g, np.ones_like(g)], axis=1)
    scale = np.abs(X).max(axis=0)
    coef, *_ = np.linalg.lstsq(X / scale, y, rcond=None)
    a, b, c = coef / scale
    return LrSweepFit(float(a), float(b), float(c))
