r"""The multi-power law (Luo et al., ICLR 2025, arXiv 2503.12811).

.. math::

    L(t) = L_0 + A \, (S_1(t) + S_W)^{-\alpha} - \mathrm{LD}(t)

    \mathrm{LD}(t) = B \sum_{k=1}^{t} (\eta_{k-1} - \eta_k) \,
        G\big(\eta_k^{-\gamma} S_k(t)\big), \qquad
    S_k(t) = \sum_{\tau=k}^{t} \eta_\tau, \qquad G(x) = 1 - (C x + 1)^{-\beta}

``S_1 + S_W`` is the whole LR area of the first ``t`` updates (``S_W`` is the warmup's
area).  The loss drop ``LD`` sums over the LR changes from the first decrease on: the
warmup's increases do not count, a later re-warm does (with a negative sign: a loss
bump).  In lrtune's step convention a loss at step ``s`` depends on ``lr[:s]``; the
change at index ``i >= 1`` is ``d_i = lr[i-1] - lr[i]``, its LR ``eta_i = lr[i]`` and its
area ``S_i(s) = sum(lr[i:s])``.

Evaluating ``LD`` exactly at ``P`` steps costs ``O(P * K)`` with ``K`` LR changes
(:func:`loss_drop_exact`, chunked: no ``T x T`` matrix).  The default path
(:func:`loss_drop`) is a quadrature over bins of changes.  Seen from step ``s``, the
changes at distance ``r = s - 1 - i`` are grouped in bins of width 1 up to
``r = 1 / bin_ratio`` and of width ``<= bin_ratio * r`` beyond; a bin is evaluated once,
at its change-weighted mean area and mean log-LR, which prefix sums give in O(1).  That
midpoint rule errs by ``O(bin_ratio^2)``; evaluating it on bins of ``bin_ratio`` and of
``2 * bin_ratio`` and combining ``(4 LD_fine - LD_coarse) / 3`` (Richardson) cancels
that term.  A step then costs ``O(log(T) / bin_ratio)`` whatever the number of changes;
isolated changes (step schedules) are exact.  Schedules whose LR rises again after its
first decrease by more than ``1e-4`` of the peak (re-warms, WSD-S, cycles) are summed
exactly, change by change.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np
from scipy import optimize

from lrtune.curves import Curve
from lrtune.laws._base import Law

__all__ = ["MultiPowerLaw", "bin_edges", "decay_start", "loss_drop", "loss_drop_exact"]

_ELEMENTS = 1 << 20  # size (elements) of the work arrays of one vectorised chunk
_TINY = 1e-100  # LR floor inside logarithms (a zero LR gives G = 1, its limit)
_RISE = 1e-4  # an LR increase above this fraction of the peak is a re-warm
_FIT_BIN_RATIO = 0.1  # the fit's quadrature (1e-5 of the loss: far below the data's noise)


def decay_start(lr: Any) -> np.ndarray | int:
    """Index of the first LR decrease (``lr[i] < lr[i-1]``) of each row; ``T`` if none."""
    lr = np.asarray(lr, dtype=np.float64)
    if lr.shape[-1] < 2:  # one step: nothing decreases
        return lr.shape[-1] if lr.ndim == 1 else np.full(lr.shape[:-1], lr.shape[-1])
    down = lr[..., 1:] < lr[..., :-1]
    first = np.where(down.any(axis=-1), np.argmax(down, axis=-1) + 1, lr.shape[-1])
    return int(first) if lr.ndim == 1 else first


def _G(x: np.ndarray, C: float, beta: float) -> np.ndarray:
    """``G(x) = 1 - (C x + 1)^(-beta)``."""
    return -np.expm1(-beta * np.log1p(C * x))


def bin_edges(max_distance: int, bin_ratio: float) -> np.ndarray:
    """Distance edges ``0 = r_0 < r_1 < ... < r_J``, ``r_J > max_distance``: widths 1 up
    to ``1 / bin_ratio``, then ``r_{j+1} - r_j <= bin_ratio * r_j``."""
    if not 0 < bin_ratio <= 0.5:
        raise ValueError(f"bin_ratio must be in (0, 0.5], got {bin_ratio}")
    r0 = int(np.ceil(1.0 / bin_ratio))
    if max_distance < r0:
        return np.arange(max_distance + 2)
    n = int(np.ceil(np.log((max_distance + 1) / r0) / np.log1p(bin_ratio))) + 2
    geo = np.floor(r0 * (1.0 + bin_ratio) ** np.arange(n)).astype(np.int64)
    edges = np.unique(np.concatenate([np.arange(r0), geo]))
    return edges[: int(np.searchsorted(edges, max_distance, side="right")) + 1]


def _grids(max_distance: int, bin_ratio: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(edges, weights)`` of the Richardson pair: bins of ``bin_ratio`` weigh 4/3, bins
    of ``2 * bin_ratio`` weigh -1/3; the width-1 bins of both appear once (weight 1)."""
    fine = bin_edges(max_distance, bin_ratio)
    coarse = bin_edges(max_distance, 2 * bin_ratio)
    shared = int(np.ceil(0.5 / bin_ratio))  # width-1 bins in both grids
    coarse = coarse[coarse >= shared]
    w_fine = np.where(fine[:-1] < shared, 1.0, 4.0 / 3.0)
    return [(fine, w_fine), (coarse, np.full(max(coarse.size - 1, 0), -1.0 / 3.0))]


