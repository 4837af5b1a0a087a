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
