"""ScheduleAwarePruner on real Optuna studies replaying real loss curves (Schaipp 124M runs)."""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import pickle

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from _schaipp15k import SUBSET, grid_15k
from lrtune.datasets import load_schaipp, schaipp_spec as spec_of
from lrtune.integrations.optuna import PRUNED_ATTR, SCHEDULE_ATTR, ScheduleAwarePruner, record_schedule

optuna.logging.set_verbosity(optuna.logging.WARNING)

# 15k-step runs: WSD (linear cooldown 0.1, 0.4, 0.6, 0.9) at 3 peak LRs and cosine at 2.
CURVES = grid_15k()
ORDER = np.random.default_rng(3).permutation(len(CURVES))


def replay(trial: optuna.Trial, curve, spec: str | None) -> float:
    if spec is not None:
        trial.set_user_attr(SCHEDULE_ATTR, spec)
    for s, v in zip(curve.steps.tolist(), curve.loss.tolist()):
        trial.report(v, s)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return float(curve.loss[-1])


def _worker(storage: str, n_trials: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="replay", storage=storage, pruner=ScheduleAwarePruner(),
                              sampler=optuna.samplers.RandomSampler())

    def objective(trial: optuna.Trial) -> float:
        i = int(ORDER[trial.number])
        trial.set_user_attr("run", i)
        return replay(trial, CURVES[i], spec_of(CURVES[i].meta))

    study.optimize(objective, n_trials=n_trials)


