r"""Suggest a schedule for a target horizon: rank candidates by a law's predicted loss.

Candidates are every combination of a family (cosine, linear, WSD), for WSD a cooldown
fraction ``c`` and a cooldown shape (linear, 1-sqrt, cosine), and a peak LR ``gamma``
from a log-spaced grid.  A candidate is ``gamma * eta(t)`` with ``eta`` the shape
normalised to peak 1, so the ``n_shapes x n_peaks`` LR rows are built by one broadcast
per shape and scored in blocks with the law's batched ``predict(lr (n, T), [T])``.
The best candidate and the best candidate of each other shape (the runners-up) get the
law's ``level`` band.

A fitted law must describe how the loss depends on the peak LR (a law fitted on runs at
one peak LR only ranks by LR area: higher is always better), so the peak-LR grid stays
inside the range of the observed runs' peaks by default.

:func:`optimize_free_form` goes beyond the families: a non-increasing LR sequence after
the warmup, parametrised by ``K`` knots of ``ln eta`` (linear in between, knots denser
towards the end), is optimised by gradient descent (L-BFGS-B, gradients by finite
differences evaluated as one batched prediction) against the law's final loss, as the
multi-power-law paper did with its law.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import time
import warnings
from typing import Any, Sequence

import numpy as np
from scipy import optimize

from lrtune.curves import Curve
from lrtune.laws import FitWarning, Prediction
from lrtune.laws._base import far_peaks_message
from lrtune.schedules import Cosine, Linear, Schedule, WSD

__all__ = [
    "FREE_FORM_LABEL",
    "FreeForm",
    "ResidualCorrection",
    "SuggestResult",
    "Suggestion",
    "candidate_shapes",
    "observed_warmup",
    "optimize_free_form",
    "predict_batch",
    "suggest",
]

FAMILIES = ("cosine", "linear", "wsd")
COOLDOWN_SHAPES = ("linear", "1-sqrt", "cosine")
#: label of the free-form schedule in every output
FREE_FORM_LABEL = "free-form (optimised against the law, not a schedule family)"
_BLOCK_ELEMENTS = 2_000_000  # rows x steps per prediction block (16 MB of float64)


# ---------------------------------------------------------------------------------------
# batched prediction


def predict_batch(law: Any, lr: np.ndarray, steps: Any, *, level: float | None = None) -> Any:
    """The law's prediction for every row of ``lr`` (n, T) at ``steps``: an (n, P) array,
    or with ``level`` a :class:`~lrtune.laws.Prediction` of (n, P) arrays.

    Uses the law's 2-d ``predict`` in blocks; a law that takes one schedule at a time is
    called row by row.
    """
    lr = np.asarray(lr, dtype=np.float64)
    if lr.ndim != 2:
        raise ValueError(f"lr must be 2-d (n_candidates, steps), got shape {lr.shape}")
    steps = np.atleast_1d(np.asarray(steps, dtype=np.int64))
    rows = max(1, _BLOCK_ELEMENTS // max(lr.shape[1], 1))
    parts: list[Any] = []
    for a in range(0, lr.shape[0], rows):
        block = lr[a:a + rows]
        parts.append(_predict_block(law, block, steps, level))
    if level is None:
        return np.concatenate(parts, axis=0)
    joined = (np.concatenate([getattr(p, k) for p in parts], axis=0) for k in ("loss", "lower", "upper"))
    return Prediction(steps, *joined, level)


def _interval(law: Any, lr: np.ndarray, steps: Any, level: float) -> Prediction:
    """``law.predict_interval`` without its far-peak warning: suggest warns once for all candidates."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        return law.predict_interval(lr, steps, level=level)


def _predict_block(law: Any, block: np.ndarray, steps: np.ndarray, level: float | None) -> Any:
    n = block.shape[0]
    try:
        out = law.predict(block, steps) if level is None else _interval(law, block, steps, level)
        got = out if level is None else out.loss
        if np.shape(got) == (n, steps.size):
            return out
    except ValueError:
        pass  # a law that takes one schedule at a time
    rows = [(law.predict(r, steps) if level is None else _interval(law, r, steps, level)) for r in block]
    if level is None:
        return np.stack(rows)
    return Prediction(steps, np.stack([r.loss for r in rows]), np.stack([r.lower for r in rows]),
                      np.stack([r.upper for r in rows]), level)


