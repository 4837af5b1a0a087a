"""Forecast a run's final loss from its partial curve and its own LR schedule.

Shared by the Optuna pruner and the Ray Tune scheduler.  The rule:

* a loss-curve law (:mod:`lrtune.laws`) is fitted on the curves of the finished runs,
  each from ``burn_in`` of its horizon on (the first steps of a run are a transient no
  law describes well, and no decision is taken there);
* a running trial's final loss is the law's loss at its horizon under the trial's own
  schedule, shifted by the trial's level: the mean gap between its last ``ANCHOR_POINTS``
  reported losses and the law at those steps;
* the forecast error is measured on the finished runs themselves: each is left out
  (leave-one-out, or ``max_folds`` folds when there are more runs), the law refitted on
  the rest, and the left-out run's final loss forecast from each fraction of its
  horizon, giving its relative error at each fraction;
* the law's errors depend on the schedule (it may forecast the drop of a short cooldown
  too small and that of a long one too large), so a trial's forecast is corrected by the
  errors of the finished runs whose schedules are like its own: weighted by similarity
  (LR shape over the horizon, and peak LR), the fitted law's mean error on them at the
  trial's fraction is the forecast's bias (a trial that shares a finished run's LR
  prefix is then forecast from that run's final loss plus the law's difference between
  the two schedules), and the spread of the corrected forecast's cross-validated errors
  (each left-out run corrected by the errors of the fold's law on the runs like it) its
  standard deviation, with errors of each sign kept apart: ``above`` (forecasts too high, which
  could prune a run that would have won) and ``below`` (too low, which bounds a running
  competitor from above).  Both are shrunk toward a prior with the weight of
  ``PRIOR_WEIGHT`` runs: half the loss drop the law expects from the trial's annealing
  still to come, or the error of all finished runs at that fraction when larger.  So a
  schedule unlike every finished run (a WSD trial when only cosine runs have finished)
  gets a wide error and is not stopped on the law's word alone; neither side goes below
  ``min_error``;
* the errors above come from runs inside the range of finished peak LRs; a trial whose
  peak lies outside it by ``d`` (in log peak LR) is an extrapolation: the finished runs at
  the lowest and at the highest peak are forecast by the law fitted without them, their
  errors divided by the gap to the next peak give an error per unit of ``d``, added (in
  quadrature) times ``d``.  With one finished peak LR a trial at another is not forecast;
* noisy reports (a minibatch's training loss): the noise of one report is measured on
  the finished curves (robust spread of second differences of the log loss), and a run's
  level is the mean gap over as many of its last reports (from ``burn_in`` on) as it
  takes to bring that noise below ``min_error / 2``; a finished run's final loss
  (:meth:`FinalLossModel.final_level`, in the metric the run reported) is its last report
  when single reports are precise, else the mean gap over as many of its last reports as
  minimise the noise left plus the bias the law's misfit over them adds;
* the error estimate rests on few runs when few similar runs finished: the forecast
  carries their effective number (``dof``), and its quantiles are Student-t quantiles
  with that many degrees of freedom (at least ``MIN_DOF``).

All of it is a pure function of the finished curves, cached by the caller on their ids.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import threading
from typing import Callable, Sequence

import numpy as np
from scipy.special import ndtr, stdtrit

from lrtune.curves import Curve, shared_lr
from lrtune.laws import Law, make_law
from lrtune.schedules import parse_schedule

__all__ = ["ANCHOR_POINTS", "CacheFreePickle", "DIVERGENCE_RATIO", "FinalLossModel", "check_forecast_args",
           "schedule_distance2", "schedule_shape", "Forecast", "curve_from_points", "horizon_fractions",
           "is_diverging", "law_factory", "reaches_horizon", "schedule_lr"]

#: Reported losses averaged to place a trial's curve relative to the law.
ANCHOR_POINTS = 3
#: The prior standard deviation of a forecast, for a schedule unlike every finished
#: run: this fraction of the loss drop the law predicts from the run's annealing still to
#: come (its final loss under its own schedule against holding its current LR to the
#: end), or the error of all finished runs at that progress when larger; it has the
#: weight of PRIOR_WEIGHT finished runs.
PRIOR_CHANGE = 0.5
PRIOR_WEIGHT = 0.05
#: Two schedules are alike when their LR shapes (LR over peak on 200 points of the
#: horizon) differ by less than SHAPE_SCALE in RMS and their peaks by less than a factor
#: exp(LOG_PEAK_SCALE).
SHAPE_SCALE = 0.2
LOG_PEAK_SCALE = 1.0
#: At most this many finished curves are fitted (those with the lowest final loss), so a
#: refit after a trial completes costs the same in a study of 1,000 trials as of 64.
MAX_CURVES = 64
#: The fewest degrees of freedom a forecast's error gets (the Student-t quantile at 0.9 with
#: 0.5 degrees of freedom is about 8 times the normal one).
MIN_DOF = 0.5
#: Peak LRs closer than this (relative) are one peak LR when the extrapolation error is measured.
PEAK_TOLERANCE = 1e-6
#: Reports whose median is a run's level when a divergence is judged (one noisy report is not one).
DIVERGENCE_WINDOW = 5
#: A run diverged when that level rises above this many times its lowest (the default
#: ``divergence_ratio`` of the pruner and the scheduler, and the sampler's).
DIVERGENCE_RATIO = 1.2
#: Fractions of the horizon at which the forecast error is measured.
_FRACTIONS = np.round(np.linspace(0.05, 1.0, 20), 4)


def schedule_shape(lr: np.ndarray, points: int = 200) -> np.ndarray:
    """A schedule's LR over its peak at ``points`` evenly spaced fractions of its horizon."""
    lr = np.asarray(lr, dtype=float)
    at = (np.arange(points) * lr.size) // points
    return lr[at] / lr.max()


