"""The momentum law on real curves: areas, accuracy, model size, batches, peak LRs, JSON."""

import re

import numpy as np
import pytest
from scipy import signal

from lrtune.datasets import load_mpl, load_schaipp, mpl_split
from lrtune.laws import FitWarning, MomentumLaw, load_law
from lrtune.laws.momentum import annealing_area, flatten_warmup, forward_area, warmup_steps
from lrtune.schedules import parse_schedule

# the published bar of the brief: mean relative error over the 6 held-out curves
PRED_E_BAR = {"25M": 0.16, "100M": 0.17, "400M": 0.25}


def _pred_e(law, curves, **kw):
    errs = [np.abs(law.predict(c.lr, c.steps, **kw) - c.loss) / c.loss for c in curves]
    return 100 * float(np.mean(np.concatenate(errs)))


def _recursion_s2(lr, steps, decay, start):
    """S2 straight from the paper's definition: m_i = decay m_{i-1} + (eta_{i-1} - eta_i)."""
    d = np.concatenate([[start - lr[0]], lr[:-1] - lr[1:]])
    return np.cumsum(signal.lfilter([1.0], [1.0, -decay], d))[steps - 1]


@pytest.fixture(scope="module")
def schaipp_main():
    return load_schaipp(n_layer="12", n_embd="768", group="main")


def _trio(curves, lr):
    """Constant 50k, cosine to 10 % 50k and WSD 20 % 25k at peak ``lr`` (Schaipp main group)."""
    def pick(pred):
        return next(c for c in curves if float(c.meta["base_lr"]) == lr and pred(c))
    return [pick(lambda c: c.meta["schedule"] == "constant" and c.meta["horizon"] == "50000"),
            pick(lambda c: c.name.startswith("cos_10") and c.meta["horizon"] == "50000"),
            pick(lambda c: c.name.startswith("ann124_0.2") and c.meta["decay_type"] == "linear"
                 and c.meta["horizon"] == "25000")]


# -- the areas ------------------------------------------------------------------------------

@pytest.mark.parametrize("warmup", ["zero", "peak"])
def test_annealing_area_follows_the_momentum_recursion_on_every_mpl_schedule(warmup):
    for c in load_mpl("25M"):
        lr = c.lr if warmup == "zero" else flatten_warmup(c.lr)
        start = 0.0 if warmup == "zero" else lr[0]
        for decay in (0.99, 0.999):
            want = _recursion_s2(lr, c.steps, decay, start)
            got = annealing_area(c.lr, c.steps, decay, warmup)
            assert np.allclose(got, want, rtol=1e-9, atol=1e-9 * c.lr.max()), (c.name, decay)


def test_forward_area_is_the_cumulative_lr_and_long_step_lists_use_the_filter():
    c = load_mpl("25M", ["wsd_20000_24000"])[0]
    steps = np.arange(1, c.lr.size + 1, 7)  # > 1024 steps: the IIR-filter path
    assert steps.size > 1024
    assert np.allclose(forward_area(c.lr, steps), np.cumsum(c.lr)[steps - 1], rtol=1e-12)
    assert np.allclose(annealing_area(c.lr, steps, 0.998), _recursion_s2(c.lr, steps, 0.998, 0.0), rtol=1e-9)


def test_warmup_is_flattened_to_its_peak_and_counted():
    c = load_mpl("25M", ["cosine_24000"])[0]
    assert warmup_steps(c.lr) == int(np.argmax(c.lr))
    flat = flatten_warmup(c.lr)
    assert np.all(flat[:warmup_steps(c.lr)] == c.lr.max()) and np.array_equal(flat[2200:], c.lr[2200:])
    both = flatten_warmup(np.stack([c.lr, c.lr[::-1].copy()]))
    assert np.array_equal(both[0], flat)


def test_rewarm_gives_negative_annealing_area_and_a_loss_bump(mpl25):
    law = MomentumLaw().fit(mpl25[0], band=False)
    lr = parse_schedule("rewarm:steps=30000,peak=3e-4,warmup=2160,min=0.1,at=15000,rewarm=1000,peak2=3e-4").lr()
    steps = np.array([14000, 15000, 16000, 17000, 18000])
    s2 = annealing_area(lr, steps, law.params_["decay"], "peak")
    assert s2[1] > 0 and s2[3] < s2[1]  # the re-warm takes back annealing area
    loss = law.predict(lr, steps)
    assert loss[2] > loss[1] + 0.01  # the loss bump after the re-warm


# -- accuracy and fit -----------------------------------------------------------------------

