"""What the Python API does with the inputs a notebook session gives it: schedules and specs
where LR arrays are expected, a run given twice, a fit saved and loaded through the base
class, and the mistakes that get a clear error."""

import json
import warnings

import numpy as np
import pytest

from lrtune import Law, load_law, make_law, mpl_split, parse_schedule
from lrtune.curves import Curve, DivergedRunError, write_curve_csv
from lrtune.laws import FitWarning
from lrtune.plotting import plot_predictions
from lrtune.suggest import candidate_shapes
from lrtune.transfer import PeakLRSweep, PeakLRTransfer

SPEC = "wsd:steps=24000,peak=3e-4,warmup=2160,cooldown=0.2"


@pytest.fixture(scope="module")
def fitted():
    train, test = mpl_split("25M")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        return make_law("momentum").fit(train), train, test


def test_predict_takes_a_schedule_or_a_spec_for_its_lr_array(fitted):
    law, _, _ = fitted
    s = parse_schedule(SPEC)
    steps = [1000, 12000, 24000]
    want = law.predict(s.lr(), steps)
    assert np.array_equal(law.predict(s, steps), want)
    assert np.array_equal(law.predict(SPEC, steps), want)
    both = law.predict([SPEC, s.with_peak(1.5e-4)], steps)  # a list: one row each
    assert both.shape == (2, 3) and np.array_equal(both[0], want)
    band = law.predict_interval(SPEC, steps)
    assert np.array_equal(band.loss, want)
    with pytest.raises(ValueError, match="different numbers of steps"):
        law.predict([SPEC, "cosine:steps=1000,peak=3e-4"])


def test_model_size_for_a_law_without_the_term_is_an_error(fitted):
    law, _, _ = fitted
    with pytest.raises(ValueError, match="no model-size term, so model_size would change nothing"):
        law.predict(SPEC, model_size=1e6)
    with pytest.raises(ValueError, match="no model-size term"):
        law.predict_interval(SPEC, model_size=1e6)