def _n_bins(max_distance: int, bin_ratio: float) -> int:
    return sum(w.size for _, w in _grids(max_distance, bin_ratio))


def _forward_area(lr: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """``sum(lr[:s])`` at each step for each row of ``lr`` (no full cumulative sum)."""
    starts = np.concatenate([[0], steps[:-1]])
    return np.cumsum(np.add.reduceat(lr[:, : steps[-1]], starts, axis=1), axis=1)


def _binned_changes(lr: np.ndarray, steps: np.ndarray, bin_ratio: float, f: np.ndarray, start: int = 0):
    """The LR changes of ``R`` schedules binned as seen from ``steps``.

    ``lr[:, k]`` is the LR of update ``start + k + 1`` (a window of the schedules that
    holds updates ``min(f) .. steps[-1]``), ``f`` the schedules' :func:`decay_start`.
    Returns ``rises`` (rows whose LR rises again after its first decrease: their bins
    are not valid), ``sel`` (indices of the steps that see a change; None if none does)
    and, for those steps, arrays ``(R, len(sel), J)``: ``D`` the weighted sum of the
    changes of each bin, ``S`` the area from the bin's mean position to the step and
    ``log_eta`` the bin's mean log-LR.
    """
    R = lr.shape[0]
    hi = int(steps[-1])
    f = np.minimum(f, hi)
    i0 = int(f.min())
    sel = np.flatnonzero(steps - 1 >= i0)
    if sel.size == 0:
        return np.zeros(R, bool), None, None, None, None
    st = steps[sel]
    L = hi - i0  # changes i0 .. hi-1
    window = lr[:, i0 - 1 - start : hi - start]  # updates i0 .. hi (1-based)
    d = window[:, :-1] - window[:, 1:]
    d_min = d.min(axis=1)
    masked = bool((d_min < 0).any())
    if masked:  # some increases: leave out those before each row's decay
        d = np.where(np.arange(i0, hi)[None, :] >= f[:, None], d, 0.0)
        d_min = d.min(axis=1)
    rises = d_min < -_RISE * window.max(axis=1)

    def prefix(x: np.ndarray) -> np.ndarray:  # q[:, n] = sum(x[:, :n])
        q = np.empty((R, x.shape[1] + 1))
        q[:, 0] = 0.0
        np.cumsum(x, axis=1, out=q[:, 1:])
        return q

    area = np.cumsum(window, axis=1)  # area[:, k] = sum(lr[i0-1 : i0+k]) (+ a constant)
    area_at_step = area[:, st - i0][:, :, None]
    log_eta = np.log(np.maximum(window[:, 1:], _TINY))
    grids = [(np.clip(st[:, None] - e[None, :] - i0, 0, L), w) for e, w in _grids(hi - 1 - i0, bin_ratio)]
    if (d_min < 0).any():  # small increases (a decay's rounding): binned apart
        parts = [(1.0, np.maximum(d, 0.0)), (-1.0, np.maximum(-d, 0.0))]
    else:  # a decay: sum(d[:, :n]) telescopes to window[:, 0] - window[:, n]
        parts = [(1.0, d)]
    out = []
    for sign, w in parts:
        # the telescoped sum holds only where no increase was left out (rows of one warmup)
        q_w = window[:, :1] - window if len(parts) == 1 and not masked else prefix(w)
        qs = (q_w, prefix(w * area[:, :-1]), prefix(w * log_eta))
        for n, weight in grids:
            W, Wa, Wl = ((lambda g: g[..., :-1] - g[..., 1:])(q[:, n]) for q in qs)
            has = W > 0
            W1 = np.where(has, W, 1.0)
            S = np.where(has, np.maximum(area_at_step - Wa / W1, 0.0), 0.0)
            out.append((sign * weight * W, S, Wl / W1))
    D, S, log_eta = (np.concatenate(x, axis=-1) for x in zip(*out))
    return rises, sel, D, S, log_eta


def _exact_changes(lr: np.ndarray, steps: np.ndarray):
    """Every (step, change) pair of one schedule ``lr`` ``(T,)``, the change seen from the
    step: flat ``(point, D, S, log_eta)`` (the exact sum, ``O(P * K)`` entries)."""
    d = np.zeros(lr.size)
    d[1:] = lr[:-1] - lr[1:]
    idx = np.flatnonzero(d)
    idx = idx[idx >= decay_start(lr)]
    cs = np.concatenate([[0.0], np.cumsum(lr)])  # cs[i] = sum(lr[:i])
    point, k = np.nonzero(idx[None, :] <= steps[:, None] - 1)
    i = idx[k]
    return point, d[i], cs[steps[point]] - cs[i], np.log(np.maximum(lr[i], _TINY))


def _drop(D: np.ndarray, S: np.ndarray, log_eta: np.ndarray, B: float, C: float, beta: float,
          gamma: float) -> np.ndarray:
    """``B * sum_bins D * G(S * eta^-gamma)`` over the last axis."""
    with np.errstate(over="ignore"):
        x = S * np.exp(-gamma * log_eta)
    return B * np.sum(D * _G(x, C, beta), axis=-1)


def _as_2d(lr: Any) -> tuple[np.ndarray, bool]:
    lr = np.asarray(lr, dtype=np.float64)
    if lr.ndim not in (1, 2):
        raise ValueError(f"lr must be 1-d (one schedule) or 2-d (n_candidates, steps), got shape {lr.shape}")
    return (lr[None, :], True) if lr.ndim == 1 else (lr, False)


def _predict(lr: Any, steps: Any, params: dict[str, float], bin_ratio: float, with_area: bool = True) -> np.ndarray:
    """The law's loss (``with_area``) or ``-LD`` alone at ``steps``, for each row of ``lr``."""
    lr2, one = _as_2d(lr)
    steps = np.asarray(steps, dtype=np.int64)
    p = params
    ld = (p["B"], p["C"], p["beta"], p["gamma"])
    out = np.zeros((lr2.shape[0], steps.size))
    hi = int(steps[-1])
    f = np.empty(lr2.shape[0], np.int64)
    for a in range(0, lr2.shape[0], 64):  # contiguous blocks: no copy of the input
        block = lr2[a : a + 64, :hi]
        f[a : a + 64] = decay_start(block)
        if with_area:  # a zero area (LR 0 so far) gives an infinite loss, the law's limit
            with np.errstate(divide="ignore"):
                out[a : a + 64] = p["L0"] + p["A"] * _forward_area(block, steps) ** (-p["alpha"])
    order = np.argsort(f, kind="stable")  # rows with close decay starts share a chunk
    n_bins = _n_bins(hi, bin_ratio)
    rows = max(1, _ELEMENTS // (4 * (hi - int(np.median(f)) + 1) + 4 * steps.size * n_bins))
    for a in range(0, lr2.shape[0], rows):
        idx = order[a : a + rows]
        start = int(f[idx].min()) - 1
        seen = steps[steps - 1 > start]  # the steps that may see a change
        per = max(1, _ELEMENTS // (4 * idx.size * n_bins))
        for b in range(0, seen.size, per):  # blocks of steps: bounded work arrays
            block = seen[b : b + per]
            cols = np.searchsorted(steps, block)
            window = lr2[idx, start : block[-1]]
            rises, sel, D, S, log_eta = _binned_changes(window, block, bin_ratio, f[idx], start)
            if sel is not None:
                out[idx[:, None], cols[sel][None, :]] -= np.where(rises[:, None], 0.0, _drop(D, S, log_eta, *ld))
            for r in np.flatnonzero(rises):  # re-warms and cycles: summed change by change
                out[idx[r], cols] -= loss_drop_exact(lr2[idx[r]], block, *ld)
    return out[0] if one else out


def loss_drop(lr: Any, steps: Any, B: float, C: float, beta: float, gamma: float, *,
              bin_ratio: float = 0.05) -> np.ndarray:
    """``LD`` at ``steps`` for ``lr`` of shape ``(T,)`` or ``(n, T)`` (binned quadrature)."""
    params = {"B": B, "C": C, "beta": beta, "gamma": gamma}
    return -_predict(lr, steps, params, bin_ratio, with_area=False)


def loss_drop_exact(lr: Any, steps: Any, B: float, C: float, beta: float, gamma: float) -> np.ndarray:
    """``LD`` at ``steps`` summed change by change: ``O(P * K)`` time, chunked memory.

    The reference for :func:`loss_drop`; ``lr`` is one schedule of shape ``(T,)``.
    """
    lr = np.asarray(lr, dtype=np.float64)
    if lr.ndim != 1:
        raise ValueError(f"loss_drop_exact takes one schedule (1-d lr), got shape {lr.shape}")
    steps = np.asarray(steps, dtype=np.int64)
    rows = max(1, _ELEMENTS // (int(np.count_nonzero(np.diff(lr[: steps[-1]]))) + 1))
    out = np.zeros(steps.size)
    for a in range(0, steps.size, rows):
        st = steps[a : a + rows]
        point, D, S, log_eta = _exact_changes(lr, st)
        with np.errstate(over="ignore"):
            g = D * _G(S * np.exp(-gamma * log_eta), C, beta)
        out[a : a + rows] = B * np.bincount(point, g, minlength=st.size)
    return out


# -- fitting ----------------------------------------------------------------------------

def _warmup_end(lr: np.ndarray) -> int:
    """Index of the top of the initial non-decreasing stretch (0 without warmup)."""
    end = decay_start(lr)
    return int(np.argmax(lr[:end])) if end > 0 else 0


def _fit_points(curve: Curve) -> np.ndarray:
    """The points a fit uses: those logged after the warmup (where the law holds), or
    all of them if fewer than 3 are."""
    keep = curve.steps > _warmup_end(curve.lr)
    return keep if keep.sum() >= 3 else np.ones(curve.steps.size, bool)


def _curve_bins(lr: np.ndarray, steps: np.ndarray, bin_ratio: float):
    """The non-zero bins of one schedule seen from ``steps``, flat: ``(point, D, S,
    log_eta)`` (every change its own bin where the LR rises again: the exact sum)."""
    f = decay_start(lr)
    per = max(1, _ELEMENTS // (4 * _n_bins(int(steps[-1]), bin_ratio)))
    parts = []
    for b in range(0, steps.size, per):
        block = steps[b : b + per]
        rises, sel, D, S, log_eta = _binned_changes(lr[None, : block[-1]], block, bin_ratio, np.array([f]))
        if rises[0]:  # every change its own bin, in blocks of bounded size
            rows = max(1, _ELEMENTS // (int(np.count_nonzero(np.diff(lr[: block[-1]]))) + 1))
            parts += [(point + b + c, D, S, log_eta) for c in range(0, block.size, rows)
                      for point, D, S, log_eta in [_exact_changes(lr, block[c : c + rows])]]
            continue
        if sel is not None:
            nz = D[0] != 0
            point = np.broadcast_to(sel[:, None], nz.shape)[nz]
            parts.append((point + b, D[0][nz], S[0][nz], log_eta[0][nz]))
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0)
    return tuple(np.concatenate(x) for x in zip(*parts))


class _FitData:
    """The training points flattened: log-loss, log forward area and the bins of the
    LR changes each point sees (``point`` index, ``D``, ``S``, ``log_eta``), zero bins
    dropped."""

    def __init__(self, curves: Sequence[Curve], bin_ratio: float) -> None:
        ys, s1s, pts, Ds, Ss, ls, free = [], [], [], [], [], [], []
        offset = 0
        for c in curves:
            keep = _fit_points(c)
            steps = c.steps[keep]
            point, D, S, log_eta = _curve_bins(c.lr, steps, bin_ratio)
            ys.append(c.loss[keep])
            s1s.append(_forward_area(c.lr[None, :], steps)[0])
            pts.append(point + offset)
            Ds.append(D), Ss.append(S), ls.append(log_eta)
            free.append(steps - 1 < decay_start(c.lr))
            offset += steps.size
        self.y = np.concatenate(ys)
        self.log_y, self.log_s1 = np.log(self.y), np.log(np.concatenate(s1s))
        self.point, self.D = np.concatenate(pts), np.concatenate(Ds)
        self.S, self.log_eta = np.concatenate(Ss), np.concatenate(ls)
        self.free = np.concatenate(free)  # points that see no LR decrease (LD = 0)

    def unit_drop(self, C: float, beta: float, gamma: float) -> np.ndarray:
        """``LD / (B * beta)`` at every point."""
        h = -np.expm1(-beta * np.log1p(C * self.S * np.exp(-gamma * self.log_eta))) / beta
        return np.bincount(self.point, self.D * h, minlength=self.y.size)


#: bounds of z = (L0, ln A, alpha, ln(B*beta), ln C, beta, gamma); L0's upper bound is
#: set per fit (below the smallest loss)
_BOUNDS = [(0.0, None), (-30.0, 30.0), (1e-3, 3.0), (-30.0, 30.0), (-20.0, 20.0), (1e-4, 5.0), (0.0, 2.0)]


def _residuals(z: np.ndarray, data: _FitData) -> tuple[np.ndarray, np.ndarray]:
    """Log-loss residuals ``ln(pred) - ln(loss)`` and their Jacobian in ``z``.

    ``z = (L0, ln A, alpha, ln K, ln C, beta, gamma)`` with ``K = B * beta``: the drop is
    ``K * sum D * h`` with ``h = G / beta = (1 - (1 + C x)^-beta) / beta``, finite as
    ``beta -> 0`` (``h -> ln(1 + C x)``), so that valley is well conditioned.  Below
    ``eps`` a prediction's log is continued linearly (smooth, finite Jacobian).
    """
    L0, lnA, alpha, lnK, lnC, beta, gamma = z
    A, K, C = np.exp(lnA), np.exp(lnK), np.exp(lnC)
    n = data.y.size

    def per_point(w: np.ndarray) -> np.ndarray:
        return np.bincount(data.point, w, minlength=n)

    power = A * np.exp(-alpha * data.log_s1)
    x = data.S * np.exp(-gamma * data.log_eta)
    lg = np.log1p(C * x)
    p = np.exp(-beta * lg)  # (1 + C x)^-beta
    h = -np.expm1(-beta * lg) / beta
    ld = K * per_point(data.D * h)
    pred = L0 + power - ld
    eps = 1e-3 * float(data.y.min())
    low = pred < eps
    safe = np.where(low, eps, pred)
    r = np.where(low, np.log(eps) + (pred - eps) / eps, np.log(safe)) - data.log_y
    dh_dlnC = p * C * x / (1.0 + C * x)
    jac = np.empty((n, 7))
    jac[:, 0] = 1.0
    jac[:, 1] = power
    jac[:, 2] = -power * data.log_s1
    jac[:, 3] = -ld
    jac[:, 4] = -K * per_point(data.D * dh_dlnC)
    jac[:, 5] = -K * per_point(data.D * (beta * lg * p + np.expm1(-beta * lg)) / beta**2)
    jac[:, 6] = K * per_point(data.D * dh_dlnC * data.log_eta)
    jac /= safe[:, None]
    return r, jac


_C_GRID, _BETA_GRID, _GAMMA_GRID = (0.01, 0.1, 1.0, 10.0), (0.01, 0.5, 2.0), (0.3, 0.6, 0.9)
_L0_FRACTIONS = (0.0, 0.5, 0.7, 0.8, 0.9)


def _starts(data: _FitData, n_best: int = 3) -> list[np.ndarray]:
    """Initial points ``z`` (see :func:`_residuals`).

    ``A`` and ``alpha`` come from a log-log regression of ``loss - L0`` on the forward
    area over the points that see no LR decrease, for ``L0`` a fraction of the smallest
    loss; ``K`` from least squares of the relative residual for every ``(C, beta,
    gamma)`` of a grid; the ``n_best`` starts of least relative squared error.
    """
    y, ls1 = data.y, data.log_s1
    fit_pts = data.free if data.free.sum() >= 3 else np.ones(y.size, bool)
    grid = [(C, b, g) for C in _C_GRID for b in _BETA_GRID for g in _GAMMA_GRID]
    vy = np.array([data.unit_drop(*g) for g in grid]) / y if data.D.size else np.zeros((0, y.size))
    cands = []
    for frac in _L0_FRACTIONS:
        L0 = frac * float(y.min())
        slope, icpt = np.polyfit(ls1[fit_pts], np.log(y[fit_pts] - L0), 1)
        alpha = float(np.clip(-slope, 1e-3, 3.0))
        resid = (L0 + np.exp(icpt - alpha * ls1) - y) / y  # = K * unit_drop / y at a fit
        if not vy.size:
            cands.append((float(resid @ resid), [L0, icpt, alpha, -30.0, 0.0, 0.5, 0.6]))
            continue
        K = np.maximum(np.einsum("ij,j->i", vy, resid) / np.maximum(np.einsum("ij,ij->i", vy, vy), 1e-300), 1e-12)
        sse = np.sum((resid[None, :] - K[:, None] * vy) ** 2, axis=1)
        cands += [(float(e), [L0, icpt, alpha, np.log(k), np.log(C), b, g])
                  for e, k, (C, b, g) in zip(sse, K, grid)]
    cands.sort(key=lambda c: c[0])
    return [np.array(z) for _, z in cands[:n_best]]


def _to_params(z: np.ndarray) -> dict[str, float]:
    L0, lnA, alpha, lnK, lnC, beta, gamma = (float(v) for v in z)
    return {"L0": L0, "A": float(np.exp(lnA)), "alpha": alpha, "B": float(np.exp(lnK)) / beta,
            "C": float(np.exp(lnC)), "beta": beta, "gamma": gamma}


def _to_z(params: dict[str, float]) -> np.ndarray:
    p = params
    return np.array([p["L0"], np.log(p["A"]), p["alpha"], np.log(max(p["B"] * p["beta"], 1e-300)),
                     np.log(max(p["C"], 1e-300)), p["beta"], p["gamma"]])


def _minimise(data: _FitData, starts: list[np.ndarray], delta: float) -> np.ndarray:
    """The best of trust-region fits (Huber loss, scale ``delta``) from ``starts``."""
    bounds = list(_BOUNDS)
    bounds[0] = (0.0, 0.999 * float(data.y.min()))
    lo, hi = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds], dtype=float)
    last: dict[str, np.ndarray] = {}

    def fun(z: np.ndarray) -> np.ndarray:
        r, last["jac"] = _residuals(z, data)
        last["z"] = z.copy()
        return r

    def jac(z: np.ndarray) -> np.ndarray:
        return last["jac"] if np.array_equal(last.get("z"), z) else _residuals(z, data)[1]

    best = None
    for z0 in starts:
        res = optimize.least_squares(fun, np.clip(z0, lo, hi), jac=jac, bounds=(lo, hi), loss="huber",
                                     f_scale=delta, method="trf", x_scale="jac", max_nfev=1000)
        if best is None or res.cost < best.cost * (1 - 1e-9):
            best = res
    return best.x


class MultiPowerLaw(Law):
    """Multi-power law ``L = L0 + A*(S1+S_W)^-alpha - LD`` (module docstring for ``LD``).

    Fitted on a few observed curves it predicts the loss curve of any other schedule, one
    or many at a time (``lr`` of shape ``(n_candidates, T)``).  The fit (the paper's)
    minimises the sum of Huber(``huber_delta``) losses of the log-loss residuals over all
    7 parameters: trust-region least squares with an analytic Jacobian, from the 3 best
    of a grid of starts (``A`` and ``alpha`` from a log-log regression of the loss, ``B``
    from least squares for each ``(C, beta, gamma)`` of the grid).  It is deterministic;
    losses logged during the warmup are left out.

    On the published split (fit on 3 curves, mean relative error on the 6 held-out ones,
    ``benchmarks/mpl_split.py``) this fit gives 0.202 / 0.226 / 0.318 % for 25M / 100M /
    400M, not the published 0.110 / 0.142 / 0.168 %: its optimum has a slowly saturating
    ``G`` (``beta`` 0.01-0.27) and over-predicts the drop of ``cosine_72000``.  Without
    any law, that run ends 0.094 below the constant run at equal area (25M) and
    ``cosine_24000`` 0.108 below: a longer cosine keeps less of its drop, while the law's
    drop can only grow with the area ``S_k``.  Fitting takes about 0.15 s (0.4 s with the
    band's refits) on the ~450 points of the split; its cost grows with the number of
    logged points (about 13 s for 12,000), so thin out a curve logged at every step; 1,000 WSD candidates of 50,000 steps at 100 steps each take about
    0.5 s (``benchmarks/speed.py``).

    >>> from lrtune.datasets import mpl_split
    >>> train, test = mpl_split("25M")
    >>> law = MultiPowerLaw().fit(train)
    >>> pred = law.predict(test[2].lr, test[2].steps)   # a WSD run it never saw

    Args:
        huber_delta: Huber threshold on log-loss residuals of the fit.
        bin_ratio: resolution of the loss-drop quadrature: LR changes at distance ``r``
            steps from the step evaluated are grouped in bins ``<= bin_ratio * r`` wide,
            in (0, 0.25].  At 0.05 the loss is within 1e-5 (relative) of the exact sum.
    """

    name: ClassVar[str] = "multipower"
    param_names: ClassVar[tuple[str, ...]] = ("L0", "A", "alpha", "B", "C", "beta", "gamma")

    def __init__(self, huber_delta: float = 1e-3, bin_ratio: float = 0.05) -> None:
        if not (isinstance(huber_delta, (int, float)) and huber_delta > 0):
            raise ValueError(f"huber_delta must be > 0, got {huber_delta!r}")
        if not (isinstance(bin_ratio, (int, float)) and 0 < bin_ratio <= 0.25):
            raise ValueError(f"bin_ratio must be in (0, 0.25], got {bin_ratio!r}")
        self.huber_delta = huber_delta
        self.bin_ratio = bin_ratio

    def get_config(self) -> dict[str, Any]:
        return {"huber_delta": self.huber_delta, "bin_ratio": self.bin_ratio}

    def _predict_params(self, params: dict[str, float], lr: np.ndarray, steps: np.ndarray,
                        model_size: float | None) -> np.ndarray:
        return _predict(lr, steps, params, self.bin_ratio)

    def _fit_mask(self, curve: Curve) -> np.ndarray:
        return _fit_points(curve)

    def _fit_params(self, curves: Sequence[Curve]) -> dict[str, float]:
        data = _FitData(curves, max(self.bin_ratio, _FIT_BIN_RATIO))
        return _to_params(_minimise(data, _starts(data), self.huber_delta))

    def _refit_params(self, curves: Sequence[Curve], start: dict[str, float]) -> dict[str, float]:
        data = _FitData(curves, max(self.bin_ratio, _FIT_BIN_RATIO))
        return _to_params(_minimise(data, [_to_z(start)] + _starts(data, 1), self.huber_delta))
