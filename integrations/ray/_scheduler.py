"""ScheduleAwareScheduler: stop a Ray Tune trial that cannot beat the best under its own LR schedule."""

from __future__ import annotations

import bisect
import json
import logging
import math
import pickle
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.result import DEFAULT_METRIC, EXPR_RESULT_FILE
from ray.tune.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler
from scipy import stats

from lrtune.curves import Curve
from lrtune.integrations._forecast import (DIVERGENCE_RATIO, FinalLossModel, check_forecast_args, curve_from_points,
                                           divergence_stop, explain_stop, forecast_stop, is_diverging, law_factory,
                                           plain_step, reaches_horizon, schedule_lr, step_unit_hint)
from lrtune.laws import Law
from lrtune.schedules import parse_schedule

if TYPE_CHECKING:  # pragma: no cover
    from ray.tune.execution.tune_controller import TuneController

__all__ = ["ScheduleAwareScheduler"]

_logger = logging.getLogger("lrtune.integrations.ray")


class ScheduleAwareScheduler(FIFOScheduler):
    """Stop a trial whose forecast final loss, under its own LR schedule, cannot beat the best.

    The rule of :class:`lrtune.integrations.optuna.ScheduleAwarePruner`: at each result
    a loss-curve law fitted on the completed trials' curves forecasts the trial's loss
    at the end of its schedule (``trial.config[schedule_key]``, a spec string or
    :class:`~lrtune.schedules.Schedule`), placed at the level of its last results and
    corrected by the bias the same forecast shows on completed trials with similar
    schedules (each left out in turn); the forecast's standard deviation is the spread
    of their corrected errors (forecasts that came out too high), wide for a schedule
    unlike every completed one or for a peak LR beyond the completed trials', never below
    ``min_error``. The trial is stopped (``STOP``) when ``final - q * error`` is above
    ``(1 - margin)`` times the best completed trial's final ``metric`` or a running
    trial's pessimistic forecast, ``q`` being the one-sided quantile of ``confidence``
    (Student t with the effective number of similar completed trials as degrees of
    freedom); otherwise it continues
    (``CONTINUE``); a trial at its last step is never stopped. A NaN or infinite metric is
    stopped at once, a diverging one (the median of its last 5 reports, in the order of
    their steps, above ``divergence_ratio`` times the lowest such median) as soon as it is
    seen: one noisy report is not a divergence. A trial without a schedule in its
    config, or with one that does not parse, is never stopped by the model (a warning is
    logged once for a missing schedule, once per trial for a malformed one). A result
    whose metric is missing or ``None`` is skipped; one without ``time_attr`` cannot be
    placed (one warning). Only ``mode="min"`` is modelled: with ``mode="max"`` (an accuracy, which
    rises) only a NaN or infinite metric stops a trial. Why a trial was stopped is in
    :attr:`stop_reasons` and in an INFO log line.

    A trial's results are kept by step: a trial Tune recovers after a failure (from
    scratch or from a checkpoint) reports an earlier step again, and its results from that
    step on are dropped, to be replaced as it reports again. A trial counts as completed,
    its curve fitted, only when its last reported step reaches its schedule's horizon or
    comes within two report intervals (the largest gap between its reported steps; the
    second for a missing report when steps are counted in reports): the last loss of a trial ended earlier by something else (a
    stopper, a time budget, a trainable returning early) is not a final loss, and a warning
    says so. Results past the horizon (a wrong ``step_unit``?) are ignored, with one
    warning; once a trial reports more than two report intervals past its horizon, no trial
    is stopped by the model any more (the steps are not what ``step_unit`` says).

    When an experiment resumes (``Tuner.restore``), Tune brings back the scheduler as it was
    when the ``Tuner`` was created and adds every trial again; the scheduler then reads each
    trial's earlier results back from the ``result.json`` Tune writes in the trial's folder,
    so the trials that completed before the interruption are fitted again and a resumed
    trial keeps its curve (a trial restarted from scratch drops them as it reports its
    first step again). Without that file (Tune's default loggers turned off) a resumed
    experiment starts again from no completed trials. ``save`` / ``restore`` keep every
    trial's results, which trials completed or stopped, and ``metric`` and ``mode``, so a
    scheduler restored with the same arguments decides as before (Ray Tune 2.60 itself
    never calls them).

    Example:

        .. code::

            from ray import tune
            from lrtune.integrations.ray import ScheduleAwareScheduler
            from lrtune.schedules import parse_schedule

            def train(config):
                lrs = parse_schedule(config["lr_schedule"]).lr()
                for k, loss in enumerate(run(lrs, eval_every=200), start=1):  # your training loop
                    tune.report({"loss": loss})                                # iteration k = step 200 k

            tuner = tune.Tuner(
                train,
                param_space={"lr_schedule": tune.grid_search([
                    "wsd:steps=20000,peak=1e-3,warmup=500,cooldown=0.2",
                    "cosine:steps=20000,peak=1e-3,warmup=500"])},
                tune_config=tune.TuneConfig(metric="loss", mode="min",
                                            scheduler=ScheduleAwareScheduler(step_unit=200)))
            tuner.fit()

    Args:
        metric: the loss reported by the trainable (or set by ``TuneConfig``).
        mode: ``"min"`` (or set by ``TuneConfig``).
        time_attr: the result field that counts progress (``"training_iteration"``).
        schedule_key: key of the schedule spec in ``trial.config`` (``"a/b"`` for a nested key).
        step_unit: optimizer steps per unit of ``time_attr``.
        n_startup_trials: no model stopping until this many trials have completed (at least 2).
        grace_period: no model stopping while ``time_attr`` is below this (its units).
        confidence: stop when the trial beats the best with probability below
            ``1 - confidence`` (in (0.5, 1)).
        margin: an improvement smaller than this fraction of the best value is not worth
            running for (0: any improvement is).
        min_progress: no model stopping before this fraction of the trial's schedule has run;
            the law is fitted on each completed curve from this fraction of its schedule on.
        min_error: the smallest relative standard deviation of a forecast final loss.
        max_progress: no model stopping after this fraction of the trial's schedule (1: up to
            its last step): a trial this close to its end saves few steps if stopped, and
            completed it improves the model (``max_progress=0.9``: fewer steps and no more
            regret in ``benchmarks/results/hpo_replay.md``, row ``max_progress=0.9``).
        law: a law name, an unfitted :class:`~lrtune.laws.Law` whose settings are copied, or
            a callable returning one.
        divergence_ratio: a level (median of the last 5 reports) above this many times
            the trial's lowest level means a diverged run (stopped).
        max_folds: at most this many refits to measure the forecast error when a trial completes.
    """

    def __init__(self, metric: Optional[str] = None, mode: Optional[str] = None,
                 time_attr: str = "training_iteration", schedule_key: str = "lr_schedule", *,
                 step_unit: float = 1, n_startup_trials: int = 4, grace_period: float = 0,
                 confidence: float = 0.9, margin: float = 0.0, min_progress: float = 0.1, min_error: float = 0.003,
                 law: str | Law | Callable[[], Law] = "momentum", divergence_ratio: float = DIVERGENCE_RATIO,
                 max_folds: int = 5, max_progress: float = 1.0) -> None:
        super().__init__()
        if mode is not None and mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if not (isinstance(time_attr, str) and time_attr):
            raise ValueError(f"time_attr must be a result field name, got {time_attr!r}")
        if not (isinstance(schedule_key, str) and schedule_key):
            raise ValueError(f"schedule_key must be a config key, got {schedule_key!r}")
        check_forecast_args(step_unit=step_unit, n_startup_trials=n_startup_trials, grace_period=grace_period,
                            confidence=confidence, margin=margin, min_progress=min_progress, min_error=min_error,
                            divergence_ratio=divergence_ratio, max_folds=max_folds, max_progress=max_progress)
        self._max_progress = float(max_progress)
        self._metric = metric
        self._mode = mode
        self._given = (metric, mode)  # those of the constructor; TuneConfig's are per experiment
        self._time_attr = time_attr
        self._schedule_key = schedule_key
        self._step_unit = float(step_unit)
        self._n_startup_trials = int(n_startup_trials)
        self._grace_period = float(grace_period)
        self._confidence = float(confidence)
        self._z = float(stats.norm.ppf(confidence))
        self._margin = float(margin)
        self._min_progress = float(min_progress)
        self._min_error = float(min_error)
        self._law = law_factory(law)
        self._divergence_ratio = float(divergence_ratio)
        self._max_folds = int(max_folds)
        self._reset()

    def _reset(self) -> None:
        # state (saved): per trial id
        self._points: dict[str, list[tuple[float, float]]] = {}  # (time_attr, metric) by time, one per time
        self._specs: dict[str, Optional[str]] = {}
        self._order: dict[str, int] = {}  # trials in the order they came: their curves' names
        self._started: dict[str, float] = {}  # trials a resumed experiment added again: when they started
        self._completed: set[str] = set()  # trials that completed at their horizon with a finite last value
        self._stopped: set[str] = set()  # trials that ended otherwise: stopped, failed, removed, ended early
        self._reasons: dict[str, dict] = {}  # trials this scheduler stopped: why (stop_reasons)
        self._warned: set[str] = set()
        self._model_key: Optional[tuple] = None
        self._model: Optional[FinalLossModel] = None
        self._finished: dict[str, Optional[Curve]] = {}
        self._unit_wrong = False  # a trial reported far past its horizon: no stops by the model

    # -- Ray Tune hooks -----------------------------------------------------------------
    def set_search_properties(self, metric: Optional[str], mode: Optional[str], **spec: Any) -> bool:
        # Tune calls this once as an experiment starts (Tuner.fit, tune.run, a restored
        # Tuner): a scheduler that served an earlier experiment would judge the new trials
        # against the old ones, so it starts afresh, with the metric and mode of its
        # constructor (a TuneConfig's were the old experiment's)
        if self._points and not getattr(self, "_restored", False):
            _logger.info("ScheduleAwareScheduler: a new experiment starts: the %d trials of the previous one are "
                         "forgotten", len(self._points))
            self._reset()
            self._metric, self._mode = self._given
        self._restored = False  # a restored state serves the experiment that starts now, once
        if (self._metric and metric) or (self._mode and mode):
            return False
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
        if self._metric is None and self._mode:
            self._metric = DEFAULT_METRIC
        return True

    def on_trial_add(self, tune_controller: "TuneController", trial: Trial) -> None:
        if not self._metric or self._mode not in ("min", "max"):
            raise ValueError(f"{type(self).__name__} has no metric ({self._metric!r}) or mode ({self._mode!r}): pass "
                             "them here or to tune.TuneConfig")
        tid = trial.trial_id
        self._specs[tid] = self._read_spec(trial)
        self._order.setdefault(tid, len(self._order))
        if not self._points.get(tid):
            self._points[tid], started = self._read_results(trial)
            if self._points[tid]:
                self._place_restored(tid, started)
                self._check_horizon(tid, warn=False)
            if self._points[tid] and trial.status == Trial.ERROR:
                self._stopped.add(tid)
            elif self._points[tid] and trial.status == Trial.TERMINATED:
                # Tune marks a trial a scheduler stopped TERMINATED too: one that ended a report or
                # more before its horizon was stopped (a stop at the very last report passes for a
                # completion, its loss then one report short of final)
                self._complete(tid, {}, warn=False, intervals=1.0)
        if trial.status not in (Trial.TERMINATED, Trial.ERROR):
            # Tune adds a trial again when it recovers it after a failure: it runs again, from its
            # last checkpoint (its earlier results are not reported again, so they are kept) or
            # from scratch (its results replace those at the same steps). A resumed experiment
            # adds its ended trials again too, as they were (TERMINATED or ERROR): they stay so.
            self._stopped.discard(tid)
            self._completed.discard(tid)
            self._finished.pop(tid, None)

    def on_trial_result(self, tune_controller: "TuneController", trial: Trial, result: dict) -> str:
        if result.get(self._metric) is None:  # a result without the metric (e.g. between evaluations)
            return TrialScheduler.CONTINUE
        if result.get(self._time_attr) is None:
            self._warn_once("no time", f"ScheduleAwareScheduler: trial {trial.trial_id} reported {self._metric!r} "
                                       f"without {self._time_attr!r} (time_attr): its results cannot be placed on "
                                       f"its schedule and no trial is stopped by the model; report "
                                       f"{self._time_attr!r} or pass the time_attr the trainable reports")
            return TrialScheduler.CONTINUE
        try:
            return self._decide(trial, float(result[self._time_attr]), float(result[self._metric]))
        except Exception as e:  # never raise into the run
            self._warn_once(f"error {trial.trial_id} {type(e).__name__}",
                            f"ScheduleAwareScheduler: trial {trial.trial_id} continues after an internal error: "
                            f"{type(e).__name__}: {e} (said once per trial and kind of error)")
            return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: "TuneController", trial: Trial, result: dict) -> None:
        try:
            self._complete(trial.trial_id, result)
        except Exception as e:  # never raise into the run: the trial completes, not counted here
            _logger.warning("ScheduleAwareScheduler: trial %s is not counted as completed after an internal "
                            "error: %s: %s", trial.trial_id, type(e).__name__, e)

    def on_trial_remove(self, tune_controller: "TuneController", trial: Trial) -> None:
        self._stopped.add(trial.trial_id)

    def on_trial_error(self, tune_controller: "TuneController", trial: Trial) -> None:
        self._stopped.add(trial.trial_id)

    def debug_string(self) -> str:
        return (f"Using ScheduleAwareScheduler: {len(self._completed)} completed, {len(self._stopped)} stopped, "
                f"{len(self._points) - len(self._completed) - len(self._stopped)} running.")

    def save(self, checkpoint_path: str) -> None:
        state = {k: getattr(self, k)
                 for k in ("_points", "_specs", "_order", "_completed", "_stopped", "_reasons", "_warned", "_metric",
                           "_mode")}
        with open(checkpoint_path, "wb") as f:
            pickle.dump(state, f)

    def restore(self, checkpoint_path: str) -> None:
        """Take back the state :meth:`save` wrote, ``metric`` and ``mode`` included: the
        checkpoint's replace those given to the constructor or by ``TuneConfig``."""
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self.__dict__.update(state)
        self._completed = set(self._completed)  # a dict of final values in older checkpoints
        self._reasons = state.get("_reasons", {})
        if "_order" not in state:  # older checkpoints: the trials in the order of their points
            self._order = {tid: i for i, tid in enumerate(self._points)}
        # by step, the last value at each (in the order they came in older checkpoints)
        self._points = {tid: sorted(dict(pts).items()) for tid, pts in self._points.items()}
        self._model_key, self._model, self._finished = None, None, {}
        self._restored = True  # kept when the next experiment starts (set_search_properties)

    def __setstate__(self, state: dict) -> None:
        # a scheduler pickled (in a Tuner's tuner.pkl) by an lrtune without these fields
        self.__dict__.update(state)
        if "_order" not in state:
            self._order = {tid: i for i, tid in enumerate(state.get("_points", {}))}
        if "_given" not in state:
            self._given = (None, None)
        if "_started" not in state:
            self._started = {}
        if "_unit_wrong" not in state:
            self._unit_wrong = False
        if "_max_progress" not in state:
            self._max_progress = 1.0
        if "_reasons" not in state:
            self._reasons = {}
        if "_confidence" not in state:
            self._confidence = float(stats.norm.cdf(self._z))

    @property
    def stop_reasons(self) -> dict[str, dict]:
        """Why each trial this scheduler stopped was stopped, by trial id: a dict with
        ``"reason"`` (``"forecast"``, ``"diverging"`` or ``"not finite"``) and ``"step"``
        (the trial's ``time_attr`` at the stop); for a forecast also ``"forecast"`` (its final
        loss), ``"optimistic"`` (the end of its band that had to beat the best), ``"best"``,
        ``"best_from"`` (the trial id it is, ``"(running)"`` for a running trial's
        pessimistic forecast), ``"confidence"`` and ``"margin"`` (stopped when
        ``optimistic > best * (1 - margin)``); for a divergence ``"level"`` (the median of
        the last 5 results), ``"lowest_level"`` and ``"ratio"``; for a NaN or infinite
        metric ``"at_step"``.  Each stop is also logged at INFO level.  Kept by
        :meth:`save` / :meth:`restore`; a ``Tuner.restore`` runs the scheduler pickled when
        the Tuner was built, without the stops made before the interruption."""
        return dict(self._reasons)

    # -- the decision -------------------------------------------------------------------
    def _decide(self, trial: Trial, t: float, value: float) -> str:
        tid = trial.trial_id
        if tid not in self._specs:
            self._specs[tid] = self._read_spec(trial)
        self._order.setdefault(tid, len(self._order))
        self._add_point(tid, t, value)
        self._check_horizon(tid)
        if t == 0 and self._step_unit != 1:  # evaluations counted from 0
            self._warn_once("step zero", f"ScheduleAwareScheduler: trial {tid} reported {self._time_attr}=0 with "
                                         f"step_unit={self._step_unit:g}: {self._time_attr} k is read as k x "
                                         f"{self._step_unit:g} optimizer steps, so a count from 0 places every result "
                                         f"one report early; count from 1 (training_iteration does)")
        if not math.isfinite(value):
            return self._stop(tid, {"reason": "not finite", "step": t, "at_step": t})
        if self._mode != "min":  # a rising metric (an accuracy) is no divergence
            self._warn_once("mode", "ScheduleAwareScheduler forecasts losses: only mode='min' is stopped by the model")
            return TrialScheduler.CONTINUE
        diverging = divergence_stop([v for _, v in self._points[tid]], self._divergence_ratio, t)
        if diverging is not None:
            return self._stop(tid, diverging)
        if t < self._grace_period:
            return TrialScheduler.CONTINUE
        curve = self._curve(tid)
        if curve is None or curve.steps[-1] < self._min_progress * curve.horizon:
            return TrialScheduler.CONTINUE
        if curve.steps[-1] > self._max_progress * curve.horizon:
            return TrialScheduler.CONTINUE
        if self._unit_wrong:  # a trial reported far past its horizon: the steps are not what the unit says
            return TrialScheduler.CONTINUE
        model = self._fitted()
        if model is None:
            return TrialScheduler.CONTINUE
        best, best_from = model.best_final_, model.best_name_.split(" ", 1)[-1]  # named "<order> <trial id>"
        for other, pts in self._points.items():
            if other == tid or other in self._completed or other in self._stopped or not pts:
                continue
            c = self._curve(other, warn=False)
            if c is None or is_diverging([v for _, v in pts], self._divergence_ratio):
                continue
            f = model.forecast(c.lr, c.steps, c.loss)
            if f is not None and f.upper(self._z) < best:
                best, best_from = f.upper(self._z), f"{other} (running)"
        why = forecast_stop(model.forecast(curve.lr, curve.steps, curve.loss), self._z, best, best_from,
                            confidence=self._confidence, margin=self._margin, step=t)
        return TrialScheduler.CONTINUE if why is None else self._stop(tid, why)

    def _stop(self, tid: str, why: dict) -> str:
        self._stopped.add(tid)
        self._reasons[tid] = why
        try:
            _logger.info("ScheduleAwareScheduler: trial %s stopped at %s=%s: %s", tid, self._time_attr,
                         plain_step(why["step"]), explain_stop(why))
        except Exception:  # pragma: no cover - the stop stands, only its log line is lost
            pass
        return TrialScheduler.STOP

    def _add_point(self, tid: str, t: float, value: float) -> None:
        """Keep the trial's points by time: a trial Tune restarts from scratch or from an
        earlier checkpoint reports an earlier time again, and its curve is the one it is on
        now: the failed attempt's points from that time on are dropped (they come back as
        the trial reports them again)."""
        pts = self._points.setdefault(tid, [])
        if pts and pts[-1][0] >= t:
            del pts[bisect.bisect_left(pts, t, key=lambda p: p[0]):]
        pts.append((t, value))

    def _place_restored(self, tid: str, started: float) -> None:
        """Order the trials a resumed experiment adds again by when they started (Tune adds
        them newest first), within the places they were given: the curves' names, and so the
        forecast's folds, are those of the uninterrupted experiment."""
        self._started[tid] = started
        tids = sorted(self._started, key=lambda t: (self._started[t], t))
        slots = sorted(self._order[t] for t in tids)
        self._order.update(zip(tids, slots))

    def _complete(self, tid: str, result: dict, warn: bool = True, intervals: float = 2.0) -> None:
        """Take a trial's last result and count it as completed if it ran to its horizon."""
        if result and self._time_attr in result and self._metric in result:
            try:
                t, value = float(result[self._time_attr]), float(result[self._metric])
            except (TypeError, ValueError) as e:  # as in on_trial_result: the point is ignored
                _logger.warning("ScheduleAwareScheduler: trial %s: its last result is ignored: %s: %s",
                                tid, type(e).__name__, e)
            else:
                self._add_point(tid, t, value)
                self._check_horizon(tid, warn=False)
        pts = self._points.get(tid)
        if tid in self._stopped or not pts or not math.isfinite(pts[-1][1]):
            return
        spec = self._specs.get(tid)
        if spec is not None and not spec.startswith("!"):
            horizon = schedule_lr(spec).size
            steps = np.array([p[0] for p in pts]) * self._step_unit
            # a trial ended earlier by something else than this scheduler (a stopper, a time
            # budget) did not reach its final loss
            if not reaches_horizon(steps, horizon, intervals):
                if warn:
                    hint = step_unit_hint([p[0] for p in pts], self._step_unit, horizon)
                    self._warn_once("step unit" if hint else f"early {tid}",  # a wrong step_unit: once, not per trial
                                    f"ScheduleAwareScheduler: trial {tid} ended at step {steps[-1]:.0f} "
                                    f"({self._time_attr}={pts[-1][0]:g}), before its schedule's horizon of "
                                    f"{horizon} steps: not counted as a completed run{hint}")
                self._stopped.add(tid)
                return
        self._completed.add(tid)

    def _read_results(self, trial: Trial) -> tuple[list[tuple[float, float]], float]:
        """The results a trial reported before the experiment was interrupted, read back from
        the ``result.json`` Tune keeps in the trial's folder (a trial a resumed experiment adds
        again), and the time of its first one; ``[]`` for a new trial (no folder yet) or when
        there is no such file."""
        try:  # a new trial has no folder yet: Ray raises here
            fs, folder = trial.storage.storage_filesystem, trial.storage.trial_fs_path
        except Exception:
            return [], math.inf
        path = f"{folder}/{EXPR_RESULT_FILE}"
        try:
            import pyarrow.fs

            if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
                return [], math.inf
            with fs.open_input_stream(path) as f:
                text = f.readall().decode("utf-8", errors="replace")
        except Exception as e:  # unreadable: the trial is judged on what it reports from now on
            self._warn_once(f"read {trial.trial_id}",
                            f"ScheduleAwareScheduler: trial {trial.trial_id}: its earlier results could not be read "
                            f"from {path} ({type(e).__name__}: {e}); it is judged on its results from now on")
            return [], math.inf
        pts: dict[float, float] = {}
        started = math.inf
        for line in text.splitlines():
            try:  # a line cut short when the run was interrupted is skipped
                row = json.loads(line)
                started = min(started, float(row.get("timestamp", math.inf)))
                pts[float(_field(row, self._time_attr))] = float(_field(row, self._metric))
            except (ValueError, TypeError, KeyError, AttributeError):
                continue
        return sorted(pts.items()), started

    def _read_spec(self, trial: Trial) -> Optional[str]:
        node: Any = trial.config
        for part in self._schedule_key.split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return None
        try:
            return parse_schedule(node).spec()
        except (ValueError, TypeError) as e:  # malformed: warned, with the reason, at the first check
            if isinstance(node, (list, tuple, np.ndarray)):
                return (f"!an LR array of {len(node)} values: give the schedule's spec string or an "
                        f"lrtune.schedules.Schedule (lrtune.schedules.lr_from_torch gives only the array)")
            return f"!{_short(repr(node))}: {_short(str(e))}"

    def _check_horizon(self, tid: str, warn: bool = True) -> None:
        """After a trial's points changed: a trial that reported past its schedule's horizon
        is warned of (once per experiment), and one far past it (by more than a late report)
        turns the model off: its steps are not what ``step_unit`` says, nor, probably, any
        other trial's."""
        spec, pts = self._specs.get(tid), self._points.get(tid)
        if spec is None or spec.startswith("!") or not pts:
            return
        horizon = schedule_lr(spec).size
        last = float(np.rint(pts[-1][0] * self._step_unit))
        gap = float(np.diff([p[0] for p in pts]).max()) * self._step_unit if len(pts) > 1 else 0.0
        if last > horizon + 2.0 * gap:
            self._unit_wrong = True
        if warn and last > horizon:
            self._warn_once("beyond",
                            f"ScheduleAwareScheduler: trial {tid} reported {self._time_attr}={pts[-1][0]:g}, step "
                            f"{last:.0f} with step_unit={self._step_unit:g}, beyond its schedule's horizon of "
                            f"{horizon} steps: results past the horizon are ignored, and from a trial "
                            f"far past its horizon on no trial is stopped by the model (is step_unit right?)")

    def _curve(self, tid: str, warn: bool = True) -> Optional[Curve]:
        spec = self._specs.get(tid)
        if spec is None or spec.startswith("!"):
            if warn:  # a missing schedule: once (every trial of that experiment lacks it); a malformed one: per trial
                what = "has no schedule" if spec is None else "has a malformed schedule"
                why = " (nor, probably, the other trials: said once)" if spec is None else f" ({spec[1:]})"
                self._warn_once("no schedule" if spec is None else tid,
                                f"ScheduleAwareScheduler: trial {tid} {what} in config[{self._schedule_key!r}]{why}; "
                                "not stopped by the model")
            return None
        lr = schedule_lr(spec)
        pts = self._points[tid]
        # named by arrival: the forecast's folds follow the names, and Ray's searchers give
        # trials random ids, so the same experiment would otherwise decide differently
        name = f"{self._order.get(tid, len(self._order)):09d} {tid}"
        return curve_from_points([p[0] for p in pts], [p[1] for p in pts], lr, name, self._step_unit)

    def _fitted(self) -> Optional[FinalLossModel]:
        finished = {}
        for tid in sorted(self._completed):
            if tid not in self._finished:  # a completed trial never changes
                c = self._curve(tid, warn=False)
                self._finished[tid] = c if c is not None and c.steps.size >= 3 else None
            if self._finished[tid] is not None:
                finished[tid] = self._finished[tid]
        if len(finished) < self._n_startup_trials:
            return None
        key = tuple(finished)
        if key != self._model_key:
            # set first: a fit that fails (on_trial_result logs the error) is not retried on every
            # result, only once another trial completes
            self._model_key, self._model = key, None
            self._model = FinalLossModel(list(finished.values()), self._law, burn_in=self._min_progress,
                                         min_error=self._min_error, max_folds=self._max_folds)
        return self._model

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            _logger.warning(message)


def _field(row: dict, key: str) -> Any:
    """``row[key]``, or for ``"a/b"`` the nested ``row["a"]["b"]``: Tune hands schedulers
    flattened results, but writes them nested to ``result.json``."""
    if key in row:
        return row[key]
    node: Any = row
    for part in key.split("/"):
        node = node[part]
    return node


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"