# ---------------------------------------------------------------------------------------
# candidates


def observed_warmup(curves: Sequence[Curve]) -> tuple[int, float]:
    """``(warmup, start)`` of the longest observed run: the steps of its initial rise to
    its peak and the LR of its first update as a fraction of the peak."""
    if not curves:
        raise ValueError("no observed runs")
    c = max(curves, key=lambda c: c.horizon)
    lr = c.lr
    down = np.flatnonzero(np.diff(lr) < 0)
    end = int(down[0]) + 1 if down.size else lr.size
    top = int(np.argmax(lr[:end]))
    if top == 0:
        return 0, 0.0
    return top + 1, float(f"{lr[0] / lr[top]:.4g}")


def candidate_shapes(steps: int, *, families: Sequence[str] = FAMILIES,
                     cooldowns: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.6, 0.8),
                     shapes: Sequence[str] = COOLDOWN_SHAPES, warmup: int = 0, start: float = 0.0,
                     min_lr: float = 0.0) -> list[Schedule]:
    """The candidate schedules at peak 1: one per family, and for WSD one per cooldown
    fraction and cooldown shape."""
    if isinstance(steps, numbers.Real) and not isinstance(steps, (bool, numbers.Integral)) and \
            float(steps).is_integer():
        steps = int(steps)  # 50_000.0, 5e4: a whole number, as the schedules take it
    if isinstance(steps, bool) or not (isinstance(steps, numbers.Integral) and steps >= 2):
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    families = [families] if isinstance(families, str) else families  # "wsd" is one family, not three letters
    shapes = [shapes] if isinstance(shapes, str) else shapes
    families, shapes = list(dict.fromkeys(families)), list(dict.fromkeys(shapes))  # each once
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise ValueError(f"families must be some of {', '.join(FAMILIES)}, got {families}")
    bad = [s for s in shapes if s not in COOLDOWN_SHAPES]
    if bad or ("wsd" in families and not shapes):
        raise ValueError(f"cooldown shapes must be some of {', '.join(COOLDOWN_SHAPES)}, got {shapes}")
    cooldowns = list(dict.fromkeys(np.ravel(np.asarray(cooldowns, dtype=object)).tolist()))
    badc = [c for c in cooldowns if isinstance(c, bool) or not (isinstance(c, numbers.Real) and 0 < c <= 1)]
    if badc or ("wsd" in families and not cooldowns):
        raise ValueError(f"cooldown fractions must be in (0, 1], got {cooldowns}")
    common = dict(steps=int(steps), peak=1.0, warmup=int(warmup), start=float(start), min=float(min_lr))
    out: list[Schedule] = []
    misfits = []
    for fam in families:
        if fam == "cosine":
            out.append(Cosine(**common))
        elif fam == "linear":
            out.append(Linear(**common))
        else:
            for c, s in ((float(c), s) for c in cooldowns for s in shapes):
                try:  # a cooldown too short to decay, or one that would start inside the warmup
                    out.append(WSD(**common, cooldown=c, shape=s))
                except ValueError as e:
                    misfits.append(str(e))
    if not out:
        raise ValueError(f"no candidate schedule fits {int(steps)} steps with warmup {int(warmup)}: {misfits[0]} "
                         f"(change the cooldowns, the warmup or the families)")
    return out


# ---------------------------------------------------------------------------------------
# residual correction


