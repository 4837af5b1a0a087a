"""Prediction bands (generic, in lrtune.laws._base): honest on held-out curves, grown where
the fit extrapolates, identical after a JSON round trip, shared by batched prediction."""

import json

import numpy as np
import pytest

from lrtune.datasets import load_schaipp, mpl_split
from lrtune.laws import Law, MomentumLaw, load_law
from lrtune.laws import _base


def _coverage(law, curves, level=0.9, from_step=0):
    inside = []
    for c in curves:
        k = c.steps >= from_step
        p = law.predict_interval(c.lr, c.steps[k], level=level)
        inside.append((c.loss[k] >= p.lower) & (c.loss[k] <= p.upper))
    return float(np.mean(np.concatenate(inside)))


@pytest.fixture(scope="module")
def fits():
    """Momentum fits (with their leave-one-curve-out band) of the three MPL model sizes."""
    return {m: (MomentumLaw().fit(mpl_split(m)[0]), mpl_split(m)[1]) for m in ("25M", "100M", "400M")}


@pytest.mark.parametrize("model", ["25M", "100M", "400M"])
def test_ninety_percent_band_covers_at_least_80_percent_of_held_out_points(fits, model):
    law, test = fits[model]
    assert _coverage(law, test) >= 0.8
    # and the band is narrow enough to be useful: under 1.5 % of the loss wide on average
    widths = [np.mean((p.upper - p.lower) / p.loss) for p in (law.predict_interval(c.lr, c.steps) for c in test)]
    assert np.mean(widths) < 0.015


def test_band_is_wider_at_a_higher_level_and_contains_the_prediction(fits):
    law, test = fits["25M"]
    c = test[2]
    p50, p90 = law.predict_interval(c.lr, c.steps, level=0.5), law.predict_interval(c.lr, c.steps, level=0.9)
    assert np.all(p90.lower < p50.lower) and np.all(p50.lower < p50.loss) and np.all(p50.loss < p50.upper)
    assert np.all(p50.upper < p90.upper)
    assert _coverage(law, test, level=0.5) < _coverage(law, test, level=0.9)
    for level in (0, 1, 1.5):
        with pytest.raises(ValueError, match="level"):
            law.predict_interval(c.lr, c.steps, level=level)


def test_extrapolation_scale_is_the_leave_one_curve_out_error(fits):
    law, _ = fits["100M"]
    train = mpl_split("100M")[0]
    per_curve = []
    for i, c in enumerate(train):
        sub = MomentumLaw().fit(train[:i] + train[i + 1:], band=False)
        per_curve.append(np.sqrt(np.mean(np.log(c.loss / sub.predict(c.lr, c.steps)) ** 2)))
    assert law.extrapolation_scale_ == pytest.approx(np.sqrt(np.mean(np.square(per_curve))), rel=1e-9)
    # a schedule is harder to predict than to fit
    assert law.extrapolation_scale_ > law.residual_scale_


def test_band_grows_beyond_the_fitted_horizon_and_at_unseen_peak_lrs(fits):
    law, test = fits["25M"]
    const72 = test[0]
    assert law.fit_horizon_ == max(c.steps[-1] for c in mpl_split("25M")[0])
    p = law.predict_interval(const72.lr, [12000, law.fit_horizon_, 3 * law.fit_horizon_])
    half = np.log(p.upper / p.loss)
    assert half[0] == pytest.approx(half[1])
    growth = law.band_growth_["horizon"]
    assert half[2] / half[1] == pytest.approx(1 + growth * np.log(3), rel=1e-9)
    # the same schedule at twice the peak LR: the band widens by 1 + g * ln 2
    q = law.predict_interval(2 * const72.lr, [12000])
    assert np.log(q.upper / q.loss)[0] / half[0] == pytest.approx(1 + law.band_growth_["peak_lr"] * np.log(2), rel=1e-9)


def test_loaded_fit_gives_the_same_predictions_and_bands(fits, tmp_path):
    law, test = fits["400M"]
    path = tmp_path / "fit.json"
    law.to_json(str(path))
    again = load_law(str(path))
    assert again.params_ == law.params_ and again.get_config() == law.get_config()
    lr = np.stack([c.lr[:16000] for c in test])
    steps = np.arange(2500, 16001, 500)
    a, b = law.predict_interval(lr, steps), again.predict_interval(lr, steps)
    for key in ("loss", "lower", "upper"):
        assert np.array_equal(getattr(a, key), getattr(b, key))
    assert json.loads(again.to_json()) == json.loads(law.to_json())


def test_batched_band_equals_row_by_row(fits):
    law, test = fits["25M"]
    lr = np.stack([c.lr[:16000] for c in test] + [2 * test[0].lr[:16000]])
    steps = np.array([5000, 12000, 16000])
    batch = law.predict_interval(lr, steps)
    assert batch.lower.shape == (len(test) + 1, 3)
    for i, row in enumerate(lr):
        one = law.predict_interval(row, steps)
        assert np.allclose(batch.lower[i], one.lower, rtol=1e-12) and np.allclose(batch.upper[i], one.upper, rtol=1e-12)


