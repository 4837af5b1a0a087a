"""ScheduleAwareScheduler: stub trials replaying real curves, and one real Ray Tune run."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import tempfile

import numpy as np
import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from ray.tune.experiment import Trial  # noqa: E402
from ray.tune.schedulers import TrialScheduler  # noqa: E402

from _schaipp15k import SUBSET, grid_15k  # noqa: E402
from lrtune.datasets import schaipp_spec as spec_of  # noqa: E402
from lrtune.integrations.optuna import ScheduleSpace, suggest_schedule  # noqa: E402
from lrtune.integrations.ray import ScheduleAwareScheduler  # noqa: E402
from lrtune.schedules import parse_schedule  # noqa: E402

CURVES = grid_15k()


def stub(i: int, config: dict | None = None) -> Trial:
    return Trial("__fake", config={"lr_schedule": spec_of(CURVES[i].meta)} if config is None else config,
                 stub=True)


def run_trial(scheduler: ScheduleAwareScheduler, trial: Trial, curve) -> tuple[list[str], int]:
    """Feed a curve's results (one per evaluation: iteration k = step 200 k); stop on STOP."""
    scheduler.on_trial_add(None, trial)
    decisions, result = [], {}
    for k, v in enumerate(curve.loss.tolist(), start=1):
        result = {"loss": v, "training_iteration": k}
        decisions.append(scheduler.on_trial_result(None, trial, result))
        if decisions[-1] == TrialScheduler.STOP:
            break
    scheduler.on_trial_complete(None, trial, result)
    return decisions, len(decisions)


def test_replayed_grid_stops_worse_trials_and_never_the_best_one():
    scheduler = ScheduleAwareScheduler(metric="loss", mode="min", step_unit=200)
    order = np.random.default_rng(3).permutation(len(CURVES))
    best = int(np.argmin([c.loss[-1] for c in CURVES]))
    used, stopped = 0, []
    for i in order:
        decisions, n = run_trial(scheduler, stub(int(i)), CURVES[i])
        assert set(decisions) <= {TrialScheduler.CONTINUE, TrialScheduler.STOP}
        assert TrialScheduler.STOP not in decisions[:-1]
        used += n
        if decisions[-1] == TrialScheduler.STOP:
            stopped.append(int(i))
    assert best not in stopped
    assert len(stopped) >= 3
    assert used < 0.9 * sum(c.loss.size for c in CURVES)
    # every stopped trial is worse than the best completed one
    finals = np.array([c.loss[-1] for c in CURVES])
    assert all(finals[i] > finals[best] for i in stopped)


def test_nan_or_diverging_metric_stops_at_once():
    scheduler = ScheduleAwareScheduler(metric="loss", mode="min")
    trial = stub(0)
    scheduler.on_trial_add(None, trial)
    assert scheduler.on_trial_result(None, trial, {"loss": 5.0, "training_iteration": 1}) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, trial, {"loss": float("nan"), "training_iteration": 2}) == TrialScheduler.STOP
    stub0_id = trial.trial_id
    trial = stub(1)
    scheduler.on_trial_add(None, trial)
    # a level (median of the last 5 reports) up to 1.2 times the lowest is a bump, and so is
    # one or two noisy reports above it; the third in a row lifts the level above: stop
    for k, v in enumerate([5.0, 4.0, 4.0, 4.0, 4.79, 4.0, 9.0, 9.0], start=1):
        assert scheduler.on_trial_result(None, trial, {"loss": v, "training_iteration": k}) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, trial, {"loss": 4.81, "training_iteration": 9}) == TrialScheduler.STOP
    reasons = scheduler.stop_reasons
    assert reasons[stub0_id] == {"reason": "not finite", "step": 2.0, "at_step": 2.0}
    # the levels the rule compared: medians of the last 5 reports
    assert reasons[trial.trial_id] == {"reason": "diverging", "step": 9.0, "level": 4.81, "lowest_level": 4.0,
                                       "ratio": 1.2}


