r"""The momentum law (scaling law with LR annealing, Tissue et al., arXiv 2408.11029).

.. math::

    L(s) = L_0 + A \, S_1(s)^{-\alpha} - C \, S_2(s)

    S_1(s) = \sum_{i<s} \eta_i \quad\text{(forward area)}

    m_i = \lambda m_{i-1} + (\eta_{i-1} - \eta_i), \qquad S_2(s) = \sum_{i<s} m_i
    \quad\text{(annealing area)}

Summing the recursion gives ``S_2(s) = eta_{-1} (1 - lambda^s) / (1 - lambda) - E(s)``
with ``E(s) = sum_{j<s} lambda^(s-1-j) eta_j``, a first-order IIR filter of the LR: a
curve costs one pass over its LR (:class:`_Plan`).

**Warmup** (``warmup=``).  ``"zero"`` (default) takes the LR array as it is, the run
starting from LR 0 (``eta_{-1} = 0``): the warmup is a re-warm from zero and
``-C S_2 = C E(s)``, a loss term proportional to the recent, exponentially weighted LR
(the "noise level" of river-valley pictures); it also gives the law an optimum in the
peak LR.  ``"peak"`` is the paper's convention: warmup steps count as if the LR were
already at its peak, so warmup adds no annealing area.  A later re-warm gives
``S_2 < 0`` under both: the loss bump of continual pre-training.

**Momentum** (``decay=``).  ``lambda`` is fitted by default on 24 values with
``1 - lambda`` log-spaced in [5e-4, 2e-2], reaching further for runs shorter than 2,000
steps (:func:`decay_grid`); a float fixes it.  The fit minimises the sum
of Huber(``huber_delta``) losses of log-loss residuals.  Its multi-start is exhaustive in
the nonlinear parameters: for every ``lambda`` and each of 60 ``alpha`` in [0.05, 1.5]
the linear ones (``L0``, ``A``, ``C``) come from weighted least squares, all at once;
the three best starts are refined with a trust-region solver (analytic Jacobian,
``A, C >= 0``).  It is deterministic and takes about 0.05 s on the three 24000-step
training curves of the multi-power-law split (0.13-0.14 s with the band's three refits).

What matters on that split (fit on 3 curves, mean relative error on the 6 held-out
ones, 25M / 100M / 400M, ``benchmarks/bands.py``): the paper's setting (``"peak"``,
``lambda = 0.999``) gives 0.164 / 0.180 / 0.260 %; ``"zero"`` at 0.999 0.176 / 0.149 /
0.172 %; ``"peak"`` with ``lambda`` fitted 0.147 / 0.181 / 0.264 %; the default
(``"zero"``, fitted) 0.148 / 0.139 / 0.184 %, the only one within 0.16 / 0.17 / 0.25 %.
Starting L-BFGS-B from a small grid in the raw parameters stops short of these optima.
The loss at step ``s`` uses ``lr[:s]``; the
one-step shift of the source's logging is undone at load time (``lrtune.datasets``).

**Peak LR** (``peak_lr_exponent=``, ``r``).  Runs at another peak LR are not the same
schedule scaled: on the 124M runs of Schaipp et al. the loss at equal ``S_1`` is lower
for a lower peak LR (more steps for the same area), and the gap between a constant run
and its cooldown grows like ``eta_peak^0.35``, not ``eta_peak``.  Fitted at 1e-3, the
plain law (``r = 1``) misses the runs at 5e-4 and 2e-3 by 1.0 and 2.1 % (main group).
With ``r`` the law sees the LR ``eta_i * eta_peak^(r - 1)``: the schedule's shape scaled
by ``eta_peak^r``.  At one peak LR this changes nothing (identical predictions); across
peak LRs both areas scale like ``eta_peak^r``.  ``r = 0.4`` was chosen on the replicate
runs of that grid (group ``grad_norm``: fit at 1e-3, predict 5e-4 and 2e-3; fit at 5e-4
and 2e-3, predict 1e-3) and checked on the main group: 0.21 and 0.41 % at 5e-4 and
2e-3 from a fit at 1e-3, 0.21 % at 1e-3 from a fit at 5e-4 and 2e-3
(``benchmarks/cross_lr.py``).  ``"fit"`` fits ``r`` on a grid when the curves span two
or more peak LRs.  The law does not get the optimum of the final loss over the peak LR
right: fitted at 1e-3 it puts the optimum of a WSD run with 20 % cooldown near 5e-3
(the plain law near 2e-3), while the real runs are best at 1e-3; the predicted final
losses at 5e-4..2e-3 are within each other's 90 % bands (``benchmarks/cross_lr.py``).

**Model size** (``model_size=True``):
``L(s, N) = L0 + A*S1^-alpha + B*N^-beta - C*S2*N^gamma`` with ``N`` the number of
parameters (``Curve.meta["model_size"]`` when fitting, ``model_size=`` when
predicting).  With two model sizes ``L0``, ``B`` and ``beta`` are not separately
identifiable, so ``beta`` is held at 0.34 (the parameter exponent of Hoffmann et al.);
with three or more it is fitted on a grid.  Fitted on the training curves of 25M and
400M, it predicts the six held-out 100M curves with a mean relative error of 0.91 %
(``benchmarks/bands.py``); the result depends much on ``beta``, which two sizes cannot
give.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, ClassVar, Sequence

import numpy as np
from scipy import optimize, signal

from lrtune.curves import Curve, show_value
from lrtune.laws._base import Law

__all__ = ["MomentumLaw", "annealing_area", "flatten_warmup", "forward_area", "peak_lr_scale", "warmup_steps"]

DECAY_GRID = tuple(float(x) for x in 1.0 - np.geomspace(5e-4, 2e-2, 24))
#: The momentum's memory, 1 / (1 - lambda), may be as short as this fraction of the
#: shortest fitted horizon: below 2,000 steps the grid reaches past 1 - lambda = 2e-2.
MIN_MEMORY_FRACTION = 1.0 / 40


def decay_grid(horizon: int) -> tuple[float, ...]:
    """The ``lambda`` values tried for curves whose shortest horizon is ``horizon`` steps:
    ``DECAY_GRID`` (``1 - lambda`` log-spaced in [5e-4, 2e-2], 24 values), extended at the
    same density up to ``1 - lambda = 1 / (MIN_MEMORY_FRACTION * horizon)`` for short runs
    (a 400-step run anneals within tens of steps, which a memory of 50 or more steps
    cannot follow)."""
    top = 1.0 / (MIN_MEMORY_FRACTION * max(int(horizon), 1))
    if top <= 2e-2:
        return DECAY_GRID
    top = min(top, 0.5)
    n_extra = int(np.ceil(23 * np.log(top / 2e-2) / np.log(2e-2 / 5e-4)))
    extra = np.geomspace(2e-2, top, n_extra + 1)[1:]
    return DECAY_GRID + tuple(float(x) for x in 1.0 - extra)
ALPHA_GRID = np.linspace(0.05, 1.5, 60)
PEAK_EXPONENT_GRID = tuple(round(float(x), 2) for x in np.arange(0.2, 1.01, 0.1))
GAMMA_GRID = tuple(round(float(x), 2) for x in np.linspace(-0.5, 0.5, 21))
BETA_GRID = (0.1, 0.2, 0.34, 0.5, 0.7)
DEFAULT_BETA = 0.34
DEFAULT_PEAK_LR_EXPONENT = 0.4
N_REF = 1e8  # model sizes are handled in units of 1e8 parameters inside the fit
_CHUNK = 1 << 19  # elements of one block of a batched prediction (a few MB: stays in cache)
_WARMUPS = ("zero", "peak")


def flatten_warmup(lr: np.ndarray) -> np.ndarray:
    """The LR array(s) with the initial warmup replaced by the LR it warms up to.

    The warmup is the initial non-decreasing stretch of the schedule, up to the first
    step where it reaches its top.  ``lr`` is 1-d or 2-d (one schedule per row).
    """
    lr = np.asarray(lr, dtype=np.float64)
    if lr.shape[-1] < 2:
        return lr
    idx = np.arange(lr.shape[-1])
    down = np.diff(lr, axis=-1) < 0
    end = np.where(down.any(axis=-1), np.argmax(down, axis=-1) + 1, lr.shape[-1])
    top = np.argmax(np.where(idx < np.expand_dims(end, -1), lr, -np.inf), axis=-1)
    top_lr = np.take_along_axis(lr, np.expand_dims(top, -1), axis=-1)
    return np.where(idx < np.expand_dims(top, -1), top_lr, lr)


def warmup_steps(lr: np.ndarray) -> int:
    """Number of updates before the LR first reaches the top of its initial
    non-decreasing stretch (0 without warmup)."""
    lr = np.asarray(lr, dtype=np.float64)
    down = np.flatnonzero(np.diff(lr) < 0)
    end = int(down[0]) + 1 if down.size else lr.size
    return int(np.argmax(lr[:end]))


def peak_lr_scale(lr: np.ndarray, peak_lr_exponent: float = 1.0) -> np.ndarray:
    """``eta_peak^(r - 1)`` of each row (``eta_peak`` is its largest LR): the law sees
    ``eta_i * eta_peak^(r - 1)``, the schedule's shape scaled by ``eta_peak^r``.  Both
    areas are linear in the LR, so they are scaled by this factor after the fact."""
    if peak_lr_exponent == 1.0:
        return np.ones(np.shape(lr)[:-1])
    peak = np.max(lr, axis=-1)
    return np.where(peak > 0, np.maximum(peak, 1e-300) ** (peak_lr_exponent - 1.0), 0.0)


def forward_area(lr: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """S1 at each step: the sum of the LRs of the first ``s`` updates (last axis)."""
    return _Plan(steps).forward_area(np.asarray(lr, dtype=np.float64))


def annealing_area(lr: np.ndarray, steps: np.ndarray, decay: float, warmup: str = "zero") -> np.ndarray:
    """S2 at each step with momentum ``decay`` (the paper's lambda), over the last axis.

    ``S2(s) = eta_{-1} (1 - lambda^s) / (1 - lambda) - E(s)`` with
    ``E(s) = sum_{j<s} lambda^(s-1-j) eta_j``; ``eta_{-1} = 0`` for ``warmup="zero"``,
    for ``"peak"`` the warmup is flattened first and ``eta_{-1} = eta_0``.
    """
    if warmup not in _WARMUPS:
        raise ValueError(f"warmup must be one of {', '.join(_WARMUPS)}, got {warmup!r}")
    return _Plan(steps, decay).annealing_area(np.asarray(lr, dtype=np.float64), warmup)


class _Plan:
    """The areas at fixed ``steps`` (and momentum ``decay``) of any number of schedules.

    ``S1``: the LR summed over each stretch between two requested steps
    (``np.add.reduceat``), then a cumulative sum over the ``P`` stretches.
    ``E(s) = sum_{j<s} decay^(s-1-j) lr_j``: each stretch summed with the weights
    ``decay^(s_k-1-j)``, the stretches then combined by the ``P x P`` matrix
    ``decay^(s_k - s_m)`` (``m <= k``).  One pass over the LR; beyond 1024 requested steps
    a plain IIR filter (``scipy.signal.lfilter``) is used instead.
    """

    def __init__(self, steps: np.ndarray, decay: float | None = None) -> None:
        self.steps = np.asarray(steps, dtype=np.int64)
        self.last = int(self.steps[-1])
        self.starts = np.concatenate([[0], self.steps[:-1]])
        self.decay = decay
        self.filter = decay is not None and self.steps.size > 1024
        if decay is not None and not self.filter:
            log_decay = np.log(decay)
            end = np.repeat(self.steps, np.diff(np.concatenate([[0], self.steps])))
            self.weight = np.exp(log_decay * (end - 1 - np.arange(self.last)))
            gap = self.steps[:, None] - self.steps[None, :]
            self.combine = np.where(gap >= 0, np.exp(log_decay * np.maximum(gap, 0)), 0.0).T

    def forward_area(self, lr: np.ndarray) -> np.ndarray:
        return np.cumsum(np.add.reduceat(lr[..., :self.last], self.starts, axis=-1), axis=-1)

    def discounted_sum(self, lr: np.ndarray, buf: np.ndarray | None = None) -> np.ndarray:
        lr = lr[..., :self.last]
        if self.filter:
            return signal.lfilter([1.0], [1.0, -self.decay], lr, axis=-1)[..., self.steps - 1]
        out = buf[:lr.shape[0], :self.last] if buf is not None and lr.ndim == 2 else None
        weighted = np.multiply(lr, self.weight, out=out)
        return np.add.reduceat(weighted, self.starts, axis=-1) @ self.combine

    def annealing_area(self, lr: np.ndarray, warmup: str, buf: np.ndarray | None = None) -> np.ndarray:
        if warmup == "peak":
            lr = flatten_warmup(lr[..., :self.last])
        ema = self.discounted_sum(lr, buf)
        if warmup == "zero":
            return -ema
        return lr[..., :1] * (-np.expm1(self.steps * np.log(self.decay)) / (1.0 - self.decay)) - ema


def _law_value(s1: np.ndarray, s2: np.ndarray, L0: float, A: float, alpha: float, C: float) -> np.ndarray:
    """The law, ``L0 + A * S1^-alpha - C * S2`` (infinite where no LR has been applied, ``S1 = 0``)."""
    with np.errstate(divide="ignore"):
        return L0 + A * s1 ** (-alpha) - C * s2


class _Data:
    """The fit's points: log losses, weights, raw areas per curve, model sizes."""

    def __init__(self, curves: Sequence[Curve], masks: Sequence[np.ndarray], model_size: bool) -> None:
        kept = [(c, c.steps[m], c.loss[m]) for c, m in zip(curves, masks)]
        self.curves = kept
        self.y = np.concatenate([loss for _, _, loss in kept])
        self.peaks = np.array([c.peak_lr for c, _, _ in kept])
        self.n_peaks = _n_distinct(self.peaks)
        self.size = None
        if model_size:
            sizes = []
            for c, st, _ in kept:
                n = c.meta.get("model_size")
                try:
                    bad = isinstance(n, (bool, str)) or not (math.isfinite(float(n)) and float(n) > 0)
                except (TypeError, ValueError):
                    bad = True
                if bad:
                    raise ValueError(f"{c.name}: meta['model_size'] must be the number of parameters (> 0) "
                                     f"to fit the model-size law, got {show_value(n)}")
                sizes.append(np.full(st.size, float(n) / N_REF))
            self.size = np.concatenate(sizes)
            self.n_sizes = _n_distinct(np.unique(self.size))
            if self.n_sizes < 2:
                raise ValueError("the model-size law needs curves of at least 2 model sizes, got 1")

        self.s1 = np.concatenate([_Plan(st).forward_area(c.lr) for c, st, _ in kept])
        self.point_peak = np.concatenate([np.full(st.size, c.peak_lr) for c, st, _ in kept])
        self._s2: dict = {}

    def scale(self, exponent: float) -> np.ndarray:
        """``eta_peak^(r - 1)`` at every point (:func:`peak_lr_scale`)."""
        return peak_lr_scale(self.point_peak[:, None], exponent)

    def forward_area(self, exponent: float) -> np.ndarray:
        return self.scale(exponent) * self.s1

    def annealing_area(self, decay: float, warmup: str, exponent: float) -> np.ndarray:
        key = (decay, warmup)
        if key not in self._s2:
            self.precompute((decay,), warmup)
        return self.scale(exponent) * self._s2[key]

    def precompute(self, decays: Sequence[float], warmup: str) -> None:
        """Raw annealing areas for every decay at once (one pass per curve)."""
        rows = np.concatenate([_annealing_areas(c.lr, st, np.asarray(decays), warmup) for c, st, _ in self.curves],
                              axis=1)
        self._s2.update({(d, warmup): row for d, row in zip(decays, rows)})


def _annealing_areas(lr: np.ndarray, steps: np.ndarray, decays: np.ndarray, warmup: str) -> np.ndarray:
    """S2 of one schedule at ``steps`` for several decays: (n_decays, P), vectorised over
    the decays like :meth:`_Plan.discounted_sum`."""
    if steps.size > 1024:
        return np.stack([annealing_area(lr, steps, d, warmup) for d in decays])
    last = int(steps[-1])
    x = flatten_warmup(lr[:last]) if warmup == "peak" else lr[:last]
    log_decay = np.log(decays)[:, None]
    end = np.repeat(steps, np.diff(np.concatenate([[0], steps])))
    weighted = np.exp(log_decay * (end - 1 - np.arange(last))[None, :]) * x[None, :]
    stretch = np.add.reduceat(weighted, np.concatenate([[0], steps[:-1]]), axis=1)
    gap = steps[:, None] - steps[None, :]
    combine = np.where(gap >= 0, np.exp(log_decay[:, :, None] * np.maximum(gap, 0)[None]), 0.0)
    ema = np.einsum("dm,dkm->dk", stretch, combine)
    if warmup == "zero":
        return -ema
    return x[0] * (-np.expm1(steps[None, :] * log_decay) / (1.0 - np.exp(log_decay))) - ema


def _n_distinct(values: np.ndarray, rtol: float = 0.01) -> int:
    v = np.sort(np.asarray(values, dtype=np.float64))
    return int(1 + np.sum(np.diff(v) > rtol * v[1:])) if v.size else 0


def _ls_over_alpha(z: np.ndarray, fixed: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares of ``1 = w * (fixed @ b + A * z_alpha)`` for every alpha.

    ``z`` is (n_alpha, n) (``S1^-alpha``), ``fixed`` (n, m).  Returns the coefficients
    (n_alpha, m + 1), last column ``A``, and the residual sums of squares (n_alpha,).
    """
    F = fixed * w[:, None]
    Z = z * w[None, :]
    m = F.shape[1]
    G = np.empty((z.shape[0], m + 1, m + 1))
    G[:, :m, :m] = F.T @ F
    G[:, :m, m] = G[:, m, :m] = Z @ F
    G[:, m, m] = np.einsum("ij,ij->i", Z, Z)
    rhs = np.concatenate([np.broadcast_to(F.sum(0), (z.shape[0], m)), Z.sum(1)[:, None]], axis=1)
    G[:, np.arange(m + 1), np.arange(m + 1)] *= 1 + 1e-12
    coef = np.linalg.solve(G, rhs[..., None])[..., 0]
    sse = w.size - 2 * np.einsum("ij,ij->i", coef, rhs) + np.einsum("ij,ijk,ik->i", coef, G, coef)
    return coef, sse


class MomentumLaw(Law):
    """Momentum law ``L = L0 + A*S1^-alpha - C*S2`` (module docstring for the options).

    Fitted on a few observed curves it predicts the loss curve of any other schedule:

    >>> from lrtune.datasets import mpl_split
    >>> train, test = mpl_split("25M")
    >>> law = MomentumLaw().fit(train)
    >>> pred = law.predict(test[2].lr, test[2].steps)   # a WSD run it never saw

    Args:
        decay: the momentum ``lambda`` of the annealing area, in [0.9, 1); ``None``
            (default) fits it.
        warmup: ``"zero"`` (the LR array as it is, the run starting from LR 0) or
            ``"peak"`` (the paper's: warmup counted at the peak LR).
        peak_lr_exponent: ``r`` in (0, 2]: the law sees ``eta_i * eta_peak^(r - 1)``;
            1 is the plain law, ``"fit"`` fits it when the curves span several peak LRs
            (otherwise the default 0.4 is kept).  No effect at a single peak LR.
        model_size: add the model-size terms ``B*N^-beta`` and ``N^gamma`` on ``C``.
        huber_delta: Huber threshold on log-loss residuals of the fit.
        fit_from: losses logged before this step are left out of the fit (and of its
            statistics); ``None`` (default): those logged before the warmup ends (the
            first step at the LR the warmup leads to), where no law of this kind holds.
    """

    name: ClassVar[str] = "momentum"
    param_names: ClassVar[tuple[str, ...]] = ("L0", "A", "alpha", "C", "decay", "peak_lr_exponent")

    def __init__(self, decay: float | None = None, warmup: str = "zero",
                 peak_lr_exponent: float | str = DEFAULT_PEAK_LR_EXPONENT, model_size: bool = False,
                 huber_delta: float = 1e-3, fit_from: int | None = None) -> None:
        if decay is not None and (isinstance(decay, bool) or not (isinstance(decay, numbers.Real) and 0.9 <= decay < 1)):
            raise ValueError(f"decay must be None (fitted) or in [0.9, 1), got {show_value(decay)}")
        decay = None if decay is None else float(decay)
        if warmup not in _WARMUPS:
            raise ValueError(f"warmup must be one of {', '.join(_WARMUPS)}, got {warmup!r}")
        if peak_lr_exponent != "fit" and not (isinstance(peak_lr_exponent, (int, float))
                                              and 0 < peak_lr_exponent <= 2):
            raise ValueError(f"peak_lr_exponent must be in (0, 2] or 'fit', got {peak_lr_exponent!r}")
        if not isinstance(model_size, bool):
            raise ValueError(f"model_size must be True or False, got {model_size!r}")
        if isinstance(huber_delta, bool) or not (isinstance(huber_delta, numbers.Real) and math.isfinite(huber_delta)
                                                 and huber_delta > 0):
            raise ValueError(f"huber_delta must be a finite number > 0, got {show_value(huber_delta)}")
        huber_delta = float(huber_delta)
        if fit_from is not None and not (isinstance(fit_from, (int, np.integer)) and fit_from >= 0):
            raise ValueError(f"fit_from must be None (the end of warmup) or an integer step >= 0, got {fit_from!r}")
        self.decay = None if decay is None else float(decay)
        self.warmup = warmup
        self.peak_lr_exponent = peak_lr_exponent if peak_lr_exponent == "fit" else float(peak_lr_exponent)
        self.model_size = model_size
        self.huber_delta = float(huber_delta)
        self.fit_from = None if fit_from is None else int(fit_from)

    def get_config(self) -> dict[str, Any]:
        return {"decay": self.decay, "warmup": self.warmup, "peak_lr_exponent": self.peak_lr_exponent,
                "model_size": self.model_size, "huber_delta": self.huber_delta, "fit_from": self.fit_from}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MomentumLaw":
        """A fitted law from ``to_dict`` output.  A fit whose config has no ``warmup``
        is the plain law with the paper's warmup and a fixed ``decay``, and loads as such."""
        config, params = data.get("config") or {}, data.get("params") or {}
        if not isinstance(config, dict) or not isinstance(params, dict):
            raise ValueError(f"fit of law {cls.name!r}: 'config' and 'params' must be JSON objects")
        config = dict(config)
        if data.get("law") == cls.name and "warmup" not in config:
            try:
                decay = float(config.get("decay") or 0.999)
            except (TypeError, ValueError):
                raise ValueError(f"fit of law {cls.name!r}: decay must be a number, got {config.get('decay')!r}") from None
            config.update(decay=decay, warmup="peak", peak_lr_exponent=1.0)
            params = {"decay": decay, "peak_lr_exponent": 1.0, **params}
            data = {**data, "config": config, "params": params}
        return super().from_dict(data)

    def _fit_mask(self, curve: Curve) -> np.ndarray:
        first = warmup_steps(curve.lr) + 1 if self.fit_from is None else self.fit_from
        keep = curve.steps >= first
        if not keep.any() and self.fit_from is not None:  # asked for: no silent fit on the warmup
            raise ValueError(f"{curve.name}: fit_from={self.fit_from} leaves none of its points (the last is at step "
                             f"{int(curve.steps[-1])}); lower fit_from or leave this curve out")
        return keep if keep.any() else np.ones(curve.steps.size, bool)

    def param_names_for_load(self) -> tuple[str, ...]:
        return self.param_names + (("B", "beta", "gamma") if self.model_size else ())

    # -- prediction --------------------------------------------------------------------
    def _predict_params(self, params: dict[str, float], lr: np.ndarray, steps: np.ndarray,
                        model_size: float | None) -> np.ndarray:
        L0, A, alpha, C = params["L0"], params["A"], params["alpha"], params["C"]
        if self.model_size:
            if model_size is None:
                raise ValueError("model_size is required: this law was fitted with the model-size term; "
                                 "pass model_size=N (number of parameters)")
            try:
                ok = float(model_size) > 0 and math.isfinite(float(model_size))
            except (TypeError, ValueError):
                ok = False
            if isinstance(model_size, (bool, str)) or not ok:
                raise ValueError(f"model_size must be a number of parameters > 0, got {show_value(model_size)}")
            L0 = L0 + params["B"] * float(model_size) ** (-params["beta"])
            C = C * float(model_size) ** params["gamma"]
        lr = np.asarray(lr, dtype=np.float64)
        plan = _Plan(steps, params["decay"])
        r = params["peak_lr_exponent"]
        if lr.ndim == 1:
            return self._loss(lr, plan, r, L0, A, alpha, C)
        rows = max(1, _CHUNK // plan.last)
        buf = np.empty((min(rows, lr.shape[0]), plan.last))
        return np.concatenate([self._loss(lr[a:a + rows], plan, r, L0, A, alpha, C, buf)
                               for a in range(0, lr.shape[0], rows)])

    def predict_peaks(self, lr: Any, peaks: Any, steps: Any = None) -> np.ndarray:
        """``predict(p * lr / max(lr), steps)`` for every peak LR ``p`` of ``peaks``, an array
        ``(len(peaks), len(steps))``, from one pass over the schedule: both areas are linear
        in the LR, so the schedule's shape is integrated once and each peak only rescales
        them (``lrtune suggest`` scores every peak of a shape this way)."""
        self._check_fitted()
        if self.model_size:
            raise ValueError("predict_peaks: this law has the model-size term; use predict(..., model_size=N)")
        lr, steps = self._validate(lr, steps)
        if lr.ndim != 1:
            raise ValueError(f"predict_peaks takes one schedule shape (1-d lr), got shape {lr.shape}")
        peaks = np.asarray(peaks, dtype=np.float64).ravel()
        if peaks.size == 0 or not np.all(np.isfinite(peaks) & (peaks > 0)):
            raise ValueError(f"peaks must be finite numbers > 0, got {[float(v) for v in peaks]}")
        p = self.params_
        plan = _Plan(steps, p["decay"])
        shape = lr / lr.max()
        s1, s2 = plan.forward_area(shape), plan.annealing_area(shape, self.warmup)
        k = peaks[:, None] ** p["peak_lr_exponent"]  # the law sees lr * peak^(r - 1): the shape's areas times peak^r
        return _law_value(k * s1[None, :], k * s2[None, :], p["L0"], p["A"], p["alpha"], p["C"])

    def _loss(self, lr: np.ndarray, plan: _Plan, r: float, L0: float, A: float, alpha: float, C: float,
              buf: np.ndarray | None = None) -> np.ndarray:
        scale = np.expand_dims(peak_lr_scale(lr, r), -1)
        s1 = scale * plan.forward_area(lr)
        s2 = scale * plan.annealing_area(lr, self.warmup, buf)
        return _law_value(s1, s2, L0, A, alpha, C)

    # -- fit ---------------------------------------------------------------------------
    def _fit_params(self, curves: Sequence[Curve]) -> dict[str, float]:
        data = _Data(curves, [self._fit_mask(c) for c in curves], self.model_size)
        y, w = data.y, 1.0 / data.y
        decays = decay_grid(min(c.horizon for c in curves)) if self.decay is None else (self.decay,)
        if self.peak_lr_exponent == "fit":
            exponents = PEAK_EXPONENT_GRID if data.n_peaks >= 2 else (DEFAULT_PEAK_LR_EXPONENT,)
        else:
            exponents = (self.peak_lr_exponent,)
        if self.model_size:
            betas = BETA_GRID if data.n_sizes >= 3 else (DEFAULT_BETA,)
            gammas = GAMMA_GRID
        else:
            betas, gammas = (None,), (0.0,)
        ones = np.ones_like(y)
        data.precompute(decays, self.warmup)
        starts = []  # (sse, exponent, decay, beta, gamma, coef, alpha)
        for r in exponents:
            s1 = np.maximum(data.forward_area(r), 1e-300)
            z = np.exp(-ALPHA_GRID[:, None] * np.log(s1)[None, :])
            for lam in decays:
                s2 = data.annealing_area(lam, self.warmup, r)
                for beta in betas:
                    for gamma in gammas:
                        cols = [ones]
                        if beta is not None:
                            cols.append(data.size ** (-beta))
                        cols.append(-s2 * (data.size ** gamma if self.model_size else 1.0))
                        coef, sse = _ls_over_alpha(z, np.stack(cols, axis=1), w)
                        ok = coef[:, -1] > 0
                        if not ok.any():
                            continue
                        i = int(np.argmin(np.where(ok, sse, np.inf)))
                        starts.append((float(sse[i]), r, lam, beta, gamma, coef[i], float(ALPHA_GRID[i])))
        if not starts:
            raise ValueError("the momentum law found no fit with A > 0: the curves do not decrease with the LR area")
        starts.sort(key=lambda t: t[0])
        best = None
        seen = set()
        for sse, r, lam, beta, gamma, coef, alpha in starts:
            key = (r, lam, beta)
            if key in seen:
                continue
            seen.add(key)
            res = self._refine(data, r, lam, beta, gamma, coef, alpha)
            if best is None or res[0] < best[0] - 1e-15:
                best = res
            if len(seen) >= 3:
                break
        return best[1]

    def _refine(self, data: _Data, r: float, lam: float, beta: float | None, gamma: float,
                coef: np.ndarray, alpha: float) -> tuple[float, dict[str, float]]:
        """Huber(``huber_delta``) fit of the log residuals from one least-squares start
        (trust-region reflective, analytic Jacobian, bounds ``A, C, B >= 0``)."""
        y = data.y
        ly = np.log(y)
        s1, s2 = data.forward_area(r), data.annealing_area(lam, self.warmup, r)
        log_s1 = np.log(np.maximum(s1, 1e-300))
        scale2 = max(float(np.abs(s2).max()), 1e-300)
        s2n = s2 / scale2
        ms = self.model_size
        size = data.size if ms else np.ones_like(y)
        log_size = np.log(size)
        size_b = size ** (-beta) if ms else None
        lo = float(y.min())
        # x = [L0, log A, alpha, C * scale2, (B, gamma)]
        x0 = [float(np.clip(coef[0], 0.0, 0.99 * lo)), np.log(float(coef[-1])), alpha,
              max(float(coef[-2]), 0.0) * scale2]
        lower, upper = [0.0, -50.0, 1e-3, 0.0], [0.999 * lo, 50.0, 3.0, np.inf]
        if ms:
            x0 += [max(float(coef[1]), 0.0), gamma]
            lower += [0.0, -1.0]
            upper += [np.inf, 1.0]
        x0 = np.clip(np.array(x0), lower, upper)

        def parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            t = np.exp(x[1] - x[2] * log_s1)
            nz = size ** x[5] if ms else size
            pred = x[0] + t - x[3] * s2n * nz + (x[4] * size_b if ms else 0.0)
            return np.maximum(pred, 1e-12), t, nz

        def residuals(x: np.ndarray) -> np.ndarray:
            return np.log(parts(x)[0]) - ly

        def jacobian(x: np.ndarray) -> np.ndarray:
            pred, t, nz = parts(x)
            cols = [np.ones_like(t), t, -t * log_s1, -s2n * nz]
            if ms:
                cols += [size_b, -x[3] * s2n * nz * log_size]
            return np.stack(cols, axis=1) / pred[:, None]

        res = optimize.least_squares(residuals, x0, jac=jacobian, bounds=(lower, upper), method="trf",
                                     loss="huber", f_scale=self.huber_delta, x_scale="jac",
                                     ftol=1e-12, xtol=1e-12, gtol=1e-12, max_nfev=2000)
        x = res.x
        params = {"L0": float(x[0]), "A": float(np.exp(x[1])), "alpha": float(x[2]),
                  "C": float(x[3] / scale2), "decay": float(lam), "peak_lr_exponent": float(r)}
        if ms:
            # back to parameter counts: B N^-beta and C N^gamma with N in parameters
            params["B"] = float(x[4] * N_REF ** beta)
            params["beta"] = float(beta)
            params["gamma"] = float(x[5])
            params["C"] = float(x[3] / scale2 * N_REF ** (-x[5]))
        return float(res.cost), params
