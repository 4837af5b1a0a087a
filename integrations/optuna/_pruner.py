"""ScheduleAwarePruner: prune a trial that cannot beat the best under its own LR schedule."""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from typing import Callable

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from scipy import stats

from lrtune.integrations._forecast import (DIVERGENCE_RATIO, CacheFreePickle, FinalLossModel, Forecast,
                                           check_forecast_args, curve_from_points, divergence_stop, explain_stop,
                                           forecast_stop, is_diverging, law_factory, reaches_horizon, schedule_lr)
from lrtune.integrations.optuna._common import WarnOnce, study_key, trial_key
from lrtune.integrations.optuna._schedule import trial_schedule
from lrtune.curves import Curve
from lrtune.laws import Law

__all__ = ["ScheduleAwarePruner"]

_logger = logging.getLogger("lrtune.integrations.optuna")

#: The user attribute a trial pruned by :class:`ScheduleAwarePruner` gets: why, as a dict
#: (``"reason"``: ``"forecast"``, ``"diverging"`` or ``"not finite"``; ``"step"``: the step
#: of the check; for a forecast, ``"forecast"`` (its final loss), ``"optimistic"`` (the
#: end of its band, pruned when above ``best * (1 - margin)``), ``"best"``, ``"best_from"``,
#: ``"confidence"`` and ``"margin"``; for a divergence, ``"level"`` (median of the last 5
#: reports), ``"lowest_level"`` and ``"ratio"``; for a NaN or infinite report, ``"at_step"``).
#: It is in the storage, not in the running ``optuna.Trial``'s own copy of its attributes.
PRUNED_ATTR = "lrtune_pruned"