def test_mode_max_stops_only_a_nan_or_infinite_metric():
    # an accuracy rises: that is no divergence (only mode="min" is modelled)
    scheduler = ScheduleAwareScheduler(metric="acc", mode="max")
    for bad in (float("nan"), float("inf")):
        trial = stub(0)
        scheduler.on_trial_add(None, trial)
        for k, acc in enumerate([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], start=1):
            assert scheduler.on_trial_result(None, trial, {"acc": acc, "training_iteration": k}) == TrialScheduler.CONTINUE
        assert scheduler.on_trial_result(None, trial, {"acc": bad, "training_iteration": 9}) == TrialScheduler.STOP


def test_a_trial_restarted_from_scratch_is_judged_on_its_curve_by_step():
    # Tune recovers a failed trial without a checkpoint (on_trial_error, on_trial_add) and it
    # reports its steps again from 1: its early, high losses are no divergence from the
    # lower ones the failed attempt reached
    scheduler = ScheduleAwareScheduler(metric="loss", mode="min", step_unit=200)
    i = SUBSET.index(("wsd", "0.4", "0.001"))
    trial, loss = stub(i), CURVES[i].loss.tolist()
    scheduler.on_trial_add(None, trial)
    for k in range(1, 31):
        assert scheduler.on_trial_result(None, trial, {"loss": loss[k - 1], "training_iteration": k}) == TrialScheduler.CONTINUE
    scheduler.on_trial_error(None, trial)
    decisions, _ = run_trial(scheduler, trial, CURVES[i])
    assert TrialScheduler.STOP not in decisions
    assert scheduler._completed == {trial.trial_id}


def test_a_final_result_that_is_not_a_number_is_ignored_and_the_trial_completes(caplog):
    scheduler = ScheduleAwareScheduler(metric="loss", mode="min", step_unit=200)
    i = SUBSET.index(("wsd", "0.4", "0.001"))
    for bad in (None, "n/a", [3.0, 3.1]):
        trial = stub(i)
        scheduler.on_trial_add(None, trial)
        for k, v in enumerate(CURVES[i].loss.tolist(), start=1):
            scheduler.on_trial_result(None, trial, {"loss": v, "training_iteration": k})
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="lrtune.integrations.ray"):
            scheduler.on_trial_complete(None, trial, {"loss": bad, "training_iteration": CURVES[i].loss.size + 1})
        assert trial.trial_id in scheduler._completed  # on its earlier results, which reach the horizon
        assert len([r for r in caplog.records if "last result is ignored" in r.getMessage()]) == 1


def test_a_trial_ended_before_its_horizon_is_not_a_completed_run(caplog):
    # a stopper (or a time budget) ends the first trial at half its schedule: its loss there
    # is no final loss, and taken for one it made the model stop the grid's best run
    first, *rest = [SUBSET.index(k) for k in (("wsd", "0.4", "0.002"), ("wsd", "0.9", "0.0005"), ("wsd", "0.9", "0.001"),
                                             ("cosine", "0.0", "0.002"), ("wsd", "0.1", "0.001"))]
    best = int(np.argmin([c.loss[-1] for c in CURVES]))
    scheduler = ScheduleAwareScheduler(metric="loss", mode="min", step_unit=200)
    cut = stub(first)
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.ray"):
        run_trial(scheduler, cut, dataclasses.replace(CURVES[first], steps=CURVES[first].steps[:37],
                                                      loss=CURVES[first].loss[:37]))
    warnings = [r.getMessage() for r in caplog.records if "not counted as a completed run" in r.getMessage()]
    assert len(warnings) == 1 and cut.trial_id in warnings[0]
    assert "step 7400" in warnings[0] and "horizon of 15000 steps" in warnings[0]
    assert cut.trial_id not in scheduler._completed
    trials = [stub(i) for i in rest]
    for i, trial in zip(rest, trials):
        run_trial(scheduler, trial, CURVES[i])
    assert scheduler._completed == {t.trial_id for t in trials}  # every run to its horizon counts
    decisions, _ = run_trial(scheduler, stub(best), CURVES[best])
    assert TrialScheduler.STOP not in decisions


