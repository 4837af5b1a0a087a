"""ScheduleSampler and ScheduleSpace on real Optuna studies replaying real loss curves."""

from __future__ import annotations

import logging
import math
import multiprocessing as mp

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from lrtune.datasets import load_schaipp, schaipp_spec as spec_of
from lrtune.integrations.optuna import (
    SCHEDULE_ATTR,
    ScheduleSampler,
    ScheduleSpace,
    record_schedule,
    suggest_schedule,
)
from lrtune.schedules import parse_schedule

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


def test_space_takes_transformers_cosine_with_warmup_as_its_docs_map_it():
    """get_cosine_schedule_with_warmup(W=16, T=320) is wsd:warmup=17,cooldown=(T-W)/T: the
    cooldown starts at the last warmup step, as WSD allows."""
    space = ScheduleSpace(steps=320, peak_lr=(1e-4, 1e-3), families=("wsd",), cooldown=304 / 320, warmup=17,
                          shapes=("cosine",))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    s = suggest_schedule(study.ask(), space)
    w, t = 16, 320
    hf = [step / w if step < w else 0.5 * (1 + math.cos(math.pi * (step - w) / (t - w))) for step in range(t)]
    assert np.allclose(s.lr() / s.peak_lr, hf, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="does not fit after a warmup of 17 steps"):
        ScheduleSpace(steps=320, peak_lr=(1e-4, 1e-3), families=("wsd",), cooldown=305 / 320, warmup=17)


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
    ({"seed": -1}, "seed must be an integer in [0, 2**32) or None, got -1"),
    ({"independent_sampler": "tpe"}, "independent_sampler must be an Optuna sampler"),
])
def test_sampler_arguments_are_validated(kwargs, message):
    with pytest.raises(ValueError) as e:
        ScheduleSampler(SPACE, **kwargs)
    assert message in str(e.value)


def test_numpy_integers_are_integers_for_the_sampler():
    a, b = ScheduleSampler(SPACE, seed=np.int64(5), step_unit=np.int64(1)), ScheduleSampler(SPACE, seed=5)
    assert a._entropy == b._entropy


def _add_replayed(study: optuna.Study, c, pruned_at: float | None = None, stopped_at: float = 1.0) -> None:
    """Add a real run to the study as a finished trial (pruned at that fraction, or complete,
    its objective returning at ``stopped_at`` of its horizon)."""
    steps, loss = c.steps, c.loss
    keep = steps <= (pruned_at if pruned_at is not None else stopped_at) * c.horizon
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


# -- regressions ----------------------------------------------------------------------------
def _proposals(study: optuna.Study, n: int = 4) -> list[str]:
    out = []
    for _ in range(n):
        t = study.ask()
        out.append(suggest_schedule(t, SPACE).spec())
        study.tell(t, state=TrialState.FAIL)
    return out


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "lrtune.integrations.optuna"]


def test_one_sampler_serving_a_study_deleted_and_created_again_fits_the_new_trials(tmp_path):
    # SQLite gives the study created again under the same name the deleted one's ids: its
    # runs (peak 2e-3) must get the proposals of a sampler of its own, not of a fit of the
    # deleted study's runs (peak 1e-4).
    storage = f"sqlite:///{tmp_path / 'lr.db'}"

    def proposals(sampler, runs):
        study = optuna.create_study(study_name="lr", storage=storage, sampler=sampler)
        for i in runs:
            _add_replayed(study, RUNS[i])
        out = _proposals(study)
        optuna.delete_study(study_name="lr", storage=storage)
        return out

    expected = proposals(ScheduleSampler(SPACE, seed=0), [16, 12, 4, 8])
    shared = ScheduleSampler(SPACE, seed=0)
    proposals(shared, [5, 1, 9, 13])
    assert proposals(shared, [16, 12, 4, 8]) == expected