class ScheduleAwarePruner(WarnOnce, CacheFreePickle, BasePruner):
    """Prune a trial whose forecast final loss, under its own LR schedule, cannot beat the best.

    At each check a loss-curve law (:mod:`lrtune.laws`) fitted on the completed trials'
    curves forecasts the trial's loss at the end of its schedule, placed at the level of
    the trial's last reported losses and corrected by the bias the same forecast shows
    on completed trials with similar schedules (each left out in turn, at the same
    fraction of its schedule); the forecast's standard deviation is the spread of those
    trials' corrected errors (only forecasts that came out too high count, since only
    those prune a winner), wide for a schedule unlike every completed one, never below
    ``min_error``, and wider for a peak LR beyond those of the completed trials (by the
    error the law showed when extrapolating to their lowest and highest peak LRs)
    (details: ``lrtune.integrations._forecast``). The trial is pruned when even the
    optimistic end of its forecast, ``final - q * error`` with ``q`` the one-sided
    quantile of ``confidence`` (Student t with the effective number of similar completed
    trials as degrees of freedom: wide while few have completed), is above ``(1 - margin)`` times the
    best value so far: the best completed trial (its last report, or the level of its
    last reports when single reports are noisy, in the metric reported, whatever the
    objective returned; in a constrained study the best feasible one, as for
    ``study.best_trial``), or a running trial whose pessimistic forecast is lower; a
    trial at its last step is never pruned. A trial a few reports before its horizon
    may be: its forecast is then at its most precise, and only a trial that cannot
    beat the best is pruned. A schedule that anneals late (WSD) is judged by the
    drop its cooldown will bring, not by its loss now. A NaN or infinite report (at any
    step) is pruned at once, a diverging loss (the median of its last 5 reports above
    ``divergence_ratio`` times the lowest such median) as soon as it is seen: one noisy
    report is not a divergence. Noisy reports (a minibatch's training loss) are measured
    and averaged over as many reports as it takes. Everything is read
    from the study's storage (the schedule is the trial's ``"lr_schedule"`` user
    attribute, see :func:`record_schedule`), so the decision is the same in every
    process and after a restart; fits are cached on the set of completed trials (a law
    that cannot be fitted on them is not tried again until another trial completes). A
    completed trial whose loss diverged (no law describes its curve) or that stopped more
    than two report intervals before its horizon (its last loss is not a final one) is
    left out of the fit, with a warning. A trial without a schedule, or with one that
    does not parse, is never pruned by the model (a warning is logged once); reports
    beyond a trial's horizon are not used (one warning names the step: is ``step_unit``
    right?); an internal error logs a warning and keeps the trial. Only single-objective
    studies that minimise a loss are pruned by the model; in the others only a NaN or
    infinite report prunes (a rising metric is what a maximised one should do). Why a
    trial is pruned goes to its user attribute ``"lrtune_pruned"`` (:data:`PRUNED_ATTR`)
    and to an INFO log line.

    Example:

        .. code::

            import optuna
            from lrtune.integrations.optuna import ScheduleAwarePruner, ScheduleSpace, suggest_schedule

            space = ScheduleSpace(steps=20_000, peak_lr=(1e-4, 3e-3), warmup=500)

            def objective(trial):
                schedule = suggest_schedule(trial, space)  # records trial.user_attrs["lr_schedule"]
                for step, loss in train(schedule.lr(), eval_every=200):  # your training loop
                    trial.report(loss, step)                             # step: optimizer steps
                    if trial.should_prune():
                        raise optuna.TrialPruned()
                return loss                                              # the final loss

            study = optuna.create_study(storage="sqlite:///study.db", pruner=ScheduleAwarePruner())
            study.optimize(objective, n_trials=40)

    Args:
        n_startup_trials: no model pruning until this many trials have completed (at least 2).
        n_warmup_steps: no model pruning while the reported step is below this (reported
            step units, as ``trial.report``).
        interval_steps: reported steps between checks, counted from ``n_warmup_steps``.
        confidence: prune when the trial beats the best with probability below
            ``1 - confidence`` (in (0.5, 1)).
        margin: an improvement smaller than this fraction of the best value is not worth
            running for (0: any improvement is; 0.002 prunes trials that cannot beat the
            best by 0.2 %, trading a regret of that size for fewer steps).
        min_progress: no model pruning before this fraction of the trial's schedule has
            run; the law is fitted on each completed curve from this fraction of its
            schedule on (the first steps are a transient the laws do not describe).
        max_progress: no model pruning after this fraction of the trial's schedule (1: up to its
            last step): a trial this close to its end saves few steps if pruned, and
            completed it improves the model (``max_progress=0.9``: fewer steps and no more
            regret in ``benchmarks/results/hpo_replay.md``, row ``max_progress=0.9``).
        min_error: the smallest relative standard deviation of a forecast final loss
            (0.003: 0.3 %).
        step_unit: optimizer steps per unit of the step passed to ``trial.report`` (1 when
            steps are optimizer steps; 200 when step ``k`` is the ``k``-th evaluation of
            one every 200 optimizer steps).
        law: the law: a name (``"momentum"``, ``"multipower"``), an unfitted
            :class:`~lrtune.laws.Law` whose settings are copied, or a callable returning one.
        divergence_ratio: a level (median of the last 5 reports) above this many times
            the trial's lowest level means a diverged run (pruned).
        max_folds: at most this many refits to measure the forecast error when the set of
            completed trials changes.
    """

    def __init__(self, n_startup_trials: int = 4, n_warmup_steps: int = 0, interval_steps: int = 1, *,
                 confidence: float = 0.9, margin: float = 0.0, min_progress: float = 0.1, min_error: float = 0.003,
                 step_unit: float = 1, law: str | Law | Callable[[], Law] = "momentum",
                 divergence_ratio: float = DIVERGENCE_RATIO, max_folds: int = 5, max_progress: float = 1.0) -> None:
        check_forecast_args(n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps,
                            interval_steps=interval_steps, confidence=confidence, margin=margin,
                            min_progress=min_progress, min_error=min_error, step_unit=step_unit,
                            divergence_ratio=divergence_ratio, max_folds=max_folds, max_progress=max_progress)
        self._n_startup_trials = int(n_startup_trials)
        self._max_progress = float(max_progress)
        self._n_warmup_steps = int(n_warmup_steps)
        self._interval_steps = int(interval_steps)
        self._confidence = float(confidence)
        self._z = float(stats.norm.ppf(confidence))
        self._margin = float(margin)
        self._min_progress = float(min_progress)
        self._min_error = float(min_error)
        self._step_unit = float(step_unit)
        self._law = law_factory(law)
        self._divergence_ratio = float(divergence_ratio)
        self._max_folds = int(max_folds)
        self._lock = threading.Lock()
        self._warned: set[tuple] = set()
        self._reset()

    _TRANSIENT = ("_models", "_curves")

    def __setstate__(self, state: dict) -> None:
        # a pruner pickled by an lrtune without these fields decides as it did then
        state = {"_max_progress": 1.0, **state}
        state.setdefault("_confidence", float(stats.norm.cdf(state["_z"])))
        super().__setstate__(state)

    def _reset(self) -> None:  # the caches, rebuilt after unpickling
        self._models: OrderedDict[frozenset, FinalLossModel | None] = OrderedDict()  # None: the fit failed
        self._curves: dict[tuple, Curve | None] = {}

    # -- the decision -------------------------------------------------------------------
    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        try:
            why = self._why(study, trial)
        except Exception as e:  # never raise into the study
            _logger.warning("ScheduleAwarePruner: trial %s kept after an internal error: %s: %s",
                            trial.number, type(e).__name__, e)
            return False
        if why is None:
            return False
        self._record(study, trial, why)
        return True

    def _record(self, study: optuna.study.Study, trial: FrozenTrial, why: dict) -> None:
        """Say why ``trial`` is pruned: in its user attribute ``PRUNED_ATTR`` (so that it is in
        the storage beside the trial, e.g. ``study.trials_dataframe()``'s column
        ``user_attrs_lrtune_pruned``) and in an INFO log line."""
        if trial.state != TrialState.RUNNING:  # prune() called on a finished trial, not by trial.should_prune()
            return
        try:
            study._storage.set_trial_user_attr(trial._trial_id, PRUNED_ATTR, why)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # finished meanwhile (another process): nothing to record on
        except Exception as e:  # the decision stands: only the record is lost
            self._warn_once(("record", *study_key(study)),
                            f"ScheduleAwarePruner: why trial {trial.number} is pruned could not be stored "
                            f"({type(e).__name__}: {e}); said once per study")
        try:
            _logger.info("ScheduleAwarePruner: trial %d pruned at step %s: %s", trial.number, why["step"],
                         explain_stop(why))
        except Exception:  # pragma: no cover - the decision stands, only its log line is lost
            pass

    def _why(self, study: optuna.study.Study, trial: FrozenTrial) -> dict | None:
        """Why ``trial`` is to be pruned now (a JSON-ready dict with the key ``"reason"``), or
        ``None`` to keep it."""
        step = trial.last_step
        if step is None:
            return None
        steps = sorted(trial.intermediate_values)
        values = [trial.intermediate_values[s] for s in steps]
        if not all(math.isfinite(v) for v in values):  # at any step: a run resumed from a checkpoint reports lower ones
            first = next(s for s, v in zip(steps, values) if not math.isfinite(v))
            return {"reason": "not finite", "step": step, "at_step": first}
        if len(study.directions) != 1 or study.direction != StudyDirection.MINIMIZE:
            # a maximised metric (an accuracy) rises in a healthy run: not a divergence
            self._warn_once(("direction", *study_key(study)),
                            "ScheduleAwarePruner forecasts losses: only single-objective studies that "
                            "minimise are pruned by the model")
            return None
        diverging = divergence_stop(values, self._divergence_ratio, step)
        if diverging is not None:
            return diverging
        if steps[0] == 0 and self._step_unit != 1:  # evaluations counted from 0 (an epoch number)
            self._warn_once(("step zero", *study_key(study)),
                            f"ScheduleAwarePruner: trial {trial.number} reports step 0 with step_unit="
                            f"{self._step_unit:g}: step k is read as k x {self._step_unit:g} optimizer steps, so "
                            f"a report at step 0 is no point of the curve and, if the steps count evaluations "
                            f"from 0 (an epoch number, as optuna_integration's PyTorchLightningPruningCallback "
                            f"reports), every report is placed one evaluation early and the last one before the "
                            f"horizon. Report the evaluation counted from 1 (epoch + 1), or the optimizer step "
                            f"(trainer.global_step) with step_unit=1")
        if len(steps) == 1:  # read the completed trials once a trial, whatever its steps: their warnings
            self._finished_curves(study)  # (a wrong step_unit keeps every report below min_progress) are said
        if step < self._n_warmup_steps or not self._is_check_step(step, trial):
            return None
        try:
            schedule = trial_schedule(trial)
        except ValueError as e:
            self._warn_once(("schedule", *trial_key(study, trial)),
                            f"ScheduleAwarePruner: {e}; not pruned by the model")
            return None
        lr = schedule_lr(schedule.spec())
        if round(steps[-1] * self._step_unit) > lr.size:  # e.g. tokens reported as steps: every report is dropped
            self._warn_once(("beyond", *trial_key(study, trial)),
                            f"ScheduleAwarePruner: trial {trial.number} reported step {steps[-1]}, "
                            f"{steps[-1] * self._step_unit:g} optimizer steps at step_unit={self._step_unit:g}, "
                            f"beyond its schedule's horizon of {lr.size} optimizer steps: reports past the horizon "
                            f"are not used (is step_unit right?)")
        curve = curve_from_points(steps, values, lr, f"trial {trial.number}", self._step_unit)
        if curve is None or curve.steps[-1] < self._min_progress * lr.size:
            return None
        if curve.steps[-1] > self._max_progress * lr.size:
            return None
        finished = self._finished_curves(study)
        model = self._model(study, finished)
        if model is None:
            return None
        best, best_from = self._best(study, model, finished, exclude=trial.number)
        return forecast_stop(model.forecast(curve.lr, curve.steps, curve.loss), self._z, best, best_from,
                             confidence=self._confidence, margin=self._margin, step=step)

    def _is_check_step(self, step: int, trial: FrozenTrial) -> bool:
        if self._interval_steps == 1:
            return True
        lower = (step - self._n_warmup_steps) // self._interval_steps * self._interval_steps + self._n_warmup_steps
        earlier = [s for s in trial.intermediate_values if s < step]
        return not earlier or max(earlier) < lower

    # -- reading the study --------------------------------------------------------------
    def _finished_curves(self, study: optuna.study.Study) -> list[tuple[FrozenTrial, Curve]]:
        out = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            key = trial_key(study, t)
            if key not in self._curves:  # a completed trial never changes
                self._curves[key] = self._completed_curve(t, key)
            if self._curves[key] is not None:
                out.append((t, self._curves[key]))
        return out

    def _completed_curve(self, t: FrozenTrial, key: tuple) -> Curve | None:
        if t.value is None or not math.isfinite(t.value) or not t.intermediate_values:
            return None
        try:
            lr = schedule_lr(trial_schedule(t).spec())
        except ValueError:
            return None
        steps = sorted(t.intermediate_values)
        values = [t.intermediate_values[s] for s in steps]
        if is_diverging(values, self._divergence_ratio):  # e.g. completed before this pruner was attached
            self._warn_once(("diverged", *key),
                            f"ScheduleAwarePruner: completed trial {t.number} diverged (the median of its last reports "
                            f"is above {self._divergence_ratio:g} times its lowest): no law describes its curve, it is "
                            f"left out of the fit")
            return None
        c = curve_from_points(steps, values, lr, f"trial {t.number}", self._step_unit)
        if c is None or c.steps.size < 3:
            return None
        if not reaches_horizon(c.steps, c.horizon):
            self._warn_ended_early("ScheduleAwarePruner", t, key, steps, c, self._step_unit,
                                   early="it stopped early, its last loss is not a final one, and it is left out of "
                                         "the fit and of the best value",
                                   unit="until then completed trials that end early are left out and the model "
                                        "prunes nothing")
            return None
        return c

    def _model(self, study: optuna.study.Study, finished: list[tuple[FrozenTrial, Curve]]) -> FinalLossModel | None:
        if len(finished) < self._n_startup_trials:
            return None
        key = frozenset(trial_key(study, t) for t, _ in finished)
        error = None
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            try:
                model = FinalLossModel([c for _, c in finished], self._law, burn_in=self._min_progress,
                                       min_error=self._min_error, max_folds=self._max_folds)
            except Exception as e:  # a pure function of these curves: it would fail again at every check
                model, error = None, e
            self._models[key] = model
            while len(self._models) > 8:
                self._models.popitem(last=False)
        if error is not None:
            _logger.warning("ScheduleAwarePruner: the law could not be fitted on the %d completed trials (%s: %s); "
                            "no model pruning until another trial completes", len(finished), type(error).__name__,
                            error)
        return model

    def _best(self, study: optuna.study.Study, model: FinalLossModel, finished: list[tuple[FrozenTrial, Curve]],
              exclude: int) -> tuple[float, str]:
        """The best feasible completed trial's final level, or a running trial's pessimistic
        forecast if lower, and which trial it is (``"trial 3"``, ``"trial 5 (running)"``).
        In a constrained study (Optuna's ``trial.set_constraint`` or a sampler's
        ``constraints_func``) a trial is feasible when all its constraint values are <= 0, as
        for ``study.best_trial``; a running trial counts there only once its constraints are
        set and met (they are usually set when it ends).  Infeasible trials
        are still fitted: their curves are as good as any.  Without a feasible trial the
        best is unknown and nothing is pruned by the model."""
        constrained = any(t.constraints for t, _ in finished)
        if constrained:
            best, best_from = min(((model.final_level(c), c.name) for t, c in finished if _feasible(t)),
                                  default=(math.inf, "no feasible trial"), key=lambda p: p[0])
        else:  # the model keeps the completed curves of lowest final loss
            best, best_from = model.best_final_, model.best_name_
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.number == exclude or not t.intermediate_values:
                continue
            if constrained and not (t.constraints and _feasible(t)):
                continue
            f = self._forecast_running(t, model)
            if f is not None and f.upper(self._z) < best:
                best, best_from = f.upper(self._z), f"trial {t.number} (running)"
        return best, best_from

    def _forecast_running(self, t: FrozenTrial, model: FinalLossModel) -> Forecast | None:
        try:
            lr = schedule_lr(trial_schedule(t).spec())
        except ValueError:
            return None
        steps = sorted(t.intermediate_values)
        values = [t.intermediate_values[s] for s in steps]
        if not all(math.isfinite(v) for v in values) or is_diverging(values, self._divergence_ratio):
            return None  # it is pruned at its next check
        c = curve_from_points(steps, values, lr, f"trial {t.number}", self._step_unit)
        return None if c is None else model.forecast(c.lr, c.steps, c.loss)


def _feasible(t: FrozenTrial) -> bool:
    """Whether ``t`` meets its constraints (all <= 0), as ``study.best_trial`` counts them."""
    return all(v <= 0.0 for v in t.constraints.values())