def test_a_trial_counted_in_evaluations_without_step_unit_gets_a_hint(caplog):
    # training_iteration is an evaluation index; without step_unit the trial seems to end
    # at step 74 of 15000
    scheduler = ScheduleAwareScheduler(metric="loss", mode="min")
    trial = stub(0)
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.ray"):
        run_trial(scheduler, trial, CURVES[0])
    (warning,) = [r.getMessage() for r in caplog.records if "not counted as a completed run" in r.getMessage()]
    assert "ended at step 74 (training_iteration=74)" in warning
    assert "its steps run 1..74, one per report" in warning and "(about 203 here)" in warning


def test_a_trial_recovered_after_a_failure_counts_when_it_completes():
    # Tune's recovery (on_trial_error, then on_trial_add): the trial resumes from its checkpoint
    scheduler = _warmed_up(3)
    i = SUBSET.index(("wsd", "0.9", "0.001"))
    trial, loss = stub(i), CURVES[i].loss.tolist()
    scheduler.on_trial_add(None, trial)
    for k in range(1, 41):
        scheduler.on_trial_result(None, trial, {"loss": loss[k - 1], "training_iteration": k})
    scheduler.on_trial_error(None, trial)
    scheduler.on_trial_add(None, trial)
    for k in range(41, len(loss)):
        assert scheduler.on_trial_result(None, trial, {"loss": loss[k - 1], "training_iteration": k}) == TrialScheduler.CONTINUE
    scheduler.on_trial_complete(None, trial, {"loss": loss[-1], "training_iteration": len(loss)})
    assert len(scheduler._completed) == 4 and not scheduler._stopped
    trial.set_status(Trial.TERMINATED)
    scheduler.on_trial_add(None, trial)  # a resumed experiment adds its ended trials again: they stay completed
    assert len(scheduler._completed) == 4
    decisions, _ = run_trial(scheduler, stub(BAD), CURVES[BAD])  # 4 completed: the model stops the bad run
    assert decisions[-1] == TrialScheduler.STOP


def test_results_beyond_the_horizon_are_warned_once_and_turn_the_model_off(caplog):
    # a report every 200 steps taken for one every 400 (a wrong step_unit): from iteration 38
    # on, the steps lie past the 15000-step schedules, and nothing the model says can be trusted
    scheduler = ScheduleAwareScheduler(metric="loss", mode="min", step_unit=400)
    trials = [stub(i) for i in range(4)]
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.ray"):
        for i, trial in enumerate(trials):
            run_trial(scheduler, trial, CURVES[i])
        decisions, _ = run_trial(scheduler, stub(BAD), CURVES[BAD])  # stopped with the right unit (above)
    warnings = [r.getMessage() for r in caplog.records if "beyond its schedule's horizon" in r.getMessage()]
    assert len(warnings) == 1
    assert trials[0].trial_id in warnings[0] and "training_iteration=38, step 15200 with step_unit=400" in warnings[0]
    assert "horizon of 15000 steps" in warnings[0] and "no trial is stopped by the model" in warnings[0]
    assert TrialScheduler.STOP not in decisions


def _warmed_up(n: int = 4) -> ScheduleAwareScheduler:
    scheduler = ScheduleAwareScheduler(metric="loss", mode="min", step_unit=200)
    for i in (SUBSET.index(("wsd", "0.6", "0.002")), SUBSET.index(("wsd", "0.4", "0.001")),
              SUBSET.index(("cosine", "0.0", "0.002")), SUBSET.index(("wsd", "0.9", "0.001")))[:n]:
        run_trial(scheduler, stub(i), CURVES[i])
    return scheduler


BAD = SUBSET.index(("wsd", "0.1", "0.0005"))


