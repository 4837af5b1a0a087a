"""The protocol every law follows (scikit-learn style).

* ``__init__`` takes the law's settings and stores them unchanged;
* ``fit(curves)`` fits the parameters on observed :class:`~lrtune.curves.Curve` objects
  and returns ``self``; what was learned ends with ``_`` (``params_``, ``r2_``,
  ``mean_rel_error_``, ``residual_scale_``, ``fitted_on_``, and for the band
  ``extrapolation_scale_``, ``fit_horizon_``, ``fit_peak_lrs_``, ``band_growth_``);
* ``predict(lr, steps)`` gives the loss at ``steps`` (ints >= 1, a loss at step ``s``
  depends on ``lr[:s]``) for the per-step LR array ``lr``; it never refits.  ``lr`` may
  also be 2-d, one candidate schedule per row: the result is then (n_candidates, P);
* ``predict_interval(lr, steps, level=0.9)`` adds a lower and upper band;
* ``to_dict()`` / ``from_dict()`` (and ``to_json`` / ``from_json``) serialise to plain data.

Bands.  A law's error on a schedule it has not seen is mostly systematic, not noise,
so the band is built from two scales of log-loss residuals:

* ``residual_scale_``: the RMS residual of the fit on its own curves (noise, misfit);
* ``extrapolation_scale_``: leave one curve out: refit on the other curves, predict the
  left-out one; the RMS of those residuals (per curve, then over curves).  Beyond
  ``BAND_FOLDS`` (5) curves, every fifth curve is left out together (5 refits).

The band is ``loss * exp(+-z * s)`` with ``z`` the normal quantile of ``level`` and
``s = sqrt(residual_scale^2 + extrapolation_scale^2)``, times
``1 + g_h * ln(step / H)`` beyond the last fitted step ``H`` and times
``1 + g_p * |ln(peak / nearest fitted peak)|`` at a peak LR the fit never saw.  With a
single fitted curve there is nothing to leave out and ``extrapolation_scale`` is taken as
``2 * residual_scale``.  The growth constants ``g_h`` (``HORIZON_GROWTH``) and ``g_p``
(``PEAK_LR_GROWTH``) were chosen on the Schaipp 124M runs (``benchmarks/bands.py``) and
are checked on the multi-power-law split; a fit records them (``band_growth_``), so a
fit loaded from JSON gives the same band.  The band does not grow with the distance from
the fitted model sizes: predicting an unseen size with the model-size law, it is too
narrow (63.5 % of a 100M model's points inside the 90 % band from a fit on 25M and 400M,
``benchmarks/results/bands.md``).
"""

from __future__ import annotations

import abc
import dataclasses
import json
import math
import numbers
import warnings
from typing import Any, ClassVar, Sequence

import numpy as np
from scipy import stats

from lrtune.curves import Curve, check_lr, check_steps, show_value

__all__ = ["FitWarning", "Law", "Prediction", "NotFittedError", "check_lr_batch", "far_peaks_message"]


def _meta_value(value: Any) -> str:
    """A run setting as text, numbers compared as numbers (25000000 and 25000000.0 alike)."""
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)


class FitWarning(UserWarning):
    """A fit that will predict poorly beyond what its curves show (see :meth:`Law.fit`)."""


def far_peaks_message(law: Any, peaks: np.ndarray) -> str | None:
    """Why the peak LRs ``peaks`` lie where ``law`` cannot be trusted (``None`` if they do
    not): any other than the fitted ones for the multi-power law (no peak-LR term), beyond a
    factor 2 of them for the others (``benchmarks/results/cross_lr.md``)."""
    fitted = getattr(law, "fit_peak_lrs_", None)
    if not fitted:
        return None
    peaks = np.asarray(peaks, dtype=float)
    factor = 1.05 if getattr(law, "name", "") == "multipower" else 2.0
    # a relative 1e-6 at the edges: LRs logged in float32 (3.0000001e-4) put half a peak just outside
    lo, hi = min(fitted) / factor * (1 - 1e-6), max(fitted) * factor * (1 + 1e-6)
    far = peaks[(peaks < lo) | (peaks > hi)]
    if not far.size:
        return None
    why = ("the multi-power law has no peak-LR term" if factor < 2 else
           f"the {law.name} law is measured up to a factor 2 beyond the fitted peak LRs")
    which = (f"{far.size} of the {peaks.size} peak LRs tried ({far.min():.3g} to {far.max():.3g}) lie"
             if peaks.size > 1 else f"the peak LR {far[0]:.3g} lies")
    hint = ("; an LR array of multipliers (peak 1) needs the real peak LR (lr_from_torch(..., base_lr=PEAK), "
            "or peak= in the spec)" if far.max() >= 0.5 else "")
    return (f"{which} outside {lo:.3g}..{hi:.3g} (fitted at {', '.join(f'{p:.3g}' for p in fitted)}), and {why}: "
            f"the predicted losses there are extrapolation{hint}")


