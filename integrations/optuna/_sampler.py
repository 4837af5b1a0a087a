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
from lrtune.integrations._forecast import (DIVERGENCE_RATIO, CacheFreePickle, check_forecast_args, curve_from_points,
                                           is_diverging, law_factory, quiet_fit, reaches_horizon, schedule_distance2,
                                           schedule_lr, schedule_shape)
from lrtune.integrations.optuna._common import WarnOnce, study_key, trial_key
from lrtune.integrations.optuna._schedule import SCHEDULE_ATTR, ScheduleSpace, trial_schedule
from lrtune.laws import Law

__all__ = ["ScheduleSampler"]

_logger = logging.getLogger("lrtune.integrations.optuna")

#: A candidate is "like a pruned trial" within this squared distance
#: (``schedule_distance2``, the kernel of the forecast error, at weight exp(-0.25)).
_PRUNED_RADIUS2 = 0.25


class ScheduleSampler(WarnOnce, CacheFreePickle, BaseSampler):
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
    storage propose different, reproducible schedules once ``n_startup_trials`` have
    completed (before, ``independent_sampler`` proposes: give each process its own
    ``seed``, or processes seeded alike propose alike). A trial's curve is its
    intermediate values (steps times ``step_unit`` optimizer steps) and its schedule the
    ``"lr_schedule"`` user attribute, or, when there is none (e.g. inside Ray Tune's
    ``OptunaSearch``), the schedule of its parameters in ``space`` when they are the
    space's own (same names and distributions); a trial whose schedule is neither (one
    from before lrtune, that tuned a parameter ``"lr"``) is left out, with one warning, as
    the pruner leaves it out. A completed trial whose loss diverged (no law describes its
    curve) is left out of the fit and avoided like a pruned one; one that stopped more
    than two report intervals before its horizon (its objective returned early, or inside
    ``OptunaSearch`` a Ray Tune scheduler stopped it) is fitted like a pruned trial's
    partial curve and does not count as completed. A law that
    cannot be fitted on the curves is not tried again until another trial finishes (one
    warning; ``independent_sampler`` proposes meanwhile).

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
        independent_sampler: sampler of the other parameters, an Optuna sampler (default
            ``TPESampler(seed=seed)``).
        seed: seed of the Thompson draws and of the default TPE (an integer in ``[0, 2**32)``).
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
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or not 0 <= seed < 2**32):  # the range of TPESampler's seed
            raise ValueError(f"seed must be an integer in [0, 2**32) or None, got {seed!r}")
        seed = None if seed is None else int(seed)  # a numpy integer too
        if independent_sampler is not None and not isinstance(independent_sampler, BaseSampler):
            raise ValueError(f"independent_sampler must be an Optuna sampler (an optuna.samplers.BaseSampler such as "
                             f"TPESampler()), got {independent_sampler!r}")
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
        self._warned: set[tuple] = set()
        self._reset()

    _TRANSIENT = ("_fits", "_trials")

    def _reset(self) -> None:  # the caches, rebuilt after unpickling
        self._fits: OrderedDict[frozenset, list[Law]] = OrderedDict()  # []: the law could not be fitted
        self._trials: dict[tuple, _Finished | None] = {}  # None: the trial's schedule is unknown

    def reseed_rng(self) -> None:
        self._independent_sampler.reseed_rng()

    def before_trial(self, study: optuna.study.Study, trial: FrozenTrial) -> None:
        self._independent_sampler.before_trial(study, trial)

    def after_trial(self, study: optuna.study.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._independent_sampler.after_trial(study, trial, state, values)
        try:  # schedules recorded by hand while no trial asked for the space's parameters: once the
            # sampler could propose (after its startup trials), its proposals went unused
            names = set(self._space.distributions())
            if (state in (TrialState.COMPLETE, TrialState.PRUNED) and SCHEDULE_ATTR in trial.user_attrs
                    and not set(trial.params) & names and ("unused", *study_key(study)) not in self._warned):
                done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
                if any(set(t.params) & names for t in done):  # the space is in use: never to be said
                    with self._lock:  # (so the trials are not read again at every hand-recorded one)
                        self._warned.add(("unused", *study_key(study)))
                    return
                if len(done) <= self._n_startup_trials:
                    return
                self._warn_once(("unused", *study_key(study)),
                                f"ScheduleSampler: trial {trial.number} recorded its schedule but asked for none of "
                                f"the space's parameters ({', '.join(self._space.distributions())}), so the "
                                f"sampler's proposals went unused and its own parameters came from "
                                f"{type(self._independent_sampler).__name__}: take the schedule with "
                                f"suggest_schedule(trial, space)")
        except Exception:  # a warning must never fail a trial
            pass

    def infer_relative_search_space(self, study: optuna.study.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if len(study.directions) != 1:
            self._warn_once(("multi-objective", *study_key(study)),
                            f"ScheduleSampler models one loss: a multi-objective study is sampled by "
                            f"{type(self._independent_sampler).__name__}")
            return {}
        if study.direction == StudyDirection.MAXIMIZE:  # the law's scores are losses
            self._warn_once(("maximize", *study_key(study)),
                            f"ScheduleSampler models losses: a study that maximises is sampled by "
                            f"{type(self._independent_sampler).__name__}")
            return {}
        return self._space.distributions()

    def sample_independent(self, study: optuna.study.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._independent_sampler.sample_independent(study, trial, param_name, param_distribution)

    def sample_relative(self, study: optuna.study.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        fixed = {k: v for k, v in trial.system_attrs.get("fixed_params", {}).items()
                 if k in self._space.distributions()}  # enqueue_trial's values
        hidden = set(self._space.distributions()) - set(search_space) - set(fixed)
        if hidden:  # fixed by another sampler (PartialFixedSampler) to values it does not show
            self._warn_once(("hidden", *study_key(study)),
                            f"ScheduleSampler: schedule parameter(s) {', '.join(sorted(hidden))} are fixed outside "
                            f"it (PartialFixedSampler?) to values it cannot see, so it cannot rank schedules: "
                            f"{type(self._independent_sampler).__name__} samples the others")
            return {}
        try:
            fits = self._ensemble(study)
            if not fits:
                return {}
            rng = np.random.default_rng([self._entropy, trial.number])
            law = fits[int(rng.integers(len(fits)))]
            candidates = self._space.sample(rng, self._n_candidates, fixed)
            lrs = [self._space.schedule(p).lr() for p in candidates]
            scores = np.array([law.predict(lr, [lr.size])[0] for lr in lrs])
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
    def _finished(self, study: optuna.study.Study) -> list[_Finished]:
        """The completed and pruned trials whose schedule is known, in the order of their ids
        (cached on :func:`trial_key`: a finished trial never changes); one warning names
        the trials whose schedule is unknown."""
        out, unknown = [], []
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            key = trial_key(study, t)
            if key not in self._trials:
                self._trials[key] = self._finished_trial(t, key)
                if self._trials[key] is None:
                    unknown.append(t.number)
            if self._trials[key] is not None:
                out.append(self._trials[key])
        if unknown:
            _logger.warning("ScheduleSampler: the schedule of trial(s) %s is unknown (no %r user attribute that "
                            "parses, nor the parameters of the space): left out, as the pruner leaves them out "
                            "(record_schedule(trial, spec) records one)", ", ".join(map(str, unknown)), SCHEDULE_ATTR)
        return sorted(out, key=lambda f: f.trial_id)

    def _finished_trial(self, t: FrozenTrial, key: tuple) -> _Finished | None:
        lr = self._trial_lr(t)
        if lr is None:
            return None
        steps = sorted(t.intermediate_values)
        values = [t.intermediate_values[s] for s in steps]
        c = curve_from_points(steps, values, lr, f"trial {t.number}", self._step_unit) if steps else None
        role = "complete" if t.state == TrialState.COMPLETE else "pruned"
        if role == "complete" and (t.value is None or not math.isfinite(t.value)):
            c = None
        elif role == "complete" and is_diverging(values, DIVERGENCE_RATIO):  # what the pruner would have stopped
            self._warn_once(("diverged", *key),
                            f"ScheduleSampler: completed trial {t.number} diverged (the median of its last reports "
                            f"is above {DIVERGENCE_RATIO:g} times its lowest): no law describes its curve, it is left "
                            f"out of the fit and its schedule is avoided like a pruned trial's")
            role, c = "pruned", None
        elif role == "complete" and c is not None and not reaches_horizon(c.steps, c.horizon):
            self._warn_ended_early("ScheduleSampler", t, key, steps, c, self._step_unit,
                                   early="it stopped early (its objective returned, or a Ray Tune scheduler "
                                         "stopped it), so it is taken as a pruned trial: its curve is fitted like "
                                         "a pruned trial's and its schedule avoided (said once per study: inside "
                                         "Ray Tune's OptunaSearch every trial a scheduler stops comes so)",
                                   unit="until then such trials are fitted like pruned ones and do not count as "
                                        "completed", per_study=True)
            role = "partial"
        if c is not None:
            keep = c.steps >= self._min_progress * c.horizon
            c = dataclasses.replace(c, steps=c.steps[keep], loss=c.loss[keep]) if keep.sum() >= 3 else None
        return _Finished(t._trial_id, key, lr, c, role)

    def _ensemble(self, study: optuna.study.Study) -> list[Law]:
        finished = self._finished(study)
        curves = [f for f in finished if f.curve is not None]
        n_completed = sum(f.role == "complete" for f in finished)
        if n_completed < self._n_startup_trials or len(curves) < 2:
            return []
        key = frozenset(f.key for f in curves)
        error = None
        with self._lock:
            fits = self._fits.get(key)
            if fits is None:
                data = [f.curve for f in curves]
                try:
                    fits = [quiet_fit(self._law(), data)]
                except Exception as e:  # a pure function of these curves: it would fail again at every trial
                    fits, error = [], e
                else:
                    rng = np.random.default_rng([self._entropy, len(data)])
                    for _ in range(self._n_bootstrap - 1):
                        pick = rng.integers(len(data), size=len(data))
                        if np.unique(pick).size < 2:
                            continue
                        try:
                            fits.append(quiet_fit(self._law(), [data[i] for i in pick]))
                        except ValueError:
                            continue
                self._fits[key] = fits
                while len(self._fits) > 4:
                    self._fits.popitem(last=False)
            else:
                self._fits.move_to_end(key)
        if error is not None:
            _logger.warning("ScheduleSampler: the law could not be fitted on the curves of %d trials (%s: %s); %s "
                            "proposes the schedules until another trial finishes", len(curves), type(error).__name__,
                            error, type(self._independent_sampler).__name__)
        return fits

    def _allowed(self, study: optuna.study.Study, lrs: list[np.ndarray]) -> np.ndarray:
        """Candidates the law may be trusted on: peak LR within ``trust_factor`` of the
        completed trials' peak LRs (a law extrapolated far beyond its data tends to
        favour the edge of the range), and not like a pruned trial (the pruner judged
        that schedule unable to win; re-proposing it wastes the trial).  The law alone
        does not decide this: where it is extrapolated it can predict a pruned trial's
        schedule as good as the best, and the sampler would propose it again and again.
        The price: a trial pruned for another of its hyperparameters (a bad weight decay)
        closes its schedule's region too."""
        finished = self._finished(study)
        done = [f.lr for f in finished if f.role == "complete"]
        # a completed trial that ended early was stopped (inside Ray Tune, by the scheduler)
        pruned = [f.lr for f in finished if f.role in ("pruned", "partial")]
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
        """The schedule a trial trained with: its ``"lr_schedule"`` user attribute (what the
        pruner reads), or without one the schedule of its parameters when every parameter of
        the space it needs is there with the space's distribution (the trial was sampled from
        this space); ``None`` otherwise (an attribute that does not parse, or a trial from
        before lrtune that tuned a parameter ``"lr"``: the space's fixed values filling in
        the missing parameters would be a schedule the trial never had)."""
        if SCHEDULE_ATTR in t.user_attrs:
            try:
                return schedule_lr(trial_schedule(t).spec())
            except ValueError:
                return None
        dists = self._space.distributions()
        if t.params.get(ScheduleSpace.FAMILY, self._space.families[0]) != "wsd":  # as ScheduleSpace.suggest
            dists = {k: d for k, d in dists.items() if k not in (ScheduleSpace.COOLDOWN, ScheduleSpace.SHAPE)}
        if not dists or any(t.distributions.get(k) != d for k, d in dists.items()):
            return None
        return schedule_lr(self._space.schedule(t.params).spec())


@dataclasses.dataclass(frozen=True)
class _Finished:
    """A completed or pruned trial as the sampler sees it: its LR schedule, its curve from
    ``min_progress`` on (``None`` when fewer than 3 points are left, or none is fitted)
    and its role: ``"complete"`` (a finished run), ``"partial"`` (completed before its
    horizon: fitted like a pruned curve) or ``"pruned"`` (pruned, or completed with a
    diverged loss; the proposals avoid its schedule)."""

    trial_id: int
    key: tuple
    lr: np.ndarray
    curve: Curve | None
    role: str
