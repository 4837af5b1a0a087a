"""ScheduleSampler and ScheduleSpace on real Optuna studies replaying real loss curves."""

from __future__ import annotations

import math
import multiprocessing as mp

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from lrtune.datasets import load_schaipp, schaipp_spec as spec_of
from lrtune.integrations.optuna import (
    SCHEDULE_ATTR,
    ScheduleSampler,
    ScheduleSpace,
    record_schedule,
    suggest_schedule,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

# The 25k-step runs of the 124M grid: WSD (linear cooldown 0.1..0.9) and cosine at peak LRs
# 1e-4, 5e-4, 1e-3, 2e-3.
RUNS = [c for c in load_schaipp(group="main", n_layer="12", n_embd="768", horizon="25000")
        if c.meta["decay_type"] in ("linear", "cosine")]
SPACE = ScheduleSpace(steps=25000, peak_lr=(1e-4, 2e-3), families=("wsd", "cosine"), cooldown=(0.1, 0.9), warmup=301)


def nearest_run(params: dict) -> int:
    """The real run closest to a proposed schedule: same family, nearest peak LR (log), nearest cooldown."""
    def distance(c):
        m = c.meta
        d = abs(math.log(float(m["base_lr"]) / params["peak_lr"]))
        if m["schedule"] != params.get("schedule", "wsd"):
            return d + 100
        if m["schedule"] == "wsd":
            d += abs(float(m["cooldown_frac"]) - params["cooldown_fraction"])
        return d
    return min(range(len(RUNS)), key=lambda i: (distance(RUNS[i]), RUNS[i].name))


def replay_nearest(trial: optuna.Trial) -> float:
    suggest_schedule(trial, SPACE)
    i = nearest_run(trial.params)
    c = RUNS[i]
    trial.set_user_attr("run", i)
    record_schedule(trial, spec_of(c.meta))  # the schedule the replayed run really had
    for s, v in zip(c.steps.tolist(), c.loss.tolist()):
        trial.report(v, s)
    return float(c.loss[-1])


STARTUP = [{"schedule": "wsd", "peak_lr": 1e-4, "cooldown_fraction": 0.2},
           {"schedule": "cosine", "peak_lr": 2e-3},
           {"schedule": "wsd", "peak_lr": 5e-4, "cooldown_fraction": 0.6},
           {"schedule": "wsd", "peak_lr": 1e-3, "cooldown_fraction": 0.9}]


def test_after_startup_the_sampler_proposes_schedules_predicted_good_and_they_are():
    study = optuna.create_study(sampler=ScheduleSampler(SPACE, seed=1))
    for p in STARTUP:
        study.enqueue_trial(p)
    study.optimize(replay_nearest, n_trials=len(STARTUP) + 8)
    proposed = study.trials[len(STARTUP):]
    finals = np.array([c.loss[-1] for c in RUNS])
    # the law learnt from the startup runs that 1e-4 is far too low
    assert all(t.params["peak_lr"] > 2e-4 for t in proposed)
    got = np.array([finals[t.user_attrs["run"]] for t in proposed])
    assert np.median(got) < np.quantile(finals, 0.25)
    assert len({round(t.params["peak_lr"], 8) for t in proposed}) >= 4  # Thompson draws explore


def test_without_exploration_the_plain_fit_decides_and_repeats_itself():
    study = optuna.create_study(sampler=ScheduleSampler(SPACE, seed=1, n_bootstrap=1, n_candidates=64))
    for p in STARTUP:
        study.enqueue_trial(p)
    study.optimize(replay_nearest, n_trials=len(STARTUP) + 2)
    a, b = study.trials[-2:]
    # same fit, different random candidates: both near the fit's optimum
    assert a.params["schedule"] == b.params["schedule"]
    assert abs(math.log(a.params["peak_lr"] / b.params["peak_lr"])) < 0.7


def _objective_with_weight_decay(trial: optuna.Trial) -> float:
    wd = trial.suggest_float("weight_decay", 1e-3, 0.3, log=True)
    return replay_nearest(trial) + 0.0 * wd


def test_other_parameters_come_from_tpe_and_two_threads_are_safe():
    study = optuna.create_study(sampler=ScheduleSampler(SPACE, seed=2, n_startup_trials=3))
    for p in STARTUP[:3]:
        study.enqueue_trial(p)
    study.optimize(_objective_with_weight_decay, n_trials=10, n_jobs=2)
    assert [t.state for t in study.trials].count(TrialState.COMPLETE) == 10
    assert all("weight_decay" in t.params and "peak_lr" in t.params for t in study.trials)
    assert all(SCHEDULE_ATTR in t.user_attrs for t in study.trials)
    later = study.trials[3:]
    assert len({(t.params["schedule"], round(t.params["peak_lr"], 8)) for t in later}) >= 5


def _sampler_worker(storage: str, n_trials: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="sampler", storage=storage, sampler=ScheduleSampler(SPACE, n_startup_trials=3))
    study.optimize(_objective_with_weight_decay, n_trials=n_trials)


def test_three_processes_on_one_sqlite_storage_propose_different_schedules(tmp_path):
    storage = f"sqlite:///{tmp_path / 'sampler.db'}"
    study = optuna.create_study(study_name="sampler", storage=storage)
    for p in STARTUP[:3]:
        study.enqueue_trial(p)
    study.optimize(replay_nearest, n_trials=3)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_sampler_worker, args=(storage, 3)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
        assert p.exitcode == 0
    trials = optuna.load_study(study_name="sampler", storage=storage).trials
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 12
    later = trials[3:]
    assert len({(t.params["schedule"], round(t.params["peak_lr"], 8)) for t in later}) == len(later)
    assert all(t.params["peak_lr"] > 2e-4 for t in later)


def test_space_suggests_records_and_rebuilds_the_same_schedule():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(6):
        t = study.ask()
        s = suggest_schedule(t, SPACE)
        frozen = study.trials[-1]
        assert frozen.user_attrs[SCHEDULE_ATTR] == s.spec() == SPACE.schedule(frozen.params).spec()
        assert s.horizon == 25000 and 1e-4 <= s.peak_lr <= 2e-3
        assert ("cooldown_fraction" in frozen.params) == (frozen.params["schedule"] == "wsd")
        study.tell(t, 1.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 1}, "steps must be an integer >= 2, got 1"),
    ({"peak_lr": (1e-3, 1e-4)}, "peak_lr must be > 0 with low <= high, got (0.001, 0.0001)"),
    ({"families": ("wsd", "sgdr")}, "families must be distinct values among"),
    ({"cooldown": (0.0, 0.5)}, "cooldown must be in (0, 1] with low <= high"),
    ({"shapes": ("exp",)}, "shapes must be distinct values among"),
    ({"warmup": 1000}, "warmup must be in [0, steps=1000)"),
    ({"min_lr": 1.0}, "min_lr must be a fraction of the peak in [0, 1), got 1.0"),
])
def test_space_arguments_are_validated(kwargs, message):
    args = {"steps": 1000, "peak_lr": (1e-4, 1e-3)} | kwargs
    with pytest.raises(ValueError) as e:
        ScheduleSpace(**args)
    assert message in str(e.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_startup_trials": 1}, "n_startup_trials must be an integer >= 2, got 1"),
    ({"n_candidates": 0}, "n_candidates must be an integer >= 1, got 0"),
    ({"n_bootstrap": 0}, "n_bootstrap must be an integer >= 1, got 0"),
    ({"step_unit": -1}, "step_unit must be a number of optimizer steps > 0, got -1"),
    ({"law": 3}, "law must be a law name"),
])
def test_sampler_arguments_are_validated(kwargs, message):
    with pytest.raises(ValueError) as e:
        ScheduleSampler(SPACE, **kwargs)
    assert message in str(e.value)