def test_three_processes_on_sqlite_prune_the_grid_keep_its_best_run_and_lose_no_value(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="replay", storage=storage, direction="minimize")
    n = len(CURVES)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(storage, k)) for k in (n // 3 + n % 3, n // 3, n // 3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
        assert p.exitcode == 0
    trials = optuna.load_study(study_name="replay", storage=storage).trials
    assert len(trials) == n
    states = [t.state for t in trials]
    assert states.count(TrialState.PRUNED) >= 3
    finals = np.array([c.loss[-1] for c in CURVES])
    best_run = int(np.argmin(finals))
    by_run = {t.user_attrs["run"]: t for t in trials}
    assert by_run[best_run].state == TrialState.COMPLETE
    assert sorted(by_run) == list(range(n))
    used = sum(t.last_step for t in trials)
    assert used < 0.9 * sum(int(c.steps[-1]) for c in CURVES)
    for t in trials:  # each pruned trial says why in the shared storage, at the step it stopped
        if t.state == TrialState.PRUNED:
            assert t.user_attrs[PRUNED_ATTR]["reason"] == "forecast"
            assert t.user_attrs[PRUNED_ATTR]["step"] == t.last_step
        else:
            assert PRUNED_ATTR not in t.user_attrs
    for run, t in by_run.items():  # every reported value is in storage, unchanged
        c = CURVES[run]
        keep = c.steps <= t.last_step
        assert sorted(t.intermediate_values) == c.steps[keep].tolist()
        assert np.array_equal([t.intermediate_values[s] for s in c.steps[keep].tolist()], c.loss[keep])


def _completed_study(runs: list[int], pruner: optuna.pruners.BasePruner, storage=None) -> optuna.Study:
    study = optuna.create_study(direction="minimize", pruner=optuna.pruners.NopPruner(), storage=storage)
    for i in runs:
        study.optimize(lambda t, i=i: replay(t, CURVES[i], spec_of(CURVES[i].meta)), n_trials=1)
    study.pruner = pruner
    return study


def _first_pruned_step(study: optuna.Study, curve, spec: str | None, metric=lambda v: v,
                       stop: float = 1.0) -> int | None:
    """Replay ``curve`` (reporting ``metric(loss)``, up to ``stop`` of its horizon, then
    returning its last value) in a new trial: the step it is pruned at, or None."""
    trial = study.ask()
    if spec is not None:
        trial.set_user_attr(SCHEDULE_ATTR, spec)
    keep = curve.steps <= stop * curve.horizon
    for s, v in zip(curve.steps[keep].tolist(), curve.loss[keep].tolist()):
        trial.report(metric(v), s)
        if trial.should_prune():
            study.tell(trial, state=TrialState.PRUNED)
            return s
    study.tell(trial, metric(float(curve.loss[keep][-1])))
    return None


def test_a_pruner_pickled_before_max_progress_and_confidence_existed_prunes_as_a_new_one():
    others = [_index("cosine", "0.0", "0.001"), _index("wsd", "0.9", "0.0005"), _index("wsd", "0.9", "0.001"),
              _index("wsd", "0.4", "0.0005"), _index("wsd", "0.6", "0.0005"), _index("wsd", "0.6", "0.002")]
    bad = _index("wsd", "0.1", "0.0005")
    new = _first_pruned_step(_completed_study(others, ScheduleAwarePruner()), CURVES[bad], spec_of(CURVES[bad].meta))
    old = ScheduleAwarePruner.__new__(ScheduleAwarePruner)
    old.__setstate__({k: v for k, v in ScheduleAwarePruner().__getstate__().items()
                      if k not in ("_max_progress", "_confidence")})
    assert old._max_progress == 1.0 and old._confidence == pytest.approx(0.9)
    study = _completed_study(others, pickle.loads(pickle.dumps(old)))
    assert new is not None and _first_pruned_step(study, CURVES[bad], spec_of(CURVES[bad].meta)) == new
    assert study.trials[-1].user_attrs[PRUNED_ATTR]["confidence"] == pytest.approx(0.9)


def _index(schedule: str, cooldown: str, lr: str) -> int:
    return SUBSET.index((schedule, cooldown, lr))


def test_best_wsd_run_is_kept_through_its_stable_phase_where_the_median_rule_prunes_it():
    # The best run anneals late (60 % cooldown at the highest LR): before its cooldown it
    # is above the median of completed runs that anneal earlier; its final loss is the lowest.
    best = _index("wsd", "0.6", "0.002")
    assert best == int(np.argmin([c.loss[-1] for c in CURVES]))
    others = [_index("cosine", "0.0", "0.001"), _index("wsd", "0.9", "0.0005"), _index("wsd", "0.9", "0.001"),
              _index("wsd", "0.4", "0.0005"), _index("wsd", "0.6", "0.0005")]
    median = _completed_study(others, optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1500))
    assert _first_pruned_step(median, CURVES[best], spec_of(CURVES[best].meta)) is not None
    ours = _completed_study(others, ScheduleAwarePruner())
    assert _first_pruned_step(ours, CURVES[best], spec_of(CURVES[best].meta)) is None
    # ... while a clearly worse run under the same model is pruned early
    bad = _index("wsd", "0.1", "0.0005")
    step = _first_pruned_step(ours, CURVES[bad], spec_of(CURVES[bad].meta))
    assert step is not None and step < 0.5 * CURVES[bad].horizon
    # it says why: its forecast's optimistic end lies above the best completed trial's final
    why = ours.trials[-1].user_attrs[PRUNED_ATTR]
    completed = [t for t in ours.trials if t.state == TrialState.COMPLETE]
    leader = min(completed, key=lambda t: t.value)
    assert why["reason"] == "forecast" and why["step"] == step
    assert why["best_from"] == f"trial {leader.number}"
    assert why["best"] == pytest.approx(leader.value, rel=1e-9)  # validation losses: the last report
    assert why["forecast"] > why["optimistic"] > why["best"]
    assert why["confidence"] == 0.9 and why["margin"] == 0.0


