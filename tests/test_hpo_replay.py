"""Fast checks of benchmarks/hpo_replay.py's metrics and replay drivers on the repo's real curves."""

import math
import os
import sys

import numpy as np
import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import hpo_replay as H  # noqa: E402


@pytest.fixture(scope="module")
def runs():
    return H.load_grid("generated", 200)


def test_generated_grid_loads_real_curves(runs):
    assert len(runs) == 65  # 13 schedules x 5 peak LRs
    r = next(r for r in runs if r.name == "wsd-c0.2-1-sqrt_h200_p0.004")
    assert r.spec.startswith("wsd:steps=200,peak=0.004")
    assert r.steps[0] == 20 and r.last_step == 200 and r.steps.size == 10
    assert np.all(np.isfinite(r.loss))


def test_nop_pruner_runs_everything_and_has_no_regret(runs):
    r = H.replay_optuna("generated", 200, 0, "nop")
    assert r["fraction"] == 1.0
    assert r["n_completed"] == len(runs) == r["n_trials"]
    assert r["regret"] == 0.0 and r["kept_best"]


def test_median_pruner_saves_steps_and_regret_is_not_negative():
    r = H.replay_optuna("generated", 200, 0, "median")
    assert 0 < r["fraction"] < 1
    assert r["regret"] >= 0 and r["regret_rel"] >= 0


def test_summarize_regret_of_best_completed(runs):
    finals = np.array([r.final for r in runs])
    o = np.argsort(finals)
    # the best run was stopped early: the chosen one is the second best
    trials = [(int(o[0]), 20, False), (int(o[1]), runs[o[1]].last_step, True), (int(o[5]), 100, False)]
    s = H.summarize(runs, trials)
    assert not s["kept_best"]
    assert s["regret"] == pytest.approx(finals[o[1]] - finals[o[0]])
    assert s["regret_rel"] == pytest.approx(100 * (finals[o[1]] - finals[o[0]]) / finals[o[0]])
    assert s["fraction"] == pytest.approx((20 + 200 + 100) / (200 * len(runs)))
    none = H.summarize(runs, [(0, 20, False)])
    assert none["n_completed"] == 0 and math.isnan(none["regret"])


def test_spearman_at_full_training_is_one(runs):
    order = H.trial_order(len(runs), 0)
    out = H.forecast_ranking(runs, order, fractions=(1.0, 0.25))
    assert out["1"]["raw"] == pytest.approx(1.0)
    assert out["1"]["lrtune"] == pytest.approx(1.0)  # at the horizon the forecast is the final loss
    assert out["1"]["n"] == len(runs) - H.N_STARTUP
    assert -1 <= out["0.25"]["raw"] < 1


def test_spearman_with_more_completed_runs_fits_them_and_ranks_the_rest(runs):
    order = H.trial_order(len(runs), 0)
    four = H.forecast_ranking(runs, order, fractions=(0.5,))
    sixteen = H.forecast_ranking(runs, order, fractions=(0.5,), n_startup=16)
    assert sixteen["0.5"]["n"] == len(runs) - 16
    # the raw loss of the same runs is ranked over fewer runs, the forecast from another fit
    assert sixteen["0.5"]["raw"] != four["0.5"]["raw"]
    assert sixteen["0.5"]["lrtune"] != four["0.5"]["lrtune"]


def test_spearman_protocol_does_not_fit_a_diverged_run():
    # order 4 of the 50k Schaipp grid starts with the 5e-3 cosine run that diverged: the law
    # cannot be fitted on it (its loss rises with the LR area), so the protocol skips it as
    # the pruner would, and still ranks it with the others
    runs = H.load_grid("schaipp", 50000)
    order = H.trial_order(len(runs), 4)
    ratio = H.ScheduleAwarePruner()._divergence_ratio
    bad = [i for i in order[:H.N_STARTUP] if np.any(runs[i].loss > ratio * np.minimum.accumulate(runs[i].loss))]
    assert len(bad) == 1 and runs[bad[0]].final > 7
    out = H.forecast_ranking(runs, order, fractions=(0.5,))
    assert out["0.5"]["n"] == len(runs) - H.N_STARTUP
    assert out["0.5"]["lrtune"] > out["0.5"]["raw"]


