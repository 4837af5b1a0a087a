"""benchmarks/replay_pruning.py's accounting of where a study's steps go, on the Schaipp 15k grid."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import replay_pruning as R  # noqa: E402


@pytest.fixture(scope="module")
def curves():
    return R.grid(15000)


def test_steps_used_split_into_parts_that_sum_to_them(curves):
    finals = np.array([c.loss[-1] for c in curves])
    o = np.argsort(finals)
    far = int(o[-1])
    assert finals[o[1]] <= finals[o[0]] * 1.003 < finals[far]  # the second best is near, the worst is not
    # four startup trials, the best completed, the second best stopped, the worst completed and stopped
    last = {i: int(curves[i].steps[-1]) for i in range(len(curves))}
    trials = [(int(i), last[int(i)], True) for i in o[5:9]] + [
        (int(o[0]), last[int(o[0])], True), (int(o[1]), 4000, False), (far, last[far], True), (far, 2000, False)]
    s = R.summarize(curves, trials)
    total = sum(last[i] for i, _, _ in trials)
    assert sum(s["parts"].values()) == pytest.approx(s["fraction"])
    assert s["parts"]["first 4 trials"] == pytest.approx(sum(last[int(i)] for i in o[5:9]) / total)
    assert s["parts"]["within 0.3 %, completed"] == pytest.approx(last[int(o[0])] / total)
    assert s["parts"]["within 0.3 %, stopped"] == pytest.approx(4000 / total)
    assert s["parts"]["others, completed"] == pytest.approx(last[far] / total)
    assert s["parts"]["others, stopped"] == pytest.approx(2000 / total)
    assert s["kept_best"] and s["regret"] == 0.0


def test_first_check_is_the_third_report_after_burn_in(curves):
    c = curves[0]
    step = R.first_check(c)
    after = c.steps[c.steps >= 0.1 * c.horizon]
    assert step == after[2]
    assert 0.1 < step / c.horizon < 0.2


def test_the_trade_off_paragraph_names_the_setting_that_keeps_the_best_most_and_the_best_under_40_percent():
    def runs(fractions, kept):
        return {f"{h}|{o}": {"fraction": f, "kept_best": k, "regret": 0.0 if k else 0.002}
                for (h, o), f, k in zip([(15000, 0), (15000, 1), (25000, 0), (25000, 1)], fractions, kept)}

    settings = {"lrtune ScheduleAwarePruner()": runs([0.6, 0.5, 0.6, 0.5], [1, 1, 1, 0]),
                "lrtune ScheduleAwarePruner(confidence=0.7)": runs([0.4, 0.3, 0.4, 0.3], [1, 0, 1, 0]),
                "lrtune ScheduleAwarePruner(confidence=0.6)": runs([0.3, 0.3, 0.3, 0.3], [1, 0, 0, 0]),
                "lrtune ScheduleAwarePruner(min_progress=0.05)": runs([0.1, 0.1], [1, 1])}  # not on every study
    store = {f"{m}|{k}": r for m, rs in settings.items() for k, r in rs.items()}
    text = R.trade_off(store, list(settings), [15000, 25000], noise=0.00124)[0]
    assert "`ScheduleAwarePruner()` (3/4), uses 0.550 of the steps" in text
    assert "keep the best in at most 2/4 studies (`ScheduleAwarePruner(confidence=0.7)`: 0.350" in text
    assert "min_progress" not in text
    slow = {k: r for k, r in store.items() if "0.6)" not in k and "0.7)" not in k}
    slow.update({f"lrtune ScheduleAwarePruner(confidence=0.8)|{k}": r
                 for k, r in runs([0.5, 0.5, 0.5, 0.5], [1, 1, 0, 0]).items()})
    methods = ["lrtune ScheduleAwarePruner()", "lrtune ScheduleAwarePruner(confidence=0.8)"]
    assert "none of them uses at most 0.40 of the steps" in R.trade_off(slow, methods, [15000, 25000], 0.00124)[0]