def schedule_distance2(shapes: np.ndarray, log_peaks: np.ndarray, shape: np.ndarray,
                       log_peak: float) -> np.ndarray:
    """Squared distance of each schedule (rows of ``shapes``, see :func:`schedule_shape`, and
    ``log_peaks``) to one schedule, in units of SHAPE_SCALE and LOG_PEAK_SCALE: two
    schedules are alike (similarity ``exp(-d2)``) when it is below 1."""
    d2 = np.mean((shapes - shape) ** 2, axis=1) / SHAPE_SCALE ** 2
    return d2 + (log_peaks - log_peak) ** 2 / LOG_PEAK_SCALE ** 2


def horizon_fractions() -> np.ndarray:
    return _FRACTIONS.copy()


@functools.lru_cache(maxsize=256)
def schedule_lr(spec: str) -> np.ndarray:
    """The (read-only, cached) per-step LR array of a schedule spec (a ValueError for a
    horizon too long to hold in memory, e.g. one given in tokens instead of steps)."""
    schedule = parse_schedule(spec)
    try:
        lr = schedule.lr()
    except MemoryError:
        raise ValueError(f"schedule {spec!r}: {schedule.steps} steps do not fit in memory "
                         f"(is the horizon in optimizer steps?)") from None
    return shared_lr(lr)  # read-only, and shared by the curves built on it


class _LawFactory:
    """A picklable function returning a fresh, unfitted law."""

    def __init__(self, law: str | Law | Callable[[], Law]) -> None:
        if isinstance(law, str):
            make_law(law)  # validates the name now
            self._make = ("name", law)
        elif isinstance(law, Law):
            self._make = ("class", (type(law), law.get_config()))
        elif callable(law):
            self._make = ("callable", law)
        else:
            raise ValueError(f"law must be a law name like 'momentum', a Law instance or a callable, got {law!r}")

    def __call__(self) -> Law:
        kind, what = self._make
        if kind == "name":
            return make_law(what)
        if kind == "class":
            cls, config = what
            return cls(**config)
        return what()


def law_factory(law: str | Law | Callable[[], Law]) -> Callable[[], Law]:
    """A function returning a fresh, unfitted law: from a name (``"momentum"``), a law
    instance (its settings are copied) or a callable."""
    return _LawFactory(law)