@pytest.mark.parametrize("model", ["25M", "100M", "400M"])
def test_published_split_is_predicted_within_the_bar(model):
    train, test = mpl_split(model)
    law = MomentumLaw().fit(train, band=False)
    assert _pred_e(law, test) <= PRED_E_BAR[model]
    assert law.r2_ > 0.995
    # the fit statistics are those of the fitted curves
    pred = np.concatenate([law.predict(c.lr, c.steps) for c in train])
    loss = np.concatenate([c.loss for c in train])
    assert law.mean_rel_error_ == pytest.approx(np.mean(np.abs(pred - loss) / loss), rel=1e-9)
    assert law.residual_scale_ == pytest.approx(np.sqrt(np.mean(np.log(loss / pred) ** 2)), rel=1e-9)
    assert 0.99 <= law.params_["decay"] <= 0.999  # the paper's range of lambda


def test_wsd_cooldown_drop_is_predicted_from_constant_and_cosine():
    const, cos, wsd = load_mpl("25M", ["constant_24000", "cosine_24000", "wsd_20000_24000"], max_step=24000)
    law = MomentumLaw().fit([const, cos], band=False)
    at = np.searchsorted(wsd.steps, [19968, wsd.steps[-1]])
    real_drop = wsd.loss[at[0]] - wsd.loss[at[1]]
    pred = law.predict(wsd.lr, wsd.steps)
    assert real_drop > 0.05
    assert (pred[at[0]] - pred[at[1]]) == pytest.approx(real_drop, rel=0.1)
    assert np.mean(np.abs(pred - wsd.loss) / wsd.loss) < 0.004


def test_fit_is_deterministic(mpl25):
    # (its speed is measured by benchmarks/speed.py against a per-step loop, not asserted here)
    train = mpl25[0]
    a = MomentumLaw().fit(train)
    b = MomentumLaw().fit(train)
    assert a.params_ == b.params_ and a.extrapolation_scale_ == b.extrapolation_scale_


def test_fixed_decay_and_peak_warmup_are_settings_that_change_the_fit(mpl25):
    train, test = mpl25
    fixed = MomentumLaw(decay=0.999).fit(train, band=False)
    paper = MomentumLaw(warmup="peak", decay=0.999).fit(train, band=False)
    default = MomentumLaw().fit(train, band=False)
    assert fixed.params_["decay"] == 0.999 and paper.params_["decay"] == 0.999
    assert default.params_["decay"] != 0.999
    assert min(_pred_e(paper, test), _pred_e(fixed, test)) > _pred_e(default, test)
    # the paper's warmup convention: no annealing area until the LR first decreases
    c = test[0]
    assert np.all(np.abs(annealing_area(c.lr, c.steps, 0.999, "peak")) < 1e-12)  # constant_72000
    assert np.all(annealing_area(c.lr, c.steps, 0.999, "zero") < 0)


@pytest.mark.parametrize("kwargs, words", [
    (dict(decay=1.0), ["decay", "1.0"]),
    (dict(warmup="linear"), ["warmup", "zero", "linear"]),
    (dict(peak_lr_exponent=0.0), ["peak_lr_exponent", "0.0"]),
    (dict(huber_delta=-1), ["huber_delta", "-1"]),
    (dict(fit_from=-5), ["fit_from", "-5"]),
    (dict(model_size="yes"), ["model_size", "yes"]),
])
def test_bad_settings_raise_value_errors_naming_the_field(kwargs, words):
    with pytest.raises(ValueError) as e:
        MomentumLaw(**kwargs)
    assert all(w in str(e.value) for w in words)


# -- model size -----------------------------------------------------------------------------

def test_model_size_law_predicts_100m_from_25m_and_400m():
    train = mpl_split("25M")[0] + mpl_split("400M")[0]
    test = mpl_split("100M")[1]
    law = MomentumLaw(model_size=True).fit(train, band=False)
    err = _pred_e(law, test, model_size=100e6)
    single = [_pred_e(MomentumLaw().fit(mpl_split(m)[0], band=False), test) for m in ("25M", "400M")]
    assert err < 1.0 and err < 0.2 * min(single)
    assert law.params_["beta"] == 0.34  # two sizes: beta is not identifiable, held fixed
    with pytest.raises(ValueError, match="model_size"):
        law.predict(test[0].lr, test[0].steps)
    again = load_law(law.to_json())
    assert np.array_equal(again.predict(test[0].lr, test[0].steps, model_size=1e8),
                          law.predict(test[0].lr, test[0].steps, model_size=1e8))


