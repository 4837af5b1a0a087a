"""ScheduleSampler: propose the schedule a law fitted on the trials' curves predicts best."""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections import OrderedDict
from typing import Any, Callable, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from lrtune.curves import Curve
from lrtune.integrations._forecast import (CacheFreePickle, check_forecast_args, curve_from_points, law_factory,
                                           schedule_distance2, schedule_lr, schedule_shape)
from lrtune.integrations.optuna._schedule import ScheduleSpace, trial_schedule
from lrtune.laws import Law

__all__ = ["ScheduleSampler"]

_logger = logging.getLogger("lrtune.integrations.optuna")

#: A candidate is "like a pruned trial" within this squared distance
#: (``schedule_distance2``, the kernel of the forecast error, at weight exp(-0.25)).
_PRUNED_RADIUS2 = 0.25


class ScheduleSampler(CacheFreePickle, BaseSampler):
    """Propose the peak LR and schedule that a law fitted on the trials' curves predicts best.

    The schedule parameters of ``space`` (see :class:`ScheduleSpace`) are sampled
    together: once ``n_startup_trials`` trials have completed, a loss-curve law is
    fitted ``n_bootstrap`` times on the curves of the completed and the pruned trials (a
    pruned trial's curve up to where it stopped: a peak LR whose runs get pruned early
    shows the law its high losses, so the proposals move away from it), each time on a
    bootstrap resample of the curves; a trial draws one of these fits at random
    (Thompson sampling: the spread of the fits is the surrogate's uncertainty, so peak
    LRs and shapes far from the data get tried while the data disagree) and takes, among
    ``n_candidates`` random schedules of the space, the one whose predicted final loss
    under that fit is lowest, among those whose peak LR lies within ``trust_factor`` of
    the completed trials' and that are not like a pruned trial's schedule (a law
    extrapolated far beyond its data favours the edge of the range; the region grows as
    trials complete). Every other parameter, and the schedule parameters before
    ``n_startup_trials``, come from ``independent_sampler`` (TPE by default). The fits
    are a pure function of the finished trials in storage (cached on their ids) and a
    trial's draw is seeded by its number, so ``n_jobs > 1`` and several processes on one
    storage propose different, reproducible schedules. A trial's curve is its
    intermediate values (steps times ``step_unit`` optimizer steps) and its schedule the
    ``"lr_schedule"`` user attribute, or, when there is none (e.g. inside Ray Tune's
    ``OptunaSearch``), the schedule of its parameters in ``space``.

    Example:

        .. code::

            import optuna
            from lrtune.integrations.optuna import ScheduleAwarePruner, ScheduleSampler, ScheduleSpace, suggest_schedule

            space = ScheduleSpace(steps=20_000, peak_lr=(1e-4, 3e-3), families=("wsd", "cosine"), warmup=500)

            def objective(trial):
                schedule = suggest_schedule(trial, space)
                weight_decay = trial.suggest_float("weight_decay", 1e-3, 0.3, log=True)  # TPE
                ...

            study = optuna.create_study(sampler=ScheduleSampler(space, seed=0), pruner=ScheduleAwarePruner())

    Args:
        space: the :class:`ScheduleSpace` that :func:`suggest_schedule` uses.
        n_startup_trials: completed trials before the law proposes (at least 2); pruned
            trials' curves join the fit from then on.
        n_candidates: random schedules scored per trial.
        n_bootstrap: bootstrap fits the Thompson draw chooses from (1: always the plain fit,
            no exploration).
        law: a law name, an unfitted :class:`~lrtune.laws.Law` whose settings are copied,
            or a callable returning one.  Its predictions must depend on the peak LR the
            way the data do (``"momentum"`` has a peak-LR term).
        min_progress: each curve is fitted from this fraction of its schedule on.
        step_unit: optimizer steps per unit of the reported step.
        trust_factor: proposals keep their peak LR within this factor of the completed
            trials' peak LRs (the region grows as trials complete), and avoid schedules like
            a pruned trial's.
        independent_sampler: sampler of the other parameters (default ``TPESampler(seed=seed)``).
        seed: seed of the Thompson draws and of the default TPE.
    """

    def __init__(self, space: ScheduleSpace, *, n_startup_trials: int = 4, n_candidates: int = 128,
                 n_bootstrap: int = 8, law: str | Law | Callable[[], Law] = "momentum", min_progress: float = 0.1,
                 step_unit: float = 1, trust_factor: float = 2.0, independent_sampler: BaseSampler | None = None,
                 seed: int | None = None) -> None:
        if not isinstance(space, ScheduleSpace):
            raise ValueError(f"space must be a ScheduleSpace, got {type(space).__name__}")
        check_forecast_args(n_startup_trials=n_startup_trials, min_progress=min_progress, step_unit=step_unit)
        if not (isinstance(n_candidates, (int, np.integer)) and n_candidates >= 1):
            raise ValueError(f"n_candidates must be an integer >= 1, got {n_candidates!r}")
        if not (isinstance(n_bootstrap, (int, np.integer)) and n_bootstrap >= 1):
            raise ValueError(f"n_bootstrap must be an integer >= 1, got {n_bootstrap!r}")
        if not (isinstance(trust_factor, (int, float)) and trust_factor > 1):
            raise ValueError(f"trust_factor must be a factor > 1, got {trust_factor!r}")
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer or None, got {seed!r}")
        self._space = space
        self._n_startup_trials = int(n_startup_trials)
        self._n_candidates = int(n_candidates)
        self._n_bootstrap = int(n_bootstrap)
        self._law = law_factory(law)
        self._min_progress = float(min_progress)
        self._step_unit = float(step_unit)
        self._trust_factor = float(trust_factor)
        self._seed = seed
        self._entropy = int(np.random.SeedSequence(seed).entropy % (2**63))
        self._independent_sampler = independent_sampler or TPESampler(seed=seed)
        self._lock = threading.Lock()
        self._reset()

    _TRANSIENT = ("_fits",)

    def _reset(self) -> None:  # the cache, rebuilt after unpickling
        self._fits: OrderedDict[tuple, list[Law]] = OrderedDict()

    def reseed_rng(self) -> None:
        self._independent_sampler.reseed_rng()

    def before_trial(self, study: optuna.study.Study, trial: FrozenTrial) -> None:
        self._independent_sampler.before_trial(study, trial)

    def after_trial(self, study: optuna.study.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._independent_sampler.after_trial(study, trial, state, values)

    def infer_relative_search_space(self, study: optuna.study.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if len(study.directions) != 1:
            return {}
        return self._space.distributions()

    def sample_independent(self, study: optuna.study.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._independent_sampler.sample_independent(study, trial, param_name, param_distribution)

    def sample_relative(self, study: optuna.study.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        try:
            fits = self._ensemble(study)
            if not fits:
                return {}
            rng = np.random.default_rng([self._entropy, trial.number])
            law = fits[int(rng.integers(len(fits)))]
            candidates = self._space.sample(rng, self._n_candidates)
            lrs = [self._space.schedule(p).lr() for p in candidates]
            scores = np.array([law.predict(lr, [lr.size])[0] for lr in lrs])
            if study.direction == StudyDirection.MAXIMIZE:
                scores = -scores
            allowed = self._allowed(study, lrs)
            if allowed.any():
                scores = np.where(allowed, scores, np.inf)
            best = candidates[int(np.nanargmin(scores))]
            return {k: v for k, v in best.items() if k in search_space}
        except Exception as e:  # fall back to the independent sampler
            _logger.warning("ScheduleSampler: trial %s sampled by %s after an error: %s: %s", trial.number,
                            type(self._independent_sampler).__name__, type(e).__name__, e)
            return {}

    # -- the surrogate ------------------------------------------------------------------
    def _curves(self, study: optuna.study.Study) -> list[tuple[int, Curve]]:
        out = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            if not t.intermediate_values:
                continue
            if t.state == TrialState.COMPLETE and (t.value is None or not math.isfinite(t.value)):
                continue
            lr = self._trial_lr(t)
            if lr is None:
                continue
            steps = sorted(t.intermediate_values)
            c = curve_from_points(steps, [t.intermediate_values[s] for s in steps], lr, f"trial {t.number}",
                                  self._step_unit)
            if c is None:
                continue
            keep = c.steps >= self._min_progress * c.horizon
            if keep.sum() >= 3:
                out.append((t._trial_id, dataclasses.replace(c, steps=c.steps[keep], loss=c.loss[keep])))
        return out

    def _ensemble(self, study: optuna.study.Study) -> list[Law]:
        curves = self._curves(study)
        n_completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        if n_completed < self._n_startup_trials or len(curves) < 2:
            return []
        key = (study._study_id, study.study_name, tuple(sorted(i for i, _ in curves)))
        with self._lock:
            fits = self._fits.get(key)
            if fits is None:
                data = [c for _, c in sorted(curves, key=lambda x: x[0])]
                fits = [self._law().fit(data, band=False)]
                rng = np.random.default_rng([self._entropy, len(data)])
                for _ in range(self._n_bootstrap - 1):
                    pick = rng.integers(len(data), size=len(data))
                    if np.unique(pick).size < 2:
                        continue
                    try:
                        fits.append(self._law().fit([data[i] for i in pick], band=False))
                    except ValueError:
                        continue
                self._fits[key] = fits
                while len(self._fits) > 4:
                    self._fits.popitem(last=False)
            else:
                self._fits.move_to_end(key)
        return fits

    def _allowed(self, study: optuna.study.Study, lrs: list[np.ndarray]) -> np.ndarray:
        """Candidates the law may be trusted on: peak LR within ``trust_factor`` of the
        completed trials' peak LRs (a law extrapolated far beyond its data tends to
        favour the edge of the range), and not like a pruned trial (the pruner judged
        that schedule unable to win; re-proposing it wastes the trial)."""
        done, pruned = [], []
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            lr = self._trial_lr(t)
            if lr is not None:
                (done if t.state == TrialState.COMPLETE else pruned).append(lr)
        peaks = np.log([lr.max() for lr in lrs])
        ok = np.ones(len(lrs), bool)
        if done:
            known = np.log([lr.max() for lr in done])
            ok &= (peaks <= known.max() + math.log(self._trust_factor)) & (peaks >= known.min() - math.log(self._trust_factor))
        if pruned:
            shapes = np.stack([schedule_shape(lr) for lr in lrs])
            for lr in pruned:
                ok &= schedule_distance2(shapes, peaks, schedule_shape(lr), math.log(lr.max())) > _PRUNED_RADIUS2
        return ok

    def _trial_lr(self, t: FrozenTrial) -> np.ndarray | None:
        try:
            return schedule_lr(trial_schedule(t).spec())
        except ValueError:
            try:
                return schedule_lr(self._space.schedule(t.params).spec())
            except (ValueError, TypeError):
                return None