_CHECKS: dict[str, tuple[Callable[[object], bool], str]] = {
    "n_startup_trials": (lambda v: isinstance(v, numbers.Integral) and v >= 2, "an integer >= 2"),
    "n_warmup_steps": (lambda v: isinstance(v, numbers.Integral) and v >= 0, "an integer >= 0"),
    "interval_steps": (lambda v: isinstance(v, numbers.Integral) and v >= 1, "an integer >= 1"),
    "grace_period": (lambda v: isinstance(v, numbers.Real) and v >= 0, ">= 0"),
    "confidence": (lambda v: isinstance(v, numbers.Real) and 0.5 < v < 1, "in (0.5, 1)"),
    "margin": (lambda v: isinstance(v, numbers.Real) and 0 <= v < 1, "a fraction of the best value in [0, 1)"),
    "min_progress": (lambda v: isinstance(v, numbers.Real) and 0 <= v < 1, "a fraction in [0, 1)"),
    "max_progress": (lambda v: isinstance(v, numbers.Real) and 0 < v <= 1, "a fraction in (0, 1]"),
    "min_error": (lambda v: isinstance(v, numbers.Real) and 0 <= v < 1, "a relative error in [0, 1)"),
    "step_unit": (lambda v: isinstance(v, numbers.Real) and math.isfinite(v) and v > 0,
                  "a number of optimizer steps > 0"),
    "divergence_ratio": (lambda v: isinstance(v, numbers.Real) and v > 1, "> 1"),
    "max_folds": (lambda v: isinstance(v, numbers.Integral) and v >= 2, "an integer >= 2"),
}


def quiet_fit(law: Law, curves: Sequence[Curve]) -> Law:
    """``law.fit(curves, band=False)`` without its :class:`~lrtune.laws.FitWarning` (a pruner,
    scheduler or sampler refits at every completed trial: the warnings would repeat in every
    study).  A law class of the user's own whose ``fit`` takes no ``warn`` still works."""
    try:
        law._quiet = True
    except AttributeError:  # a law with __slots__: it warns
        pass
    return law.fit(curves, band=False)


def check_forecast_args(**kwargs: object) -> None:
    """Raise a ValueError naming the first argument (of the pruner, scheduler or sampler)
    outside its range."""
    for name, value in kwargs.items():
        ok, what = _CHECKS[name]
        if isinstance(value, bool) or not ok(value):
            raise ValueError(f"{name} must be {what}, got {value!r}")


class CacheFreePickle:
    """Pickles without the lock and the caches named in ``_TRANSIENT`` (Ray Tune pickles
    its scheduler and searcher); :meth:`_reset` rebuilds them after unpickling."""

    _TRANSIENT: tuple[str, ...] = ()

    def _reset(self) -> None:
        raise NotImplementedError

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in ("_lock",) + self._TRANSIENT:
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._reset()


def is_diverging(values: Sequence[float], ratio: float) -> bool:
    """Whether a run's reported values (in order) show a diverged run: a NaN or infinite
    last value, or a level above ``ratio`` times its lowest level so far.

    The level at a report is the median of the last ``DIVERGENCE_WINDOW`` finite reports
    up to it (of all of them while there are fewer), so a rising loss is caught once most
    of the last ``DIVERGENCE_WINDOW`` reports are high, and one noisy report (a single
    minibatch's training loss) is not a divergence.
    """
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return False
    if not math.isfinite(arr[-1]):
        return True
    now, low = divergence_levels(arr)
    return bool(low > 0 and now > ratio * low)


def divergence_levels(values: Sequence[float]) -> tuple[float, float]:
    """The level :func:`is_diverging` compares (median of the last ``DIVERGENCE_WINDOW``
    finite reports) at the last report, and the lowest level so far (at least one finite
    value)."""
    arr = np.asarray(values, dtype=float)
    finite = arr[np.isfinite(arr)]
    k = min(DIVERGENCE_WINDOW, finite.size)
    head = [float(np.median(finite[: j + 1])) for j in range(k - 1)]  # fewer reports than the window
    level = np.concatenate([head, np.median(np.lib.stride_tricks.sliding_window_view(finite, k), axis=1)])
    return float(level[-1]), float(level.min())


def divergence_stop(values: Sequence[float], ratio: float, step: float) -> dict | None:
    """The record of a stop at ``step`` for a loss that is diverging by :func:`is_diverging`
    (its finite ``values`` in order), or ``None`` when it is not: the levels the rule
    compared and the ratio (the pruner's ``"lrtune_pruned"``, the scheduler's ``stop_reasons``)."""
    if not is_diverging(values, ratio):
        return None
    level, lowest = divergence_levels(values)
    return {"reason": "diverging", "step": step, "level": level, "lowest_level": lowest, "ratio": ratio}