def test_model_size_law_needs_two_sizes(mpl25):
    with pytest.raises(ValueError, match="at least 2 model sizes"):
        MomentumLaw(model_size=True).fit(mpl25[0])


# -- batches --------------------------------------------------------------------------------

def _wsd_candidates(n_peaks=20, n_fracs=50, steps=50000):
    return np.stack([parse_schedule(f"wsd:steps={steps},peak={p},warmup=2000,cooldown={f}").lr()
                     for p in np.geomspace(1e-4, 3e-3, n_peaks) for f in np.linspace(0.05, 0.5, n_fracs)])


def test_batched_prediction_equals_row_by_row(mpl25):
    for law in (MomentumLaw().fit(mpl25[0], band=False),
                MomentumLaw(warmup="peak", peak_lr_exponent=1.0).fit(mpl25[0], band=False)):
        lr = _wsd_candidates(4, 6, 30000)
        steps = np.linspace(300, 30000, 40).astype(int)
        batch = law.predict(lr, steps)
        rows = np.stack([law.predict(r, steps) for r in lr])
        assert batch.shape == (24, 40)
        assert np.allclose(batch, rows, rtol=1e-12, atol=0)


def test_thousand_wsd_candidates_of_50k_steps_in_one_batch_equal_one_at_a_time(mpl25):
    # (the batch's speed is measured by benchmarks/speed.py, not asserted here)
    law = MomentumLaw().fit(mpl25[0], band=False)
    lr = _wsd_candidates()
    steps = np.linspace(500, 50000, 100).astype(int)
    out = law.predict(lr, steps)
    assert out.shape == (1000, 100) and np.all(np.isfinite(out))
    assert np.allclose(out[::97], np.stack([law.predict(r, steps) for r in lr[::97]]), rtol=1e-12)


# -- peak LRs -------------------------------------------------------------------------------

def test_peak_lr_exponent_is_invisible_at_a_single_peak_lr(mpl25):
    train, test = mpl25
    plain = MomentumLaw(peak_lr_exponent=1.0).fit(train, band=False)
    scaled = MomentumLaw().fit(train, band=False)
    for c in test:
        assert np.allclose(plain.predict(c.lr, c.steps), scaled.predict(c.lr, c.steps), rtol=1e-8)


def test_runs_at_other_peak_lrs_are_predicted_far_better_with_the_peak_lr_exponent(schaipp_main):
    train = _trio(schaipp_main, 1e-3)
    plain = MomentumLaw(peak_lr_exponent=1.0).fit(train, band=False)
    default = MomentumLaw().fit(train, band=False)
    for lr in (5e-4, 2e-3):
        other = _trio(schaipp_main, lr)
        e_plain, e_default = (_pred_e(law, [c.truncated(10**6) for c in other]) for law in (plain, default))
        assert e_default < 0.5 and e_default < 0.4 * e_plain


def test_fitted_peak_lr_exponent_comes_from_curves_at_two_peak_lrs(schaipp_main):
    law = MomentumLaw(peak_lr_exponent="fit").fit(_trio(schaipp_main, 5e-4) + _trio(schaipp_main, 2e-3), band=False)
    assert 0.2 <= law.params_["peak_lr_exponent"] <= 0.6
    one = MomentumLaw(peak_lr_exponent="fit").fit(_trio(schaipp_main, 1e-3), band=False)
    assert one.params_["peak_lr_exponent"] == 0.4  # one peak LR: the default is kept
    assert load_law(law.to_dict()).params_ == law.params_


def test_predicted_final_loss_has_an_optimum_in_the_peak_lr(schaipp_main):
    law = MomentumLaw().fit(_trio(schaipp_main, 1e-3), band=False)
    run = _trio(schaipp_main, 1e-3)[2]
    peaks = np.geomspace(1e-4, 3e-2, 40)
    final = law.predict(np.outer(peaks / 1e-3, run.lr), run.steps[-1:])[:, 0]
    best = int(np.argmin(final))
    assert 0 < best < peaks.size - 1  # not "higher is always better"
    assert final[0] > final[best] + 0.05 and final[-1] > final[best] + 0.01


