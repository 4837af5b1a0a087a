"""Schedule suggestions ranked by a law fitted on real curves."""

import json
import os

import numpy as np
import pytest

from lrtune.cli import main
from lrtune.curves import write_curve_csv
from lrtune.laws import make_law
from lrtune.schedules import parse_schedule
from lrtune.suggest import (FREE_FORM_LABEL, candidate_shapes, observed_warmup, optimize_free_form,
                            predict_batch, suggest)


@pytest.fixture(scope="module")
def law25(mpl25):
    train, _ = mpl25
    return make_law("momentum").fit(train)


@pytest.fixture(scope="module")
def files(mpl25, law25, tmp_path_factory):
    """The training curves as CSV and the law fitted on them as JSON (so the CLI does not refit)."""
    train, _ = mpl25
    d = tmp_path_factory.mktemp("suggest")
    write_curve_csv(train, d / "train.csv")
    law25.to_json(str(d / "fit.json"))
    return str(d / "train.csv"), str(d / "fit.json")


def test_candidates_cover_cosine_linear_and_wsd_with_three_cooldown_shapes():
    shapes = candidate_shapes(1000, warmup=50, cooldowns=(0.1, 0.2, 0.4))
    fams = [s.family for s in shapes]
    assert fams.count("cosine") == 1 and fams.count("linear") == 1 and fams.count("wsd") == 9
    assert {s.shape for s in shapes if s.family == "wsd"} == {"linear", "1-sqrt", "cosine"}
    for s in shapes:
        lr = s.lr()
        assert lr.shape == (1000,) and lr.max() == pytest.approx(1.0) and lr[49] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="families"):
        candidate_shapes(1000, families=("cosine", "step"))
    with pytest.raises(ValueError, match="shapes"):
        candidate_shapes(1000, shapes=("exp",))
    with pytest.raises(ValueError, match="cooldown"):
        candidate_shapes(1000, cooldowns=(0.0,))


def test_observed_warmup_reads_the_runs_rise(mpl25):
    train, _ = mpl25
    assert observed_warmup(train) == (2160, 0.0)


def test_suggestion_is_the_laws_best_candidate_with_runners_up_of_other_shapes(law25):
    peaks = [2e-4, 3e-4]
    r = suggest(law25, 24000, peaks, warmup=2160, top=4)
    # brute force: every candidate predicted one at a time
    every = [(float(law25.predict(s.replace(peak=p).lr(), [24000])[0]), s.replace(peak=p).spec())
             for s in candidate_shapes(24000, warmup=2160) for p in peaks]
    best_loss, best_spec = min(every)
    assert r.n_candidates == len(every) == 40
    assert r.best.predicted_loss == pytest.approx(best_loss, rel=1e-9)
    assert parse_schedule(r.best.schedule) == parse_schedule(best_spec)
    assert r.best.lower < r.best.predicted_loss < r.best.upper
    losses = [r.best.predicted_loss] + [a.predicted_loss for a in r.alternatives]
    assert losses == sorted(losses) and len(r.alternatives) == 4
    shapes = {parse_schedule(a.schedule).replace(peak=1.0) for a in [r.best] + r.alternatives}
    assert len(shapes) == 5  # one per shape
    d = r.to_dict()
    assert {"schedule", "peak_lr", "predicted_loss", "lower", "upper", "alternatives"} <= set(d)
    assert set(d["alternatives"][0]) == {"schedule", "peak_lr", "predicted_loss", "lower", "upper"}


def test_batched_prediction_equals_one_schedule_at_a_time(law25):
    shapes = candidate_shapes(24000, warmup=2160, cooldowns=(0.2,))
    lr = np.stack([3e-4 * s.lr() for s in shapes])
    steps = [12000, 24000]
    got = predict_batch(law25, lr, steps)
    want = np.stack([law25.predict(row, steps) for row in lr])
    np.testing.assert_allclose(got, want, rtol=1e-10)
    band = predict_batch(law25, lr, steps, level=0.8)
    assert band.loss.shape == (len(shapes), 2) and np.all(band.lower < band.upper)