def forecast_stop(forecast: "Forecast | None", z: float, best: float, best_from: str, *, confidence: float,
                  margin: float, step: float) -> dict | None:
    """The rule of the pruner and the scheduler: stop when the optimistic end of the
    ``forecast`` (quantile ``z``) is above ``best * (1 - margin)``.  The record of the stop
    at ``step`` (``best_from``: which trial ``best`` is), or ``None`` to go on."""
    if forecast is None:
        return None
    optimistic = forecast.lower(z)
    if not optimistic > best * (1.0 - margin):
        return None
    return {"reason": "forecast", "step": step, "forecast": forecast.final, "optimistic": optimistic, "best": best,
            "best_from": best_from, "confidence": confidence, "margin": margin}


def plain_step(step: float) -> str:
    """A reported step as written: ``15000`` for 15000.0, ``2.5`` for 2.5."""
    return str(int(step)) if float(step).is_integer() else repr(float(step))


def explain_stop(why: dict) -> str:
    """One line of what the record of a pruned or stopped trial says (the pruner's
    ``"lrtune_pruned"`` user attribute, the scheduler's ``stop_reasons``)."""
    if why["reason"] == "not finite":
        return f"a non-finite loss was reported at step {plain_step(why['at_step'])}"
    if why["reason"] == "diverging":
        return (f"the loss is diverging (median of the last reports {why['level']:.6g}, above "
                f"{why['ratio']:g} x its lowest {why['lowest_level']:.6g})")
    return (f"forecast final loss {why['forecast']:.6g}, its optimistic end {why['optimistic']:.6g} "
            f"(confidence {why['confidence']:g}) is above the best {why['best']:.6g} ({why['best_from']})"
            + (f" less {100 * why['margin']:g} %" if why["margin"] else ""))


def reaches_horizon(steps: Sequence[float], horizon: int, intervals: float = 2.0) -> bool:
    """Whether a finished run reported at optimizer ``steps`` (increasing) ran to its
    schedule's ``horizon``: its last report within ``intervals`` report intervals (the
    largest gap between consecutive reports) of it, by default two: one for a run that
    reports before its last update (steps counted from 0), one more for a missing report.  A
    run ended earlier (its objective returned, a stopper or a time budget) did not reach its
    final loss."""
    steps = np.asarray(steps, dtype=float)
    gap = float(np.diff(steps).max()) if steps.size > 1 else 0.0
    return float(steps[-1]) + intervals * gap >= horizon


def step_unit_hint(reported: Sequence[float], step_unit: float, horizon: int) -> str:
    """A hint for a finished run that ended before its horizon because its reports count
    evaluations, not optimizer steps: ``reported`` (the raw steps, increasing) run one by one
    from 0 or 1 with ``step_unit`` 1; ``""`` otherwise."""
    r = np.asarray(reported, dtype=float)
    if step_unit != 1 or r.size < 3 or r[0] not in (0.0, 1.0) or not np.all(np.diff(r) == 1.0):
        return ""
    first = " counted from 1 (epoch + 1)" if r[0] == 0 else ""
    return (f"; its steps run {r[0]:g}..{r[-1]:g}, one per report: if they count evaluations, report them{first} "
            f"and pass step_unit = the optimizer steps between two reports (about {horizon / (r[-1] + 1 - r[0]):.0f} "
            f"here)")


@dataclasses.dataclass(frozen=True)
class Forecast:
    """A trial's forecast final loss with the standard deviations (loss units) of the
    forecast above the truth (``above``) and below it (``below``)."""

    final: float
    above: float
    below: float
    progress: float
    #: degrees of freedom of the error estimate (the effective number of finished runs it
    #: rests on): ``z`` (a normal quantile) becomes the Student-t quantile of the same
    #: probability, wider when few similar runs finished
    dof: float = math.inf

    def _quantile(self, z: float) -> float:
        if not math.isfinite(self.dof):
            return z
        return float(stdtrit(self.dof, ndtr(z)))  # the t quantile at the normal probability of z

    def lower(self, z: float) -> float:
        """The optimistic end: the final loss is above this unless the forecast is too high."""
        return self.final - self._quantile(z) * self.above

    def upper(self, z: float) -> float:
        """The pessimistic end: the final loss is below this unless the forecast is too low."""
        return self.final + self._quantile(z) * self.below


def _after(curve: Curve, first_step: float) -> Curve:
    keep = curve.steps >= first_step
    if keep.sum() < ANCHOR_POINTS:  # short curves keep their last points
        keep = np.zeros(curve.steps.size, bool)
        keep[-ANCHOR_POINTS:] = True
    return dataclasses.replace(curve, steps=curve.steps[keep], loss=curve.loss[keep])