@pytest.mark.filterwarnings("ignore::lrtune.laws.FitWarning")  # constant runs only, on purpose
def test_single_curve_fit_has_a_band_twice_the_residual_scale(mpl25):
    law = MomentumLaw().fit(mpl25[0][1])
    assert law.extrapolation_scale_ is None
    c = mpl25[1][2]
    p = law.predict_interval(c.lr, c.steps[:3])
    s = np.log(p.upper / p.loss) / 1.6448536269514722
    assert s == pytest.approx(np.sqrt(5) * law.residual_scale_, rel=1e-9)


def test_fit_files_without_band_state_still_give_a_band(fits):
    law, test = fits["25M"]
    data = {k: v for k, v in law.to_dict().items()
            if k not in ("extrapolation_scale", "fit_horizon", "fit_peak_lrs", "band_growth")}
    old = load_law(data)
    p = old.predict_interval(test[2].lr, test[2].steps)
    assert np.all(p.lower < p.loss) and np.all(p.upper > p.loss)
    assert np.array_equal(p.loss, law.predict(test[2].lr, test[2].steps))


def test_band_on_schaipp_held_out_schedules_covers_ninety_percent():
    """The set the band constants were chosen on: other schedules at the fitted peak LR."""
    runs = load_schaipp(n_layer="12", n_embd="768", group="main", base_lr="0.001")
    train = [c for c in runs if c.name in (
        "stable_124m_slimpajama_L12d768_constant_lr0.001_T50000",
        "cos_10_124m_slimpajama_L12d768_cosine_to10pct_lr0.001_T50000",
        "ann124_0.2_slimpajama_L12d768_wsd_linear0.2_lr0.001_T25000")]
    assert len(train) == 3
    law = MomentumLaw().fit(train)
    held = [c for c in runs if c not in train]
    assert _coverage(law, held, from_step=1000) >= 0.9


class _PowerLaw(Law):
    """A two-parameter law that takes one schedule at a time: L = L0 + A / S1."""

    name = "power-test"
    param_names = ("L0", "A")
    supports_batch = False

    def _fit_params(self, curves):
        s1 = np.concatenate([np.cumsum(c.lr)[c.steps - 1] for c in curves])
        y = np.concatenate([c.loss for c in curves])
        (L0, A), *_ = np.linalg.lstsq(np.stack([np.ones_like(s1), 1 / s1], 1), y, rcond=None)
        return {"L0": L0, "A": A}

    def _predict_params(self, params, lr, steps, model_size):
        assert lr.ndim == 1
        return params["L0"] + params["A"] / np.cumsum(lr)[steps - 1]


def test_band_logic_is_inherited_by_any_law_and_one_schedule_laws_are_batched_row_by_row(mpl25):
    train, test = mpl25
    law = _PowerLaw().fit(train)
    assert law.extrapolation_scale_ > 0 and law.fit_horizon_ > 0
    lr = np.stack([c.lr[:16000] for c in test])
    p = law.predict_interval(lr, [10000, 16000])
    assert p.loss.shape == (6, 2) and np.all(p.lower < p.loss)
    assert np.array_equal(p.loss[3], law.predict(lr[3], [10000, 16000]))


def test_bad_lr_arrays_are_rejected_with_the_candidate_and_update(fits):
    law, _ = fits["25M"]
    lr = np.full((3, 100), 1e-3)
    lr[1, 7] = np.nan
    with pytest.raises(ValueError, match=r"lr\[1, 7\] \(candidate 1, update 8\)"):
        law.predict(lr, [50])
    with pytest.raises(ValueError, match="2-d"):
        law.predict(np.ones((2, 2, 2)), [1])
    with pytest.raises(ValueError, match="steps"):
        law.predict(np.full((2, 100), 1e-3), [101])
    assert isinstance(_base.check_lr_batch([[1e-3, 1e-3]]), np.ndarray)


def test_fitting_without_band_skips_the_refits(mpl25):
    law = MomentumLaw().fit(mpl25[0], band=False)
    assert law.extrapolation_scale_ is None
    # without the leave-one-curve-out scale the band falls back to twice the residual scale
    c = mpl25[1][2]
    p = law.predict_interval(c.lr, c.steps[:2])
    assert np.log(p.upper / p.loss) == pytest.approx(1.6448536269514722 * np.sqrt(5) * law.residual_scale_, rel=1e-9)


@pytest.mark.filterwarnings("ignore::lrtune.laws.FitWarning")  # constant runs only, on purpose
def test_band_of_a_fit_on_two_model_sizes_survives_folds_that_leave_one_size():
    train = [mpl_split("25M")[0][1], mpl_split("400M")[0][1]]  # constant_24000 of two sizes
    law = MomentumLaw(model_size=True).fit(train)
    assert law.extrapolation_scale_ is None  # no fold leaves two sizes to fit
    c = mpl_split("100M")[1][0]
    p = law.predict_interval(c.lr, c.steps[:5], model_size=1e8)
    assert np.all(p.lower < p.loss) and np.all(p.loss < p.upper)