def test_a_completed_diverged_trial_is_left_out_of_the_fit_with_one_warning(caplog):
    # the real cosine run at peak LR 5e-3 (50k steps) climbs from 4.87 to 7.55: no law fits
    # it, and with it in the fit every proposal fell back to TPE with a warning
    diverged = load_schaipp(group="main", n_layer="12", n_embd="768", horizon="50000", base_lr="0.005")[0]
    study = optuna.create_study(sampler=ScheduleSampler(SPACE, seed=0))
    for i in (5, 26, 4, 2):
        _add_replayed(study, RUNS[i])
    _add_replayed(study, diverged)
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.optuna"):
        _proposals(study, 3)
    (warning,) = _warnings(caplog)
    assert "completed trial 4 diverged" in warning


def test_a_law_that_cannot_be_fitted_is_tried_once_per_set_of_trials(caplog):
    calls = []

    def failing_law():
        calls.append(1)
        raise ValueError("no fit")

    study = optuna.create_study(sampler=ScheduleSampler(SPACE, seed=0, law=failing_law))
    for i in (5, 26, 4, 2):
        _add_replayed(study, RUNS[i])
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.optuna"):
        _proposals(study, 3)
    assert len(calls) == 1
    (warning,) = _warnings(caplog)
    assert "could not be fitted on the curves of 4 trials (ValueError: no fit)" in warning


def test_trials_whose_schedule_is_unknown_are_left_out_with_one_warning(caplog):
    # Trials from before lrtune was used tuned a parameter "lr" and recorded no schedule:
    # the space's fixed values (its lowest peak LR, shortest cooldown) are not their
    # schedule.  They change nothing: the proposals are those made when they failed.
    def study_with(legacy_state):
        study = optuna.create_study(sampler=ScheduleSampler(SPACE, seed=0))
        for i in (5, 26, 4, 2):
            _add_replayed(study, RUNS[i])
        for i in (16, 12, 20, 15):  # good runs at peak LRs 1e-3 and 2e-3
            c = RUNS[i]
            study.add_trial(create_trial(
                state=legacy_state, value=float(c.loss[-1]) if legacy_state == TrialState.COMPLETE else None,
                params={"lr": float(c.meta["base_lr"])}, distributions={"lr": FloatDistribution(1e-5, 1e-2, log=True)},
                intermediate_values={int(s): float(v) for s, v in zip(c.steps, c.loss)}))
        return _proposals(study)

    expected = study_with(TrialState.FAIL)
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.optuna"):
        assert study_with(TrialState.COMPLETE) == expected
    (warning,) = _warnings(caplog)
    assert "the schedule of trial(s) 4, 5, 6, 7 is unknown" in warning