def _anchored(predicted: np.ndarray, loss: np.ndarray, final_pred: float, k: int = ANCHOR_POINTS) -> float:
    k = min(k, loss.size)
    return float(final_pred + np.mean(loss[-k:] - predicted[-k:]))


def report_noise(curves: Sequence[Curve], burn_in: float, law: Law | None = None) -> float:
    """Relative noise of single reports (a minibatch's training loss is noisy, a
    validation loss on fixed batches is not): the median over ``curves`` of the robust
    standard deviation of second differences of the log loss after ``burn_in`` of the
    horizon, over ``sqrt(6)`` (white noise's second differences have variance 6 sd^2).
    With a fitted ``law`` the differences are those of the log residuals from it, so the
    curvature of a sparsely logged curve is not taken for noise."""
    out = []
    for c in curves:
        keep = c.steps >= burn_in * c.horizon
        y = np.log(c.loss[keep])
        if law is not None and keep.any():
            y = y - np.log(np.maximum(law.predict(c.lr, c.steps[keep]), 1e-300))
        if y.size >= 8:
            d2 = y[2:] - 2.0 * y[1:-1] + y[:-2]
            out.append(1.4826 * float(np.median(np.abs(d2 - np.median(d2)))) / math.sqrt(6.0))
    return float(np.median(out)) if out else 0.0


def _rms_by_fraction(values: np.ndarray, factor: float, unseen: float) -> np.ndarray:
    """Root mean square of ``factor`` x the finite values of each column (runs x fractions);
    a column without any gets the largest of the others (``unseen`` if none has any)."""
    seen = np.isfinite(values)
    n = seen.sum(axis=0)
    rms = np.sqrt(factor * (np.where(seen, values, 0.0) ** 2).sum(axis=0) / np.maximum(n, 1))
    rms[n == 0] = rms[n > 0].max() if (n > 0).any() else unseen
    return rms