def test_a_stopped_trial_says_why_in_stop_reasons_and_the_log_and_keeps_it_through_save(caplog, tmp_path):
    scheduler = _warmed_up()
    trial = stub(BAD)
    with caplog.at_level(logging.INFO, logger="lrtune.integrations.ray"):
        decisions, n = run_trial(scheduler, trial, CURVES[BAD])
    assert decisions[-1] == TrialScheduler.STOP
    why = scheduler.stop_reasons[trial.trial_id]
    assert why["reason"] == "forecast" and why["step"] == n
    # the best is the completed trial of lowest final loss (validation losses: its last report)
    finals = {tid: pts[-1][1] for tid, pts in scheduler._points.items() if tid in scheduler._completed}
    leader = min(finals, key=finals.get)
    assert why["best_from"] == leader and why["best"] == pytest.approx(finals[leader], rel=1e-9)
    assert why["forecast"] > why["optimistic"] > why["best"]
    assert f"trial {trial.trial_id} stopped at training_iteration={n}: forecast final loss" in caplog.text
    path = str(tmp_path / "sched.pkl")
    scheduler.save(path)
    restored = ScheduleAwareScheduler(metric="loss", mode="min", step_unit=200)
    restored.restore(path)
    assert restored.stop_reasons == scheduler.stop_reasons


def test_missing_or_malformed_schedule_continues_and_is_warned_once(caplog):
    scheduler = _warmed_up()
    decisions, _ = run_trial(scheduler, stub(BAD), CURVES[BAD])
    assert decisions[-1] == TrialScheduler.STOP  # with its schedule the bad run is stopped
    for config in ({}, {"lr_schedule": "wsd:steps=15000,peak=oops"}, {"lr_schedule": 42}):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="lrtune.integrations.ray"):
            decisions, n = run_trial(scheduler, stub(BAD, config), CURVES[BAD])
        assert TrialScheduler.STOP not in decisions and n == CURVES[BAD].loss.size
        warnings = [r.getMessage() for r in caplog.records if "not stopped by the model" in r.getMessage()]
        assert len(warnings) == 1
        if config:  # the warning says what is wrong with the schedule
            with pytest.raises(ValueError) as e:
                parse_schedule(config["lr_schedule"])
            assert str(e.value) in warnings[0]


def test_save_and_restore_keep_the_decisions(tmp_path):
    scheduler = _warmed_up()
    path = str(tmp_path / "scheduler.pkl")
    scheduler.save(path)
    restored = ScheduleAwareScheduler(metric="loss", mode="min", step_unit=200)
    restored.restore(path)
    a, b = stub(BAD), stub(BAD)
    for s in (scheduler, restored):
        s.on_trial_add(None, a if s is scheduler else b)
    for k, v in enumerate(CURVES[BAD].loss.tolist(), start=1):
        r = {"loss": v, "training_iteration": k}
        da, db = scheduler.on_trial_result(None, a, r), restored.on_trial_result(None, b, r)
        assert da == db
        if da == TrialScheduler.STOP:
            break
    assert da == TrialScheduler.STOP


def test_a_nested_schedule_key_is_read():
    scheduler = ScheduleAwareScheduler(metric="loss", mode="min", step_unit=200, schedule_key="opt/lr_schedule")
    for i in (SUBSET.index(("wsd", "0.6", "0.002")), SUBSET.index(("wsd", "0.4", "0.001")),
              SUBSET.index(("cosine", "0.0", "0.002")), SUBSET.index(("wsd", "0.9", "0.001")), BAD):
        decisions, _ = run_trial(scheduler, stub(i, {"opt": {"lr_schedule": spec_of(CURVES[i].meta)}}), CURVES[i])
    assert decisions[-1] == TrialScheduler.STOP


def test_metric_and_mode_are_required_and_arguments_validated():
    with pytest.raises(ValueError, match="no metric"):
        ScheduleAwareScheduler().on_trial_add(None, stub(0))
    s = ScheduleAwareScheduler()
    assert s.set_search_properties("loss", "min")
    s.on_trial_add(None, stub(0))
    for kwargs, message in [({"mode": "minimize"}, "mode must be 'min' or 'max', got 'minimize'"),
                            ({"step_unit": 0}, "step_unit must be a number of optimizer steps > 0, got 0"),
                            ({"n_startup_trials": 1}, "n_startup_trials must be an integer >= 2, got 1"),
                            ({"confidence": 0.2}, "confidence must be in (0.5, 1), got 0.2"),
                            ({"grace_period": -1}, "grace_period must be >= 0, got -1")]:
        with pytest.raises(ValueError) as e:
            ScheduleAwareScheduler(**kwargs)
        assert message in str(e.value)