def test_a_completed_trial_that_stopped_before_its_horizon_does_not_count_as_completed(caplog):
    # A run at peak 2e-3 whose objective returned at 30 % of its schedule (a time budget):
    # a partial curve like a pruned trial's, so the proposals stay within twice the peak LRs
    # of the runs that did complete (1e-4, 5e-4).
    at = lambda lr: [c for c in RUNS if c.meta["base_lr"] == lr]  # noqa: E731
    study = optuna.create_study(sampler=ScheduleSampler(SPACE, seed=0))
    for c in at("0.0001")[:2] + at("0.0005")[:2]:
        _add_replayed(study, c)
    _add_replayed(study, at("0.002")[0], stopped_at=0.3)
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.optuna"):
        peaks = [parse_schedule(spec).peak for spec in _proposals(study, 6)]
    assert max(peaks) <= 2 * 5e-4 * (1 + 1e-9)
    (warning,) = _warnings(caplog)
    assert "completed trial 4 reported up to optimizer step 7400 of its schedule's 25000" in warning


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # PartialFixedSampler
def test_schedule_parameters_fixed_by_enqueue_trial_or_another_sampler_are_respected(caplog):
    study = optuna.create_study(sampler=ScheduleSampler(SPACE, seed=0))
    for i in (16, 12, 4, 8):
        _add_replayed(study, RUNS[i])
    free = [study.ask() for _ in range(6)]
    families = [suggest_schedule(t, SPACE).family for t in free]
    assert "wsd" in families  # what the fits prefer here when the family is free
    for t in free:
        study.tell(t, state=TrialState.FAIL)
    # enqueue_trial fixes the family: the proposal is the best cosine candidate, whose peak LR
    # the trial takes (not the peak LR of the best candidate of any family)
    sampler = study.sampler
    for _ in range(3):
        study.enqueue_trial({"schedule": "cosine"})
        t = study.ask()
        schedule = suggest_schedule(t, SPACE)
        frozen = study._storage.get_trial(t._trial_id)
        proposal = sampler.sample_relative(study, frozen, SPACE.distributions())
        assert schedule.family == "cosine" and proposal["schedule"] == "cosine"
        assert t.params["peak_lr"] == proposal["peak_lr"]
        study.tell(t, state=TrialState.FAIL)
    # a family fixed to WSD: its cooldown and shape are drawn with it, and the trial gets the scored ones
    for _ in range(8):
        study.enqueue_trial({"schedule": "wsd"})
        t = study.ask()
        suggest_schedule(t, SPACE)
        proposal = sampler.sample_relative(study, study._storage.get_trial(t._trial_id), SPACE.distributions())
        assert proposal["schedule"] == "wsd" and proposal["cooldown_fraction"] == t.params["cooldown_fraction"]
        study.tell(t, state=TrialState.FAIL)
    # PartialFixedSampler hides the value it fixes: the others are left to the independent sampler
    caplog.clear()
    hidden = optuna.samplers.PartialFixedSampler({"schedule": "cosine"}, sampler)
    study.sampler = hidden
    for _ in range(2):
        t = study.ask()
        assert suggest_schedule(t, SPACE).family == "cosine"
        study.tell(t, state=TrialState.FAIL)
    msgs = [m for m in _warnings(caplog) if "fixed outside it" in m]
    assert len(msgs) == 1 and "schedule" in msgs[0] and "TPESampler samples the others" in msgs[0]


def test_a_multi_objective_study_is_left_to_the_independent_sampler_with_one_warning(caplog):
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=ScheduleSampler(SPACE, seed=0))
    for _ in range(3):
        t = study.ask()
        suggest_schedule(t, SPACE)
        study.tell(t, [1.0, 2.0])
    msgs = [m for m in _warnings(caplog) if "multi-objective" in m]
    assert msgs == ["ScheduleSampler models one loss: a multi-objective study is sampled by TPESampler"]


def test_an_objective_that_never_asks_for_the_space_is_warned_once(caplog):
    """The Hugging Face Trainer's hp_space style: its own parameter names and a schedule
    recorded by hand; the sampler's proposals go unused, and one warning says so."""
    space = ScheduleSpace(steps=320, peak_lr=(1e-4, 1e-2), families=("wsd",), cooldown=(0.1, 0.9))

    def own_names(trial):
        lr = trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
        record_schedule(trial, f"wsd:steps=320,peak={lr!r},warmup=17,cooldown=0.95,shape=cosine")
        return lr

    def from_space(trial):
        return suggest_schedule(trial, space).peak_lr

    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.optuna"):
        study = optuna.create_study(sampler=ScheduleSampler(space))
        study.optimize(from_space, n_trials=2)
        assert not [m for m in _warnings(caplog) if "asked for none of the space's parameters" in m]
        study = optuna.create_study(sampler=ScheduleSampler(space))
        study.optimize(own_names, n_trials=5)  # the 4 startup trials and one more: nothing proposed yet
        assert not [m for m in _warnings(caplog) if "asked for none of the space's parameters" in m]
        study.optimize(own_names, n_trials=3)
    said = [m for m in _warnings(caplog) if "asked for none of the space's parameters" in m]
    assert len(said) == 1 and "suggest_schedule(trial, space)" in said[0] and "TPESampler" in said[0]
