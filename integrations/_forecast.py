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
  horizon.  Errors of each sign are kept apart, since the law's errors are not
  symmetric (it may forecast one kind of schedule too low, another too high): at the
  trial's fraction, ``above = sqrt(2 * mean(max(e, 0)^2))`` (the RMS when errors are
  symmetric) is the standard deviation of a forecast that is too high, which is what
  could prune a run that would have won, and ``below`` the same for forecasts that are
  too low, which bounds a running competitor from above; neither goes below
  ``min_error``.

All of it is a pure function of the finished curves, cached by the caller on their ids.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Sequence

import numpy as np

from lrtune.curves import Curve
from lrtune.laws import Law, make_law
from lrtune.schedules import parse_schedule

__all__ = ["ANCHOR_POINTS", "FinalLossModel", "Forecast", "curve_from_points", "horizon_fractions", "is_diverging",
           "law_factory", "schedule_lr"]

#: Reported losses averaged to place a trial's curve relative to the law.
ANCHOR_POINTS = 3
#: Fractions of the horizon at which the forecast error is measured.
_FRACTIONS = np.round(np.linspace(0.05, 1.0, 20), 4)


def horizon_fractions() -> np.ndarray:
    return _FRACTIONS.copy()


@functools.lru_cache(maxsize=256)
def schedule_lr(spec: str) -> np.ndarray:
    """The (read-only, cached) per-step LR array of a schedule spec."""
    lr = parse_schedule(spec).lr()
    lr.setflags(write=False)
    return lr


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


def is_diverging(values: Sequence[float], ratio: float) -> bool:
    """NaN or infinite last value, or a last value above ``ratio`` times the lowest one."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return False
    last = arr[-1]
    if not math.isfinite(last):
        return True
    finite = arr[np.isfinite(arr)]
    low = finite.min()
    return bool(low > 0 and last > ratio * low)


@dataclasses.dataclass(frozen=True)
class Forecast:
    """A trial's forecast final loss with the standard deviations (loss units) of the
    forecast above the truth (``above``) and below it (``below``)."""

    final: float
    above: float
    below: float
    progress: float

    def lower(self, z: float) -> float:
        """The optimistic end: the final loss is above this unless the forecast is too high."""
        return self.final - z * self.above

    def upper(self, z: float) -> float:
        """The pessimistic end: the final loss is below this unless the forecast is too low."""
        return self.final + z * self.below


def _after(curve: Curve, first_step: float) -> Curve:
    keep = curve.steps >= first_step
    if keep.sum() < ANCHOR_POINTS:  # short curves keep their last points
        keep = np.zeros(curve.steps.size, bool)
        keep[-ANCHOR_POINTS:] = True
    return dataclasses.replace(curve, steps=curve.steps[keep], loss=curve.loss[keep])


def _anchored(predicted: np.ndarray, loss: np.ndarray, final_pred: float) -> float:
    k = min(ANCHOR_POINTS, loss.size)
    return float(final_pred + np.mean(loss[-k:] - predicted[-k:]))


class FinalLossModel:
    """A law fitted on finished curves and the measured error of its forecasts.

    Args:
        curves: curves of finished runs (each ``Curve.lr`` is the run's whole schedule,
            so ``curve.horizon`` is its last step).
        law: a function returning a fresh, unfitted law.
        burn_in: fraction of each horizon left out of the fit.
        min_error: the smallest relative standard deviation a forecast gets.
        max_folds: at most this many refits to measure the forecast error.
    """

    def __init__(self, curves: Sequence[Curve], law: Callable[[], Law], *, burn_in: float,
                 min_error: float, max_folds: int) -> None:
        if len(curves) < 2:
            raise ValueError(f"the forecast model needs at least 2 finished curves, got {len(curves)}")
        self.burn_in = burn_in
        self.min_error = min_error
        self._make_law = law
        self.law_ = self._fit(curves)
        self.fractions_ = horizon_fractions()
        self.error_profile_, self.n_folds_ = self._cross_validate(list(curves), max_folds)

    def _fit(self, curves: Sequence[Curve]) -> Law:
        return self._make_law().fit([_after(c, self.burn_in * c.horizon) for c in curves])

    def _cross_validate(self, curves: list[Curve], max_folds: int) -> tuple[np.ndarray, int]:
        order = sorted(range(len(curves)), key=lambda i: curves[i].name)
        folds = [f for f in np.array_split(np.asarray(order), min(max_folds, len(curves))) if f.size]
        errors = []
        for fold in folds:
            rest = [c for i, c in enumerate(curves) if i not in set(fold.tolist())]
            law = self._fit(rest)
            for i in fold:
                errors.append(self._relative_errors(law, curves[i]))
        err = np.asarray(errors)
        seen = np.isfinite(err)
        n = seen.sum(axis=0)
        profiles = []
        for side in (np.maximum(err, 0.0), np.minimum(err, 0.0)):  # forecasts too high, too low
            rms = np.sqrt(2.0 * (np.where(seen, side, 0.0) ** 2).sum(axis=0) / np.maximum(n, 1))
            rms[n == 0] = rms[n > 0].max() if (n > 0).any() else 0.0  # fractions no run was logged at
            profiles.append(np.maximum(rms, self.min_error))
        return np.stack(profiles), len(folds)

    def _relative_errors(self, law: Law, curve: Curve) -> np.ndarray:
        pred = law.predict(curve.lr, curve.steps)
        final = curve.loss[-1]
        final_pred = pred[-1] if curve.steps[-1] == curve.horizon else law.predict(curve.lr, [curve.horizon])[0]
        out = np.full(_FRACTIONS.size, np.nan)
        counts = np.searchsorted(curve.steps, _FRACTIONS * curve.horizon, side="right")
        first = np.searchsorted(curve.steps, self.burn_in * curve.horizon, side="left")
        for j, n in enumerate(counts):
            if n - first >= ANCHOR_POINTS:
                out[j] = (_anchored(pred[:n], curve.loss[:n], final_pred) - final) / final
        return out

    def ready(self, steps: np.ndarray, horizon: int) -> bool:
        """Whether a run logged at ``steps`` can be forecast: its last ``ANCHOR_POINTS``
        points lie where the law was fitted (from ``burn_in`` of the horizon on)."""
        return steps.size >= ANCHOR_POINTS and steps[-ANCHOR_POINTS] >= self.burn_in * horizon

    def forecast(self, lr: np.ndarray, steps: np.ndarray, loss: np.ndarray) -> Forecast | None:
        """Final-loss forecast of a run with schedule ``lr`` observed at ``steps``
        (``None`` while it is not :meth:`ready`)."""
        horizon = lr.size
        if steps[-1] >= horizon:
            return Forecast(float(loss[-1]), 0.0, 0.0, 1.0)
        if not self.ready(steps, horizon):
            return None
        progress = float(steps[-1] / horizon)
        at = np.append(steps[-ANCHOR_POINTS:], horizon)
        pred = self.law_.predict(lr, at)
        final = _anchored(pred[:-1], loss[-ANCHOR_POINTS:], pred[-1])
        above, below = (float(np.interp(progress, self.fractions_, p)) * abs(final) for p in self.error_profile_)
        return Forecast(final, above, below, progress)


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