def test_free_form_schedule_is_never_worse_than_the_best_candidate_and_never_rises(law25):
    r = suggest(law25, 24000, [3e-4], warmup=2160, top=0)
    ff = optimize_free_form(law25, 24000, peak_range=(1e-4, 3e-4), warmup=2160, init=r.best, max_iter=15)
    assert ff.label == FREE_FORM_LABEL
    assert ff.predicted_loss <= r.best.predicted_loss + 1e-12
    assert ff.lower < ff.predicted_loss < ff.upper
    body = ff.lr[2160:]
    assert np.all(np.diff(body) <= 1e-15)
    assert 1e-4 * (1 - 1e-9) <= ff.peak_lr <= 3e-4 * (1 + 1e-9)
    assert body.min() >= 1e-3 * ff.peak_lr * (1 - 1e-9)
    assert ff.predicted_loss == pytest.approx(float(law25.predict(ff.lr, [24000])[0]), rel=1e-12)


def test_cli_suggest_json_has_the_documented_keys(files, capsys):
    path, fit = files
    code = main(["suggest", path, "--fit", fit, "--steps", "24000", "--peak-lrs", "2e-4,3e-4", "--top", "3",
                 "--format", "json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert {"schedule", "peak_lr", "predicted_loss", "lower", "upper", "alternatives"} <= set(out)
    assert len(out["alternatives"]) == 3
    assert out["lower"] < out["predicted_loss"] < out["upper"]
    assert parse_schedule(out["schedule"]).peak == out["peak_lr"]
    assert parse_schedule(out["schedule"]).warmup == 2160  # the observed runs' warmup


def test_cli_suggest_emits_torch_code_that_builds_the_schedule(files, capsys):
    torch = pytest.importorskip("torch")
    path, fit = files
    assert main(["suggest", path, "--fit", fit, "--steps", "3000", "--peak-lrs", "3e-4", "--warmup", "100",
                 "--emit", "torch"]) == 0
    code = capsys.readouterr().out
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scope = {"optimizer": opt}
    exec(code, scope)
    sched = scope["scheduler"]
    spec = code.split("to_lambda_lr(")[1].split(", optimizer")[0].strip("'\"")
    want = parse_schedule(spec).lr()
    got = []
    for _ in range(3000):
        got.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # a best peak LR at the edge of those tried is said in the code and on stderr
    assert main(["suggest", path, "--fit", fit, "--steps", "3000", "--peak-lrs", "1e-5,2e-5", "--warmup", "100",
                 "--emit", "torch"]) == 0
    out, err = capsys.readouterr()
    assert "# note: 2e-05 is the largest peak LR tried: the optimum may lie above it" in out
    assert "lrtune: warning: 2e-05 is the largest peak LR tried" in err
    exec(out, {"optimizer": opt})


def test_cli_suggest_plot_and_free_form(files, tmp_path, capsys):
    path, fit = files
    png = tmp_path / "best.png"
    assert main(["suggest", path, "--fit", fit, "--steps", "24000", "--peak-lrs", "3e-4", "--free-form",
                 "--plot", str(png), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "free-form (optimised against the law" in out and "best:" in out
    assert png.stat().st_size > 10_000


def test_cli_suggest_refuses_runs_at_one_peak_without_a_peak_grid(files, capsys):
    path, _ = files
    assert main(["suggest", path, "--steps", "24000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lrtune: error:") and "peak LR" in err


def test_residual_correction_carries_a_runs_error_to_candidates_like_it(mpl25, law25):
    from lrtune.schedules import Cosine, WSD
    from lrtune.suggest import ResidualCorrection

    train, _ = mpl25
    corr = ResidualCorrection()
    # the cosine run's own schedule and another one
    shapes = [Cosine(steps=24000, peak=1.0, warmup=2160, min=0.1),
              WSD(steps=24000, peak=1.0, warmup=10, cooldown=0.9, shape="1-sqrt")]
    r = np.array([np.log(c.loss[-1] / law25.predict(c.lr, [c.steps[-1]])[0]) for c in train])
    shift = corr.log_shift(law25, shapes, np.array([3e-4, 3e-3]), train)
    cos = [c.name for c in train].index("cosine_24000")
    # the cosine run's schedule gets a residual between the cosine run's and the mean
    assert min(r[cos], r.mean()) < shift[0, 0] < max(r[cos], r.mean())
    assert abs(shift[0, 0] - r[cos]) < abs(r.mean() - r[cos])
    # at ten times the peak LR of every run nothing resembles it: the mean residual
    np.testing.assert_allclose(shift[:, 1], r.mean(), atol=1e-9)
    with pytest.raises(ValueError, match="shape_scale"):
        ResidualCorrection(shape_scale=0)


def test_suggest_with_the_correction_ranks_the_corrected_losses(law25, mpl25):
    train, _ = mpl25
    plain = suggest(law25, 24000, [3e-4], warmup=2160, top=19)
    corrected = suggest(law25, 24000, [3e-4], warmup=2160, top=19, curves=train)
    losses = [corrected.best.predicted_loss] + [a.predicted_loss for a in corrected.alternatives]
    assert losses == sorted(losses)
    by_spec = {s.schedule: s.predicted_loss for s in [plain.best] + plain.alternatives}
    ratios = [s.predicted_loss / by_spec[s.schedule] for s in [corrected.best] + corrected.alternatives]
    assert len(ratios) == 20 and np.ptp(np.log(ratios)) > 0  # the correction differs between shapes


GENERATED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "data",
                         "generated", "curves")


@pytest.fixture(scope="module")
def gen400():
    """Generated 400-update runs: constant at three peaks and one WSD (warmup 20 updates)."""
    from lrtune.curves import read_curves

    names = [f"constant_h400_p{p}" for p in ("0.001", "0.002", "0.004")] + ["wsd-c0.2-linear_h400_p0.002"]
    curves = [c for n in names for c in read_curves(f"{GENERATED}/{n}.csv")]
    return curves, make_law("momentum").fit(curves)


def test_suggest_for_a_long_horizon_with_a_long_warmup_corrects_every_candidate(gen400):
    # the correction rebuilds each candidate at the observed runs' 400 steps: a cooldown of 0.8
    # with a warmup of 100 is no WSD there, and made the whole call fail
    curves, law = gen400
    r = suggest(law, 3000, [1e-3, 2e-3, 4e-3], warmup=100, curves=curves, cooldowns=(0.2, 0.8), top=20)
    specs = [r.best.schedule] + [a.schedule for a in r.alternatives]
    assert any("cooldown=0.8" in s for s in specs) and r.n_candidates == 3 * 8


def test_cooldowns_that_do_not_fit_the_horizon_are_left_out_not_fatal(gen400):
    curves, law = gen400
    # 60 steps, warmup 20: a 0.8 cooldown would start inside the warmup, a 0.1 one is 6 steps
    r = suggest(law, 60, [1e-3, 2e-3], warmup=20, curves=curves, top=30)
    specs = [r.best.schedule] + [a.schedule for a in r.alternatives]
    assert not any("cooldown=0.8" in s for s in specs) and any("cooldown=0.1" in s for s in specs)
    with pytest.raises(ValueError, match="no candidate schedule fits 60 steps with warmup 20"):
        suggest(law, 60, [1e-3], warmup=20, families=("wsd",), cooldowns=(0.8,))
    # numpy values and one curve are taken as a user gives them
    a = suggest(law, 800, np.array([1e-3, 2e-3]), cooldowns=np.array([0.2, 0.4]), curves=curves[0])
    b = suggest(law, 800, [1e-3, 2e-3], cooldowns=[0.2, 0.4], curves=[curves[0]])
    assert a.best == b.best


def test_free_form_keeps_the_min_floor_and_is_corrected_like_the_families(gen400):
    curves, law = gen400
    r = suggest(law, 800, [1e-3, 2e-3, 4e-3], min_lr=0.5, curves=curves, free_form=True)
    ff = r.free_form
    assert ff.lr[-1] >= 0.5 * ff.peak_lr * (1 - 1e-9)
    raw = float(law.predict(ff.lr, [800])[-1])
    plain = suggest(law, 800, [1e-3, 2e-3, 4e-3], min_lr=0.5, free_form=True).free_form
    assert plain.predicted_loss == pytest.approx(raw, rel=1e-9)
    assert ff.predicted_loss != pytest.approx(raw, rel=1e-6)  # corrected, as the best family is
    assert r.best.predicted_loss != pytest.approx(float(law.predict(parse_schedule(r.best.schedule).lr(), [800])[-1]),
                                                  rel=1e-6)


def test_cli_suggest_plot_draws_the_corrected_predictions(gen400, tmp_path, monkeypatch, capsys):
    import lrtune.plotting

    curves, law = gen400
    paths = []
    for c in curves:
        write_curve_csv(c, tmp_path / f"{c.name}.csv")
        paths.append(str(tmp_path / f"{c.name}.csv"))
    drawn = {}

    def capture(law_, path, curves=(), schedules=(), **kw):
        drawn["schedules"] = schedules
        return path
    monkeypatch.setattr(lrtune.plotting, "plot_predictions", capture)
    capsys.readouterr()
    assert main(["suggest", *paths, "--steps", "8e2", "--format", "json", "--plot", str(tmp_path / "p.png")]) == 0
    out = json.loads(capsys.readouterr().out)
    label, lr, factor = drawn["schedules"][0]
    fitted = make_law("momentum").fit(curves)
    assert factor * float(fitted.predict(lr, [800])[-1]) == pytest.approx(out["predicted_loss"], rel=1e-9)
    assert factor != pytest.approx(1.0, abs=1e-4)


def test_cli_suggest_option_conflicts_and_steps(files, capsys):
    train, fit = files
    for argv, message in [(["--steps", "24000", "--emit", "torch", "--format", "json"], "give one of them"),
                          (["--steps", "-5"], "--steps must be at least 2"),
                          (["--steps", "1.5e4x"], "--steps must be a whole number"),
                          (["--steps", "24000", "--fit", fit, "--law", "multipower"], "holds a momentum law")]:
        capsys.readouterr()
        assert main(["suggest", train, *argv]) == 2
        assert message in capsys.readouterr().err
    assert main(["suggest", train, "--steps", "2.4e4", "--fit", fit, "--peak-lrs", "2e-4,3e-4", "--format",
                 "json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 24000


def test_momentum_law_scores_every_peak_of_a_shape_from_one_pass(law25):
    # both areas are linear in the LR: predict_peaks equals predicting each scaled schedule
    peaks = np.geomspace(1e-4, 3e-3, 7)
    for spec in ("wsd:steps=24000,peak=1,warmup=2160,cooldown=0.2,shape=1-sqrt",
                 "cosine:steps=24000,peak=1,warmup=2160,start=0.1,min=0.1"):
        eta = parse_schedule(spec).lr()
        steps = [3000, 12000, 24000]
        one = law25.predict_peaks(eta, peaks, steps)
        each = law25.predict(peaks[:, None] * eta[None, :], steps)
        np.testing.assert_allclose(one, each, rtol=1e-12)
    # suggest ranks with it exactly as with the batched predictions of a law without it
    class Batched:
        name, model_size = law25.name, False

        def predict(self, lr, steps):
            return law25.predict(lr, steps)

        def predict_interval(self, lr, steps, level=0.9):
            return law25.predict_interval(lr, steps, level=level)
    a = suggest(law25, 24000, [2e-4, 3e-4, 5e-4], warmup=2160, top=3)
    b = suggest(Batched(), 24000, [2e-4, 3e-4, 5e-4], warmup=2160, top=3)
    assert [s.schedule for s in [a.best, *a.alternatives]] == [s.schedule for s in [b.best, *b.alternatives]]
    assert a.best.predicted_loss == pytest.approx(b.best.predicted_loss, rel=1e-12)


def test_cli_suggest_says_when_the_best_peak_lr_is_the_edge_of_the_range(files, capsys):
    # fitted at one peak LR, the law's loss falls with the peak over this range: the optimum
    # may lie beyond the largest peak tried, and the output says so
    path, fit = files
    assert main(["suggest", path, "--fit", fit, "--steps", "24000", "--peak-lrs", "2e-4,3e-4", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["peak_lr"] == 3e-4 and out["at_edge"] == "above"
    assert main(["suggest", path, "--fit", fit, "--steps", "24000", "--peak-lrs", "2e-4,3e-4"]) == 0
    assert "note: 0.0003 is the largest peak LR tried, so the optimum may lie above it" in capsys.readouterr().out
    assert main(["suggest", path, "--fit", fit, "--steps", "24000", "--peak-lrs", "3e-4", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["at_edge"] is None  # one peak LR: no range to be at the edge of