def test_losses_logged_during_warmup_are_left_out_of_the_fit(schaipp_main):
    train = _trio(schaipp_main, 1e-3)
    assert all(c.steps[0] < warmup_steps(c.lr) for c in train)  # a val loss inside the warmup
    law = MomentumLaw().fit(train, band=False)
    everything = MomentumLaw(fit_from=0).fit(train, band=False)
    assert law.n_points_ == sum(int(np.sum(c.steps > warmup_steps(c.lr))) for c in train)
    assert everything.n_points_ == sum(c.steps.size for c in train)
    held = [c for c in schaipp_main if float(c.meta["base_lr"]) == 1e-3 and c not in train]
    late = [c.truncated(10**6) for c in held]
    err = [np.mean(np.concatenate([np.abs(f.predict(c.lr, c.steps[c.steps >= 1000]) - c.loss[c.steps >= 1000])
                                   / c.loss[c.steps >= 1000] for c in late])) for f in (law, everything)]
    assert err[0] < 0.9 * err[1]


def test_decay_grid_reaches_short_memories_only_for_short_runs():
    from lrtune.laws.momentum import DECAY_GRID, decay_grid

    assert decay_grid(24000) == DECAY_GRID and decay_grid(2000) == DECAY_GRID
    short = decay_grid(400)
    assert short[:len(DECAY_GRID)] == DECAY_GRID
    assert 1 - min(short) == pytest.approx(0.1)  # memory of 10 steps: 1/40 of the horizon
    steps = np.diff(np.log(1 - np.asarray(short)))
    assert np.all(steps > 0) and steps.max() / steps.min() < 1.2  # one density throughout


def test_bands_of_a_batch_far_outside_the_fit_and_near_level_one():
    train, _ = mpl_split("25M")
    law = MomentumLaw(warmup="peak", peak_lr_exponent=1).fit(train)  # the paper's law: linear in the peak LR
    lrs = np.stack([parse_schedule(f"cosine:steps=24000,peak={p},warmup=2160,min=0.1").lr() for p in (3e-4, 1e-2)])
    steps = [12000, 24000]
    with pytest.warns(FitWarning, match="1 of the 2 peak LRs tried"):  # 1e-2 lies far outside the fit
        pred = law.predict_interval(lrs, steps)
    d = pred.to_dict()  # nested lists for a batch, JSON-ready
    assert len(d["loss"]) == 2 and len(d["loss"][0]) == 2
    ok = np.isfinite(pred.loss)
    assert np.all(pred.lower[ok] <= pred.loss[ok]) and np.all(pred.loss[ok] <= pred.upper[ok])
    # where the law's value is not a loss (<= 0) the prediction is nan, never a flipped band
    raw = law.predict(lrs, steps)
    assert raw[1, -1] < 0 and np.array_equal(np.isnan(pred.loss), raw <= 0)
    # a level within 1e-16 of 1 has a finite band (z = 8.29, not inf)
    near = law.predict_interval(lrs[0], steps, level=1 - 1e-16)
    assert np.all(np.isfinite(near.upper)) and np.all(near.upper > law.predict_interval(lrs[0], steps, level=0.99).upper)


def test_a_hand_edited_fit_is_refused_naming_the_key_and_nan_statistics_are_strict_json():
    import json

    train, _ = mpl_split("25M")
    law = MomentumLaw().fit(train)
    good = law.to_dict()
    for change, message in [(lambda d: d["params"].update(decay=1.5), "parameter decay must be in (0, 1), got 1.5"),
                            (lambda d: d["params"].update(A=-5), "parameter A must be >= 0, got -5"),
                            (lambda d: d.update(band_growth={"horizon": 1}), "band_growth must be an object"),
                            (lambda d: d.update(fit_horizon=-5), "fit_horizon must be a number of steps > 0"),
                            (lambda d: d.update(fit_peak_lrs=[-1]), "fit_peak_lrs must be a list of LRs > 0"),
                            (lambda d: d.update(law=["momentum"]), "unknown law")]:
        d = json.loads(json.dumps(good))
        change(d)
        with pytest.raises(ValueError, match=re.escape(message)):
            load_law(d)
    flat = [type(c)(c.steps, np.full(c.steps.size, 3.0), c.lr, name=c.name) for c in train]
    text = MomentumLaw(decay=np.float32(0.99)).fit(flat).to_json()  # R^2 of flat curves is nan
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))["r2"] is None


def test_fit_from_beyond_a_curve_and_numbers_in_messages():
    train, _ = mpl_split("25M")
    with pytest.raises(ValueError, match="fit_from=30000 leaves none of its points"):
        MomentumLaw(fit_from=30000).fit(train)
    law = MomentumLaw().fit(train)
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\), got 1\.5$"):
        law.predict_interval(train[0].lr, [100], level=np.float64(1.5))
    with pytest.raises(ValueError, match="huber_delta must be a finite number > 0, got inf"):
        MomentumLaw(huber_delta=float("inf"))