def test_a_run_given_twice_is_warned_about(fitted):
    _, train, _ = fitted
    with pytest.warns(FitWarning, match="'cosine_24000' and 'cosine_24000' are the same run"):
        make_law("momentum").fit(train + train[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        make_law("momentum").fit(train)  # three different runs: no such warning


def test_a_fit_loads_through_the_base_class_with_its_final_errors(fitted):
    law, _, _ = fitted
    back = Law.from_json(law.to_json())
    assert type(back) is type(law) and back.params_ == law.params_
    assert back.final_rel_errors_ == pytest.approx(law.final_rel_errors_)
    assert "error at the curves' last points" in back.summary()
    assert Law.from_dict(law.to_dict()).params_ == law.params_
    data = law.to_dict()
    data["final_rel_errors"] = {"cosine_24000": "high"}
    with pytest.raises(ValueError, match="final_rel_errors must be an object of numbers"):
        load_law(data)
    data["final_rel_errors"] = {"cosine_24000": None, "constant_24000": 0.001}  # to_json's null for inf
    assert "up to +0.100 % (constant_24000)" in load_law(data).summary()
    del data["final_rel_errors"]  # a fit written before it was kept still loads
    assert load_law(json.loads(json.dumps(data))).final_rel_errors_ is None


def test_half_the_fitted_peak_is_inside_the_measured_range_despite_float32_logs(fitted):
    law, train, _ = fitted
    assert law.fit_peak_lrs_[0] != 3e-4  # the bundled logs keep LRs in float32
    lr = parse_schedule(SPEC).lr()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        law.predict_interval(0.5 * lr, [24000])
        law.predict_interval(np.stack([lr, 0.5 * lr]), [24000])
    with pytest.warns(FitWarning, match="outside"):
        law.predict_interval(0.4 * lr, [24000])


def test_a_nan_inside_a_curve_says_how_to_leave_it_out(fitted):
    _, train, _ = fitted
    c = train[0]
    loss = c.loss.copy()
    loss[4] = np.nan
    with pytest.raises(DivergedRunError, match=r"loss\[4\] is nan, with finite losses after it.*np.isfinite"):
        Curve(c.steps, loss, c.lr)
    loss[4:] = np.nan  # NaN to the end: a diverged run
    with pytest.raises(DivergedRunError, match="diverged run or a broken log"):
        Curve(c.steps, loss, c.lr)
    keep = np.isfinite(loss)
    assert Curve(c.steps[keep], loss[keep], c.lr).steps.size == 4


def test_transfer_spec_reads_back_as_the_predicted_peak():
    from lrtune.datasets import load_schaipp

    sweeps = [PeakLRSweep().fit(load_schaipp(n_layer="12", n_embd="768", group="main", schedule="wsd",
                                             decay_type="linear", cooldown_frac="0.2", horizon=h))
              for h in ("15000", "25000")]
    r = PeakLRTransfer().fit(sweeps).predict("wsd:steps=50000,peak=1,warmup=301,cooldown=0.2")
    assert parse_schedule(r.schedule).peak == r.peak_lr


def test_one_family_or_shape_given_as_a_string(fitted):
    assert [s.spec() for s in candidate_shapes(1000, families="wsd", shapes="linear", cooldowns=(0.2,))] == \
        [s.spec() for s in candidate_shapes(1000, families=["wsd"], shapes=["linear"], cooldowns=(0.2,))]


def test_plot_takes_specs_schedules_and_a_single_curve(fitted, tmp_path):
    law, _, test = fitted
    s = parse_schedule(SPEC)
    out = plot_predictions(law, str(tmp_path / "p.png"), curves=test[0],
                           schedules=[SPEC, s.with_peak(1.5e-4), ("mine", s), ("array", s.lr(), 1.01)])
    assert out.endswith("p.png") and (tmp_path / "p.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="each entry is a spec, a schedule or a"):
        plot_predictions(law, str(tmp_path / "q.png"), schedules=[3.0])


def test_fit_on_a_dict_of_curves_says_to_pass_its_values(fitted):
    _, train, _ = fitted
    with pytest.raises(ValueError, match=r"got a dict: pass list\(d.values\(\)\)"):
        make_law("momentum").fit({c.name: c for c in train})


def test_write_curve_csv_with_swapped_arguments_says_so(fitted, tmp_path):
    _, train, _ = fitted
    with pytest.raises(ValueError, match="the arguments are swapped"):
        write_curve_csv(str(tmp_path / "f.csv"), train)


def test_a_fitted_law_and_transfer_show_their_state_in_their_repr(fitted):
    law, train, _ = fitted
    assert repr(make_law("momentum")).endswith(")")  # unfitted: the settings only
    shown = repr(law)
    assert "fitted on 3 curve(s)" in shown and f"L0={law.params_['L0']:.4g}" in shown and "R^2 0.99" in shown
    from lrtune.datasets import load_schaipp

    t = PeakLRTransfer()
    assert repr(t).startswith("PeakLRTransfer(horizon_prior_sd=0.5")
    t.fit([load_schaipp(n_layer="12", n_embd="768", group="main", schedule="wsd", decay_type="linear",
                        cooldown_frac="0.2", horizon="15000")])
    assert "fitted on 1 sweep(s) (15000 steps: " in repr(t)


def test_specs_take_shapes_in_any_case_and_suggest_a_whole_float_horizon(fitted):
    assert parse_schedule("wsd:steps=100,peak=1e-3,cooldown=0.2,shape=Cosine") == \
        parse_schedule("wsd:steps=100,peak=1e-3,cooldown=0.2,shape=cosine")
    law, _, _ = fitted
    from lrtune.suggest import suggest

    a = suggest(law, 30000.0, [2e-4, 3e-4], families="wsd", cooldowns=(0.2,))
    b = suggest(law, 30000, [2e-4, 3e-4], families="wsd", cooldowns=(0.2,))
    assert a.best.schedule == b.best.schedule
    with pytest.raises(ValueError, match="steps must be an integer >= 2, got 30000.5"):
        suggest(law, 30000.5, [2e-4])