#: run settings that make curves of different models or data when they differ
_RUN_KEYS = ("model_size", "model", "dataset", "n_layer", "n_embd")

#: band growth per unit of ln(step / fitted horizon), per law (chosen in benchmarks/bands.py;
#: a law not listed gets the largest)
HORIZON_GROWTH = {"momentum": 0.5, "multipower": 1.25}
#: band growth per unit of |ln(peak LR / nearest fitted peak LR)|, per law (idem; the
#: multi-power law has no peak-LR term and reaches 90 % nowhere on the grid: its top)
PEAK_LR_GROWTH = {"momentum": 1.0, "multipower": 3.0}
SINGLE_CURVE_FACTOR = 2.0
#: the band's leave-one-curve-out makes at most this many refits
BAND_FOLDS = 5


class NotFittedError(ValueError):
    """The law has not been fitted yet."""


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Predicted loss at ``steps`` with a ``level`` band ``[lower, upper]``."""

    steps: np.ndarray
    loss: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float

    def to_dict(self) -> dict[str, list]:
        """Plain lists (JSON-ready; nested for a batch of schedules): a value the law cannot
        give (``inf`` at a step where no LR has been applied yet, ``S1 = 0``; ``nan`` where
        its value is not a loss) is ``None``."""
        def plain(a: np.ndarray) -> list:  # nested lists for a batch of schedules
            a = np.asarray(a, dtype=np.float64)
            return np.where(np.isfinite(a), a, None).tolist()

        return {
            "steps": self.steps.tolist(),
            "loss": plain(self.loss),
            "lower": plain(self.lower),
            "upper": plain(self.upper),
        }


def _fit_stats(pred: np.ndarray, loss: np.ndarray) -> tuple[float, float]:
    """R^2 and mean relative error of a prediction."""
    ss_res = float(np.sum((loss - pred) ** 2))
    ss_tot = float(np.sum((loss - loss.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    return r2, float(np.mean(np.abs(pred - loss) / loss))


def as_lr_array(lr: Any) -> Any:
    """The LR array of a schedule object or a spec string, one row each for a list of them;
    anything else unchanged (an array is checked by :func:`check_lr_batch`)."""
    from lrtune.schedules import Schedule, parse_schedule  # here: the schedules do not need the laws

    if isinstance(lr, str):
        return parse_schedule(lr).lr()
    if isinstance(lr, Schedule):
        return lr.lr()
    if isinstance(lr, (list, tuple)) and lr and all(isinstance(x, (str, Schedule)) for x in lr):
        rows = [as_lr_array(x) for x in lr]
        if len({r.size for r in rows}) > 1:
            raise ValueError(f"the schedules have different numbers of steps ({', '.join(str(r.size) for r in rows)}): "
                             f"one prediction per row needs one horizon; predict them one at a time")
        return np.stack(rows)
    return lr


def check_lr_batch(lr: Any, *, name: str = "lr") -> np.ndarray:
    """A validated float64 LR array: one schedule (1-d) or one per row (2-d, n x T);
    non-empty, finite and >= 0."""
    try:
        arr = np.asarray(lr, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of numbers (1-d, or 2-d with one schedule per row)") from None
    if arr.ndim == 1:
        return check_lr(arr, name=name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1-d (one schedule) or 2-d (n_candidates, steps), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}): give the LR of every step from 1 to the last")
    lo, hi = arr.min(), arr.max()  # two reductions, no temporary arrays: NaN fails lo >= 0
    if lo >= 0 and hi < np.inf:
        return arr
    for bad, what in ((~np.isfinite(arr), "finite"), (arr < 0, ">= 0")):
        if bad.any():
            i, j = np.unravel_index(int(np.argmax(bad)), arr.shape)
            raise ValueError(f"{name} must be {what}: {name}[{i}, {j}] (candidate {i}, update {j + 1}) is {arr[i, j]}")
    return arr


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


#: fitted attributes stored by ``to_dict`` (without the trailing underscore)
_STATE = ("r2_", "mean_rel_error_", "residual_scale_", "n_points_", "fitted_on_", "extrapolation_scale_",
          "fit_horizon_", "fit_peak_lrs_", "band_growth_", "final_rel_errors_")


_NON_NEGATIVE = frozenset({"A", "B", "C", "alpha", "beta", "gamma"})


def _check_state(name: str, law: "Law") -> None:
    """The band's inputs of a loaded fit: a hand-edited one fails here, naming the key."""
    def real(v: Any) -> bool:
        return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)

    g = law.band_growth_
    if g is not None and not (isinstance(g, dict) and all(real(g.get(k)) and g[k] >= 0 for k in ("horizon", "peak_lr"))):
        raise ValueError(f"fit of law {name!r}: band_growth must be an object with numbers >= 0 for 'horizon' and "
                         f"'peak_lr', got {g!r}")
    h = law.fit_horizon_
    if h is not None and not (real(h) and h > 0):
        raise ValueError(f"fit of law {name!r}: fit_horizon must be a number of steps > 0, got {h!r}")
    p = law.fit_peak_lrs_
    if p is not None and not (isinstance(p, list) and all(real(v) and v > 0 for v in p)):
        raise ValueError(f"fit of law {name!r}: fit_peak_lrs must be a list of LRs > 0, got {p!r}")
    f = law.final_rel_errors_
    # null: a point where the fit had no finite value (to_json writes a non-finite number so)
    if f is not None and not (isinstance(f, dict) and all(isinstance(k, str) and (v is None or real(v))
                                                           for k, v in f.items())):
        raise ValueError(f"fit of law {name!r}: final_rel_errors must be an object of numbers, got {f!r}")
    for key in ("residual_scale_", "extrapolation_scale_"):
        v = getattr(law, key, None)
        if v is not None and not (real(v) and v >= 0):
            raise ValueError(f"fit of law {name!r}: {key.rstrip('_')} must be a number >= 0, got {v!r}")