# -- the real run: Optuna's define-by-run space picks the real run nearest to the proposal
# (module level: OptunaSearch pickles its space when it checkpoints)
SPACE = ScheduleSpace(steps=15000, peak_lr=(5e-4, 2e-3), families=("wsd", "cosine"), cooldown=(0.1, 0.9), warmup=301)


def nearest(params: dict) -> int:
    def distance(c):
        m = c.meta
        d = abs(math.log(float(m["base_lr"]) / params["peak_lr"]))
        d += 100 * (m["schedule"] != params.get("schedule", "wsd"))
        if m["schedule"] == "wsd" and "cooldown_fraction" in params:
            d += abs(float(m["cooldown_frac"]) - params["cooldown_fraction"])
        return d
    return min(range(len(CURVES)), key=lambda i: distance(CURVES[i]))


def define_by_run(trial) -> dict:
    suggest_schedule(trial, SPACE)
    i = nearest(trial.params)
    return {"run": i, "lr_schedule": spec_of(CURVES[i].meta)}


def test_real_tune_run_with_optuna_search_driven_by_the_schedule_sampler(tmp_path):
    import optuna
    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from lrtune.integrations.optuna import ScheduleSampler

    losses = {i: c.loss.tolist() for i, c in enumerate(CURVES)}

    def trainable(config):
        for v in losses[config["run"]]:
            tune.report({"loss": v})

    sampler = ScheduleSampler(SPACE, n_startup_trials=3, step_unit=200, seed=0)
    searcher = OptunaSearch(space=define_by_run, metric="loss", mode="min", sampler=sampler)
    scheduler = ScheduleAwareScheduler(step_unit=200, n_startup_trials=3)
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=ray_tmp, log_to_driver=False,
             logging_level=logging.ERROR)
    try:
        results = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(metric="loss", mode="min", search_alg=searcher, scheduler=scheduler,
                                        num_samples=8, max_concurrent_trials=2),
            run_config=tune.RunConfig(storage_path=str(tmp_path / "results"), verbose=0),
        ).fit()
    finally:
        ray.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert len(results) == 8 and not results.errors
    assert all(r.metrics["training_iteration"] <= CURVES[0].loss.size for r in results)
    assert len(scheduler._completed) + len(scheduler._stopped) == 8  # the scheduler saw every trial
    # the searcher's study holds every trial; after 3 completed ones the law proposed the schedules
    trials = searcher._ot_study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 8 and all("peak_lr" in t.params and t.intermediate_values for t in trials)
    assert sampler._fits
    finals = [c.loss[-1] for c in CURVES]
    assert results.get_best_result().metrics["loss"] <= np.quantile(finals, 0.5)


def test_a_resumed_experiment_reads_back_the_completed_trials(tmp_path):
    """Tuner.restore brings back the scheduler as it was created (no trials): it must read the
    completed trials' results back from their folders, or it cannot stop the bad run after
    the restore. The first run completes four runs and fails on the fifth (the bad run)
    before it reports; resumed, the bad run is stopped early."""
    import ray
    from ray import tune

    warm = [SUBSET.index(k) for k in (("wsd", "0.6", "0.002"), ("wsd", "0.4", "0.001"),
                                       ("cosine", "0.0", "0.002"), ("wsd", "0.9", "0.001"))]
    losses = {i: CURVES[i].loss.tolist() for i in warm + [BAD]}
    broken = tmp_path / "broken"
    broken.touch()

    def trainable(config):
        if config["run"] == BAD and broken.exists():
            raise RuntimeError("interrupted")
        for v in losses[config["run"]]:
            tune.report({"loss": v})

    space = {"run": tune.grid_search(warm + [BAD]),
             "lr_schedule": tune.sample_from(lambda spec: spec_of(CURVES[spec.config["run"]].meta))}
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=ray_tmp, log_to_driver=False,
             logging_level=logging.ERROR)
    try:
        first = tune.Tuner(
            trainable, param_space=space,
            tune_config=tune.TuneConfig(metric="loss", mode="min", max_concurrent_trials=1,
                                        scheduler=ScheduleAwareScheduler(step_unit=200)),
            run_config=tune.RunConfig(name="resume", storage_path=str(tmp_path / "results"), verbose=0),
        ).fit()
        n = CURVES[BAD].loss.size  # evaluations of every run
        assert len(first.errors) == 1 and sum(r.metrics.get("training_iteration", 0) == n for r in first) == 4
        # a line cut short by the interruption is skipped
        done = next(r for r in first if r.metrics.get("training_iteration") == n)
        with open(os.path.join(done.path, "result.json"), "a") as f:
            f.write('{"loss": 3.1, "training_itera')
        broken.unlink()
        resumed = tune.Tuner.restore(str(tmp_path / "results" / "resume"), trainable, resume_errored=True).fit()
    finally:
        ray.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert not resumed.errors
    bad = next(r for r in resumed if r.config["run"] == BAD)
    # stopped by the law fitted on the four runs of before the restore, where a scheduler that
    # saw the four runs itself stops it (without them it would run to its end)
    _, uninterrupted = run_trial(_warmed_up(), stub(BAD), CURVES[BAD])
    assert bad.metrics["training_iteration"] == uninterrupted < n
    assert sorted(r.metrics["training_iteration"] for r in resumed if r.config["run"] != BAD) == [n] * 4


