"""Warnings where the data cannot support what is asked of a fit, on real curves: no decay
seen, runs of different models mixed, the multi-power law across peak LRs, candidates far
beyond the fitted peak LRs, a sweep whose 'final' losses are read mid-run."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings

import numpy as np
import pytest

from lrtune.cli import main
from lrtune.curves import write_curve_csv
from lrtune.datasets import load_mpl, load_schaipp
from lrtune.laws import FitWarning, make_law
from lrtune.suggest import suggest
from lrtune.transfer import PeakLRSweep

MAIN = dict(group="main", n_layer="12", n_embd="768")


def _messages(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, FitWarning)]


def _fit(law, curves, **kw) -> list[str]:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        make_law(law).fit(curves, **kw)
    return _messages(record)


def test_a_fit_that_never_saw_a_decay_mixed_models_or_the_multipower_law_across_peaks_warns():
    constant, cosine = load_mpl("25M", ["constant_24000", "cosine_24000"])
    assert any("never decays" in m for m in _fit("momentum", [constant]))
    (few,) = _fit("momentum", [constant, cosine])  # the decay is seen; two curves make a thin band
    assert "fitted on 2 curves: its band's extrapolation term rests on two refits on one curve each" in few
    wsdcon = load_mpl("25M", ["wsdcon_9"])
    assert _fit("momentum", [constant, cosine] + wsdcon) == []
    assert _fit("momentum", [constant], warn=False) == []
    big = load_mpl("400M", ["cosine_24000"])
    msgs = _fit("momentum", [constant, cosine] + big)
    assert any("different model_size (2.5e+07, 4e+08)" in m for m in msgs)
    same = dataclasses.replace(cosine, meta={**cosine.meta, "model_size": 25_000_000})  # an int in one run's meta
    assert not any("different model_size" in m for m in _fit("momentum", [constant, same]))
    runs = [c for c in load_schaipp(**MAIN, horizon="15000", schedule="wsd", decay_type="linear", cooldown_frac="0.2")
            if c.meta["base_lr"] in ("0.001", "0.002")]
    assert any("no term for the peak LR" in m for m in _fit("multipower", runs))
    assert not any("no term for the peak LR" in m for m in _fit("momentum", runs))


def test_suggest_never_picks_a_value_that_is_no_loss_and_warns_about_far_peak_lrs(tmp_path, capsys):
    runs = [c for c in load_schaipp(**MAIN, horizon="15000", base_lr="0.001")
            if c.meta["schedule"] in ("constant", "cosine") or c.meta.get("cooldown_frac") == "0.2"]
    law = make_law("multipower").fit(runs)
    peaks = [5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1]
    with pytest.warns(FitWarning, match="7 of the 8 peak LRs tried .* no peak-LR term"):
        r = suggest(law, 50000, peaks, warmup=301)
    assert math.isfinite(r.best.predicted_loss) and r.best.predicted_loss > 0
    assert all(math.isfinite(a.predicted_loss) and a.predicted_loss > 0 for a in r.alternatives)
    # through the CLI: strict JSON, and the warning on one line
    fit, path = str(tmp_path / "mp.json"), str(tmp_path / "runs.csv")
    law.to_json(fit)
    write_curve_csv(runs, path)
    capsys.readouterr()
    assert main(["suggest", path, "--fit", fit, "--steps", "50000", "--no-correction", "--format", "json",
                 "--peak-lrs", ",".join(map(str, peaks))]) == 0
    out, err = capsys.readouterr()
    json.loads(out, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert err.startswith("lrtune: warning: 7 of the 8 peak LRs tried")
    # the free-form schedule searches only peak LRs where the law's value is a loss
    assert main(["suggest", path, "--fit", fit, "--steps", "50000", "--no-correction", "--format", "json",
                 "--free-form", "--peak-lrs", ",".join(map(str, peaks))]) == 0
    got = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    ff = got.get("free_form")
    assert ff is None or (math.isfinite(ff["predicted_loss"]) and ff["predicted_loss"] > 0)


def test_predicting_at_a_peak_lr_far_from_the_fitted_ones_warns_and_names_multipliers(tmp_path, capsys):
    train = load_mpl("25M", ["constant_24000", "cosine_24000", "wsdcon_9"])  # peak 3e-4
    law = make_law("momentum").fit(train)
    (wsd,) = load_mpl("25M", ["wsd_20000_24000"])
    multipliers = wsd.lr / wsd.lr.max()  # an LR array of multipliers, as lr_from_torch(f, steps) gives
    with pytest.warns(FitWarning, match=r"the peak LR 1 lies outside 0.00015..0.0006 .* base_lr=PEAK"):
        far = law.predict_interval(multipliers, [24000])
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)  # at the fitted peak, and within a factor 2: silent
        near = law.predict_interval(wsd.lr, [24000])
        law.predict_interval(2 * wsd.lr, [24000])
        law.predict_interval(multipliers, [24000], warn=False)
    assert abs(float(near.loss[-1]) / wsd.loss[-1] - 1) < 0.01 < abs(float(far.loss[-1]) / wsd.loss[-1] - 1)
    # a 2-d batch names how many rows lie outside
    with pytest.warns(FitWarning, match="1 of the 2 peak LRs tried"):
        law.predict_interval(np.stack([wsd.lr, multipliers]), [24000])
    # on the command line: one warning line, the prediction still printed
    fit = str(tmp_path / "fit.json")
    law.to_json(fit)
    spec = "wsd:steps=24000,peak=1,warmup=2160,cooldown=0.1667,shape=exp,min=0.1"
    capsys.readouterr()
    assert main(["predict", fit, "--schedule", spec, "--steps", "24000", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("lrtune: warning: the peak LR 1 lies outside") and err.count("\n") == 1
    assert json.loads(out)


def test_a_sweep_whose_runs_share_no_late_step_warns_that_its_final_losses_are_mid_run():
    runs = load_schaipp(**MAIN, horizon="25000", schedule="wsd", decay_type="linear", cooldown_frac="0.2")
    full = PeakLRSweep(n_boot=200).fit(runs)
    first = runs[0]  # logged only up to step 10000, before its cooldown
    keep = first.steps <= 10000
    short = [dataclasses.replace(first, steps=first.steps[keep], loss=first.loss[keep])] + runs[1:]
    with pytest.warns(FitWarning, match=r"share no logged step after 10000 of their 25000"):
        mid = PeakLRSweep(n_boot=200).fit(short)
    assert mid.final_step_ == 10000 and full.final_step_ > 0.95 * 25000
    assert not np.isclose(mid.peak_lr_, full.peak_lr_, rtol=0.05)  # the mid-run optimum is another one