def band_growth_defaults(law: str | None = None) -> dict[str, float]:
    """The band's growth constants a new fit of ``law`` records (``band_growth_``)."""
    return {"horizon": HORIZON_GROWTH.get(law, max(HORIZON_GROWTH.values())),
            "peak_lr": PEAK_LR_GROWTH.get(law, max(PEAK_LR_GROWTH.values())),
            "single_curve": SINGLE_CURVE_FACTOR}


class Law(abc.ABC):
    """Base class of the loss-curve laws."""

    name: ClassVar[str]
    param_names: ClassVar[tuple[str, ...]]
    #: ``_predict_params`` takes a 2-d ``lr`` (one schedule per row); if False the base
    #: class predicts row by row.
    supports_batch: ClassVar[bool] = True

    # -- to implement -----------------------------------------------------------------
    @abc.abstractmethod
    def _fit_params(self, curves: Sequence[Curve]) -> dict[str, float]:
        """Fit and return the parameter dict."""

    @abc.abstractmethod
    def _predict_params(self, params: dict[str, float], lr: np.ndarray, steps: np.ndarray,
                        model_size: float | None) -> np.ndarray:
        """Loss at ``steps`` (validated) for ``lr`` (validated, 1-d or 2-d) under ``params``."""

    def get_config(self) -> dict[str, Any]:
        """The settings given to ``__init__`` (JSON-serialisable)."""
        return {}

    def _refit_params(self, curves: Sequence[Curve], start: dict[str, float]) -> dict[str, float]:
        """Parameters fitted on a subset of the curves (the band's leave-one-curve-out);
        ``start`` is the fit on all curves, a law may start from it to save time."""
        return self._fit_params(curves)

    def _fit_mask(self, curve: Curve) -> np.ndarray:
        """The points of ``curve`` the law is fitted on (and judged on): all by default."""
        return np.ones(curve.steps.size, bool)

    # -- protocol ---------------------------------------------------------------------
    def fit(self, curves: Sequence[Curve] | Curve, *, band: bool = True, warn: bool = True) -> "Law":
        """Fit on observed curves and return ``self``.

        With ``band`` (default) the law is refitted leaving each curve out (at most
        ``BAND_FOLDS`` refits) to measure ``extrapolation_scale_`` for
        :meth:`predict_interval`; ``band=False`` skips that.  With ``warn`` (default) a
        :class:`FitWarning` says when the curves cannot support the predictions users
        usually ask for: no curve's LR decays (what a cooldown does is then unknown), the
        curves come from different models or data (``meta`` keys ``model_size``,
        ``model``, ``dataset``, ``n_layer``, ``n_embd``) for a law without the model-size
        term, the multi-power law (no peak-LR term) on curves at several peak LRs, or an
        R^2 below 0.9 (a diverged run among the curves?).
        """
        if isinstance(curves, dict):
            raise ValueError("fit takes Curve objects (one, or a list of them), got a dict: pass list(d.values())")
        curves = [curves] if isinstance(curves, Curve) else list(curves)
        if not curves:
            raise ValueError("fit needs at least one curve, got none")
        for c in curves:
            if not isinstance(c, Curve):
                raise ValueError(f"fit takes lrtune.curves.Curve objects, got {type(c).__name__}")
        n_points = sum(int(self._fit_mask(c).sum()) for c in curves)
        if n_points < len(self.param_names):
            raise ValueError(f"the {self.name} law has {len(self.param_names)} parameters but the curves give "
                             f"{n_points} point(s) to fit them (after warmup); give more points or curves")
        params = self._fit_params(curves)
        self.params_ = {k: float(params[k]) for k in params}
        masks = [self._fit_mask(c) for c in curves]
        preds = [self._predict_params(self.params_, c.lr, c.steps[m], c.meta.get("model_size"))
                 for c, m in zip(curves, masks)]
        pred = np.concatenate(preds)
        loss = np.concatenate([c.loss[m] for c, m in zip(curves, masks)])
        self.r2_, self.mean_rel_error_ = _fit_stats(pred, loss)
        # the fit at each curve's last point, where a schedule's final loss is read (the mean error
        # over all points hides a misfit there)
        self.final_rel_errors_ = {c.name: float(p[-1] / c.loss[m][-1] - 1.0)
                                  for c, m, p in zip(curves, masks, preds) if m.any()}
        self.residual_scale_ = _rms(np.log(loss) - np.log(pred))
        self.n_points_ = int(loss.size)
        self.fitted_on_ = [c.name for c in curves]
        self.fit_horizon_ = int(max(c.steps[m][-1] if m.any() else c.steps[-1] for c, m in zip(curves, masks)))
        self.fit_peak_lrs_ = sorted({float(c.peak_lr) for c in curves})
        self.extrapolation_scale_ = self._leave_one_curve_out(curves, masks) if band and len(curves) >= 2 else None
        self.band_growth_ = band_growth_defaults(self.name)
        if warn and not getattr(self, "_quiet", False):  # _quiet: set by callers that fit many times
            for message in self._fit_warnings(curves, band):
                warnings.warn(message, FitWarning, stacklevel=2)
        return self

    def _fit_warnings(self, curves: list[Curve], band: bool = True) -> list[str]:
        out = []
        seen: dict[tuple, str] = {}
        for c in curves:
            key = (c.steps.tobytes(), c.loss.tobytes(), c.lr.tobytes())
            if key in seen:
                out.append(f"curves {seen[key]!r} and {c.name!r} are the same run (identical steps, losses and LRs): "
                           f"a run given twice counts twice, and the band, measured by leaving curves out, is too "
                           f"narrow; give each run once")
                break
            seen[key] = c.name
        if band and len(curves) <= 2:  # (without a band there is nothing to say about one)
            how = ("1 curve: its band has no curve to leave out (its extrapolation term is twice the fit's residuals)"
                   if len(curves) == 1 else "2 curves: its band's extrapolation term rests on two refits on one curve "
                                            "each")
            out.append(f"the {self.name} law was fitted on {how}, so predictions of other schedules can lie outside "
                       f"the band; 3 or more curves of different schedules give measured bands")
        decays = False
        for c in curves:
            lr = c.lr[: int(c.steps[-1])]
            top = int(np.argmax(lr))
            decays |= bool(lr[top:].min() < 0.9 * lr[top])
        if not decays:
            out.append(f"the {self.name} law was fitted on curves whose LR never decays (constant after warmup): "
                       f"what a cooldown or decay does to the loss is not in the data, and predictions of such "
                       f"schedules are a guess with too narrow a band; add a run with a decay")
        if not getattr(self, "model_size", False):
            for key in _RUN_KEYS:
                values = {_meta_value(c.meta[key]) for c in curves if key in c.meta}
                if len(values) > 1:
                    out.append(f"the curves come from runs of different {key} ({', '.join(sorted(values)[:4])}): one "
                               f"law describes one model on one data set (fit each apart, or use the momentum law "
                               f"with model_size=True across model sizes)")
                    break
        if self.name == "multipower" and len(self.fit_peak_lrs_) > 1 and \
                self.fit_peak_lrs_[-1] > 1.05 * self.fit_peak_lrs_[0]:
            out.append("the multi-power law has no term for the peak LR: fitted on runs at several peak LRs it "
                       "averages them, and it cannot predict another peak LR (use the momentum law)")
        if self.r2_ is not None and math.isfinite(self.r2_) and self.r2_ < 0.9:
            out.append(f"the {self.name} law describes these curves poorly (R^2 {self.r2_:.3g}): a diverged run, or "
                       f"runs of different models, among them?")
        return out

    def _base_scale(self) -> float:
        """``sqrt(residual_scale^2 + extrapolation_scale^2)`` (see the module docstring)."""
        growth = getattr(self, "band_growth_", None) or band_growth_defaults(self.name)
        res = max(float(self.residual_scale_ or 0.0), 1e-4)
        ext = getattr(self, "extrapolation_scale_", None)
        ext = growth["single_curve"] * res if ext is None else float(ext)
        return math.sqrt(res**2 + ext**2)

    def _leave_one_curve_out(self, curves: list[Curve], masks: list[np.ndarray]) -> float | None:
        """RMS over curves of the RMS log residual of each curve predicted by a refit on
        the others (at most ``BAND_FOLDS`` refits: beyond that many curves, every
        ``BAND_FOLDS``-th curve is left out together)."""
        n_folds = min(len(curves), BAND_FOLDS)
        per_curve = []
        for fold in range(n_folds):
            out = set(range(fold, len(curves), n_folds))
            try:
                params = self._refit_params([c for i, c in enumerate(curves) if i not in out], self.params_)
            except ValueError:  # what is left cannot be fitted (e.g. a single model size)
                continue
            for i in sorted(out):
                c, m = curves[i], masks[i]
                pred = self._predict_params(params, c.lr, c.steps[m], c.meta.get("model_size"))
                per_curve.append(_rms(np.log(c.loss[m]) - np.log(np.maximum(pred, 1e-300))))
        return float(np.sqrt(np.mean(np.square(per_curve)))) if per_curve else None

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted: call fit(curves) or load a fit first")

    def _validate(self, lr: Any, steps: Any) -> tuple[np.ndarray, np.ndarray]:
        lr = check_lr_batch(as_lr_array(lr))
        T = lr.shape[-1]
        steps = check_steps(np.asarray([T]) if steps is None else steps, last=T)
        return lr, steps

    def predict(self, lr: Any, steps: Any = None, *, model_size: float | None = None) -> np.ndarray:
        """Predicted loss at ``steps`` (default: the last step) under the LR array ``lr``.

        ``lr`` is one schedule (1-d, result of shape ``(len(steps),)``) or one candidate
        per row (2-d, result ``(n_candidates, len(steps))``); a schedule object or a spec
        string stands for its LR array (a list of them for one row each).  ``model_size``
        is for a law fitted with the model-size term.
        """
        self._check_fitted()
        self._check_model_size(model_size)
        lr, steps = self._validate(lr, steps)
        return self._predict_valid(lr, steps, model_size)

    def curve_model_size(self, curve: Curve) -> float | None:
        """The ``model_size`` to predict ``curve``'s run with: its ``meta["model_size"]`` for
        a law fitted with the model-size term, ``None`` for any other (which takes none)."""
        return curve.meta.get("model_size") if getattr(self, "model_size", False) else None

    def _check_model_size(self, model_size: float | None) -> None:
        if model_size is not None and not getattr(self, "model_size", False):
            raise ValueError(f"model_size is for a law fitted across model sizes (model_size=True); this "
                             f"{self.name} fit has no model-size term, so model_size would change nothing")

    def _predict_valid(self, lr: np.ndarray, steps: np.ndarray, model_size: float | None) -> np.ndarray:
        if lr.ndim == 1 or self.supports_batch:
            return self._predict_params(self.params_, lr, steps, model_size)
        return np.stack([self._predict_params(self.params_, row, steps, model_size) for row in lr])

    def predict_interval(self, lr: Any, steps: Any = None, *, level: float = 0.9,
                         model_size: float | None = None, warn: bool = True) -> Prediction:
        """Prediction with a two-sided ``level`` band (module docstring for its width).

        The band is multiplicative, ``loss * exp(+-z * s)``; 1-d or 2-d ``lr`` as in
        :meth:`predict`.  Where the law's value is not positive (far outside the peak LRs
        it was fitted on) it is no loss: the prediction and band are ``nan`` there.
        With ``warn``, a :class:`FitWarning` says when a schedule's peak LR lies where
        the law is not measured (:func:`far_peaks_message`): an LR array of multipliers
        (peak 1, as ``lr_from_torch``'s default ``base_lr=1`` gives) is the usual cause.
        """
        if isinstance(level, bool) or not (isinstance(level, numbers.Real) and 0 < level < 1):
            raise ValueError(f"level must be in (0, 1), got {show_value(level)}")
        self._check_fitted()
        self._check_model_size(model_size)
        lr, steps = self._validate(lr, steps)
        if warn and not getattr(self, "_quiet", False):
            message = far_peaks_message(self, np.max(lr, axis=-1).reshape(-1))
            if message:
                warnings.warn(message, FitWarning, stacklevel=2)
        loss = self._predict_valid(lr, steps, model_size)
        # a law value at or below 0 (a peak LR far outside the fitted ones) is no loss: nan
        loss = np.where(loss > 0, loss, np.nan)
        z = float(stats.norm.isf((1 - level) / 2))  # exact also for a level within 1e-16 of 1
        s = self._band_scale(lr, steps)
        return Prediction(steps, loss, loss * np.exp(-z * s), loss * np.exp(z * s), level)

    def _band_scale(self, lr: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Scale ``s`` of the log-loss band at ``steps`` (shape of the prediction)."""
        growth = getattr(self, "band_growth_", None) or band_growth_defaults(self.name)
        base = self._base_scale()
        horizon = getattr(self, "fit_horizon_", None)
        grow = np.ones(steps.shape)
        if horizon:
            grow = 1.0 + growth["horizon"] * np.log(np.maximum(steps, horizon) / horizon)
        peaks = getattr(self, "fit_peak_lrs_", None)
        if peaks:
            known = np.log(np.asarray(peaks))
            peak = np.log(np.maximum(np.max(lr, axis=-1), 1e-300))
            dist = np.min(np.abs(np.subtract.outer(peak, known)), axis=-1)
            grow = (1.0 + growth["peak_lr"] * np.expand_dims(dist, -1)) * grow
        return base * np.broadcast_to(grow, lr.shape[:-1] + steps.shape)

    # -- serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        out = {"law": self.name, "config": self.get_config(), "params": dict(self.params_)}
        for key in _STATE:
            out[key.rstrip("_")] = getattr(self, key, None)
        out.update(self._extra_state())
        return out

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, data: dict[str, Any]) -> None:
        pass

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Law":
        """A fitted law from :meth:`to_dict`'s output; on ``Law`` itself, the law the dict names."""
        if getattr(cls, "name", None) is None:  # Law itself: the law named in the data
            from lrtune.laws import load_law

            return load_law(data)
        if data.get("law") != cls.name:
            raise ValueError(f"this is a fit of law {data.get('law')!r}, not {cls.name!r}")
        config, params = data.get("config") or {}, data.get("params", {})
        if not isinstance(config, dict) or not isinstance(params, dict):
            raise ValueError(f"fit of law {cls.name!r}: 'config' and 'params' must be JSON objects")
        try:
            law = cls(**config)
        except TypeError:  # an unknown setting
            known = set(cls().get_config())
            raise ValueError(f"fit of law {cls.name!r} has unknown setting(s) "
                             f"{', '.join(sorted(set(config) - known))}; known: {', '.join(sorted(known))}") from None
        missing = [p for p in law.param_names_for_load() if p not in params]
        if missing:
            raise ValueError(f"fit of law {cls.name!r} lacks parameter(s) {', '.join(missing)}")
        bad = [k for k, v in params.items()
               if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)]
        if bad:
            raise ValueError(f"fit of law {cls.name!r}: parameter {bad[0]} must be a finite number, "
                             f"got {params[bad[0]]!r}")
        law.params_ = {k: float(v) for k, v in params.items()}
        out_of_domain = [k for k, v in law.params_.items()
                         if (k in _NON_NEGATIVE and v < 0) or (k == "decay" and not 0 < v < 1)]
        if out_of_domain:
            k = out_of_domain[0]
            raise ValueError(f"fit of law {cls.name!r}: parameter {k} must be "
                             f"{'in (0, 1)' if k == 'decay' else '>= 0'}, got {law.params_[k]:g}")
        for key in _STATE:
            setattr(law, key, data.get(key.rstrip("_")))
        _check_state(cls.name, law)
        law._load_extra_state(data)
        return law

    def param_names_for_load(self) -> tuple[str, ...]:
        return self.param_names

    def to_json(self, path: str | None = None) -> str:
        """The fit as strict JSON (a statistic that is not a number, like the R^2 of flat
        curves, is ``null``)."""
        def strict(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: strict(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [strict(x) for x in v]
            return v

        text = json.dumps(strict(self.to_dict()), indent=2, allow_nan=False)
        if path is not None:
            with open(path, "w") as f:
                f.write(text + "\n")
        return text

    @classmethod
    def from_json(cls, text: str) -> "Law":
        return cls.from_dict(json.loads(text))

    def summary(self) -> str:
        """A few lines: parameters, R^2 and mean relative error on the fitted curves."""
        self._check_fitted()
        ps = ", ".join(f"{k}={v:.6g}" for k, v in self.params_.items())
        out = (f"law: {self.name}\nfitted on: {', '.join(self.fitted_on_)} ({self.n_points_} points)\n"
               f"parameters: {ps}\nR^2: {self.r2_:.5f}\nmean relative error: {100 * self.mean_rel_error_:.3f} %")
        finals = {k: v for k, v in (getattr(self, "final_rel_errors_", None) or {}).items()
                  if v is not None and math.isfinite(v)}  # a fit saved before they were kept has none
        if finals:
            name, worst = max(finals.items(), key=lambda kv: abs(kv[1]))
            out += f"\nerror at the curves' last points: up to {100 * worst:+.3f} % ({name})"
        return out

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        if not hasattr(self, "params_"):
            return f"{type(self).__name__}({cfg})"
        ps = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
        n = len(getattr(self, "fitted_on_", None) or [])
        r2 = getattr(self, "r2_", None)
        return (f"{type(self).__name__}({cfg}) fitted on {n} curve(s): {ps}"
                + (f", R^2 {r2:.4f}" if isinstance(r2, float) and math.isfinite(r2) else ""))


def finite_or_raise(x: float, what: str) -> float:
    if not math.isfinite(x):
        raise ValueError(f"{what} is not finite: {x}")
    return x