def test_nan_infinite_and_diverging_losses_are_pruned_at_once_even_before_startup(caplog):
    caplog.set_level(logging.INFO, logger="lrtune.integrations.optuna")
    study = optuna.create_study(direction="minimize", pruner=ScheduleAwarePruner())
    c = CURVES[0]
    for bad in (float("nan"), float("inf")):
        t = study.ask()
        t.report(float(c.loss[0]), int(c.steps[0]))
        assert not t.should_prune()
        t.report(bad, int(c.steps[1]))
        assert t.should_prune()
        study.tell(t, state=TrialState.PRUNED)
        assert study.trials[-1].user_attrs[PRUNED_ATTR] == {"reason": "not finite", "step": int(c.steps[1]),
                                                            "at_step": int(c.steps[1])}
    assert f"trial 0 pruned at step {int(c.steps[1])}: a non-finite loss was reported" in caplog.text
    caplog.clear()  # prune() called directly on a finished trial: its answer, and nothing logged or stored
    assert study.pruner.prune(study, study.trials[-1])
    assert "pruned at step" not in caplog.text
    # a real diverged run: cosine at peak LR 5e-3 (50k steps) climbs from 5.2 to 7.5
    diverged = load_schaipp(group="main", n_layer="12", n_embd="768", horizon="50000", base_lr="0.005")[0]
    step = _first_pruned_step(study, diverged, spec_of(diverged.meta))
    # caught once the median of its last 5 reports is 1.2 times its lowest: at most two
    # reports after the first one above 1.2 times the lowest (this run keeps rising)
    first = int(np.argmax(diverged.loss > 1.2 * np.minimum.accumulate(diverged.loss)))
    assert diverged.steps[first] <= step <= diverged.steps[first + 2]
    why = study.trials[-1].user_attrs[PRUNED_ATTR]
    assert why["reason"] == "diverging" and why["step"] == step
    assert why["ratio"] == 1.2 and why["level"] > 1.2 * why["lowest_level"]
    # the levels the rule compares: medians of the last 5 reports, the lowest of them so far
    reported = [study.trials[-1].intermediate_values[s] for s in sorted(study.trials[-1].intermediate_values)]
    assert why["level"] == pytest.approx(float(np.median(reported[-5:])))


def test_trial_without_or_with_a_malformed_schedule_is_not_pruned_by_the_model_and_warned_once(caplog):
    bad = _index("wsd", "0.1", "0.0005")
    others = [_index("wsd", "0.6", "0.002"), _index("wsd", "0.4", "0.001"), _index("cosine", "0.0", "0.002"),
              _index("wsd", "0.9", "0.001")]
    study = _completed_study(others, ScheduleAwarePruner())
    assert _first_pruned_step(study, CURVES[bad], spec_of(CURVES[bad].meta)) is not None  # with its schedule
    for spec in (None, "wsd:steps=15000,peak=oops", "not a spec"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="lrtune.integrations.optuna"):
            assert _first_pruned_step(study, CURVES[bad], spec) is None
        warnings = [r for r in caplog.records if "not pruned by the model" in r.getMessage()]
        assert len(warnings) == 1


def test_an_internal_failure_is_logged_and_keeps_the_trial(caplog):
    def broken_law():
        raise RuntimeError("law exploded")

    others = [_index("wsd", "0.6", "0.002"), _index("wsd", "0.4", "0.001"), _index("cosine", "0.0", "0.002"),
              _index("wsd", "0.9", "0.001")]
    study = _completed_study(others, ScheduleAwarePruner(law=broken_law))
    bad = _index("wsd", "0.1", "0.0005")
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.optuna"):
        assert _first_pruned_step(study, CURVES[bad], spec_of(CURVES[bad].meta)) is None
    assert any("law exploded" in r.getMessage() for r in caplog.records)


def test_decision_is_a_function_of_storage_so_a_restarted_pruner_decides_the_same(tmp_path):
    storage = f"sqlite:///{tmp_path / 'restart.db'}"
    others = [_index("wsd", "0.6", "0.002"), _index("wsd", "0.4", "0.001"), _index("cosine", "0.0", "0.002"),
              _index("wsd", "0.9", "0.001")]
    study = _completed_study(others, ScheduleAwarePruner(), storage=storage)
    bad = _index("wsd", "0.1", "0.0005")
    c = CURVES[bad]
    trial = study.ask()
    record_schedule(trial, spec_of(c.meta))
    decisions = []
    for s, v in zip(c.steps.tolist()[:50], c.loss.tolist()[:50]):  # to step 10,000 of 15,000
        trial.report(v, s)
        decisions.append(trial.should_prune())
    assert any(decisions)
    # a new process: a fresh pruner on the loaded study sees the same trials and decides the same
    reloaded = optuna.load_study(study_name=study.study_name, storage=storage, pruner=ScheduleAwarePruner())
    frozen = reloaded.trials[-1]
    assert frozen.state == TrialState.RUNNING
    assert reloaded.pruner.prune(reloaded, frozen) == decisions[-1]


