"""The multi-power law on the curves of Luo et al. (lrtune.datasets)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from lrtune.datasets import load_mpl, mpl_split
from lrtune.laws import load_law, make_law
from lrtune.laws.multipower import MultiPowerLaw, bin_edges, loss_drop, loss_drop_exact
from lrtune.schedules import parse_schedule


@pytest.fixture(scope="module")
def split25():
    return mpl_split("25M")


@pytest.fixture(scope="module")
def law25(split25):
    return MultiPowerLaw().fit(split25[0])


def drop_params(law):
    p = law.params_
    return p["B"], p["C"], p["beta"], p["gamma"]


def pooled_errors(law, curves):
    pred = np.concatenate([law.predict(c.lr, c.steps) for c in curves])
    loss = np.concatenate([c.loss for c in curves])
    rel = np.abs(pred - loss) / loss
    r2 = 1 - np.sum((pred - loss) ** 2) / np.sum((loss - loss.mean()) ** 2)
    return rel.mean(), rel.max(), r2


def test_wsd_cooldown_drop_is_predicted_from_constant_and_cosine(split25, law25):
    test = {c.name: c for c in split25[1]}
    for name in ("wsd_20000_24000", "wsdld_20000_24000"):
        c = test[name]
        pred = law25.predict(c.lr, c.steps)
        assert np.mean(np.abs(pred - c.loss) / c.loss) < 1e-3
        # the drop over the cooldown (steps 20000 -> 24000), observed about 0.09
        before, end = np.searchsorted(c.steps, 20000) - 1, -1
        observed = c.loss[before] - c.loss[end]
        predicted = pred[before] - pred[end]
        assert observed > 0.05
        assert abs(predicted - observed) < 0.1 * observed


def test_published_split_accuracy_25m(split25, law25):
    pred_e, worst_e, r2 = pooled_errors(law25, split25[1])
    assert pred_e < 2.2e-3
    assert worst_e < 8e-3
    assert r2 > 0.995
    assert law25.mean_rel_error_ < 1e-3  # on the training curves


def test_binned_loss_drop_matches_the_exact_sum(law25):
    curves = {c.name: c for c in load_mpl("25M")}
    cases = [(c.lr, c.steps) for c in (curves["cosine_72000"], curves["wsd_20000_24000"], curves["wsdld_20000_24000"])]
    steps = np.unique(np.r_[np.linspace(1, 50_000, 120).astype(int), 49_990, 50_000])
    for shape in ("linear", "1-sqrt", "cosine"):
        lr = parse_schedule(f"wsd:steps=50000,peak=1e-3,warmup=1000,cooldown=0.2,shape={shape},min=0").lr()
        cases.append((lr, steps))
    extreme = (800.0, 10.0, 0.3, 0.3)
    for params in (drop_params(law25), extreme):
        for lr, st in cases:
            fast = loss_drop(lr, st, *params)
            exact = loss_drop_exact(lr, st, *params)
            assert exact.max() > 0.05
            assert np.max(np.abs(fast - exact)) < 1e-5 * 3.0  # 1e-5 of a loss of about 3


def test_step_schedules_are_exact_and_coarser_bins_err_more(law25):
    wsdcon = {c.name: c for c in load_mpl("25M")}["wsdcon_3"]
    params = drop_params(law25)
    exact = loss_drop_exact(wsdcon.lr, wsdcon.steps, *params)
    assert np.max(np.abs(loss_drop(wsdcon.lr, wsdcon.steps, *params) - exact)) < 1e-12
    lr = parse_schedule("cosine:steps=30000,peak=1e-3,warmup=600,min=0").lr()
    steps = np.arange(500, 30001, 500)
    exact = loss_drop_exact(lr, steps, *params)
    errors = [np.max(np.abs(loss_drop(lr, steps, *params, bin_ratio=r) - exact)) for r in (0.2, 0.1, 0.05)]
    assert errors[0] > errors[1] > errors[2]


def test_bins_grow_geometrically_with_distance():
    edges = bin_edges(100_000, 0.05)
    assert edges[0] == 0 and edges[-1] > 100_000 >= edges[-2]
    assert np.all(np.diff(edges)[:20] == 1)
    wide = np.diff(edges) > 1
    assert np.all(np.diff(edges)[wide] <= 0.05 * edges[:-1][wide] + 1)
    assert edges.size < 300


def test_batched_predict_equals_row_by_row(law25):
    T = 20_000
    specs = [
        "wsd:steps=20000,peak=3e-4,warmup=400,cooldown=0.2,shape=1-sqrt,min=0.1",
        "wsd:steps=20000,peak=1e-3,warmup=400,cooldown=0.5,shape=linear,min=0",
        "cosine:steps=20000,peak=5e-4,warmup=400,min=0.1",
        "constant:steps=20000,peak=3e-4,warmup=400",
        "rewarm:steps=20000,peak=3e-4,warmup=400,min=0.1,at=10000,rewarm=500,peak2=2e-4",
        # other warmups in one batch: a row's warmup increases are left out up to its own decay
        "cosine:steps=20000,peak=3e-4",
        "cosine:steps=20000,peak=1e-3,warmup=2000,start=0.1",
    ]
    lr = np.array([parse_schedule(s).lr() for s in specs])
    steps = np.arange(100, T + 1, 100)
    batch = law25.predict(lr, steps)
    assert batch.shape == (len(specs), steps.size)
    rows = np.array([law25.predict(row, steps) for row in lr])
    np.testing.assert_allclose(batch, rows, rtol=1e-9, atol=0)
    # the re-warm (row 4) raises the loss for a while after step 10000
    k = np.searchsorted(steps, 10_000)
    assert batch[4, k + 5] > batch[4, k]
    # decays only, other warmups (the telescoped sum of changes must leave out each row's
    # warmup): 1.7e-4 off before, for the row warmed up longest
    sub = lr[[0, 5, 6]]
    np.testing.assert_allclose(law25.predict(sub, steps), rows[[0, 5, 6]], rtol=1e-7, atol=0)


def test_json_round_trip_predicts_the_same(split25, law25):
    again = load_law(law25.to_json())
    assert isinstance(again, MultiPowerLaw)
    assert again.params_ == law25.params_
    c = split25[1][1]
    np.testing.assert_array_equal(again.predict(c.lr, c.steps), law25.predict(c.lr, c.steps))


def test_fit_is_deterministic(split25, law25):
    again = make_law("multipower").fit(split25[0], band=False)
    assert again.params_ == law25.params_


def test_a_100k_step_schedule_at_every_step_needs_no_t_by_t_memory(law25):
    T = 100_000
    lr = parse_schedule(f"cosine:steps={T},peak=3e-4,warmup=2000,min=0.1").lr()
    steps = np.arange(1, T + 1)
    tracemalloc.start()
    try:
        pred = law25.predict(lr, steps)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100e6  # a T x T float64 matrix would take 80 GB
    assert pred[0] == np.inf  # lr[0] = 0: no area yet
    assert np.all(np.isfinite(pred[1:])) and pred[-1] < pred[T // 2]
    sample = steps[1::9973]
    exact = loss_drop_exact(lr, sample, *drop_params(law25))
    p = law25.params_
    np.testing.assert_allclose(pred[sample - 1], p["L0"] + p["A"] * np.cumsum(lr)[sample - 1] ** -p["alpha"] - exact,
                               rtol=1e-5)


def test_bad_settings_and_inputs_are_named():
    with pytest.raises(ValueError, match="bin_ratio"):
        MultiPowerLaw(bin_ratio=0.0)
    with pytest.raises(ValueError, match="huber_delta"):
        MultiPowerLaw(huber_delta=-1)
    with pytest.raises(ValueError, match="1-d"):
        loss_drop_exact(np.ones((2, 10)), [5], 1.0, 1.0, 0.5, 0.5)
    with pytest.raises(ValueError, match="lr must be"):
        loss_drop(np.ones((2, 3, 4)), [2], 1.0, 1.0, 0.5, 0.5)
