"""Noisy reports: a trial that reports its training loss (one minibatch, every 50 steps,
from the Schaipp 15k runs) instead of a validation loss on fixed batches."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import optuna

from _schaipp15k import SUBSET, grid_15k, train_losses
from lrtune.datasets import schaipp_spec
from lrtune.integrations._forecast import FinalLossModel, is_diverging, law_factory, schedule_lr
from lrtune.integrations.optuna import ScheduleAwarePruner, record_schedule

CURVES = grid_15k()
TRAIN = train_losses(CURVES)
SPECS = [schaipp_spec(c.meta) for c in CURVES]


def _train_curve(i: int):
    return dataclasses.replace(TRAIN[i], lr=np.asarray(schedule_lr(SPECS[i])))


def test_training_losses_are_those_of_the_same_runs_in_the_same_order():
    assert [c.name for c in TRAIN] == [c.name for c in CURVES]  # load_schaipp keeps the order of its keys
    assert all(np.median(np.diff(t.steps)) == 50 and np.median(np.diff(c.steps)) == 200 for t, c in zip(TRAIN, CURVES))


def test_one_noisy_report_is_not_a_divergence():
    # single minibatches jump above 1.2 times the lowest one in these healthy runs ...
    jumps = [bool(np.any(c.loss > 1.2 * np.minimum.accumulate(c.loss))) for c in TRAIN]
    assert any(jumps)
    # ... but no run's level (median of its last 5 reports) ever does
    for c in TRAIN:
        assert not any(is_diverging(c.loss[:k], 1.2) for k in range(1, c.loss.size + 1))


def test_report_noise_is_measured_and_the_forecast_averages_enough_reports():
    fit = [SUBSET.index(k) for k in (("wsd", "0.6", "0.002"), ("wsd", "0.4", "0.001"), ("cosine", "0.0", "0.002"),
                                      ("wsd", "0.9", "0.001"), ("wsd", "0.1", "0.001"))]
    smooth = FinalLossModel([CURVES[i] for i in fit], law_factory("momentum"), burn_in=0.1, min_error=0.003, max_folds=5)
    noisy = FinalLossModel([_train_curve(i) for i in fit], law_factory("momentum"), burn_in=0.1, min_error=0.003,
                           max_folds=5)
    assert smooth.noise_ < 1e-3 and smooth.anchor_ == 3  # validation losses: the last 3 reports
    assert noisy.noise_ > 0.01 and noisy.anchor_ > 100  # minibatch losses: many more
    assert smooth.final_anchor_ == 1 and noisy.final_anchor_ > 100  # a finished run's final: the same
    # a held-out run forecast from half of its noisy reports: within the band of its final level
    held = _train_curve(SUBSET.index(("wsd", "0.4", "0.002")))
    level = noisy.final_level(held)
    half = held.steps <= held.horizon // 2
    fc = noisy.forecast(held.lr, held.steps[half], held.loss[half])
    assert abs(fc.final - level) < max(fc.above, fc.below)
    assert abs(fc.final - level) / level < 0.01


def test_study_reporting_noisy_training_loss_and_returning_the_validation_loss_keeps_the_best():
    # before, one high minibatch pruned every trial as diverged, and a trial's noisy last
    # report was compared with the best completed trial's validation loss
    finals = np.array([c.loss[-1] for c in CURVES])
    best = int(np.argmin(finals))
    order = np.random.default_rng(0).permutation(len(CURVES))

    def objective(trial: optuna.Trial) -> float:
        i = int(order[trial.number])
        trial.set_user_attr("run", i)
        record_schedule(trial, SPECS[i])
        for s, v in zip(TRAIN[i].steps, TRAIN[i].loss):
            trial.report(float(v), int(s))
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(finals[i])  # the validation loss

    study = optuna.create_study(pruner=ScheduleAwarePruner(), sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=len(order))
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    completed = [t.user_attrs["run"] for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert best in completed
    assert len(pruned) >= 3
    assert all(t.last_step < CURVES[t.user_attrs["run"]].horizon for t in pruned)  # never at the last report
    assert all(finals[t.user_attrs["run"]] > finals[best] for t in pruned)


def test_ray_scheduler_fed_noisy_training_losses_never_stops_the_best():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    from lrtune.integrations.ray import ScheduleAwareScheduler

    finals = np.array([c.loss[-1] for c in CURVES])  # validation losses: what picks the best run
    best = int(np.argmin(finals))
    scheduler = ScheduleAwareScheduler(metric="loss", mode="min", step_unit=50)  # a report every 50 steps
    stopped = []
    for i in np.random.default_rng(1).permutation(len(CURVES)):
        trial = Trial("__fake", config={"lr_schedule": SPECS[i]}, stub=True)
        scheduler.on_trial_add(None, trial)
        result = {}
        for s, v in zip(TRAIN[i].steps.tolist(), TRAIN[i].loss.tolist()):
            result = {"loss": v, "training_iteration": s // 50}
            if scheduler.on_trial_result(None, trial, result) == TrialScheduler.STOP:
                stopped.append((int(i), s))
                break
        scheduler.on_trial_complete(None, trial, result)
    assert best not in [i for i, _ in stopped]
    assert len(stopped) >= 3
    assert all(finals[i] > finals[best] and s < CURVES[i].horizon for i, s in stopped)