def test_steps_reported_as_evaluation_indices_with_step_unit_decide_like_optimizer_steps():
    others = [_index("wsd", "0.6", "0.002"), _index("wsd", "0.4", "0.001"), _index("cosine", "0.0", "0.002"),
              _index("wsd", "0.9", "0.001")]
    bad = _index("wsd", "0.1", "0.0005")
    c = CURVES[bad]
    steps_opt = _first_pruned_step(_completed_study(others, ScheduleAwarePruner()), c, spec_of(c.meta))

    def by_index(trial, i):  # reports the k-th evaluation (every 200 optimizer steps) as step k
        trial.set_user_attr(SCHEDULE_ATTR, spec_of(CURVES[i].meta))
        for s, v in zip(CURVES[i].steps.tolist(), CURVES[i].loss.tolist()):
            trial.report(v, s // 200)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(CURVES[i].loss[-1])

    study = optuna.create_study(direction="minimize", pruner=ScheduleAwarePruner(step_unit=200))
    for i in others + [bad]:
        study.optimize(lambda t, i=i: by_index(t, i), n_trials=1)
    last = study.trials[-1]
    assert last.state == TrialState.PRUNED and steps_opt is not None
    assert last.last_step * 200 == steps_opt


def test_evaluations_counted_from_zero_with_step_unit_are_warned_about_once(caplog):
    """An epoch number (from 0) as the step, as PyTorchLightningPruningCallback reports: every
    loss would sit one evaluation early."""
    runs = [_index("wsd", "0.6", "0.002"), _index("wsd", "0.4", "0.001"), _index("cosine", "0.0", "0.002")]

    def by_epoch(trial, i):
        trial.set_user_attr(SCHEDULE_ATTR, spec_of(CURVES[i].meta))
        for s, v in zip(CURVES[i].steps.tolist(), CURVES[i].loss.tolist()):
            trial.report(v, s // 200 - 1)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(CURVES[i].loss[-1])

    study = optuna.create_study(direction="minimize", pruner=ScheduleAwarePruner(step_unit=200))
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.optuna"):
        for i in runs:
            study.optimize(lambda t, i=i: by_epoch(t, i), n_trials=1)
    said = [r.getMessage() for r in caplog.records if "reports step 0 with step_unit=200" in r.getMessage()]
    assert len(said) == 1 and "Report the evaluation counted from 1 (epoch + 1)" in said[0]
    caplog.clear()
    study = optuna.create_study(direction="minimize", pruner=ScheduleAwarePruner(step_unit=200))
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.optuna"):  # counted from 1: nothing to say
        study.optimize(lambda t: _by_index_from_one(t, runs[0]), n_trials=1)
    assert not [r for r in caplog.records if "reports step 0" in r.getMessage()]


def _by_index_from_one(trial, i):
    trial.set_user_attr(SCHEDULE_ATTR, spec_of(CURVES[i].meta))
    for s, v in zip(CURVES[i].steps.tolist(), CURVES[i].loss.tolist()):
        trial.report(v, s // 200)
    return float(CURVES[i].loss[-1])


def test_no_model_pruning_after_max_progress_but_a_nan_still_prunes():
    c = CURVES[_index("wsd", "0.1", "0.0005")]
    others = [_index("wsd", "0.6", "0.002"), _index("wsd", "0.4", "0.001"), _index("cosine", "0.0", "0.002"),
              _index("wsd", "0.9", "0.001")]
    step = _first_pruned_step(_completed_study(others, ScheduleAwarePruner()), c, spec_of(c.meta))
    assert step is not None
    late = c.steps[c.steps > step][0] / c.horizon  # stops by the model only after the step it was pruned at
    step = _first_pruned_step(_completed_study(others, ScheduleAwarePruner(max_progress=step / c.horizon)),
                              c, spec_of(c.meta))
    assert step is None or step <= late * c.horizon
    study = _completed_study(others, ScheduleAwarePruner(max_progress=0.05))
    assert _first_pruned_step(study, c, spec_of(c.meta)) is None
    assert _first_pruned_step(study, c, spec_of(c.meta), metric=lambda v: float("nan")) == c.steps[0]


def test_no_model_pruning_before_startup_warmup_or_min_progress():
    c = CURVES[_index("wsd", "0.1", "0.0005")]
    others = [_index("wsd", "0.6", "0.002"), _index("wsd", "0.4", "0.001"), _index("cosine", "0.0", "0.002")]
    assert _first_pruned_step(_completed_study(others, ScheduleAwarePruner()), c, spec_of(c.meta)) is None
    others.append(_index("wsd", "0.9", "0.001"))
    step = _first_pruned_step(_completed_study(others, ScheduleAwarePruner(n_warmup_steps=6000)), c, spec_of(c.meta))
    assert step is not None and step >= 6000
    step = _first_pruned_step(_completed_study(others, ScheduleAwarePruner(min_progress=0.3)), c, spec_of(c.meta))
    assert step is not None and step >= 0.3 * c.horizon


@pytest.mark.parametrize("kwargs, message", [
    ({"n_startup_trials": 1}, "n_startup_trials must be an integer >= 2, got 1"),
    ({"n_warmup_steps": -1}, "n_warmup_steps must be an integer >= 0, got -1"),
    ({"interval_steps": 0}, "interval_steps must be an integer >= 1, got 0"),
    ({"confidence": 1.0}, "confidence must be in (0.5, 1), got 1.0"),
    ({"min_progress": 1.5}, "min_progress must be a fraction in [0, 1), got 1.5"),
    ({"min_error": -0.1}, "min_error must be a relative error in [0, 1), got -0.1"),
    ({"step_unit": 0}, "step_unit must be a number of optimizer steps > 0, got 0"),
    ({"max_progress": 0}, "max_progress must be a fraction in (0, 1], got 0"),
    ({"law": "nolaw"}, "unknown law 'nolaw'"),
    ({"divergence_ratio": 1.0}, "divergence_ratio must be > 1, got 1.0"),
])
def test_arguments_are_validated_with_their_name_and_value(kwargs, message):
    with pytest.raises(ValueError) as e:
        ScheduleAwarePruner(**kwargs)
    assert message in str(e.value)


def test_record_schedule_stores_a_canonical_spec_and_rejects_a_bad_one():
    study = optuna.create_study()
    t = study.ask()
    s = record_schedule(t, "wsd:steps=1000,peak=1e-3,warmup=10,cooldown=0.2")
    assert study.trials[0].user_attrs[SCHEDULE_ATTR] == s.spec()
    assert math.isclose(s.lr().max(), 1e-3)
    with pytest.raises(ValueError, match="unknown schedule family"):
        record_schedule(t, "bogus:steps=10,peak=1")


def test_a_schedule_unlike_every_completed_trial_gets_a_wide_error_and_is_not_pruned_on_the_law_alone():
    # Only cosine runs have completed: the law has never seen a WSD cooldown, so the best
    # WSD run (60 % cooldown at 2e-3), in its constant phase, must not be pruned, and its
    # forecast error is wider than that of a cosine trial at the same progress.
    from lrtune.integrations._forecast import FinalLossModel, law_factory

    cosines = [_index("cosine", "0.0", "0.001"), _index("cosine", "0.0", "0.002")]
    best = _index("wsd", "0.6", "0.002")
    assert best == int(np.argmin([c.loss[-1] for c in CURVES]))
    study = _completed_study(cosines, ScheduleAwarePruner(n_startup_trials=2))
    assert _first_pruned_step(study, CURVES[best], spec_of(CURVES[best].meta)) is None

    model = FinalLossModel([CURVES[i] for i in cosines], law_factory("momentum"),
                           burn_in=0.1, min_error=0.003, max_folds=5)
    half = lambda c: (c.steps <= 0.4 * c.horizon)  # noqa: E731  (WSD 0.6 still at its peak)
    wsd, cos = CURVES[best], CURVES[cosines[1]]
    f_wsd = model.forecast(wsd.lr, wsd.steps[half(wsd)], wsd.loss[half(wsd)])
    f_cos = model.forecast(cos.lr, cos.steps[half(cos)], cos.loss[half(cos)])
    assert f_wsd.above / f_wsd.final > 1.5 * f_cos.above / f_cos.final
    # the old pooled error (errors of all completed runs alike) is the narrow one
    pooled = FinalLossModel([CURVES[i] for i in cosines], law_factory("momentum"), burn_in=0.1, min_error=0.003,
                            max_folds=5, local=False)
    assert pooled.forecast(wsd.lr, wsd.steps[half(wsd)], wsd.loss[half(wsd)]).above < f_wsd.above


# -- regressions ----------------------------------------------------------------------------
_OTHERS = [("wsd", "0.6", "0.002"), ("wsd", "0.4", "0.001"), ("cosine", "0.0", "0.002"), ("wsd", "0.9", "0.001")]


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "lrtune.integrations.optuna"]


def test_a_maximised_metric_that_rises_is_not_a_divergence_but_a_nan_still_prunes():
    # Each run's per-token probability exp(-loss) rises 20-fold: progress in a study that
    # maximises it, where the model does not prune and only a NaN or infinite report does.
    study = optuna.create_study(direction="maximize", pruner=ScheduleAwarePruner())
    for i in ORDER[:5]:
        c = CURVES[i]
        assert _first_pruned_step(study, c, spec_of(c.meta), metric=lambda v: math.exp(-v)) is None
    t = study.ask()
    t.report(math.exp(-float(CURVES[0].loss[0])), int(CURVES[0].steps[0]))
    t.report(float("nan"), int(CURVES[0].steps[1]))
    assert t.should_prune()


def test_a_nan_or_inf_reported_below_the_last_step_is_pruned():
    # a run resumed from an earlier checkpoint reports steps below its last one again
    study = optuna.create_study(direction="minimize", pruner=ScheduleAwarePruner())
    c = CURVES[0]
    for bad in (float("nan"), float("inf")):
        t = study.ask()
        record_schedule(t, spec_of(c.meta))
        t.report(float(c.loss[10]), int(c.steps[10]))
        assert not t.should_prune()
        t.report(bad, int(c.steps[5]))
        assert t.should_prune()
        study.tell(t, state=TrialState.PRUNED)


def test_one_pruner_serving_two_studies_judges_each_by_its_own_trials():
    # Two in-memory studies both number their study 0 and their trials 0, 1, ...: the same
    # runs, reported in nats in the first and in bits in the second.  The second study keeps
    # its best run and prunes the clearly worse one where a pruner of its own does.
    runs = [_index(*k) for k in _OTHERS[1:]] + [_index("wsd", "0.1", "0.001")]
    best, bad = _index("wsd", "0.6", "0.002"), _index("wsd", "0.1", "0.0005")
    bits = lambda v: v / math.log(2)  # noqa: E731

    def pruned_steps(pruner, metric):
        study = optuna.create_study(direction="minimize", pruner=pruner)
        return [_first_pruned_step(study, CURVES[i], spec_of(CURVES[i].meta), metric) for i in runs + [best, bad]]

    expected = pruned_steps(ScheduleAwarePruner(), bits)
    assert expected[:-1] == [None] * 5 and expected[-1] is not None
    shared = ScheduleAwarePruner()
    pruned_steps(shared, lambda v: v)
    assert pruned_steps(shared, bits) == expected


def test_a_completed_diverged_trial_is_left_out_of_the_fit_with_one_warning(caplog):
    # e.g. completed before the pruner was attached: the real cosine run at peak LR 5e-3
    # (50k steps) climbs from 4.87 to 7.55.  No law fits it; left out, the pruner still
    # prunes a clearly worse trial where it does without it.
    others = [_index(*k) for k in _OTHERS]
    bad = _index("wsd", "0.1", "0.0005")
    expected = _first_pruned_step(_completed_study(others, ScheduleAwarePruner()), CURVES[bad],
                                  spec_of(CURVES[bad].meta))
    assert expected is not None
    diverged = load_schaipp(group="main", n_layer="12", n_embd="768", horizon="50000", base_lr="0.005")[0]
    study = _completed_study(others, optuna.pruners.NopPruner())
    _first_pruned_step(study, diverged, spec_of(diverged.meta))
    study.pruner = ScheduleAwarePruner()
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.optuna"):
        assert _first_pruned_step(study, CURVES[bad], spec_of(CURVES[bad].meta)) == expected
    (warning,) = _warnings(caplog)
    assert "completed trial 4 diverged" in warning


def test_a_law_that_cannot_be_fitted_is_tried_once_per_set_of_completed_trials(caplog):
    calls = []

    def failing_law():
        calls.append(1)
        raise ValueError("no fit")

    study = _completed_study([_index(*k) for k in _OTHERS], ScheduleAwarePruner(law=failing_law))
    bad = _index("wsd", "0.1", "0.0005")
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.optuna"):
        assert _first_pruned_step(study, CURVES[bad], spec_of(CURVES[bad].meta)) is None
    assert len(calls) == 1  # not at each of the trial's 70 checks
    (warning,) = _warnings(caplog)
    assert "could not be fitted on the 4 completed trials (ValueError: no fit)" in warning


def test_a_completed_trial_that_stopped_before_its_horizon_is_left_out_of_the_fit_with_a_warning(caplog):
    # The best run's objective returned at 60 % of its schedule (a time budget): its last
    # loss is no final one.  The pruner decides as if it were not there.
    others = [_index(*k) for k in _OTHERS[1:]] + [_index("wsd", "0.9", "0.0005")]
    best, bad = _index("wsd", "0.6", "0.002"), _index("wsd", "0.1", "0.0005")
    expected = _first_pruned_step(_completed_study(others, ScheduleAwarePruner()), CURVES[bad],
                                  spec_of(CURVES[bad].meta))
    study = _completed_study(others, optuna.pruners.NopPruner())
    _first_pruned_step(study, CURVES[best], spec_of(CURVES[best].meta), stop=0.6)
    study.pruner = ScheduleAwarePruner()
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.optuna"):
        assert _first_pruned_step(study, CURVES[bad], spec_of(CURVES[bad].meta)) == expected
    (warning,) = _warnings(caplog)
    assert "completed trial 4 reported up to optimizer step 9000 of its schedule's 15000" in warning


def test_steps_beyond_the_schedule_horizon_are_warned_once_per_trial(caplog):
    # tokens reported as steps: every report lies past the 15,000-step schedule
    study = optuna.create_study(direction="minimize", pruner=ScheduleAwarePruner())
    c = CURVES[0]
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.optuna"):
        assert _first_pruned_step(study, c, spec_of(c.meta), stop=0.2) is None
        t = study.ask()
        record_schedule(t, spec_of(c.meta))
        for s, v in zip(c.steps[:10].tolist(), c.loss[:10].tolist()):
            t.report(v, s * 500_000)
            assert not t.should_prune()
    # (the first trial, told complete at 20 %, gets its own "stopped early" warning)
    (warning,) = [w for w in _warnings(caplog) if "beyond its schedule" in w]
    assert (f"trial 1 reported step {200 * 500_000}, 1e+08 optimizer steps at step_unit=1, beyond its schedule's "
            f"horizon of 15000 optimizer steps") in warning


def test_a_completed_trial_that_reported_evaluation_indices_gets_a_step_unit_hint(caplog):
    # the objective reports evaluation k (1, 2, ..., 74) for a loss logged every 200 steps
    # and no step_unit: the trial looks stopped at step 74 of 15000, and the warning says why
    c = CURVES[_index("wsd", "0.6", "0.002")]
    study = optuna.create_study(direction="minimize", pruner=ScheduleAwarePruner())
    t = study.ask()
    record_schedule(t, spec_of(c.meta))
    for k, v in enumerate(c.loss.tolist(), start=1):
        t.report(v, k)
    study.tell(t, float(c.loss[-1]))
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.optuna"):
        assert _first_pruned_step(study, c, spec_of(c.meta), stop=0.2) is None
    (warning,) = _warnings(caplog)
    assert "reported up to optimizer step 74 of its schedule's 15000" in warning
    assert "its steps run 1..74, one per report" in warning and "(about 203 here)" in warning
    # steps that are optimizer steps get no such hint
    caplog.clear()
    study = _completed_study([], ScheduleAwarePruner())
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.optuna"):
        _first_pruned_step(study, c, spec_of(c.meta), stop=0.6)
        _first_pruned_step(study, c, spec_of(c.meta), stop=0.2)
    (warning,) = _warnings(caplog)
    assert "stopped early" in warning and "one per report" not in warning


def test_a_study_whose_every_trial_reports_evaluation_indices_is_warned_once(caplog):
    # every trial reports k = 1, 2, ... (no step_unit): no report ever reaches min_progress of
    # the 15,000-step schedules, yet the study must hear why the pruner does nothing, once
    runs = [CURVES[_index("wsd", cd, lr)] for cd, lr in (("0.6", "0.002"), ("0.1", "0.001"), ("0.4", "0.0005"))]
    study = optuna.create_study(direction="minimize", pruner=ScheduleAwarePruner(n_startup_trials=2, n_warmup_steps=5))
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.optuna"):
        for c in runs + runs:
            t = study.ask()
            record_schedule(t, spec_of(c.meta))
            for k, v in enumerate(c.loss.tolist(), start=1):
                t.report(v, k)
                assert not t.should_prune()
            study.tell(t, float(c.loss[-1]))
    (warning,) = _warnings(caplog)
    assert "its steps run 1..74, one per report" in warning and "pass step_unit" in warning
    assert "the model prunes nothing" in warning


def test_in_a_constrained_study_the_best_is_the_best_feasible_trial():
    # peak LRs above 5e-4 are infeasible (as study.best_trial sees it: a constraint value > 0);
    # the completed runs at 1e-3 and 2e-3 are better than every feasible one, so judged against
    # them the best feasible run is pruned; judged against the feasible trials, as
    # study.best_trial is, it is kept
    peak = lambda i: float(CURVES[i].meta["base_lr"])  # noqa: E731
    done = [_index("wsd", "0.6", "0.002"), _index("wsd", "0.4", "0.001"), _index("cosine", "0.0", "0.001"),
            _index("wsd", "0.9", "0.0005"), _index("wsd", "0.6", "0.0005")]
    feasible = [i for i in range(len(CURVES)) if peak(i) <= 5e-4]
    best_feasible = min(feasible, key=lambda i: CURVES[i].loss[-1])
    assert best_feasible not in done and CURVES[best_feasible].loss[-1] > CURVES[done[0]].loss[-1]

    def study_with(constrained: bool) -> optuna.Study:
        study = optuna.create_study(direction="minimize", pruner=optuna.pruners.NopPruner())
        for i in done:
            def objective(t, i=i):
                if constrained:
                    t.set_constraint("peak_lr", peak(i) - 5e-4)
                return replay(t, CURVES[i], spec_of(CURVES[i].meta))
            study.optimize(objective, n_trials=1)
        study.pruner = ScheduleAwarePruner()
        return study

    run = CURVES[best_feasible]
    assert _first_pruned_step(study_with(False), run, spec_of(run.meta)) is not None
    constrained = study_with(True)
    assert _first_pruned_step(constrained, run, spec_of(run.meta)) is None
    # the clearly worse run is still pruned there, against the best feasible trial
    bad = _index("wsd", "0.1", "0.0005")
    assert _first_pruned_step(constrained, CURVES[bad], spec_of(CURVES[bad].meta)) is not None


def test_a_study_loaded_again_for_every_trial_reuses_the_fits_and_cached_curves(tmp_path):
    # the worker-loop pattern: load_study + optimize(n_trials=1) per trial, one pruner object;
    # each load wraps the RDB storage in a new object, which must not make every trial new
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="loop", storage=storage)
    pruner = ScheduleAwarePruner()
    order = [int(i) for i in ORDER[:8]]
    for i in order:
        study = optuna.load_study(study_name="loop", storage=storage, pruner=pruner)
        study.optimize(lambda t, i=i: replay(t, CURVES[i], spec_of(CURVES[i].meta)), n_trials=1)
    finished = sum(t.state == TrialState.COMPLETE for t in study.trials)
    assert finished >= pruner._n_startup_trials
    assert len(pruner._curves) <= finished  # at most one cached curve per completed trial, not one per load
    assert len(pruner._models) <= finished - pruner._n_startup_trials + 1  # one fit per set of completed trials


def test_an_lr_array_recorded_as_the_schedule_is_named_in_one_short_warning(caplog):
    study = _completed_study([_index(*k) for k in _OTHERS], ScheduleAwarePruner())
    lr = CURVES[0].lr.tolist()
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.optuna"):
        trial = study.ask()
        trial.set_user_attr(SCHEDULE_ATTR, lr)
        for s, v in zip(CURVES[0].steps.tolist()[:40], CURVES[0].loss.tolist()[:40]):
            trial.report(v, s)
            assert not trial.should_prune()
    msgs = [m for m in _warnings(caplog) if "LR array" in m]
    assert len(msgs) == 1 and len(msgs[0]) < 400 and "holds an LR array of 15000 values" in msgs[0]
