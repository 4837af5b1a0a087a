"""benchmarks/generalisation.py: the splits it builds on the committed generated sweep."""

import importlib.util
import os
import sys

import numpy as np
import pytest

from lrtune.schedules import parse_schedule

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")


@pytest.fixture(scope="module")
def gen():
    sys.path.insert(0, BENCH)
    try:
        spec = importlib.util.spec_from_file_location("generalisation", os.path.join(BENCH, "generalisation.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("generalisation", None)
        sys.path.remove(BENCH)


@pytest.fixture(scope="module")
def sweep(gen):
    return gen.load_sweep()


def test_sweep_is_complete(gen, sweep):
    assert len(sweep.runs) + len(sweep.skipped) == 195
    assert len(sweep.schedules) == 13
    for (schedule, horizon, peak), c in sweep.runs.items():
        assert c.meta["schedule"] == schedule and c.lr.size == horizon == c.steps[-1]
        assert c.steps[0] > c.meta["warmup"]  # scored after warmup only
        np.testing.assert_allclose(c.lr, parse_schedule(c.meta["spec"]).lr(), rtol=1e-9, atol=1e-15)
        assert c.peak_lr == pytest.approx(peak)


@pytest.mark.parametrize("horizon", [200, 400, 800])
@pytest.mark.parametrize("peak", [5e-4, 4e-3])
def test_same_split(gen, sweep, horizon, peak):
    train, test = gen.split_same(sweep, horizon, peak)
    assert [c.meta["schedule"] for c in train] == list(gen.TRAIN)
    assert len(test) == 10
    assert not {c.name for c in train} & {c.name for c in test}
    for c in train + test:
        assert c.horizon == horizon and c.peak_lr == pytest.approx(peak)


def test_horizon_and_lr_splits(gen, sweep):
    train, test = gen.split_horizon(sweep, 2e-3)
    assert sorted(c.horizon for c in train) == [200] * 3 + [400] * 3
    assert len(test) == 13 and {c.horizon for c in test} == {800}
    train, test = gen.split_lr(sweep, 400, 2e-3, 4e-3)
    assert len(train) == 3 and all(c.peak_lr == pytest.approx(2e-3) and c.horizon == 400 for c in train)
    assert len(test) == 13 and all(c.peak_lr == pytest.approx(4e-3) and c.horizon == 400 for c in test)
