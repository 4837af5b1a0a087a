"""benchmarks/generate_curves.py: the training script (in --quick mode) and the committed sweep."""

import csv
import importlib.util
import json
import math
import os
import sys

import numpy as np
import pytest

from lrtune import read_curves
from lrtune.schedules import parse_schedule

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "generate_curves.py")
SWEEP = os.path.join(ROOT, "benchmarks", "data", "generated")

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("generate_curves", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def run_main(gen, *argv):
    threads = torch.get_num_threads()
    try:
        return gen.main(list(argv))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def quick(gen, tmp_path_factory):
    """One --quick sweep (tiny model, 30 updates, constant and WSD 20 %) in a temp folder."""
    base = tmp_path_factory.mktemp("quick")
    out, cache = str(base / "out"), str(base / "cache")
    assert run_main(gen, "--quick", "--out", out, "--cache", cache, "--keep-cache") == 0
    return gen, out, cache


def load_json(out, run):
    with open(os.path.join(out, "curves", run + ".json")) as f:
        return json.load(f)


def test_quick_curves_read_back_with_the_schedule_lr_and_a_falling_loss(quick):
    gen, out, _ = quick
    names = sorted(f[:-4] for f in os.listdir(os.path.join(out, "curves")) if f.endswith(".csv"))
    assert names == ["constant_h30_p0.003", "wsd-c0.2-linear_h30_p0.003"]
    for name in names:
        (curve,) = read_curves(os.path.join(out, "curves", name + ".csv"))
        meta = load_json(out, name)
        assert curve.name == name
        np.testing.assert_array_equal(curve.lr, parse_schedule(meta["spec"]).lr())
        assert curve.steps.tolist() == [10, 20, 30]  # every eval_every updates and the last one
        assert curve.loss[0] < math.log(256)  # below the loss of a uniform guess over bytes
        assert np.all(np.diff(curve.loss) < 0)
        assert meta["final_val_loss"] == curve.loss[-1]


def test_quick_json_holds_the_settings(quick):
    gen, out, _ = quick
    meta = load_json(out, "wsd-c0.2-linear_h30_p0.003")
    assert meta["spec"] == "wsd:steps=30,peak=0.003,warmup=5,cooldown=0.2,shape=linear"
    assert (meta["family"], meta["schedule"], meta["peak_lr"], meta["horizon"]) == ("wsd", "wsd-c0.2-linear", 0.003, 30)
    assert (meta["cooldown"], meta["shape"], meta["warmup"], meta["seed"]) == (0.2, "linear", 5, 0)
    assert meta["model"]["size"] == "tiny" and meta["model"]["parameters"] > 0
    assert meta["model"]["d_model"] == 32 and meta["model"]["context"] == 32
    assert meta["data"]["sha256"] and meta["data"]["val_bytes"] > 0
    assert meta["wall_s"] >= 0 and meta["diverged"] is False
    # the stable phase is shared with the constant run: the cooldown resumes from it
    assert meta["resumed_from"] == {"run": "constant_h30_p0.003", "step": 25}
    assert meta["steps_trained"] == 5
    constant = load_json(out, "constant_h30_p0.003")
    assert constant["resumed_from"] is None and constant["cooldown"] is None
    with open(os.path.join(out, "runs.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["run"] for r in rows] == ["constant_h30_p0.003", "wsd-c0.2-linear_h30_p0.003"]


def test_second_invocation_skips_finished_runs(quick, capsys):
    gen, out, cache = quick
    files = [os.path.join(out, "curves", f) for f in sorted(os.listdir(os.path.join(out, "curves")))]
    before = {f: os.stat(f).st_mtime_ns for f in files}
    capsys.readouterr()
    assert run_main(gen, "--quick", "--out", out, "--cache", cache, "--keep-cache") == 0
    assert "2 runs in the grid, 2 finished, 0 to train (0 updates" in capsys.readouterr().err
    assert {f: os.stat(f).st_mtime_ns for f in files} == before


def test_finished_runs_made_with_other_settings_are_not_passed_off_as_this_grids(quick, capsys):
    # the second invocation used to report them finished and keep the old results
    gen, out, cache = quick
    files = [os.path.join(out, "curves", f) for f in sorted(os.listdir(os.path.join(out, "curves")))]
    before = {f: os.stat(f).st_mtime_ns for f in files}
    capsys.readouterr()
    assert run_main(gen, "--quick", "--out", out, "--cache", cache, "--keep-cache", "--seed", "1") == 2
    err = capsys.readouterr().err
    assert "already holds runs made otherwise" in err and "other seed settings (it has 0, this command asks for 1)" in err
    assert {f: os.stat(f).st_mtime_ns for f in files} == before


def test_peaks_that_share_a_run_name_and_an_unusable_output_are_refused_before_training(gen, tmp_path, capsys):
    capsys.readouterr()
    assert run_main(gen, "--quick", "--out", str(tmp_path / "a"), "--peaks", "1e-3,1.0001e-3") == 2
    assert "share the run name constant_h30_p0.001" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert run_main(gen, "--quick", "--out", str(tmp_path / "file" / "sub")) == 2
    assert "generate_curves: NotADirectoryError" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gen.parse_args(["--quick", "--out", str(tmp_path / "b"), "--threads", "0"])


def test_a_run_resumed_from_a_shared_prefix_equals_one_trained_from_step_0(quick, tmp_path):
    gen, out, _ = quick
    scratch = str(tmp_path / "scratch")
    assert run_main(gen, "--quick", "--out", scratch, "--no-cache") == 0
    assert load_json(scratch, "wsd-c0.2-linear_h30_p0.003")["resumed_from"] is None
    for name in ("constant_h30_p0.003", "wsd-c0.2-linear_h30_p0.003"):
        with open(os.path.join(out, "curves", name + ".csv")) as a, open(os.path.join(scratch, "curves", name + ".csv")) as b:
            assert a.read() == b.read()


def test_a_missing_shared_prefix_checkpoint_is_named_and_the_run_trained_from_step_0(quick, tmp_path, monkeypatch, capsys):
    gen, out, _ = quick
    # the run that was to write the checkpoint wrote nothing (as when it diverged before it)
    monkeypatch.setattr(gen.Cache, "save", lambda self, lr_prefix, state: None)
    capsys.readouterr()
    lost = str(tmp_path / "lost")
    assert run_main(gen, "--quick", "--out", lost, "--cache", str(tmp_path / "cache")) == 0
    err = capsys.readouterr().err
    assert "wsd-c0.2-linear_h30_p0.003: no checkpoint at update" in err and "training from update 0" in err
    assert load_json(lost, "wsd-c0.2-linear_h30_p0.003")["resumed_from"] is None
    assert load_json(lost, "wsd-c0.2-linear_h30_p0.003")["steps_trained"] == 30
    name = "wsd-c0.2-linear_h30_p0.003"
    with open(os.path.join(out, "curves", name + ".csv")) as a, open(os.path.join(lost, "curves", name + ".csv")) as b:
        assert a.read() == b.read()


def test_plan_trains_each_shared_lr_prefix_once(gen):
    runs = gen.build_grid(["constant", "wsd-c0.2-linear", "wsds"], [100, 200], [1e-3], warmup=10)
    points = gen.branch_points(runs, min_steps=10)
    todo = gen.plan(runs, points, available=lambda r, d: False, finished=lambda r: False)
    resume = {r.name: r.resume_at for r in todo}
    assert resume["constant_h200_p0.001"] == 0
    assert resume["constant_h100_p0.001"] == 100  # a prefix of the longer constant run
    # the cooldown starts at peak at index h - 0.2 h, so the runs part one update later
    assert resume["wsd-c0.2-linear_h200_p0.001"] == 161
    assert resume["wsd-c0.2-linear_h100_p0.001"] == 81
    assert resume["wsds_h100_p0.001"] == 100  # WSD-S cycles of 100 updates: a prefix of the longer run
    assert 100 in next(r for r in todo if r.name == "constant_h200_p0.001").saves
    total = sum(r.horizon - r.resume_at for r in todo)
    assert total == 200 + 39 + 19 + 200 - resume["wsds_h200_p0.001"]


def test_parabola_vertex_locates_the_optimum_between_grid_points(gen):
    peaks = [1e-3, 2e-3, 4e-3, 8e-3]
    losses = [(math.log(p) - math.log(3e-3)) ** 2 for p in peaks]
    assert gen.parabola_peak(peaks, losses) == pytest.approx(3e-3)
    assert gen.parabola_peak(peaks, losses[::-1][:1] + [5.0, 6.0, 7.0]) is None  # best at the edge


# -- the committed sweep -------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep():
    with open(os.path.join(SWEEP, "runs.csv")) as f:
        rows = list(csv.DictReader(f))
    metas = [json.load(open(os.path.join(SWEEP, "curves", r["run"] + ".json"))) for r in rows]
    return metas


def test_committed_sweep_covers_the_grid(sweep, gen):
    grid = {(m["schedule"], m["horizon"], m["peak_lr"]) for m in sweep}
    assert len(grid) == len(sweep) == 13 * 3 * 5
    assert {m["schedule"] for m in sweep} == set(gen.SCHEDULES)
    assert sorted({m["horizon"] for m in sweep}) == [200, 400, 800]
    assert sorted({m["peak_lr"] for m in sweep}) == [5e-4, 1e-3, 2e-3, 4e-3, 8e-3]
    for m in sweep:  # the specs are the ones the script builds, and no run diverged
        assert m["spec"] == parse_schedule(gen.SCHEDULES[m["schedule"]](m["horizon"], m["peak_lr"], m["warmup"])).spec()
        assert not m["diverged"] and m["model"]["size"] == "small" and m["seed"] == 0


def test_committed_curves_read_back_with_their_schedule_lr(sweep):
    for m in sweep:
        (curve,) = read_curves(os.path.join(SWEEP, "curves", m["csv"]))
        np.testing.assert_array_equal(curve.lr, parse_schedule(m["spec"]).lr())
        assert curve.steps[-1] == m["horizon"] and curve.steps[0] == 20
        assert curve.loss[-1] == m["final_val_loss"]
        assert curve.loss[-1] < curve.loss[0]


def final_losses(sweep, schedule, horizon):
    by_peak = {m["peak_lr"]: m["final_val_loss"] for m in sweep if m["schedule"] == schedule and m["horizon"] == horizon}
    peaks = sorted(by_peak)
    return peaks, np.array([by_peak[p] for p in peaks])


def test_committed_sweep_has_an_interior_optimum_in_peak_lr(sweep):
    peaks, loss = final_losses(sweep, "wsd-c0.2-linear", 800)
    best = int(np.argmin(loss))
    assert 0 < best < len(peaks) - 1
    # a real optimum: both edges of the grid are clearly worse (by more than 0.1 nats)
    assert loss[0] - loss[best] > 0.1 and loss[-1] - loss[best] > 0.1


def test_committed_sweep_shows_the_cooldown_gain_and_longer_runs_reaching_lower_loss(sweep):
    peaks, wsd = final_losses(sweep, "wsd-c0.2-linear", 800)
    _, constant = final_losses(sweep, "constant", 800)
    best = int(np.argmin(wsd))
    assert constant[best] - wsd[best] > 0.05  # the cooldown drop
    best_by_horizon = [final_losses(sweep, "wsd-c0.2-linear", h)[1].min() for h in (200, 400, 800)]
    assert best_by_horizon[0] > best_by_horizon[1] > best_by_horizon[2]