class FinalLossModel:
    """A law fitted on finished curves and the measured error of its forecasts.

    Args:
        curves: curves of finished runs (each ``Curve.lr`` is the run's whole schedule,
            so ``curve.horizon`` is its last step); of more than ``MAX_CURVES``, those with
            the lowest final loss.
        law: a function returning a fresh, unfitted law.
        burn_in: fraction of each horizon left out of the fit.
        min_error: the smallest relative standard deviation a forecast gets.
        max_folds: at most this many refits to measure the forecast error.
    """

    def __init__(self, curves: Sequence[Curve], law: Callable[[], Law], *, burn_in: float,
                 min_error: float, max_folds: int, local: bool = True, prior_change: float = PRIOR_CHANGE) -> None:
        if len(curves) < 2:
            raise ValueError(f"the forecast model needs at least 2 finished curves, got {len(curves)}")
        if len(curves) > MAX_CURVES:  # the best runs are the ones a decision turns on
            curves = sorted(curves, key=lambda c: (float(c.loss[-1]), c.name))[:MAX_CURVES]
        self.burn_in = burn_in
        self.min_error = min_error
        self.local = local
        self.prior_change = prior_change
        self._make_law = law
        self.law_ = self._fit(curves)
        self.noise_ = report_noise(curves, burn_in, self.law_)
        # noisy reports: average enough of them that their noise is below min_error / 2
        needed = math.ceil((2.0 * self.noise_ / min_error) ** 2)
        self.anchor_ = max(ANCHOR_POINTS, needed)  # a running trial's level
        # a finished run's final: the mean gap of its last reports, as many as minimise the
        # noise left plus the bias the law's misfit over them adds (:meth:`_final_count`)
        self.final_anchor_ = self._final_count(curves, needed)
        self.min_error = max(min_error, self.noise_ * math.sqrt(2.0 / self.anchor_))
        self.fractions_ = horizon_fractions()
        self._shapes = np.stack([schedule_shape(c.lr) for c in curves])
        self._log_peaks = np.array([math.log(float(np.max(c.lr))) for c in curves])
        self.error_profile_, self.n_folds_, self._residuals_ = self._cross_validate(list(curves), max_folds)
        # the fitted law's own errors on the finished runs: a trial's forecast is corrected
        # by those of the runs like it (a trial that shares a finished run's LR prefix then
        # gets that run's final plus the law's difference between the two schedules)
        self.insample_ = np.stack([self._relative_errors(self.law_, c) for c in curves])
        self.extrapolation_ = self._extrapolation_error(list(curves)) if local else None
        finals = [self.final_level(c) for c in curves]
        best = min(range(len(finals)), key=finals.__getitem__)
        self.best_final_ = finals[best]
        self.best_name_ = curves[best].name  # the finished run the best final is

    def final_level(self, curve: Curve) -> float:
        """A finished run's final loss as the forecasts see it: its last report when
        reports are precise (validation losses), else the law at its last step shifted by
        the mean gap of its last ``final_anchor_`` reports (the reports' noise averaged
        out)."""
        return self._level(self.law_, curve)

    def _n_after_burn_in(self, steps: np.ndarray, horizon: int) -> int:
        """How many reports at ``steps`` lie where the law was fitted (from ``burn_in`` of the horizon on)."""
        return int(np.sum(steps >= self.burn_in * horizon))

    def _anchor_count(self, steps: np.ndarray, horizon: int) -> int:
        """How many of the last reports at ``steps`` place a run relative to the law: the
        last ``anchor_`` after ``burn_in`` of the horizon, at least ``ANCHOR_POINTS``."""
        return max(ANCHOR_POINTS, min(self.anchor_, self._n_after_burn_in(steps, horizon)))

    def _final_count(self, curves: Sequence[Curve], needed: int) -> int:
        """How many last reports make a finished run's final level.  The mean gap of the
        last ``k`` reports to the law averages the reports' noise (variance ``noise^2 / k``)
        but adds the law's misfit over them (a steep cooldown the law gets a little wrong
        biases the gap).  The last report alone is unbiased, so over the finished curves the
        mean square of (level with ``k``) minus (last report) is ``bias_k^2`` plus
        ``noise^2 (1 - 1/k)``; the ``k`` (from 1 to ``needed``) with the least
        ``bias_k^2 + noise^2 / k`` is taken."""
        if needed <= 1:
            return 1
        ks = np.unique(np.round(np.geomspace(1, needed, min(needed, 16))).astype(int))
        gaps = []  # per curve: relative gap of each last report to the law, last report first
        for c in curves:
            n = max(1, min(int(ks[-1]), self._n_after_burn_in(c.steps, c.horizon)))
            pred = self.law_.predict(c.lr, c.steps[-n:])
            gaps.append(((c.loss[-n:] - pred) / c.loss[-1])[::-1])
        var = self.noise_ ** 2
        best_k, best_mse = 1, var
        for k in ks[1:]:
            d2 = [float(np.mean(g[:k]) - g[0]) ** 2 for g in gaps]  # (level_k - last) / last
            mse = max(0.0, float(np.mean(d2)) - var * (1.0 - 1.0 / k)) + var / k
            if mse < best_mse:
                best_k, best_mse = int(k), mse
        return best_k

    def _level(self, law: Law, curve: Curve, pred: np.ndarray | None = None) -> float:
        """A finished curve's final: ``law`` at its last step shifted by the mean gap of its
        last ``final_anchor_`` reports after ``burn_in`` (at least one: with one, the last
        report itself); ``pred``: the law at ``curve.steps``, if already computed."""
        k = max(1, min(self.final_anchor_, self._n_after_burn_in(curve.steps, curve.horizon)))
        if pred is None:
            pred = law.predict(curve.lr, curve.steps[-k:])
        return _anchored(pred, curve.loss, float(pred[-1]), k)

    def _fit(self, curves: Sequence[Curve]) -> Law:
        # the forecast's error is measured below, the law's own band is not needed
        return quiet_fit(self._make_law(), [_after(c, self.burn_in * c.horizon) for c in curves])

    def _cross_validate(self, curves: list[Curve], max_folds: int) -> tuple[np.ndarray, int, np.ndarray]:
        """The pooled error profiles (forecasts too high, too low), the number of folds, and
        per run the cross-validated error left after the similar runs' bias correction."""
        order = sorted(range(len(curves)), key=lambda i: curves[i].name)
        folds = [f for f in np.array_split(np.asarray(order), min(max_folds, len(curves))) if f.size]
        err = np.full((len(curves), _FRACTIONS.size), np.nan)  # by run, in the order of ``curves``
        residuals = np.full_like(err, np.nan)
        for fold in folds:
            held = set(fold.tolist())
            rest = [i for i in range(len(curves)) if i not in held]
            law = self._fit([curves[i] for i in rest])
            if self.local:  # the fold's law's own errors on the runs it was fitted on
                own = np.stack([self._relative_errors(law, curves[i]) for i in rest])
            for i in fold:
                err[i] = self._relative_errors(law, curves[i])
                if self.local:  # the error left after the correction a forecast gets (_local_error)
                    w = self._similarity(self._shapes[i], self._log_peaks[i])[rest]
                    residuals[i] = err[i] - self._bias(w, own)
        profiles = [np.maximum(_rms_by_fraction(side, 2.0, 0.0), self.min_error)
                    for side in (np.maximum(err, 0.0), np.minimum(err, 0.0))]  # forecasts too high, too low
        return np.stack(profiles), len(folds), residuals

    def _relative_errors(self, law: Law, curve: Curve) -> np.ndarray:
        pred = law.predict(curve.lr, curve.steps)
        final_pred = pred[-1] if curve.steps[-1] == curve.horizon else law.predict(curve.lr, [curve.horizon])[0]
        out = np.full(_FRACTIONS.size, np.nan)
        counts = np.searchsorted(curve.steps, _FRACTIONS * curve.horizon, side="right")
        first = np.searchsorted(curve.steps, self.burn_in * curve.horizon, side="left")
        final = self._level(law, curve, pred)  # its last reports' noise averaged out, as in final_level
        for j, n in enumerate(counts):
            if n - first >= ANCHOR_POINTS:
                k = self._anchor_count(curve.steps[:n], curve.horizon)
                out[j] = (_anchored(pred[:n], curve.loss[:n], final_pred, k) - final) / final
        return out

    def ready(self, steps: np.ndarray, horizon: int) -> bool:
        """Whether a run logged at ``steps`` can be forecast: its last ``ANCHOR_POINTS``
        points lie where the law was fitted (from ``burn_in`` of the horizon on)."""
        return steps.size >= ANCHOR_POINTS and steps[-ANCHOR_POINTS] >= self.burn_in * horizon

    def forecast(self, lr: np.ndarray, steps: np.ndarray, loss: np.ndarray) -> Forecast | None:
        """Final-loss forecast of a run with schedule ``lr`` observed at ``steps``
        (``None`` while it is not :meth:`ready`, and once it has reached its horizon: a
        run at its last step completes, whatever its last report)."""
        horizon = lr.size
        if steps[-1] >= horizon or not self.ready(steps, horizon):  # at its horizon nothing is left to save
            return None
        progress = float(steps[-1] / horizon)
        k = self._anchor_count(steps, horizon)
        at = np.append(steps[-k:], horizon)
        pred = self.law_.predict(lr, at)
        final = _anchored(pred[:-1], loss[-k:], pred[-1], k)
        if not self.local:
            above, below = (float(np.interp(progress, self.fractions_, p)) * abs(final) for p in self.error_profile_)
            return Forecast(final, above, below, progress)
        held = np.concatenate([lr[:int(steps[-1])], np.full(horizon - int(steps[-1]), lr[int(steps[-1]) - 1])])
        change = abs(float(self.law_.predict(held, [horizon])[0]) - pred[-1]) / abs(final)  # the annealing to come
        pooled = [float(np.interp(progress, self.fractions_, p)) for p in self.error_profile_]
        bias, above, below, dof = self._local_error(lr, progress, [max(p, self.prior_change * change) for p in pooled])
        final = final / (1.0 + bias)
        beyond = self._beyond(lr)
        if beyond > 0.0:  # a peak LR outside those of the finished runs: the law extrapolates
            if self.extrapolation_ is None:
                return None  # one peak LR finished: nothing says how far the law can be trusted
            extra = float(np.interp(progress, self.fractions_, self.extrapolation_)) * beyond
            above, below = math.hypot(above, extra), math.hypot(below, extra)
        return Forecast(final, above * abs(final), below * abs(final), progress, dof)

    # -- peak LRs beyond the finished runs --------------------------------------------
    def _beyond(self, lr: np.ndarray) -> float:
        """How far (in log peak LR) ``lr``'s peak lies outside the finished runs' peaks."""
        log_peak = math.log(float(np.max(lr)))
        lo, hi = float(self._log_peaks.min()), float(self._log_peaks.max())
        return max(0.0, log_peak - hi - PEAK_TOLERANCE, lo - log_peak - PEAK_TOLERANCE)

    def _extrapolation_error(self, curves: list[Curve]) -> np.ndarray | None:
        """Relative forecast error per unit of log peak LR beyond the fitted peaks, by
        fraction of the horizon: the runs at the lowest and at the highest finished peak LR
        are forecast by the law fitted on the other runs only (an extrapolation by the gap to
        the next peak), and their errors are divided by that gap.  ``None`` with fewer than
        two peak LRs.  A trial beyond the finished peaks by ``d`` gets this times ``d`` as an
        extra standard deviation."""
        peaks = np.unique(np.round(self._log_peaks / PEAK_TOLERANCE) * PEAK_TOLERANCE)
        if peaks.size < 2:
            return None
        rates = []
        for held, gap in ((peaks[0], peaks[1] - peaks[0]), (peaks[-1], peaks[-1] - peaks[-2])):
            out = np.abs(self._log_peaks - held) <= PEAK_TOLERANCE
            rest = [c for c, o in zip(curves, out) if not o]
            if len(rest) < 2:
                continue
            try:
                law = self._fit(rest)
            except ValueError:  # the other runs alone cannot be fitted: no measure from this side
                continue
            for c, o in zip(curves, out):
                if o:
                    rates.append(np.abs(self._relative_errors(law, c)) / gap)
        return _rms_by_fraction(np.asarray(rates), 1.0, np.inf) if rates else None

    # -- errors of similar schedules -----------------------------------------------------
    def _similarity(self, shape: np.ndarray, log_peak: float) -> np.ndarray:
        return np.exp(-schedule_distance2(self._shapes, self._log_peaks, shape, log_peak))

    def _at(self, values: np.ndarray, progress: float) -> np.ndarray:
        """Per-run values of a (runs x fractions) array at ``progress`` (NaN where unseen)."""
        j = int(np.clip(np.searchsorted(self.fractions_, progress, side="right") - 1, 0, self.fractions_.size - 1))
        return values[:, j]

    def _bias(self, w: np.ndarray, errors: np.ndarray) -> np.ndarray:
        seen = np.isfinite(errors)
        wv = w[:, None] * seen
        return (wv * np.where(seen, errors, 0.0)).sum(axis=0) / (wv.sum(axis=0) + PRIOR_WEIGHT)

    def _local_error(self, lr: np.ndarray, progress: float, prior: list[float]) -> tuple[float, float, float, float]:
        """The forecast's relative bias and the standard deviations of the corrected
        forecast above and below the truth, from the finished runs whose schedules are
        like this one (weighted by similarity), shrunk toward ``prior`` (above, below)
        with the weight of ``PRIOR_WEIGHT`` runs: a schedule unlike every finished run
        gets the prior."""
        w = self._similarity(schedule_shape(lr), math.log(float(np.max(lr))))
        e, r = self._at(self.insample_, progress), self._at(self._residuals_, progress)
        seen = np.isfinite(e) & np.isfinite(r)
        w = np.where(seen, w, 0.0)
        e, r = np.where(seen, e, 0.0), np.where(seen, r, 0.0)
        total = w.sum() + PRIOR_WEIGHT
        bias = float((w * e).sum() / total)
        spread = []
        for side, p in zip((np.maximum(r, 0.0), np.minimum(r, 0.0)), prior):
            var = (2.0 * (w * side ** 2).sum() + PRIOR_WEIGHT * p ** 2) / total
            spread.append(max(math.sqrt(var), self.min_error))
        dof = max(total ** 2 / (float((w ** 2).sum()) + PRIOR_WEIGHT ** 2), MIN_DOF)  # effective runs
        return bias, spread[0], spread[1], dof


def curve_from_points(steps: Sequence[float], values: Sequence[float], lr: np.ndarray, name: str,
                      step_unit: float) -> Curve | None:
    """The finite, positive points at optimizer steps ``1..len(lr)`` as a :class:`Curve`
    (``None`` when none is left).  Reported steps are multiplied by ``step_unit``."""
    s = np.rint(np.asarray(steps, dtype=float) * step_unit).astype(np.int64)
    v = np.asarray(values, dtype=float)
    keep = (s >= 1) & (s <= lr.size) & np.isfinite(v) & (v > 0)
    s, v = s[keep], v[keep]
    if s.size == 0:
        return None
    order = np.argsort(s, kind="stable")
    s, v = s[order], v[order]
    last = np.append(s[1:] != s[:-1], True)  # one value per step: the last reported
    return Curve(s[last], v[last], lr, name=name)