def _replay_grid(scheduler: ScheduleAwareScheduler, order, offset: float = 0.0, ids=None) -> list[int]:
    """Replay the grid in ``order`` (losses shifted by ``offset``); the reports each trial used."""
    out = []
    for k, i in enumerate(order):
        trial = stub(int(i))
        if ids is not None:
            trial.trial_id = ids[k]
        curve = dataclasses.replace(CURVES[i], loss=CURVES[i].loss + offset)
        out.append(run_trial(scheduler, trial, curve)[1])
    return out


def test_a_scheduler_used_again_for_a_new_experiment_starts_afresh():
    # Tune calls set_search_properties as each experiment starts; the second experiment's runs
    # are 0.3 nats worse than the first's and must not be judged against the first's trials
    order = np.random.default_rng(3).permutation(len(CURVES))
    fresh = ScheduleAwareScheduler(metric="loss", mode="min", step_unit=200)
    assert fresh.set_search_properties(None, None)
    expected = _replay_grid(fresh, order, offset=0.3)
    assert max(expected) == CURVES[0].loss.size  # its best run completes
    reused = ScheduleAwareScheduler(metric="loss", mode="min", step_unit=200)
    assert reused.set_search_properties(None, None)
    _replay_grid(reused, order)
    assert reused.set_search_properties(None, None)
    assert _replay_grid(reused, order, offset=0.3) == expected
    # metric and mode given by TuneConfig belong to the experiment: a second one may give them again
    tuned = ScheduleAwareScheduler(step_unit=200)
    assert tuned.set_search_properties("loss", "min")
    _replay_grid(tuned, order)
    assert tuned.set_search_properties("loss", "min")
    assert _replay_grid(tuned, order, offset=0.3) == expected


def test_decisions_do_not_depend_on_the_random_trial_ids_of_search_algorithms():
    # Ray's searchers (OptunaSearch, ...) give trials random ids; the same experiment must decide the same
    rng = np.random.default_rng(0)
    for seed in (3, 5, 7):
        order = np.random.default_rng(seed).permutation(len(CURVES))
        runs = []
        for _ in range(3):
            ids = [f"{int(v):08x}" for v in rng.integers(0, 2**32, size=len(order))]
            runs.append(_replay_grid(ScheduleAwareScheduler(metric="loss", mode="min", step_unit=200), order, ids=ids))
        assert runs[0] == runs[1] == runs[2]


def test_a_resumed_experiment_reads_nested_metrics_back_from_result_json(tmp_path):
    import json
    import types

    import pyarrow.fs

    scheduler = ScheduleAwareScheduler(metric="val/loss", mode="min", time_attr="progress/iter", step_unit=200)
    folder = tmp_path / "trial"
    folder.mkdir()
    c = CURVES[0]
    rows = [{"val": {"loss": v}, "progress": {"iter": k}, "training_iteration": k}
            for k, v in enumerate(c.loss.tolist(), start=1)]
    (folder / "result.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    trial = types.SimpleNamespace(trial_id="t0", storage=types.SimpleNamespace(
        storage_filesystem=pyarrow.fs.LocalFileSystem(), trial_fs_path=str(folder)))
    points, _ = scheduler._read_results(trial)
    assert [p for _, p in points] == c.loss.tolist() and points[-1][0] == c.loss.size