@dataclasses.dataclass(frozen=True)
class ResidualCorrection:
    r"""Carry the law's error on observed runs to the candidates that resemble them.

    A law's log-residual on a run, ``r_j = ln(observed) - ln(predicted)`` at the run's last
    logged step, is mostly systematic (it depends on the schedule's shape and peak LR) and
    persists at longer horizons.  A candidate of normalised shape ``eta`` and peak ``p``
    gets

    .. math::

        \hat r = \frac{w_0 \bar r + \sum_j w_j r_j}{w_0 + \sum_j w_j}, \qquad
        w_j = \exp\Big(-\frac{d_j^2}{2\sigma_s^2} - \frac{\ln^2(p / p_j)}{2\sigma_p^2}\Big)

    with ``d_j`` the mean absolute difference between ``eta`` rebuilt at run ``j``'s
    horizon and run ``j``'s LR array over its peak ``p_j``; its predicted loss is
    multiplied by ``exp(r_hat)``.  Far from every run (all ``w_j`` small against
    ``w_0``) it gets the mean residual ``r_bar``, so shapes the runs never tried are
    neither favoured nor penalised against the ones they did.

    The defaults were chosen on the Schaipp 124M grid (suggesting 25k-step schedules from
    the runs of at most 15k steps) and checked on it at 50k from the runs of at most 25k
    steps (``benchmarks/suggest.py``).

    Args:
        shape_scale: ``sigma_s``, in units of the normalised LR (WSD cooldowns of 20 %
            and 40 % differ by 0.1).
        peak_scale: ``sigma_p``, in ln(peak LR) (0.35: half of a factor 2).
        prior_weight: ``w_0``, the weight of the mean residual.
    """

    shape_scale: float = 0.1
    peak_scale: float = 0.35
    prior_weight: float = 0.1

    def __post_init__(self) -> None:
        for name in ("shape_scale", "peak_scale", "prior_weight"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")

    def log_shift(self, law: Any, shapes: Sequence[Schedule | np.ndarray], peaks: np.ndarray,
                  curves: Sequence[Curve]) -> np.ndarray:
        """The correction ``r_hat`` of every (shape, peak) candidate: an array (K, P); a
        shape is a schedule or an LR array (resampled to each run's horizon)."""
        curves = [c for c in curves if isinstance(c, Curve)]
        if not curves:
            return np.zeros((len(shapes), peaks.size))
        last = [int(c.steps[-1]) for c in curves]
        pred = np.array([float(np.ravel(law.predict(c.lr, [s]))[-1]) for c, s in zip(curves, last)])
        obs = np.array([float(c.loss[-1]) for c in curves])
        r = np.log(obs) - np.log(pred)
        d = np.empty((len(shapes), len(curves)))
        rebuilt: dict[int, np.ndarray] = {}
        for j, c in enumerate(curves):
            if c.horizon not in rebuilt:
                rebuilt[c.horizon] = np.stack([_at_horizon(s, c.horizon) for s in shapes])
            d[:, j] = np.mean(np.abs(rebuilt[c.horizon] - c.lr / c.peak_lr), axis=1)
        dp = np.log(peaks[:, None] / np.array([c.peak_lr for c in curves])[None, :])  # (P, J)
        w = np.exp(-0.5 * (d[:, None, :] / self.shape_scale) ** 2 - 0.5 * (dp[None, :, :] / self.peak_scale) ** 2)
        return (w @ r + self.prior_weight * r.mean()) / (self.prior_weight + w.sum(axis=2))


def _at_horizon(schedule: Schedule, steps: int) -> np.ndarray:
    """``schedule`` at peak 1 rebuilt at ``steps`` (same warmup in steps when it fits;
    resampled in relative time where that is no valid schedule, e.g. a long cooldown
    that would start inside the warmup of a shorter run)."""
    from lrtune.transfer import eta_at_horizon

    return eta_at_horizon(schedule, int(steps))


# ---------------------------------------------------------------------------------------
# suggestions


@dataclasses.dataclass(frozen=True)
class Suggestion:
    """A ranked candidate: its spec (with its peak LR), predicted final loss and band."""

    schedule: str
    peak_lr: float
    predicted_loss: float
    lower: float
    upper: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class FreeForm:
    """A free-form schedule optimised against the law: ``lr`` is the whole LR array,
    ``knots`` its ``(step, lr)`` control points."""

    lr: np.ndarray
    knots: list[tuple[int, float]]
    peak_lr: float
    predicted_loss: float
    lower: float
    upper: float
    label: str = FREE_FORM_LABEL

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "peak_lr": self.peak_lr, "predicted_loss": self.predicted_loss,
                "lower": self.lower, "upper": self.upper, "steps": int(self.lr.size),
                "knots": [[int(t), float(v)] for t, v in self.knots]}