def test_nearest_run_finds_a_grid_run_from_its_own_schedule(runs):
    i = 17
    lr = np.asarray(H.schedule_lr(runs[i].spec))
    assert H.nearest_run(lr, runs, set()) == i
    assert H.nearest_run(lr, runs, {i}) != i


class _StopAfter:
    """A real FIFOScheduler that stops every trial but the first at its 3rd result and
    records what it was told."""

    def __new__(cls):
        from ray.tune.schedulers import FIFOScheduler, TrialScheduler

        class S(FIFOScheduler):
            def __init__(self):
                super().__init__()
                self.results, self.completed, self.stopped = {}, [], set()

            def on_trial_result(self, ctl, trial, result):
                assert trial.trial_id not in self.stopped, "result after STOP"
                self.results.setdefault(trial.trial_id, []).append(result["training_iteration"])
                if trial.trial_id != "00000" and result["training_iteration"] == 3:
                    self.stopped.add(trial.trial_id)
                    return TrialScheduler.STOP
                return TrialScheduler.CONTINUE

            def on_trial_complete(self, ctl, trial, result):
                self.completed.append(trial.trial_id)

        return S()


def test_ray_driver_honours_stop(runs):
    order = H.trial_order(len(runs), 0)[:6]
    sched = _StopAfter()
    trials, log = H.drive_ray(runs, order, sched)
    assert [t[2] for t in trials] == [True] + [False] * 5
    assert [t[1] for t in trials] == [runs[order[0]].last_step] + [60] * 5  # 3 results of one every 20 steps
    assert all(len(v) == 3 for k, v in sched.results.items() if k != "00000")
    # like Tune, the scheduler is not asked about a result with done=True (the trial completes)
    assert sched.results["00000"] == list(range(1, runs[order[0]].steps.size))
    assert sorted(sched.completed) == sorted(sched.results)  # on_trial_complete once per trial, STOP included
    assert [x[2] for x in log].count("STOP") == 5


def test_ray_driver_resumes_paused_trials(runs):
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    class PauseOnce(FIFOScheduler):
        def __init__(self):
            super().__init__()
            self.paused = set()

        def on_trial_result(self, ctl, trial, result):
            if trial.trial_id not in self.paused and result["training_iteration"] == 2:
                self.paused.add(trial.trial_id)
                return TrialScheduler.PAUSE
            return TrialScheduler.CONTINUE

    order = H.trial_order(len(runs), 1)[:5]
    trials, log = H.drive_ray(runs, order, PauseOnce())
    assert all(done for _, _, done in trials)  # every trial resumed and finished
    assert sum(s for _, s, _ in trials) == sum(runs[i].last_step for i in order)  # steps counted once
    assert [x[2] for x in log].count("PAUSE") == 5


def test_ray_asha_driver_stops_some_trials_and_keeps_a_good_one():
    r = H.replay_ray("generated", 200, 0, "ray-asha")
    assert 0 < r["fraction"] < 1
    assert r["n_completed"] >= 1 and r["regret"] >= 0


def test_ray_driver_creates_trials_one_at_a_time_like_max_concurrent_1(runs):
    from ray.tune.schedulers import FIFOScheduler

    class Count(FIFOScheduler):
        def __init__(self):
            super().__init__()
            self.added, self.seen = 0, []

        def on_trial_add(self, ctl, trial):
            self.added += 1

        def on_trial_result(self, ctl, trial, result):
            self.seen.append(self.added)
            return super().on_trial_result(ctl, trial, result)

    order = H.trial_order(len(runs), 2)[:4]
    sched = Count()
    trials, _ = H.drive_ray(runs, order, sched)
    assert sched.seen[0] == 1 and sched.added == 4  # the 2nd trial exists only after the 1st ended
    assert [t[0] for t in trials] == [int(i) for i in order]