def test_an_lr_array_given_as_the_schedule_is_refused_in_a_short_warning(caplog):
    scheduler = _warmed_up()
    lr = parse_schedule(spec_of(CURVES[0].meta)).lr().tolist()
    trial = stub(0, {"lr_schedule": lr})
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.ray"):
        run_trial(scheduler, trial, CURVES[0])
    msgs = [r.getMessage() for r in caplog.records if "malformed schedule" in r.getMessage()]
    assert len(msgs) == 1 and len(msgs[0]) < 400
    assert "an LR array of 15000 values: give the schedule's spec string or an lrtune.schedules.Schedule" in msgs[0]


def test_a_restored_scheduler_keeps_its_state_when_the_experiment_starts_and_old_pickles_load(tmp_path):
    import pickle

    scheduler = ScheduleAwareScheduler(metric="loss", mode="min", step_unit=200)
    order = np.random.default_rng(3).permutation(len(CURVES))
    _replay_grid(scheduler, order[:5])
    path = str(tmp_path / "sched.pkl")
    scheduler.save(path)
    restored = ScheduleAwareScheduler(metric="loss", mode="min", step_unit=200)
    restored.restore(path)
    assert restored.set_search_properties(None, None)  # Tune, as the experiment starts
    assert restored._completed == scheduler._completed and len(restored._points) == 5
    assert restored.set_search_properties(None, None)  # a later experiment starts afresh
    assert not restored._points
    # a scheduler pickled before these fields existed (a Tuner's tuner.pkl) still runs
    state = dict(scheduler.__dict__)
    for k in ("_order", "_given", "_reasons", "_confidence"):
        state.pop(k)
    old = ScheduleAwareScheduler.__new__(ScheduleAwareScheduler)
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    assert old._order == {tid: i for i, tid in enumerate(scheduler._points)} and old._given == (None, None)
    assert old.stop_reasons == {} and old._confidence == pytest.approx(0.9)
    run_trial(old, stub(int(order[5])), CURVES[order[5]])