@dataclasses.dataclass(frozen=True)
class SuggestResult:
    """The best candidate, the best candidate of each other shape (``alternatives``, by
    predicted loss), how many candidates were scored and how fast (``seconds`` of wall
    time and ``cpu_seconds`` of this process's CPU time, which a busy machine inflates
    less; both count building and scoring the candidates, not the residual correction,
    which costs the same for any number of peak LRs)."""

    best: Suggestion
    alternatives: list[Suggestion]
    steps: int
    n_candidates: int
    seconds: float
    cpu_seconds: float
    level: float
    free_form: FreeForm | None = None
    #: ``"below"`` / ``"above"`` when the best peak LR is the smallest / largest tried: the
    #: optimum may lie beyond the range (``None`` inside it)
    at_edge: str | None = None

    @property
    def candidates_per_second(self) -> float:
        return self.n_candidates / max(self.seconds, 1e-9)

    @property
    def candidates_per_cpu_second(self) -> float:
        return self.n_candidates / max(self.cpu_seconds, 1e-9)

    def to_dict(self) -> dict[str, Any]:
        out = self.best.to_dict()
        out["alternatives"] = [a.to_dict() for a in self.alternatives]
        out.update(steps=self.steps, level=self.level, at_edge=self.at_edge, candidates=self.n_candidates,
                   candidates_per_second=self.candidates_per_second,
                   candidates_per_cpu_second=self.candidates_per_cpu_second)
        if self.free_form is not None:
            out["free_form"] = self.free_form.to_dict()
        return out


def _warn_far_peaks(law: Any, peaks: np.ndarray) -> None:
    """A :class:`~lrtune.laws.FitWarning` when candidates lie at peak LRs the law cannot be
    trusted at (:func:`lrtune.laws._base.far_peaks_message`)."""
    message = far_peaks_message(law, peaks)
    if message:
        warnings.warn(message + ", and a best candidate among them is a guess", FitWarning, stacklevel=3)