def _add_replayed(study: optuna.Study, c, pruned_at: float | None = None) -> None:
    """Add a real run to the study as a finished trial (pruned at that fraction, or complete)."""
    steps, loss = c.steps, c.loss
    if pruned_at is not None:
        keep = steps <= pruned_at * c.horizon
        steps, loss = steps[keep], loss[keep]
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.PRUNED if pruned_at is not None else TrialState.COMPLETE,
        value=None if pruned_at is not None else float(loss[-1]),
        params={}, distributions={}, user_attrs={SCHEDULE_ATTR: spec_of(c.meta)},
        intermediate_values={int(s): float(v) for s, v in zip(steps, loss)}))


def test_proposals_stay_near_the_completed_peak_lrs_and_avoid_pruned_schedules():
    # Completed runs at 1e-4 and 5e-4 only, in a space reaching 2e-3: the law is not trusted
    # beyond twice the largest completed peak LR.  Then runs at 7e-4..1e-3 are pruned: the
    # proposals leave those schedules.
    at = lambda lr: [c for c in RUNS if c.meta["base_lr"] == lr]  # noqa: E731
    study = optuna.create_study(direction="minimize")
    for c in at("0.0001")[:2] + at("0.0005")[:2]:
        _add_replayed(study, c)
    sampler = ScheduleSampler(SPACE, seed=0)
    study.sampler = sampler
    peaks = []
    for _ in range(6):
        t = study.ask()
        peaks.append(suggest_schedule(t, SPACE).peak)
        study.tell(t, state=TrialState.FAIL)
    assert max(peaks) <= 2 * 5e-4 * (1 + 1e-9)
    assert max(peaks) > 6e-4  # it does want to go up: the law favours the larger LRs
    # without the trust region the same draws go to the edge of the space
    free = ScheduleSampler(SPACE, seed=0, trust_factor=100.0)
    study.sampler = free
    t = study.ask()
    assert suggest_schedule(t, SPACE).peak > 1e-3
    study.tell(t, state=TrialState.FAIL)
    # prune every schedule the first sampler proposed: it then proposes other ones
    study.sampler = sampler
    for c in at("0.001"):
        _add_replayed(study, c, pruned_at=0.2)
    after = []
    for _ in range(4):
        t = study.ask()
        after.append(suggest_schedule(t, SPACE))
        study.tell(t, state=TrialState.FAIL)
    assert all(abs(math.log(s.peak / 1e-3)) > 0.1 for s in after), [s.spec() for s in after]