def test_a_resumed_experiment_keeps_trials_stopped_near_their_horizon_stopped_and_their_order(tmp_path):
    # Tuner.restore adds the ended trials again, newest first, each TERMINATED (Tune marks a trial a
    # scheduler stopped so too): their results come back from result.json
    import json
    import types

    import pyarrow.fs

    def restored(i, name, upto, started):
        folder = tmp_path / name
        folder.mkdir()
        rows = [{"loss": v, "training_iteration": k, "timestamp": started + k}
                for k, v in enumerate(CURVES[i].loss.tolist()[:upto], start=1)]
        (folder / "result.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        trial = stub(i)
        trial.storage = types.SimpleNamespace(storage_filesystem=pyarrow.fs.LocalFileSystem(),
                                              trial_fs_path=str(folder))
        trial.set_status(Trial.TERMINATED)
        return trial

    n = CURVES[0].loss.size  # 75 reports to the horizon
    trials = [restored(0, "a", n, 1000), restored(1, "b", n, 2000), restored(2, "c", n - 2, 3000),
              restored(3, "d", n, 4000)]
    scheduler = ScheduleAwareScheduler(metric="loss", mode="min", step_unit=200)
    for trial in reversed(trials):  # newest first, as Tune adds them
        scheduler.on_trial_add(None, trial)
    ids = [t.trial_id for t in trials]
    assert scheduler._completed == {ids[0], ids[1], ids[3]}
    assert scheduler._stopped == {ids[2]}  # stopped two reports before its horizon: not a final loss
    assert [scheduler._order[t] for t in ids] == [0, 1, 2, 3]  # by when they started
    # a trial added later comes after them
    late = stub(4)
    scheduler.on_trial_add(None, late)
    assert scheduler._order[late.trial_id] == 4
    # a scheduler pickled (tuner.pkl) before the start times were kept restores the same way
    old = ScheduleAwareScheduler.__new__(ScheduleAwareScheduler)
    fresh = ScheduleAwareScheduler(metric="loss", mode="min", step_unit=200)
    old.__setstate__({k: v for k, v in fresh.__dict__.items() if k != "_started"})
    for trial in reversed(trials):
        old.on_trial_add(None, trial)
    assert old._completed == scheduler._completed and old._stopped == scheduler._stopped


def test_results_without_the_metric_pass_and_without_time_attr_warn_once(caplog):
    scheduler = _warmed_up()
    trial = stub(BAD)
    scheduler.on_trial_add(None, trial)
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.ray"):
        for k in range(1, 20):  # a validation loss only every so often: None in between
            assert scheduler.on_trial_result(None, trial, {"loss": None, "training_iteration": k}) == \
                TrialScheduler.CONTINUE
        assert not caplog.records
        for v in CURVES[BAD].loss[:30].tolist():  # time_attr misspelt in the trainable: never reported
            assert scheduler.on_trial_result(None, trial, {"loss": v, "iter": 1}) == TrialScheduler.CONTINUE
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "without 'training_iteration' (time_attr)" in said[0]


def test_a_trial_restarted_from_scratch_is_judged_on_its_new_curve():
    """A first attempt with a bug (losses 1.5 x too high) fails at iteration 30; Tune restarts
    the trial from scratch (restart_errored) and its new results replace the old ones."""
    scheduler = _warmed_up()
    good = SUBSET.index(("wsd", "0.6", "0.001"))
    trial = stub(good)
    scheduler.on_trial_add(None, trial)
    for k, v in enumerate(CURVES[good].loss[:30].tolist(), start=1):
        scheduler.on_trial_result(None, trial, {"loss": 1.5 * v, "training_iteration": k})
    scheduler.on_trial_error(None, trial)
    decisions, n = run_trial(scheduler, trial, CURVES[good])  # added again, from iteration 1
    assert TrialScheduler.STOP not in decisions and n == CURVES[good].loss.size
    assert trial.trial_id in scheduler._completed
    assert [v for _, v in scheduler._points[trial.trial_id]] == CURVES[good].loss.tolist()


def test_a_time_counted_from_zero_with_a_step_unit_is_warned_once(caplog):
    scheduler = ScheduleAwareScheduler(metric="loss", mode="min", step_unit=200)
    with caplog.at_level(logging.WARNING, logger="lrtune.integrations.ray"):
        for i in range(2):
            trial = stub(i)
            scheduler.on_trial_add(None, trial)
            for k, v in enumerate(CURVES[i].loss[:5].tolist()):
                scheduler.on_trial_result(None, trial, {"loss": v, "training_iteration": k})
    said = [r.getMessage() for r in caplog.records if "training_iteration=0 with step_unit=200" in r.getMessage()]
    assert len(said) == 1 and "count from 1" in said[0]


def test_no_model_stop_after_max_progress():
    scheduler = _warmed_up()
    decisions, n = run_trial(scheduler, stub(BAD), CURVES[BAD])
    assert decisions[-1] == TrialScheduler.STOP  # stopped by the model at 4 completed trials
    late = ScheduleAwareScheduler(metric="loss", mode="min", step_unit=200, max_progress=0.05)
    for i in (SUBSET.index(("wsd", "0.6", "0.002")), SUBSET.index(("wsd", "0.4", "0.001")),
              SUBSET.index(("cosine", "0.0", "0.002")), SUBSET.index(("wsd", "0.9", "0.001"))):
        run_trial(late, stub(i), CURVES[i])
    decisions, n = run_trial(late, stub(BAD), CURVES[BAD])
    assert TrialScheduler.STOP not in decisions and n == CURVES[BAD].loss.size
    with pytest.raises(ValueError, match=r"max_progress must be a fraction in \(0, 1\], got 1.5"):
        ScheduleAwareScheduler(max_progress=1.5)