def suggest(law: Any, steps: int, peak_lrs: Sequence[float], *, families: Sequence[str] = FAMILIES,
            cooldowns: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.6, 0.8), shapes: Sequence[str] = COOLDOWN_SHAPES,
            warmup: int = 0, start: float = 0.0, min_lr: float = 0.0, level: float = 0.9, top: int = 5,
            free_form: bool = False, curves: Sequence[Curve] | None = None,
            correction: ResidualCorrection | None = None) -> SuggestResult:
    """Rank ``shape x peak LR`` candidates at horizon ``steps`` by the fitted ``law``'s
    final loss, corrected by the law's residuals on the observed ``curves`` when given
    (:class:`ResidualCorrection`).

    Args:
        law: a fitted law (``predict`` / ``predict_interval``).
        steps: the target horizon (optimizer updates).
        peak_lrs: the peak LRs to try (> 0).
        families, cooldowns, shapes: the candidate shapes (see :func:`candidate_shapes`).
        warmup, start: linear warmup of every candidate (steps, first LR / peak).
        min_lr: final LR as a fraction of the peak.
        level: level of the bands.
        top: number of runners-up (best of each other shape).
        free_form: also optimise a free-form schedule (:func:`optimize_free_form`).
        curves: the observed runs the law was fitted on; their residuals correct the
            candidates that resemble them (``None``: the law's predictions as they are).
        correction: the correction's settings (default :class:`ResidualCorrection()`).
    """
    peaks = np.unique(np.asarray(peak_lrs, dtype=np.float64).ravel())
    if peaks.size == 0 or not np.all(np.isfinite(peaks) & (peaks > 0)):
        raise ValueError(f"peak LRs must be finite numbers > 0, got {[float(v) for v in np.ravel(peak_lrs)]}")
    if isinstance(curves, Curve):
        curves = [curves]
    if not (isinstance(top, (int, np.integer)) and top >= 0):
        raise ValueError(f"top must be an integer >= 0, got {top!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    _warn_far_peaks(law, peaks)
    t0, c0 = time.perf_counter(), time.process_time()
    shapes_ = candidate_shapes(steps, families=families, cooldowns=cooldowns, shapes=shapes,
                               warmup=warmup, start=start, min_lr=min_lr)
    K, T, P = len(shapes_), shapes_[0].steps, peaks.size
    cache: dict[int, np.ndarray] = {}

    def eta(k: int) -> np.ndarray:  # shape k at peak 1, built when needed: no (K, T) array
        if k not in cache:
            cache.clear()
            cache[k] = shapes_[k].lr()
        return cache[k]

    # candidate row k*P + p is peak p of shape k
    per_peak = None if getattr(law, "model_size", False) else getattr(law, "predict_peaks", None)
    flat = np.empty(K * P)
    final = np.array([T])
    if per_peak is not None:  # a law linear in the LR: one pass per shape, rescaled for every peak
        for k in range(K):
            flat[k * P:(k + 1) * P] = per_peak(eta(k), peaks, final)[:, -1]
    else:  # blocks of rows filled by broadcasting into one reused buffer (fresh large arrays
        # cost a page fault per 4 kB on first touch)
        rows = max(1, min(_BLOCK_ELEMENTS // T, K * P))
        buf = np.empty((rows, T))
        for a in range(0, K * P, rows):
            b = min(a + rows, K * P)
            i = a
            while i < b:  # one segment per shape in the block
                k, p0 = divmod(i, P)
                p1 = min(P, p0 + b - i)
                np.multiply(peaks[p0:p1, None], eta(k), out=buf[i - a:i - a + p1 - p0])
                i += p1 - p0
            flat[a:b] = _predict_block(law, buf[:b - a], final, None)[:, -1]
    loss = flat.reshape(K, P)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    shift = np.zeros((K, P))
    if curves is not None and len(curves):
        shift = (correction or ResidualCorrection()).log_shift(law, shapes_, peaks, curves)
        loss = loss * np.exp(shift)
    valid = np.isfinite(loss) & (loss > 0)  # a law far outside its fitted peaks can fall to 0 and below
    if not valid.any():
        raise ValueError("the law predicts no finite, positive loss for any candidate (peak LRs far beyond the "
                         "observed runs'?)")
    loss = np.where(valid, loss, np.inf)
    best_p = np.argmin(loss, axis=1)  # best peak of each shape
    order = [k for k in np.argsort(loss[np.arange(K), best_p], kind="stable")[: top + 1]
             if np.isfinite(loss[k, best_p[k]])]  # shapes with a valid candidate only
    ranked = []
    for k in order:  # one row at a time: a long horizon's band needs several arrays of its length
        band = predict_batch(law, (peaks[best_p[k]] * eta(k))[None, :], [T], level=level)
        up = math.exp(float(shift[k, best_p[k]]))
        ranked.append(Suggestion(shapes_[k].replace(peak=float(peaks[best_p[k]])).spec(), float(peaks[best_p[k]]),
                                 float(band.loss[0, -1] * up), float(band.lower[0, -1] * up),
                                 float(band.upper[0, -1] * up)))
    ff = None
    if free_form:
        floor = min(max(1e-3, float(min_lr)), 1 - 1e-9)  # never below --min, as the families
        usable = peaks[np.isfinite(loss).any(axis=0)]  # peak LRs where some candidate's value is a loss
        ff = optimize_free_form(law, T, peak_range=(float(usable[0]), float(usable[-1])), warmup=warmup,
                                start=start, init=ranked[0], level=level, floor=floor)
        if not (math.isfinite(ff.predicted_loss) and ff.predicted_loss > 0):
            warnings.warn("the free-form schedule's predicted value is not a positive loss (the law is "
                          "extrapolated there): it is left out", FitWarning, stacklevel=2)
            ff = None
        if ff is not None and curves is not None and len(curves):  # corrected as the families are
            up_ff = math.exp(float((correction or ResidualCorrection()).log_shift(
                law, [ff.lr], np.array([ff.peak_lr]), curves)[0, 0]))
            ff = dataclasses.replace(ff, predicted_loss=ff.predicted_loss * up_ff, lower=ff.lower * up_ff,
                                     upper=ff.upper * up_ff)
    edge = None
    if P > 1 and ranked[0].peak_lr == float(peaks[0]):
        edge = "below"
    elif P > 1 and ranked[0].peak_lr == float(peaks[-1]):
        edge = "above"
    return SuggestResult(ranked[0], ranked[1:], int(T), int(K * P), seconds, cpu_seconds, level, ff, edge)


# ---------------------------------------------------------------------------------------
# free-form schedule


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _free_form_lr(theta: np.ndarray, knots: np.ndarray, steps: int, warmup: int, start: float,
                  log_lo: float, log_hi: float, floor: float) -> np.ndarray:
    """LR rows for parameter rows ``theta`` (m, K): theta[:, 0] sets the peak inside
    [lo, hi], theta[:, 1:] the non-negative drops of ln eta between knots (eta >= floor)."""
    theta = np.atleast_2d(theta)
    log_peak = log_lo + (log_hi - log_lo) / (1.0 + np.exp(-theta[:, :1]))
    log_eta = np.concatenate([np.zeros((theta.shape[0], 1)), -np.cumsum(_softplus(theta[:, 1:]), axis=1)], axis=1)
    log_eta = np.maximum(log_eta, math.log(floor))
    t = np.arange(steps, dtype=np.float64)
    body = np.exp(np.stack([np.interp(t, knots, row) for row in log_eta]))
    if warmup > 0:
        ramp = start + (1.0 - start) * np.arange(warmup) / max(warmup - 1, 1)
        body[:, :warmup] = ramp
    return np.exp(log_peak) * body


def optimize_free_form(law: Any, steps: int, *, peak_range: tuple[float, float], warmup: int = 0,
                       start: float = 0.0, knots: int = 12, floor: float = 1e-3,
                       init: Suggestion | None = None, max_iter: int = 60, level: float = 0.9) -> FreeForm:
    """A non-increasing LR sequence (after the warmup) minimising the law's final loss.

    ``ln(lr / peak)`` is piecewise linear between ``knots`` control points at steps
    ``warmup + (T - 1 - warmup) * (1 - (1 - k/(K-1))^2)`` (denser near the end); the
    peak stays in ``peak_range``; each drop between knots is ``softplus(theta_k)`` so
    the sequence never rises, and it never falls below ``floor`` times the peak.
    L-BFGS-B minimises the predicted final loss with finite-difference gradients
    computed as one batched prediction of ``K + 1`` rows.
    """
    lo, hi = (float(v) for v in peak_range)
    if not (0 < lo <= hi and math.isfinite(hi)):
        raise ValueError(f"peak_range must be 0 < lo <= hi, got {peak_range}")
    if not (isinstance(knots, (int, np.integer)) and knots >= 3):
        raise ValueError(f"knots must be an integer >= 3, got {knots!r}")
    if not 0 < floor < 1:
        raise ValueError(f"floor must be in (0, 1), got {floor}")
    if hi == lo:
        hi = lo * (1 + 1e-9)
    log_lo, log_hi = math.log(lo), math.log(hi)
    u = np.arange(knots) / (knots - 1)
    pos = warmup + (steps - 1 - warmup) * (1.0 - (1.0 - u) ** 2)
    # initial parameters: the best candidate (or constant-then-decay) read at the knots
    if init is not None:
        from lrtune.schedules import parse_schedule

        ref = parse_schedule(init.schedule).lr() / init.peak_lr
        peak0 = init.peak_lr
    else:
        ref = WSD(steps=steps, peak=1.0, warmup=warmup, start=start, cooldown=0.2).lr()
        peak0 = math.sqrt(lo * hi)
    at = np.log(np.maximum(ref[pos.round().astype(int)], floor))
    at[0] = 0.0
    drops = np.maximum(-np.diff(at), 1e-4)
    frac = np.clip((math.log(peak0) - log_lo) / max(log_hi - log_lo, 1e-12), 1e-3, 1 - 1e-3)
    theta0 = np.concatenate([[math.log(frac / (1 - frac))], np.log(np.expm1(drops))])
    eps = 1e-4
    T = int(steps)

    def f_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        rows = np.vstack([theta, theta + eps * np.eye(theta.size)])
        lr = _free_form_lr(rows, pos, T, warmup, start, log_lo, log_hi, floor)
        vals = predict_batch(law, lr, [T])[:, -1]
        if not np.all(np.isfinite(vals)):
            return 1e9, np.zeros_like(theta)
        return float(vals[0]), (vals[1:] - vals[0]) / eps

    res = optimize.minimize(f_and_grad, theta0, jac=True, method="L-BFGS-B",
                            bounds=[(-12.0, 12.0)] * theta0.size, options={"maxiter": int(max_iter)})
    theta = res.x if res.fun <= f_and_grad(theta0)[0] else theta0
    lr = _free_form_lr(theta, pos, T, warmup, start, log_lo, log_hi, floor)[0]
    band = _interval(law, lr, [T], level)
    peak = float(lr.max())
    kn = [(int(round(p)) + 1, float(lr[int(round(p))])) for p in pos]
    return FreeForm(lr, kn, peak, float(np.ravel(band.loss)[-1]), float(np.ravel(band.lower)[-1]),
                    float(np.ravel(band.upper)[-1]))
