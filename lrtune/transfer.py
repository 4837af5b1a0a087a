r"""Peak-LR transfer: the optimal peak LR of one sweep carried to another schedule.

**A sweep** is a set of runs that differ only in their peak LR ``gamma``.  Its final loss
is fitted, as in Schaipp et al., by

.. math::  L(\gamma) = A/\gamma + B\gamma + C  \qquad(\text{form} = \text{"inverse"})

or by a parabola in ``u = ln gamma``, ``L = a + b u + c u^2`` (``form="log-quadratic"``);
both are linear least squares.  The optimum is ``gamma* = sqrt(A / B)`` (resp.
``exp(-b / 2c)``); its interval comes from a parametric bootstrap: the fitted losses plus
Gaussian noise of the fit's residual scale (never below ``noise`` times the loss, the
seed-to-seed scatter of a final loss) are refitted 2,000 times.

**The transfer** uses the convex bound of :mod:`lrtune.bound` as a prior.  For a target
schedule ``S`` at horizon ``T`` and each sweep ``i`` (schedule ``S_i``, horizon ``T_i``)
let ``g(.)`` be the bound's optimal base LR (D = G = 1) and

.. math::

    x_{h,i} = \ln g(S \text{ at } T_i), \qquad x_{s,i} = \ln g(S_i) - x_{h,i}

(the horizon part and the shape part of the theory's prediction).  The sweeps' optima
follow the linear model

.. math::  \ln\gamma^*_i = \alpha + h\,x_{h,i} + s\,x_{s,i} + \varepsilon_i

with ``h`` the horizon factor (the theory says 1: the optimum moves as ``g``, about
``T^-0.49``) and ``s`` the shape factor (theory: 1, e.g. cosine/WSD(20 %) = 1.9).  Priors
``h ~ N(1, horizon_prior_sd^2)``, ``s ~ N(1, shape_prior_sd^2)``, ``alpha`` flat; the
variance of ``eps_i`` is the sweep's bootstrap variance of ``ln gamma*_i`` plus
``model_sd^2``.  The prediction for the target is ``exp(alpha + h x_h(T))`` with its
posterior interval; with one sweep it is the theory's ratio applied to that sweep's
optimum, with sweeps at two horizons (or two shapes) the data pull ``h`` (or ``s``) away
from 1.  The interval always contains both the theory-only estimate (``h = s = 1``) and the
data-only one (flat priors where the sweeps identify ``h`` or ``s``), so it widens when
the data and the theory disagree.  With ``null_weight > 0`` a factor the sweeps identify
may also be 0 (the optimum does not move along it: no transfer); the prediction then
averages the theory's hypothesis and that one by their marginal likelihoods, so that it
moves toward reusing the sweeps' optimum when they do not move as the theory says.

Horizon extension (:func:`extend_horizon`) and continual pre-training
(:func:`rewarm_plans`) build on the same bound and on a fitted loss-curve law.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Sequence

import numpy as np
from scipy import optimize, stats

from lrtune.curves import Curve
from lrtune.laws import FitWarning
from lrtune.schedules import WSD, Rewarm, Schedule, parse_schedule
from lrtune.schedules import _pieces

__all__ = [
    "FORMS",
    "HorizonPlan",
    "PeakLRSweep",
    "PeakLRTransfer",
    "RewarmPlan",
    "TransferResult",
    "eta_at_horizon",
    "extend_horizon",
    "rewarm_plans",
    "transfer_peak_lr",
]

#: fitted forms of the final loss against the peak LR
FORMS = ("inverse", "log-quadratic")
#: a sweep's fitted curve this far (relative) above its best run warns that the form misses the runs
MISFIT = 0.005

# ---------------------------------------------------------------------------------------
# the convex bound


def _bound_optimal_base_lr(eta: np.ndarray) -> float:
    """gamma* of the convex bound (D = G = 1) for the normalised schedule ``eta``."""
    from lrtune.bound import optimal_base_lr

    return float(optimal_base_lr(eta))


def _log_gstar(eta: np.ndarray) -> float:
    return math.log(_bound_optimal_base_lr(eta))


#: families whose keys other than ``steps`` are fractions of the horizon or step counts
#: that stay valid at another horizon (``warmup`` is kept in steps)
_REHORIZON = ("constant", "cosine", "linear", "wsd", "cyclic", "wsds")


def _as_schedule_or_eta(target: Any) -> Schedule | np.ndarray:
    if isinstance(target, str):
        family, _, rest = target.partition(":")
        keys = {item.partition("=")[0].strip() for item in rest.split(",")}
        if "peak" not in keys:  # a target's peak is what transfer finds: 1 stands in
            if "peak2" in keys:
                raise ValueError(f"target {target!r}: give its peak too (the re-warm's peak2 is an LR of its own, "
                                 f"so the shape is set by peak2 / peak)")
            given, target = target, f"{family}:{rest},peak=1" if rest.strip() else f"{family}:peak=1"
            try:
                return parse_schedule(target)
            except ValueError as e:  # in the user's words, not with the stand-in peak
                raise ValueError(str(e).replace(repr(target), repr(given))) from None
        return parse_schedule(target)
    if isinstance(target, Schedule):
        return target
    eta = np.asarray(target, dtype=np.float64)
    if eta.ndim != 1 or eta.size < 2 or not np.all(np.isfinite(eta)) or eta.max() <= 0 or (eta < 0).any():
        raise ValueError("target must be a schedule spec, a Schedule or a 1-d LR array of finite values >= 0 "
                         "with a positive peak")
    return eta / eta.max()


def eta_at_horizon(target: Schedule | np.ndarray | str, steps: int | None = None) -> np.ndarray:
    """The schedule ``target`` normalised to peak 1, at horizon ``steps`` (default: its own).

    A spec of a family whose keys are fractions of the horizon (constant, cosine, linear,
    wsd, cyclic, wsds) is rebuilt at ``steps`` with the same warmup in steps; any other
    schedule, or a plain LR array, is resampled in relative time ``t / T``.
    """
    s = _as_schedule_or_eta(target)
    if isinstance(s, Schedule):
        if steps is None or steps == s.steps:
            return s.lr() / s.peak
        if s.family in _REHORIZON:
            warmup = min(s.warmup, max(int(steps) - 1, 0))
            try:
                return s.replace(steps=int(steps), peak=1.0, warmup=warmup).lr()
            except ValueError:
                pass
        eta = s.lr() / s.peak
    else:
        eta = s
    if steps is None or steps == eta.size:
        return eta
    u = (np.arange(int(steps)) + 0.5) / int(steps)
    return np.interp(u, (np.arange(eta.size) + 0.5) / eta.size, eta)


# ---------------------------------------------------------------------------------------
# sweeps


def _design(form: str, gamma: np.ndarray, ref: float) -> np.ndarray:
    g = gamma / ref
    if form == "inverse":
        return np.stack([1.0 / g, g, np.ones_like(g)], axis=-1)
    u = np.log(g)
    return np.stack([np.ones_like(u), u, u * u], axis=-1)


def _optimum(form: str, coef: np.ndarray) -> np.ndarray:
    """ln(gamma* / ref) for coefficient rows ``coef`` (..., 3); +inf when the loss still
    falls at large LRs, -inf when it still falls at small ones, nan when it has no minimum."""
    a, b, c = np.moveaxis(coef, -1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if form == "inverse":  # A = a, B = b
            out = 0.5 * (np.log(np.abs(a)) - np.log(np.abs(b)))
            out = np.where((a > 0) & (b > 0), out, np.nan)
            out = np.where((a > 0) & (b <= 0), np.inf, out)
            out = np.where((a <= 0) & (b > 0), -np.inf, out)
        else:  # a + b u + c u^2
            out = np.where(c > 0, -b / (2.0 * c), np.nan)
            out = np.where((c <= 0) & (b < 0), np.inf, out)
            out = np.where((c <= 0) & (b > 0), -np.inf, out)
    return out


class PeakLRSweep:
    """Final loss against the peak LR for runs that differ only in peak LR.

    Fits ``L(gamma) = A/gamma + B*gamma + C`` (``form="inverse"``, Schaipp et al.) or
    ``L = a + b*ln(gamma) + c*ln(gamma)^2`` (``form="log-quadratic"``) by least squares;
    the optimal peak LR ``peak_lr_`` is the fitted minimum, its ``level`` interval
    ``[lower_, upper_]`` comes from a parametric bootstrap with noise
    ``max(residual scale, noise * loss)``.  The optimum is not extrapolated further than a
    factor ``extrapolation`` outside the swept LRs (``at_edge_`` then says on which side).
    Runs at a larger peak LR than the best run whose final loss exceeds by more than
    ``diverged`` (relative) the worst loss of the runs at the best LR or below are left out as
    diverged (``dropped_``, their names ``dropped_runs_``); runs at smaller peak LRs are slow, not
    diverged, and are kept.

    Example::

        sweep = PeakLRSweep().fit(curves)          # curves at 3+ peak LRs, one schedule
        sweep.peak_lr_, sweep.lower_, sweep.upper_

    Args:
        form: ``"inverse"`` or ``"log-quadratic"``.
        level: two-sided level of the interval of the optimum, in (0, 1).
        noise: relative scatter of a final loss between seeds (4e-4: 0.0012 at loss 3).
        extrapolation: how far (factor) beyond the swept LRs the optimum may lie.
        diverged: relative excess over the worst final loss at or below the best run's LR
            above which a run at a larger peak LR is dropped.
        n_boot: bootstrap draws.
        seed: seed of the bootstrap.
    """

    def __init__(self, form: str = "inverse", level: float = 0.9, noise: float = 4e-4,
                 extrapolation: float = 2.0, diverged: float = 0.1, n_boot: int = 2000,
                 seed: int = 0) -> None:
        if form not in FORMS:
            raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        if not (noise >= 0 and math.isfinite(noise)):
            raise ValueError(f"noise must be a finite number >= 0, got {noise}")
        if not extrapolation >= 1:
            raise ValueError(f"extrapolation must be >= 1, got {extrapolation}")
        if not diverged > 0:
            raise ValueError(f"diverged must be > 0, got {diverged}")
        if int(n_boot) < 100:
            raise ValueError(f"n_boot must be >= 100, got {n_boot}")
        self.form = form
        self.level = level
        self.noise = noise
        self.extrapolation = extrapolation
        self.diverged = diverged
        self.n_boot = int(n_boot)
        self.seed = seed

    # -- fitting ----------------------------------------------------------------------
    def fit(self, curves: Sequence[Curve]) -> "PeakLRSweep":
        """Fit on curves of one schedule at several peak LRs (final loss: the loss at the
        last step logged by every run).  A curve whose ``meta["diverged_at"]`` is set (read
        with ``read_curves(..., diverged="cut")``) is a diverged run: dropped (``dropped_``)."""
        curves = [curves] if isinstance(curves, Curve) else list(curves)
        if not curves:
            raise ValueError("the sweep is empty: give runs at 3 or more peak LRs of one schedule")
        for c in curves:
            if not isinstance(c, Curve):
                raise ValueError(f"a sweep takes lrtune.curves.Curve objects, got {type(c).__name__}")
        eta = _check_same_schedule(curves)
        ended = [c for c in curves if not _diverged(c)]  # the others have no final loss: dropped
        if not ended:
            raise ValueError("every run of the sweep diverged: no final loss to fit")
        common = ended[0].steps
        for c in ended[1:]:
            common = np.intersect1d(common, c.steps)
        if common.size == 0:
            raise ValueError("the runs of the sweep share no logged step: log the final loss of each")
        last = int(common[-1])
        if last < 0.95 * eta.size:
            short = min(ended, key=lambda c: int(c.steps[-1]))
            warnings.warn(f"the sweep's runs share no logged step after {last} of their {eta.size} (run {short.name} is "
                          f"logged up to {int(short.steps[-1])}): its 'final' losses are from step {last}, before the "
                          f"end of the schedule, and its optimum is that step's", FitWarning, stacklevel=2)
        losses = np.array([np.nan if _diverged(c) else c.loss[np.searchsorted(c.steps, last)] for c in curves])
        self.final_step_ = last
        self.run_names_ = [c.name for c in curves]
        # peak LRs to 7 significant digits: logs often keep LRs in float32
        peaks = np.array([float(f"{c.peak_lr:.7g}") for c in curves])
        return self._fit(peaks, losses, eta)

    def fit_final(self, peak_lrs: Any, final_losses: Any, schedule: Any) -> "PeakLRSweep":
        """Fit on final losses directly; ``schedule`` (spec, Schedule or LR array) is the
        schedule shared by the runs (its peak is ignored)."""
        eta = eta_at_horizon(schedule)
        peak_lrs = np.asarray(peak_lrs, dtype=np.float64).ravel()
        final_losses = np.asarray(final_losses, dtype=np.float64).ravel()
        if peak_lrs.size == 0:
            raise ValueError("the sweep is empty: give runs at 3 or more peak LRs of one schedule")
        if peak_lrs.size != final_losses.size:
            raise ValueError(f"peak_lrs and final_losses have different lengths "
                             f"({peak_lrs.size} and {final_losses.size})")
        self.final_step_ = int(eta.size)
        self.run_names_ = [f"lr={g:g}" for g in peak_lrs]
        return self._fit(peak_lrs, final_losses, eta)

    def _fit(self, gamma: np.ndarray, loss: np.ndarray, eta: np.ndarray) -> "PeakLRSweep":
        if not np.all(np.isfinite(gamma) & (gamma > 0)):
            raise ValueError(f"peak LRs must be finite and > 0, got {gamma.tolist()}")
        bad = ~(np.isfinite(loss) & (loss > 0))
        # diverged: a run at a larger peak LR than the best run whose loss exceeds by more than
        # ``diverged`` the worst loss of the runs at the best LR or below (a slow run at a small
        # LR did not diverge; a run that ends above it did not train)
        finite = np.where(bad, np.inf, loss)
        if bad.all():
            keep = ~bad
        else:
            g_best = gamma[int(np.argmin(finite))]
            slow = (gamma <= g_best) & ~bad
            keep = ~bad & (slow | (loss <= (1 + self.diverged) * np.max(loss[slow])))
        self.dropped_ = sorted(float(g) for g in gamma[~keep])
        # their names, in the order of their peak LRs
        self.dropped_runs_ = [self.run_names_[i] for i in sorted(np.flatnonzero(~keep), key=lambda i: gamma[i])]
        gamma, loss = gamma[keep], loss[keep]
        distinct = np.unique(gamma)
        if distinct.size < 3:
            what = "one peak LR" if distinct.size == 1 else f"{distinct.size} peak LRs"
            raise ValueError(f"a sweep needs runs at 3 or more distinct peak LRs, got {what} "
                             f"({', '.join(f'{g:g}' for g in distinct)})"
                             + (f" after dropping diverged runs at {self.dropped_}" if self.dropped_ else ""))
        self.eta_ = eta
        self.horizon_ = int(eta.size)
        self.peak_lrs_ = gamma
        self.final_losses_ = loss
        self.ref_ = float(np.exp(np.mean(np.log(gamma))))
        X = _design(self.form, gamma, self.ref_)
        coef, *_ = np.linalg.lstsq(X, loss, rcond=None)
        self.coef_ = coef
        fitted = X @ coef
        dof = gamma.size - 3
        rms = float(np.sqrt(np.sum((loss - fitted) ** 2) / dof)) if dof > 0 else 0.0
        self.noise_ = max(rms, self.noise * float(np.mean(loss)))
        # the optimum and its bootstrap
        lo_cap = math.log(distinct[0] / self.extrapolation / self.ref_)
        hi_cap = math.log(distinct[-1] * self.extrapolation / self.ref_)
        u_raw = float(_optimum(self.form, coef))
        if math.isnan(u_raw):  # no minimum (concave fit): the best observed run
            u_hat = math.log(gamma[np.argmin(loss)] / self.ref_)
        else:
            u_hat = float(np.clip(u_raw, lo_cap, hi_cap))
        rng = np.random.default_rng(self.seed)
        Y = fitted[None, :] + self.noise_ * rng.standard_normal((self.n_boot, gamma.size))
        boot = np.linalg.lstsq(X, Y.T, rcond=None)[0].T
        u = _optimum(self.form, boot)
        u = np.where(np.isnan(u), u_hat, u)
        u = np.clip(u, lo_cap, hi_cap)
        q = (1 - self.level) / 2
        lo, hi = np.quantile(u, [q, 1 - q])
        s_lo, s_hi = np.quantile(u, [stats.norm.cdf(-1), stats.norm.cdf(1)])
        self.peak_lr_ = self.ref_ * math.exp(u_hat)
        fitted_best = float((_design(self.form, np.array([self.peak_lr_]), self.ref_) @ coef)[0])
        i_best = int(np.argmin(loss))
        # the form misses the sweep's best run by more than noise can (and than the 0.2 % the inverse
        # form is off near the optimum on the 124M grid's 50k sweeps, benchmarks/results/transfer.md)
        if loss[i_best] < fitted_best - max(3.0 * self.noise, MISFIT) * loss[i_best]:
            warnings.warn(f"the sweep's fitted curve ({self.form} form) misses its runs: at its optimum "
                          f"{self.peak_lr_:.3g} it gives {fitted_best:.4g}, above the run at {gamma[i_best]:g} "
                          f"({loss[i_best]:.4g}) by {100 * (fitted_best / loss[i_best] - 1):.2g} %, more than the seed "
                          f"noise it assumes ({100 * self.noise:.2g} %) can explain: its optimum and interval describe the "
                          f"form, not the runs (try the other form, runs nearer the best, or the measured seed "
                          f"noise)", FitWarning, stacklevel=3)
        self.lower_ = self.ref_ * math.exp(min(lo, u_hat))
        self.upper_ = self.ref_ * math.exp(max(hi, u_hat))
        self.log_sd_ = max(float(s_hi - s_lo) / 2, 1e-3)
        u_top, u_bottom = math.log(distinct[-1] / self.ref_), math.log(distinct[0] / self.ref_)
        if math.isnan(u_raw):  # no minimum: the best run lies at an edge, the optimum at or beyond it
            best = math.log(gamma[np.argmin(loss)] / self.ref_)
            self.at_edge_ = "above" if best >= u_top - 1e-12 else "below" if best <= u_bottom + 1e-12 else None
        else:
            self.at_edge_ = ("above" if u_hat >= hi_cap - 1e-9 or u_hat > u_top else
                             "below" if u_hat <= lo_cap + 1e-9 or u_hat < u_bottom else None)
        # beyond the swept LRs the data say only "past the edge": the interval reaches from the
        # edge to the cap; where the bootstrap piled up at the cap (or found no minimum) its
        # spread says nothing, and the optimum's sd (a transfer's weight) is that range's
        collapsed = self.log_sd_ < 0.05
        if self.at_edge_ == "above":
            self.lower_, self.upper_ = min(self.lower_, distinct[-1]), max(self.upper_, self.ref_ * math.exp(hi_cap))
            self.log_sd_ = max(self.log_sd_, (hi_cap - u_top) / 2) if collapsed else self.log_sd_
        elif self.at_edge_ == "below":
            self.lower_, self.upper_ = min(self.lower_, self.ref_ * math.exp(lo_cap)), max(self.upper_, distinct[0])
            self.log_sd_ = max(self.log_sd_, (u_bottom - lo_cap) / 2) if collapsed else self.log_sd_
        self.best_loss_ = float(self.predict_loss(self.peak_lr_))
        return self

    # -- queries ----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise ValueError("this PeakLRSweep is not fitted: call fit(curves) or fit_final(...) first")

    def predict_loss(self, peak_lr: Any) -> np.ndarray:
        """The fitted final loss at ``peak_lr`` (scalar or array)."""
        self._check_fitted()
        g = np.asarray(peak_lr, dtype=np.float64)
        if not np.all(np.isfinite(g) & (g > 0)):
            raise ValueError(f"peak_lr must be finite and > 0, got {peak_lr!r}")
        return _design(self.form, g, self.ref_) @ self.coef_

    def regret(self, peak_lr: Any) -> np.ndarray:
        """Relative excess of the fitted final loss at ``peak_lr`` over the fitted best."""
        return self.predict_loss(peak_lr) / self.best_loss_ - 1.0

    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "horizon": self.horizon_, "form": self.form, "peak_lr": self.peak_lr_,
            "lower": self.lower_, "upper": self.upper_, "level": self.level,
            "best_loss": self.best_loss_, "at_edge": self.at_edge_,
            "peak_lrs": self.peak_lrs_.tolist(), "final_losses": self.final_losses_.tolist(),
            "dropped": self.dropped_, "dropped_runs": list(self.dropped_runs_), "runs": list(self.run_names_),
        }

    def __repr__(self) -> str:
        if not hasattr(self, "coef_"):
            return f"PeakLRSweep(form={self.form!r})"
        return (f"PeakLRSweep(horizon={self.horizon_}, n={self.peak_lrs_.size}, "
                f"peak_lr={self.peak_lr_:.3g} [{self.lower_:.3g}, {self.upper_:.3g}])")


def _diverged(curve: Curve) -> bool:
    """A run read with ``read_curves(..., diverged="cut")`` whose loss turned NaN: no final loss."""
    return curve.meta.get("diverged_at") is not None


def _check_same_schedule(curves: Sequence[Curve]) -> np.ndarray:
    """The schedule the runs share, at peak 1.  A diverged run (``meta["diverged_at"]``)
    whose log stopped early may have only a prefix of the LRs: it must agree on those."""
    ended = [c for c in curves if not _diverged(c)] or list(curves)
    first = ended[0]
    eta = first.lr / first.peak_lr
    for c in curves:
        if c is first:
            continue
        if _diverged(c) and c.horizon < first.horizon:
            c = dataclasses.replace(c, lr=np.concatenate([c.lr, first.lr[c.horizon:] * (c.peak_lr / first.peak_lr)]))
        if c.horizon != first.horizon:
            raise ValueError(
                f"runs with different schedules passed as one sweep: {first.name} has {first.horizon} steps, "
                f"{c.name} has {c.horizon}; a sweep holds runs that differ only in peak LR")
        other = c.lr / c.peak_lr
        diff = np.abs(other - eta)
        if diff.max() > 1e-2:
            i = int(np.argmax(diff))
            raise ValueError(
                f"runs with different schedules passed as one sweep: {first.name} and {c.name} differ at step "
                f"{i + 1} (LR/peak {eta[i]:.4g} against {other[i]:.4g}); a sweep holds runs that differ only "
                "in peak LR")
    return eta


def _as_sweep(item: Any) -> PeakLRSweep:
    if isinstance(item, PeakLRSweep):
        item._check_fitted()
        return item
    return PeakLRSweep().fit(item)


# ---------------------------------------------------------------------------------------
# transfer


@dataclasses.dataclass(frozen=True)
class TransferResult:
    """A transferred optimal peak LR with its ``level`` interval.

    ``theory_peak_lr`` keeps the bound's factors (h = s = 1), ``data_peak_lr`` uses the
    factors the sweeps alone give, ``no_transfer_peak_lr`` is the optimum of the sweep
    closest to the target, unchanged.  ``extrapolated_sources`` lists (0-based) the sweeps
    whose fitted optimum lies outside their swept peak LRs: their optimum is an
    extrapolation of the fitted form (on the Schaipp grid such optima moved by up to a
    factor 1.6 when a run at a larger peak LR was added), so a sweep there should be
    extended past its edge before its optimum is trusted.
    """

    peak_lr: float
    lower: float
    upper: float
    level: float
    theory_peak_lr: float
    data_peak_lr: float
    no_transfer_peak_lr: float
    horizon_factor: float
    horizon_factor_sd: float
    shape_factor: float
    shape_factor_sd: float
    bound_ratio: float
    horizon: int
    schedule: str | None
    extrapolated_sources: tuple[int, ...] = ()
    theory_weight: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["extrapolated_sources"] = list(self.extrapolated_sources)
        return out


class PeakLRTransfer:
    """Carry the optimal peak LR of one or more sweeps to another schedule.

    The log-optimum of each sweep is modelled as ``alpha + h*x_h + s*x_s`` where ``x_h``
    and ``x_s`` are the horizon and shape parts of the convex bound's log optimal base LR
    (module docstring); ``h`` and ``s`` have priors centred on the theory (1) and are
    learned when the sweeps span two horizons or two shapes.

    Example::

        tr = PeakLRTransfer().fit([sweep_15k, sweep_25k])
        tr.predict("wsd:steps=50000,peak=1,warmup=300,cooldown=0.2").peak_lr

    With ``null_weight > 0`` each factor that the sweeps identify (``h`` when they span two
    horizons, ``s`` when they span two shapes) is also given the competing hypothesis that
    the optimum does not move along it (factor 0: reuse the optimum unchanged), with prior
    probability ``null_weight``; the prediction averages the hypotheses in ``ln gamma`` by
    their posterior probabilities (marginal likelihoods of the sweeps' optima), and the
    interval is that of the mixture.  A factor the sweeps do not identify keeps the
    theory's prior alone (with one sweep, lrtune is the theory's ratio), so this changes
    nothing for a single sweep.  ``theory_weight`` of the result is the posterior probability
    of the theory's hypotheses (1 with ``null_weight = 0``, the default).

    Args:
        horizon_prior_sd: prior sd of the horizon factor ``h`` around 1.
        shape_prior_sd: prior sd of the shape factor ``s`` around 1.
        model_sd: sd (in ln gamma) of a sweep's optimum around the linear model.
        level: two-sided level of the interval.
        null_weight: prior probability, per identified factor, that it is 0 (no transfer
            along it), in [0, 1); 0 keeps the theory's prior alone.
    """

    def __init__(self, horizon_prior_sd: float = 0.5, shape_prior_sd: float = 0.5,
                 model_sd: float = 0.05, level: float = 0.9, null_weight: float = 0.0) -> None:
        for name, v in (("horizon_prior_sd", horizon_prior_sd), ("shape_prior_sd", shape_prior_sd),
                        ("model_sd", model_sd)):
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v}")
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        if not (math.isfinite(null_weight) and 0 <= null_weight < 1):
            raise ValueError(f"null_weight must be in [0, 1), got {null_weight}")
        self.horizon_prior_sd = horizon_prior_sd
        self.shape_prior_sd = shape_prior_sd
        self.model_sd = model_sd
        self.level = level
        self.null_weight = null_weight

    def fit(self, sweeps: Sequence[Any]) -> "PeakLRTransfer":
        """``sweeps``: fitted :class:`PeakLRSweep` objects or lists of curves (one list per
        sweep)."""
        if isinstance(sweeps, PeakLRSweep):
            sweeps = [sweeps]
        sweeps = list(sweeps)
        if not sweeps:
            raise ValueError("transfer needs at least one sweep, got none")
        if all(isinstance(s, Curve) for s in sweeps):  # a single sweep given as curves
            sweeps = [sweeps]
        self.sweeps_ = [_as_sweep(s) for s in sweeps]
        self._log_g = [_log_gstar(s.eta_) for s in self.sweeps_]
        return self

    def __repr__(self) -> str:
        args = (f"horizon_prior_sd={self.horizon_prior_sd!r}, shape_prior_sd={self.shape_prior_sd!r}, "
                f"model_sd={self.model_sd!r}, level={self.level!r}, null_weight={self.null_weight!r}")
        if not hasattr(self, "sweeps_"):
            return f"PeakLRTransfer({args})"
        fitted = ", ".join(f"{s.horizon_} steps: {s.peak_lr_:.3g}" for s in self.sweeps_)
        return f"PeakLRTransfer({args}) fitted on {len(self.sweeps_)} sweep(s) ({fitted})"

    def predict(self, target: Any, steps: int | None = None) -> TransferResult:
        """The optimal peak LR of ``target`` (spec, Schedule or LR array; its peak is
        ignored), optionally moved to horizon ``steps``.  The result's ``schedule`` is the
        target's spec at the optimal peak, ``None`` where no spec of it has that horizon
        (an LR array, or a family with steps of its own, like ``step`` or ``rewarm``, moved
        to another horizon: its shape is resampled in relative time)."""
        if not hasattr(self, "sweeps_"):
            raise ValueError("this PeakLRTransfer is not fitted: call fit(sweeps) first")
        tgt = _as_schedule_or_eta(target)
        if steps is not None and isinstance(tgt, Schedule):
            tgt = tgt.replace(steps=int(steps)) if tgt.family in _REHORIZON else tgt
        horizon = int(steps) if steps is not None else (tgt.steps if isinstance(tgt, Schedule) else tgt.size)
        eta_t = eta_at_horizon(tgt, horizon)
        x_t = _log_gstar(eta_t)
        n = len(self.sweeps_)
        y = np.array([math.log(s.peak_lr_) for s in self.sweeps_])
        var = np.array([s.log_sd_**2 for s in self.sweeps_]) + self.model_sd**2
        x_h = np.array([_log_gstar(eta_at_horizon(tgt, s.horizon_)) if s.horizon_ != horizon else x_t
                        for s in self.sweeps_])
        x_s = np.array(self._log_g) - x_h
        X = np.stack([np.ones(n), x_h - x_t, x_s], axis=1)

        def solve(tau_h: float, tau_s: float) -> tuple[np.ndarray, np.ndarray]:
            prior_prec = np.array([1e-8, 1.0 / max(tau_h, 1e-6) ** 2, 1.0 / max(tau_s, 1e-6) ** 2])
            P = X.T @ (X / var[:, None]) + np.diag(prior_prec)
            cov = np.linalg.inv(P)
            mean = cov @ (X.T @ (y / var) + prior_prec * np.array([0.0, 1.0, 1.0]))
            return mean, cov

        mean, cov = solve(self.horizon_prior_sd, self.shape_prior_sd)
        theory, _ = solve(0.0, 0.0)
        # data only: flat priors on the factors that the sweeps identify
        spread_h = np.ptp(X[:, 1]) > 1e-3
        spread_s = np.ptp(X[:, 2]) > 1e-3
        data, _ = solve(1e3 if spread_h else 0.0, 1e3 if spread_s else 0.0)
        z = stats.norm.ppf(0.5 + self.level / 2)
        sd = math.sqrt(cov[0, 0] + self.model_sd**2)
        lo = min(mean[0] - z * sd, theory[0], data[0])
        hi = max(mean[0] + z * sd, theory[0], data[0])
        theory_weight = 1.0
        if self.null_weight > 0 and (spread_h or spread_s):
            centre, lo_m, hi_m, theory_weight = self._average(X, y, var, spread_h, spread_s, z)
            mean = mean.copy()
            mean[0] = centre
            lo, hi = min(lo_m, theory[0], data[0]), max(hi_m, theory[0], data[0])
        # no transfer: the sweep nearest to the target in the bound's log-optimum
        dist = np.abs(X[:, 1]) + np.abs(X[:, 2])
        nearest = int(np.argmin(dist + 1e-9 * np.arange(n)))
        spec = None
        if isinstance(tgt, Schedule) and tgt.steps == horizon:  # else no spec of this family has that horizon
            spec = tgt.with_peak(float(math.exp(mean[0]))).spec()  # exactly peak_lr, as parse_schedule reads it back
        return TransferResult(
            peak_lr=float(math.exp(mean[0])), lower=float(math.exp(lo)), upper=float(math.exp(hi)),
            level=self.level, theory_peak_lr=float(math.exp(theory[0])), data_peak_lr=float(math.exp(data[0])),
            no_transfer_peak_lr=float(self.sweeps_[nearest].peak_lr_),
            horizon_factor=float(mean[1]), horizon_factor_sd=float(math.sqrt(cov[1, 1])),
            shape_factor=float(mean[2]), shape_factor_sd=float(math.sqrt(cov[2, 2])),
            bound_ratio=float(math.exp(x_t - self._log_g[nearest])), horizon=horizon, schedule=spec,
            extrapolated_sources=tuple(i for i, s in enumerate(self.sweeps_) if s.at_edge_ is not None),
            theory_weight=float(theory_weight),
        )

    def _average(self, X: np.ndarray, y: np.ndarray, var: np.ndarray, spread_h: bool, spread_s: bool,
                 z: float) -> tuple[float, float, float, float]:
        """Average over "factor = theory prior" and "factor = 0" for each identified factor:
        returns the mixture's mean of ln gamma at the target, its ``level`` interval and the
        posterior probability of the all-theory hypothesis."""
        big = 1e2  # prior sd of alpha: flat in effect, the same under every hypothesis
        options_h = [(1.0, self.horizon_prior_sd, 1 - self.null_weight)]
        options_s = [(1.0, self.shape_prior_sd, 1 - self.null_weight)]
        if spread_h:
            options_h.append((0.0, 0.0, self.null_weight))
        if spread_s:
            options_s.append((0.0, 0.0, self.null_weight))
        logw, means, sds, is_theory = [], [], [], []
        for mh, th, ph in options_h:
            for ms, ts, ps in options_s:
                m = np.array([0.0, mh, ms])
                C = np.diag([big**2, th**2, ts**2])
                S = np.diag(var) + X @ C @ X.T
                r = y - X @ m
                _, logdet = np.linalg.slogdet(S)
                logw.append(math.log(ph) + math.log(ps) - 0.5 * (logdet + r @ np.linalg.solve(S, r)))
                prec = np.diag([1.0 / big**2, 1.0 / max(th, 1e-6) ** 2, 1.0 / max(ts, 1e-6) ** 2])
                cov = np.linalg.inv(X.T @ (X / var[:, None]) + prec)
                post = cov @ (X.T @ (y / var) + prec @ m)
                means.append(float(post[0]))
                sds.append(math.sqrt(cov[0, 0] + self.model_sd**2))
                is_theory.append(mh == 1.0 and ms == 1.0)
        lw = np.array(logw)
        w = np.exp(lw - lw.max())
        w /= w.sum()
        means_a, sds_a = np.array(means), np.array(sds)
        centre = float(w @ means_a)
        q = (1 - self.level) / 2

        def cdf(x: float) -> float:
            return float(w @ stats.norm.cdf((x - means_a) / sds_a))

        span = (float(means_a.min() - 10 * sds_a.max()), float(means_a.max() + 10 * sds_a.max()))
        lo = optimize.brentq(lambda x: cdf(x) - q, *span)
        hi = optimize.brentq(lambda x: cdf(x) - (1 - q), *span)
        return centre, float(min(lo, centre)), float(max(hi, centre)), float(w[np.array(is_theory)].sum())


def transfer_peak_lr(sweeps: Sequence[Any], target: Any, **options: Any) -> TransferResult:
    """One call: ``PeakLRTransfer(**options).fit(sweeps).predict(target)``."""
    return PeakLRTransfer(**options).fit(sweeps).predict(target)


# ---------------------------------------------------------------------------------------
# horizon extension


@dataclasses.dataclass(frozen=True)
class HorizonPlan:
    """One way to run a tuned schedule to a longer horizon.

    ``optimal_peak_ratio`` is ``gamma*(plan) / gamma*(tuned schedule)`` of the bound: 1
    means the tuned peak LR stays optimal.  ``predicted_loss`` (and its band) is the
    law's final loss, ``nan`` without a law.
    """

    name: str
    description: str
    lr: np.ndarray
    parameter: float
    optimal_peak_ratio: float
    predicted_loss: float
    lower: float
    upper: float
    spec: str | None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("lr")
        out["steps"] = int(self.lr.size)
        return out


def wssd_lr(schedule: WSD, steps: int, rho: float) -> np.ndarray:
    r"""The "wssd" extension of a WSD run to ``steps`` (Schaipp et al.): the tuned run's LR
    until its cooldown would start (``s0 = T0 - round(c T0)``), then ``rho * peak`` until
    the last ``round(c * steps)`` steps, which cool down from ``rho * peak`` to
    ``min * peak`` with the run's shape.
    """
    if not 0 < rho <= 1:
        raise ValueError(f"rho must be in (0, 1], got {rho}")
    s0 = schedule.steps - schedule.cooldown_steps
    k = int(round(schedule.cooldown * steps))
    head = schedule.replace(steps=s0 + 1, cooldown=0.0).lr()[:s0] if s0 > 0 else np.zeros(0)
    floor = min(schedule.min / rho, 1.0)
    return _pieces.join([head, _pieces.constant(steps - k - s0, rho * schedule.peak),
                         _pieces.decay(k, rho * schedule.peak, schedule.shape, floor)])


def _as_wsd(schedule: Any) -> WSD:
    s = parse_schedule(schedule)
    if not isinstance(s, WSD):
        raise ValueError(f"horizon extension needs a wsd schedule (warmup-stable-decay), got family {s.family!r}")
    return s


def extend_horizon(schedule: Any, steps: int, *, law: Any = None, level: float = 0.9) -> list[HorizonPlan]:
    r"""Plans to extend a WSD run tuned at horizon ``T0`` to ``steps`` (continuing from a
    checkpoint of the stable phase, before the cooldown at ``s0 = T0 - round(c T0)``):

    * ``wssd``: keep the peak until ``s0``, then ``rho * peak`` and the same cooldown
      fraction at the new horizon; ``rho`` solves ``gamma*(plan) = gamma*(tuned)`` so the
      tuned peak stays optimal (the bound gives rho = 0.525 for twice the horizon);
    * ``longer-cooldown``: WSD at the new horizon, same peak, with the cooldown fraction
      ``c'`` solving ``gamma*(plan) = gamma*(tuned)``, at most ``1 - s0 / steps`` (the
      cooldown cannot start before the checkpoint; ``optimal_peak_ratio`` < 1 then);
    * ``same-cooldown``: WSD at the new horizon with the same cooldown fraction and peak
      (the reference: its ``optimal_peak_ratio`` says how far the tuned peak is off).

    With a fitted ``law`` each plan carries its predicted final loss and band, and the
    plans come sorted by it.
    """
    s = _as_wsd(schedule)
    if not (isinstance(steps, (int, np.integer)) and steps > s.steps):
        raise ValueError(f"steps must be an integer > the tuned horizon {s.steps}, got {steps!r}")
    steps = int(steps)
    if s.cooldown <= 0:
        raise ValueError(f"wsd: cooldown must be > 0 to extend a run before its cooldown, got {s.cooldown}")
    s0 = s.steps - s.cooldown_steps
    target = _log_gstar(s.lr() / s.peak)

    def gap_rho(rho: float) -> float:
        return _log_gstar(wssd_lr(s, steps, rho) / s.peak) - target

    # gamma*(rho) falls with rho near 1 but falls again for tiny rho (the drop at s0
    # dominates the last-iterate term): bracket the root from rho = 1 downwards
    grid = np.linspace(1.0, 0.05, 20)
    gaps = np.array([gap_rho(r) for r in grid])
    up = np.flatnonzero(gaps >= 0)
    if gaps[0] >= 0:
        rho = 1.0
    elif up.size == 0:
        rho = float(grid[int(np.argmax(gaps))])
    else:
        i = int(up[0])
        rho = float(optimize.brentq(gap_rho, grid[i], grid[i - 1], xtol=1e-5))
    wssd = wssd_lr(s, steps, rho)
    c_max = 1.0 - s0 / steps

    def longer(c: float) -> Schedule:
        return s.replace(steps=steps, cooldown=float(c))

    def gap_c(c: float) -> float:
        return _log_gstar(longer(c).lr() / s.peak) - target

    if gap_c(c_max) <= 0:
        c_new = c_max
    elif gap_c(s.cooldown) >= 0:
        c_new = s.cooldown
    else:
        c_new = float(optimize.brentq(gap_c, s.cooldown, c_max, xtol=1e-5))
    longer_s = longer(round(c_new, 4))
    same = s.replace(steps=steps)
    plans = [
        ("wssd", f"peak until step {s0}, then {rho:.3f} x peak, cooldown over the last {s.cooldown:g}",
         wssd, rho, None),
        ("longer-cooldown", f"same peak, cooldown over the last {longer_s.cooldown:g} of {steps} steps",
         longer_s.lr(), longer_s.cooldown, longer_s.spec()),
        ("same-cooldown", f"same peak and cooldown fraction {s.cooldown:g} at {steps} steps",
         same.lr(), s.cooldown, same.spec()),
    ]
    out = []
    for name, text, lr, param, spec in plans:
        ratio = math.exp(_log_gstar(lr / s.peak) - target)
        loss = lower = upper = math.nan
        if law is not None:
            pred = law.predict_interval(lr, [steps], level=level)
            loss, lower, upper = (float(np.ravel(v)[-1]) for v in (pred.loss, pred.lower, pred.upper))
        out.append(HorizonPlan(name, text, lr, float(param), float(ratio), loss, lower, upper, spec))
    if law is not None:
        out.sort(key=lambda p: p.predicted_loss)
    return out


# ---------------------------------------------------------------------------------------
# continual pre-training


@dataclasses.dataclass(frozen=True)
class RewarmPlan:
    """A re-warm choice: ``peak2`` reached after ``rewarm`` steps, its predicted final loss
    and band, and ``bump``: the highest predicted loss after the re-warm starts minus the
    loss where it starts (the forgetting the law expects)."""

    spec: str
    peak2: float
    rewarm: int
    predicted_loss: float
    lower: float
    upper: float
    bump: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def rewarm_plans(law: Any, schedule: Any, steps: int, *,
                 peak_fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0),
                 rewarm_fractions: Sequence[float] = (0.0, 0.01, 0.02, 0.05, 0.1),
                 level: float = 0.9) -> list[RewarmPlan]:
    r"""Score re-warm choices for continuing a cosine run to ``steps`` with a fitted law.

    ``schedule`` is the finished first phase (a cosine spec, its ``steps`` is where the
    re-warm starts).  Every ``peak2 = f * peak`` (``f`` in ``peak_fractions``) and re-warm
    length ``r * (steps - at)`` (``r`` in ``rewarm_fractions``) gives a
    ``rewarm:steps=...,at=...,rewarm=...,peak2=...`` schedule; the law (the momentum law
    predicts the loss bump of a re-warm through its negative annealing area) predicts the
    whole second phase.  Plans come sorted by predicted final loss.
    """
    from lrtune.suggest import predict_batch

    first = parse_schedule(schedule)
    if first.family != "cosine":
        raise ValueError(f"rewarm_plans continues a cosine run, got family {first.family!r}")
    at = first.steps
    if not (isinstance(steps, (int, np.integer)) and steps > at + 1):
        raise ValueError(f"steps must be an integer > the first phase's {at} + 1, got {steps!r}")
    steps = int(steps)
    fr = [float(f) for f in peak_fractions]
    if not fr or not all(math.isfinite(f) and f > 0 for f in fr):
        raise ValueError(f"peak_fractions must be numbers > 0, got {list(peak_fractions)}")
    rw = sorted({int(round(float(r) * (steps - at))) for r in rewarm_fractions})
    if not rw or not all(0 <= r < steps - at for r in rw):
        raise ValueError(f"rewarm_fractions must be fractions in [0, 1) of the {steps - at} new steps, "
                         f"got {list(rewarm_fractions)}")
    cands = [Rewarm(steps=steps, peak=first.peak, warmup=first.warmup, start=first.start, min=first.min,
                    at=at, rewarm=r, peak2=f * first.peak) for f in fr for r in rw]
    grid = np.unique(np.linspace(at, steps, 101).round().astype(np.int64))
    lr = np.stack([c.lr() for c in cands])
    loss = predict_batch(law, lr, grid)
    final = predict_batch(law, lr, [steps], level=level)
    start_loss = loss[:, 0]
    out = [RewarmPlan(c.spec(), c.peak2, c.rewarm, float(final.loss[i, -1]), float(final.lower[i, -1]),
                      float(final.upper[i, -1]), float(loss[i].max() - start_loss[i]))
           for i, c in enumerate(cands)]
    out.sort(key=lambda p: p.predicted_loss)
    return out
