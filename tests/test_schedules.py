"""Schedules: exact reproduction of the bundled LR arrays, torch interop, every family's
shape, spec round-trips and error messages."""

from __future__ import annotations

import csv
import math
import os
import re

import numpy as np
import pytest

import lrtune.datasets
from lrtune.datasets import MPL_MODELS, MPL_SPECS, load_mpl
from lrtune.schedules import (
    FAMILIES,
    WSD,
    WSDS,
    Constant,
    Cosine,
    Cyclic,
    Linear,
    Rewarm,
    Step,
    TwoStage,
    lr_from_torch,
    parse_schedule,
    to_lambda_lr,
)

try:
    import torch
except ImportError:  # pragma: no cover - torch is an optional dependency
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPL_LR = os.path.join(os.path.dirname(lrtune.datasets.__file__), "mpl", "lr.npz")
SCHAIPP = os.path.join(REPO, "benchmarks", "data", "schaipp")
needs_schaipp = pytest.mark.skipif(not os.path.isdir(SCHAIPP), reason="benchmarks/data/schaipp is not present")


def max_rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    """Largest relative error over the non-zero entries of ``ref``; exact zeros of ``ref``
    must be matched to within 1e-12 of the array's scale."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape
    zero = ref == 0
    assert np.all(np.abs(got[zero]) <= 1e-12 * np.abs(ref).max())
    return float(np.max(np.abs(got[~zero] - ref[~zero]) / np.abs(ref[~zero])))


# -- 1. the bundled data ---------------------------------------------------------------

def test_mpl_specs_reproduce_all_27_mpl_lr_arrays():
    errors = {}
    with np.load(MPL_LR) as z:
        for model in MPL_MODELS:
            for name, spec in MPL_SPECS.items():
                ref = z[f"{model}_{name}"]
                got = parse_schedule(spec).lr()
                assert got.shape == ref.shape, name
                errors[f"{model}_{name}"] = max_rel_err(got, ref)
    assert len(errors) == len(MPL_MODELS) * len(MPL_SPECS) == len(np.load(MPL_LR).files)
    assert max(errors.values()) <= 1e-6, max(errors.items(), key=lambda kv: kv[1])


@pytest.fixture(scope="module")
def schaipp():
    with open(os.path.join(SCHAIPP, "runs.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    with np.load(os.path.join(SCHAIPP, "lr.npz")) as z:
        lrs = {r["key"]: z[r["key"]].astype(np.float64) for r in rows}
    return rows, lrs


def schaipp_schedule(row: dict) -> WSD | Constant:
    """The lrtune schedule of a Schaipp WSD or constant run: warmup from base_lr / 100
    over ``warmup_steps`` updates, update ``warmup_steps + 1`` at peak."""
    shared = dict(steps=int(row["horizon"]), peak=float(row["base_lr"]),
                  warmup=int(row["warmup_steps"]) + 1, start=0.01)
    if row["schedule"] == "constant":
        return Constant(**shared)
    shape = {"linear": "linear", "sqrt": "1-sqrt"}[row["decay_type"]]
    return WSD(**shared, cooldown=float(row["cooldown_frac"]), shape=shape)


@needs_schaipp
def test_schaipp_warmup_is_warmup_301_from_one_hundredth(schaipp):
    rows, lrs = schaipp
    row = next(r for r in rows if r["schedule"] == "constant")
    ref, peak = lrs[row["key"]], float(row["base_lr"])
    assert int(row["warmup_steps"]) == 300
    assert ref[0] == pytest.approx(peak / 100, rel=1e-6)
    assert ref[299] < peak * (1 - 1e-3) and ref[300] == pytest.approx(peak, rel=1e-6)
    assert max_rel_err(Constant(steps=len(ref), peak=peak, warmup=301, start=0.01).lr(), ref) <= 1e-6
    # one step off is visibly wrong
    assert max_rel_err(Constant(steps=len(ref), peak=peak, warmup=300, start=0.01).lr(), ref) > 1e-3


@needs_schaipp
def test_schaipp_wsd_and_constant_runs_are_lrtune_schedules(schaipp):
    rows, lrs = schaipp
    rows = [r for r in rows if r["schedule"] in ("wsd", "constant")]
    errors = {r["key"]: max_rel_err(schaipp_schedule(r).lr(), lrs[r["key"]]) for r in rows}
    kinds = {(r["schedule"], r["decay_type"]) for r in rows}
    assert kinds == {("constant", "none"), ("wsd", "linear"), ("wsd", "sqrt")}
    # every cooldown fraction of the data, including 0.994 (cooldown from the last warmup step)
    assert {float(r["cooldown_frac"]) for r in rows if r["schedule"] == "wsd"} >= {0.1, 0.2, 0.4, 0.8, 0.994}
    assert max(errors.values()) <= 1e-6, max(errors.items(), key=lambda kv: kv[1])


@needs_schaipp
def test_schaipp_short_stable_phase_starts_cooldown_at_the_last_warmup_step(schaipp):
    rows, lrs = schaipp
    row = next(r for r in rows if r["cooldown_frac"] == "0.994")
    s = schaipp_schedule(row)
    assert s.steps - s.cooldown_steps == s.warmup - 1
    ref = lrs[row["key"]] / s.peak
    assert ref[300] == pytest.approx(1.0, rel=1e-6) and ref[301] < ref[300]
    with pytest.raises(ValueError, match="cooldown"):
        s.replace(warmup=s.warmup + 1)


@needs_torch
@needs_schaipp
def test_schaipp_cosine_runs_are_torch_one_cycle(schaipp):
    rows, lrs = schaipp
    rows = [r for r in rows if r["schedule"] == "cosine"]
    assert rows
    cache: dict[tuple, np.ndarray] = {}
    errors = {}
    for r in rows:
        steps, peak, final = int(r["horizon"]), float(r["base_lr"]), float(r["final_lr"])
        warmup = int(r["warmup_steps"])
        config = (steps, peak, final, warmup)
        if config not in cache:
            cache[config] = lr_from_torch(
                lambda opt: torch.optim.lr_scheduler.OneCycleLR(
                    opt, max_lr=peak, total_steps=steps, pct_start=warmup / steps, div_factor=100.0,
                    final_div_factor=(peak / 100.0) / final, three_phase=False, anneal_strategy="cos"),
                steps, base_lr=peak)
        got = cache[config]
        assert got[0] == pytest.approx(peak / 100) and got[warmup - 1] == pytest.approx(peak)
        assert got[-1] == pytest.approx(final)
        errors[r["key"]] = max_rel_err(got, lrs[r["key"]])
    assert max(errors.values()) <= 1e-6, max(errors.items(), key=lambda kv: kv[1])


# -- 2. torch interop ------------------------------------------------------------------

EXAMPLES = {
    "constant": "constant:steps=300,peak=0.001,warmup=30,start=0.1",
    "cosine": "cosine:steps=300,peak=0.001,warmup=30,min=0.1",
    "linear": "linear:steps=300,peak=0.002,warmup=10,start=0.01,min=0.05",
    "wsd": "wsd:steps=300,peak=0.001,warmup=30,start=0.01,min=0.1,cooldown=0.2,shape=1-sqrt",
    "step": "step:steps=300,peak=0.001,warmup=20,milestones=100/200,factors=0.3/0.1",
    "cyclic": "cyclic:steps=300,peak=0.001,warmup=20,min=0.01,cycles=4",
    "rewarm": "rewarm:steps=300,peak=0.001,warmup=20,min=0.1,at=150,rewarm=30,peak2=0.0005",
    "wsds": "wsds:steps=300,peak=0.001,warmup=20,min=0.05,cycles=3,decay=0.2,shape=cosine",
    "twostage": "twostage:steps=300,peak=0.001,warmup=20,switch=120,factor=0.3",
    "onecycle": "onecycle:steps=300,peak=0.001,warmup=90,start=0.04,min=0.0001",
}


@needs_torch
@pytest.mark.parametrize("steps, warmup, div, final_div, anneal", [
    (10_000, 3000, 25.0, 1e4, "cos"), (1000, 250, 10.0, 100.0, "linear"), (777, 78, 100.0, 3.0, "cos"),
])
def test_onecycle_is_torch_onecyclelr(steps, warmup, div, final_div, anneal):
    peak, pct = 3e-3, warmup / steps  # pct_start = warmup / steps
    torch_lr = lr_from_torch(lambda opt: torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=peak, total_steps=steps, pct_start=pct, div_factor=div, final_div_factor=final_div,
        anneal_strategy=anneal), steps, base_lr=peak)
    s = parse_schedule(f"onecycle:steps={steps},peak={peak},warmup={warmup},start={1 / div!r},"
                       f"min={1 / (div * final_div)!r},shape={'cosine' if anneal == 'cos' else 'linear'}")
    assert np.max(np.abs(s.lr() - torch_lr)) <= 1e-12 * peak
    assert s.lr()[-1] == pytest.approx(peak / (div * final_div), rel=1e-9) and s.lr()[s.warmup - 1] == peak
    if (div, final_div, anneal) == (25.0, 1e4, "cos"):  # torch's defaults are the spec's
        assert parse_schedule(f"onecycle:steps={steps},peak={peak},warmup={warmup}") == s


def test_onecycle_needs_a_warmup_of_two_updates_or_more():
    with pytest.raises(ValueError, match=r"onecycle: warmup must be an integer in \[2, steps - 1 = 99\]"):
        parse_schedule("onecycle:steps=100,peak=1e-3")
    with pytest.raises(ValueError, match="onecycle: shape must be cosine or linear"):
        parse_schedule("onecycle:steps=100,peak=1e-3,warmup=30,shape=1-sqrt")


def test_examples_cover_every_family():
    assert set(EXAMPLES) == set(FAMILIES)


@needs_torch
@pytest.mark.parametrize("family", sorted(EXAMPLES))
def test_to_lambda_lr_makes_adamw_use_schedule_lr_at_every_update(family):
    s = parse_schedule(EXAMPLES[family])
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.5}], lr=0.1)
    with pytest.warns(UserWarning, match="param groups had different LRs"):
        sched = to_lambda_lr(s.spec(), opt)
    used = np.empty((s.steps + 5, 2))
    x = torch.ones(4, 3)
    for i in range(s.steps + 5):
        used[i] = [g["lr"] for g in opt.param_groups]
        model(x).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    ref = s.lr()
    np.testing.assert_allclose(used[: s.steps], np.column_stack([ref, ref]), rtol=1e-15, atol=0)
    np.testing.assert_allclose(used[s.steps:], ref[-1], rtol=1e-15, atol=0)  # stays at the last LR


@needs_torch
@pytest.mark.parametrize("family", sorted(EXAMPLES))
def test_lr_from_torch_of_to_lambda_lr_round_trips(family):
    s = parse_schedule(EXAMPLES[family])
    got = lr_from_torch(lambda opt: to_lambda_lr(s, opt), s.steps)
    np.testing.assert_allclose(got, s.lr(), rtol=1e-15, atol=0)


def one_cycle_cos(steps, max_lr, pct_start, div_factor, final_div_factor):
    """torch's two-phase cosine OneCycleLR written out: update ``i + 1`` uses ``lr[i]``."""
    initial, low = max_lr / div_factor, max_lr / div_factor / final_div_factor
    up_end, end = pct_start * steps - 1, steps - 1
    i = np.arange(steps, dtype=np.float64)

    def anneal(a, b, pct):
        return b + (a - b) / 2 * (1 + np.cos(np.pi * pct))

    return np.where(i <= up_end, anneal(initial, max_lr, i / up_end),
                    anneal(max_lr, low, (i - up_end) / (end - up_end)))


@needs_torch
def test_lr_from_torch_lambda_lr_equals_formula():
    got = lr_from_torch(lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1 / math.sqrt(1 + i / 50)),
                        1000, base_lr=3e-4)
    np.testing.assert_allclose(got, 3e-4 / np.sqrt(1 + np.arange(1000) / 50), rtol=1e-15)


@needs_torch
@pytest.mark.parametrize("pct_start,final_div", [(0.1, 1e4), (0.3, 25.0), (0.006, 0.1)])
def test_lr_from_torch_one_cycle_equals_formula(pct_start, final_div):
    steps = 1000
    got = lr_from_torch(lambda opt: torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=2e-3, total_steps=steps, pct_start=pct_start, div_factor=25.0,
        final_div_factor=final_div, three_phase=False, anneal_strategy="cos"), steps, base_lr=2e-3)
    ref = one_cycle_cos(steps, 2e-3, pct_start, 25.0, final_div)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    assert np.argmax(got) == round(pct_start * steps) - 1


@needs_torch
@pytest.mark.parametrize("eta_min", [0.0, 1e-4])
def test_lr_from_torch_cosine_annealing_is_lrtune_cosine(eta_min):
    steps, peak = 3000, 1e-3
    got = lr_from_torch(lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=eta_min),
                        steps, base_lr=peak)
    ref = Cosine(steps=steps, peak=peak, min=eta_min / peak).lr()
    # torch's recursive form accumulates rounding error: relative 1e-10 at most, 1e-15 of peak near zero
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-15 * peak)


@needs_torch
def test_lr_from_torch_sequential_linear_cosine_is_lrtune_cosine_with_warmup():
    steps, warmup, peak, start, eta_min = 2000, 100, 1e-3, 0.01, 1e-5

    def factory(total_iters):
        return lambda opt: torch.optim.lr_scheduler.SequentialLR(opt, [
            torch.optim.lr_scheduler.LinearLR(opt, start_factor=start, total_iters=total_iters),
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps - warmup, eta_min=eta_min),
        ], milestones=[warmup])

    ref = Cosine(steps=steps, peak=peak, warmup=warmup, start=start, min=eta_min / peak).lr()
    # lrtune's warmup=W is LinearLR(total_iters=W - 1) followed by the cosine from update W + 1
    got = lr_from_torch(factory(warmup - 1), steps, base_lr=peak)
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    # the usual LinearLR(total_iters=W) reaches peak one update later and starts the decay there
    usual = lr_from_torch(factory(warmup), steps, base_lr=peak)
    i = np.arange(warmup)
    np.testing.assert_allclose(usual[:warmup], peak * (start + (1 - start) * i / warmup), rtol=1e-12)
    np.testing.assert_allclose(usual[warmup:], ref[warmup:], rtol=1e-10)
    assert usual[0] == ref[0] and np.all(usual[1:warmup] < ref[1:warmup]) and usual[warmup - 1] < peak == ref[warmup - 1]


@needs_torch
def test_lr_from_torch_warm_restarts_is_cyclic_and_multistep_is_step():
    steps, peak = 1200, 1e-3
    got = lr_from_torch(lambda opt: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=300, eta_min=1e-5),
                        steps, base_lr=peak)
    np.testing.assert_allclose(got, Cyclic(steps=steps, peak=peak, cycles=4, min=0.01).lr(), rtol=1e-12)
    got = lr_from_torch(lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[400, 900], gamma=0.3),
                        steps, base_lr=peak)
    ref = Step(steps=steps, peak=peak, milestones=(400, 900), factors=(0.3, 0.3**2)).lr()
    np.testing.assert_allclose(got, ref, rtol=1e-15)
    got = lr_from_torch(lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=700, gamma=0.1), steps, base_lr=peak)
    np.testing.assert_allclose(got, TwoStage(steps=steps, peak=peak, switch=700, factor=0.1).lr(), rtol=1e-15)


def hf_wsd_lambda(num_warmup_steps, num_stable_steps, num_decay_steps, decay_type, min_lr_ratio):
    """The LR multiplier of ``transformers.get_wsd_schedule`` (linear warmup, num_cycles=0.5)."""
    def lr_lambda(step):
        if step < num_warmup_steps:
            progress = step / max(1, num_warmup_steps)
            return max(0.0, progress * (1.0 - min_lr_ratio) + min_lr_ratio)
        if step < num_warmup_steps + num_stable_steps:
            return 1.0
        if step < num_warmup_steps + num_stable_steps + num_decay_steps:
            progress = (step - num_warmup_steps - num_stable_steps) / max(1, num_decay_steps)
            factor = {"linear": 1.0 - progress, "cosine": 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)),
                      "1-sqrt": 1.0 - math.sqrt(progress)}[decay_type]
            return max(0.0, factor * (1.0 - min_lr_ratio) + min_lr_ratio)
        return min_lr_ratio

    return lr_lambda


def hf_warmup_decay_lambda(num_warmup_steps, num_training_steps, decay):
    """The LR multiplier of ``transformers.get_cosine_schedule_with_warmup`` (num_cycles=0.5)
    and ``get_linear_schedule_with_warmup``."""
    def lr_lambda(step):
        if step < num_warmup_steps:
            return float(step) / float(max(1, num_warmup_steps))
        if decay == "linear":
            return max(0.0, float(num_training_steps - step) / float(max(1, num_training_steps - num_warmup_steps)))
        progress = float(step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))

    return lr_lambda


@needs_torch
@pytest.mark.parametrize("decay", ["cosine", "linear"])
@pytest.mark.parametrize("warmup,steps", [(10, 100), (100, 1000), (0, 500), (1, 50)])
def test_transformers_cosine_and_linear_with_warmup_are_lrtune_wsd(decay, warmup, steps):
    peak = 1e-3
    got = lr_from_torch(lambda opt: torch.optim.lr_scheduler.LambdaLR(
        opt, hf_warmup_decay_lambda(warmup, steps, decay)), steps, base_lr=peak)
    spec = f"wsd:steps={steps},peak={peak},warmup={warmup + 1 if warmup else 0},cooldown={(steps - warmup) / steps}," \
           f"shape={decay}"
    assert max_rel_err(parse_schedule(spec).lr(), got) <= 1e-12
    if warmup >= 10:  # lrtune's own family at the same warmup is another schedule
        family = parse_schedule(f"{decay}:steps={steps},peak={peak},warmup={warmup}").lr()
        assert np.max(np.abs(family - got)) > 0.005 * peak


@needs_torch
@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("min_lr_ratio", [0.0, 0.1])
@pytest.mark.parametrize("warmup,stable,decay", [(100, 700, 200), (100, 0, 900), (0, 800, 200), (1, 9, 10)])
def test_transformers_wsd_round_trips_into_lrtune_wsd(shape, min_lr_ratio, warmup, stable, decay):
    steps, peak = warmup + stable + decay, 6e-4
    got = lr_from_torch(lambda opt: torch.optim.lr_scheduler.LambdaLR(
        opt, hf_wsd_lambda(warmup, stable, decay, shape, min_lr_ratio)), steps, base_lr=peak)
    # num_warmup_steps=W: W updates below peak starting at min_lr_ratio * peak, update W + 1 at peak
    spec = (f"wsd:steps={steps},peak={peak},warmup={warmup + 1},start={min_lr_ratio},min={min_lr_ratio},"
            f"cooldown={decay / steps},shape={shape}")
    s = parse_schedule(spec)
    assert s.cooldown_steps == decay
    assert got[0] == (min_lr_ratio * peak if warmup else peak)
    assert max_rel_err(s.lr(), got) <= 1e-15
    assert max_rel_err(lr_from_torch(lambda opt: to_lambda_lr(spec, opt), steps), got) <= 1e-15


class TimmStyleWSD:
    """The stepping protocol of ``timm.scheduler.Scheduler`` (timm 1.0) with the LR of its
    ``WSDLRScheduler`` (linear warmup from ``warmup_lr_init``, constant, then
    ``1 - sqrt`` / linear / cosine decay over the last ``decay_t`` of ``t_initial``).
    ``step(epoch)`` sets the LR only when ``t_in_epochs``, ``step_update(num_updates)``
    only when not; the constructor sets the LR of ``t = 0``."""

    def __init__(self, optimizer, t_initial, decay_t, warmup_t=0, warmup_lr_init=0.0, lr_min=0.0,
                 decay_fn="1-sqrt", t_in_epochs=True):
        self.optimizer, self.t_in_epochs = optimizer, t_in_epochs
        self.t_initial, self.decay_t, self.warmup_t = t_initial, decay_t, warmup_t
        self.warmup_lr_init, self.lr_min, self.decay_fn = warmup_lr_init, lr_min, decay_fn
        self.base = optimizer.param_groups[0]["lr"]
        if warmup_t:
            self._set(warmup_lr_init)

    def _lr(self, t):
        if t < self.warmup_t:
            return self.warmup_lr_init + t * (self.base - self.warmup_lr_init) / self.warmup_t
        t_decay = t - self.warmup_t - (self.t_initial - self.decay_t)
        if t_decay <= 0:
            return self.base
        frac = min(t_decay / self.decay_t, 1.0)
        factor = {"linear": 1.0 - frac, "1-sqrt": 1.0 - math.sqrt(frac),
                  "cosine": 0.5 * (1.0 + math.cos(math.pi * frac))}[self.decay_fn]
        return self.lr_min + (self.base - self.lr_min) * factor

    def _set(self, value):
        for group in self.optimizer.param_groups:
            group["lr"] = value

    def step(self, epoch, metric=None):
        if self.t_in_epochs:
            self._set(self._lr(epoch))

    def step_update(self, num_updates, metric=None):
        if not self.t_in_epochs:
            self._set(self._lr(num_updates))


def timm_wsd_spec(peak, t_initial, decay_t, warmup_t, warmup_lr_init, lr_min, shape):
    """timm's ``WSDLRScheduler`` stepped per update as an lrtune spec: the warmup is a
    prefix of ``t_initial`` and update ``warmup_t + 1`` is the first at peak."""
    steps = warmup_t + t_initial
    return (f"wsd:steps={steps},peak={peak},warmup={warmup_t + 1 if warmup_t else 0},start={warmup_lr_init / peak},"
            f"min={lr_min / peak},cooldown={decay_t / steps},shape={shape}")


@needs_torch
@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("warmup_t,t_initial,decay_t,warmup_lr_init,lr_min",
                         [(100, 900, 200, 0.0, 0.0), (100, 900, 200, 6e-6, 6e-5), (0, 1000, 200, 0.0, 0.0),
                          (10, 90, 90, 0.0, 0.0)])
def test_timm_style_wsd_stepped_per_update_is_lrtune_wsd(shape, warmup_t, t_initial, decay_t, warmup_lr_init, lr_min):
    peak = 6e-4
    got = lr_from_torch(lambda opt: TimmStyleWSD(opt, t_initial, decay_t, warmup_t, warmup_lr_init, lr_min, shape,
                                                 t_in_epochs=False), warmup_t + t_initial, base_lr=peak)
    ref = parse_schedule(timm_wsd_spec(peak, t_initial, decay_t, warmup_t, warmup_lr_init, lr_min, shape)).lr()
    assert max_rel_err(ref, got) <= 1e-12
    assert got[warmup_t] == peak and got[0] == (warmup_lr_init if warmup_t else peak)


@needs_torch
def test_timm_style_scheduler_counting_epochs_needs_updates_per_epoch():
    factory = lambda opt: TimmStyleWSD(opt, t_initial=10, decay_t=2)  # noqa: E731  t_in_epochs=True, timm's default
    with pytest.raises(ValueError, match=r"counts epochs \(t_in_epochs=True.*pass updates_per_epoch=N"):
        lr_from_torch(factory, 100, base_lr=1e-3)
    got = lr_from_torch(factory, 100, base_lr=1e-3, updates_per_epoch=10)
    # epoch e's 10 updates run at the LR of t = e: eight stable epochs, then 1 - sqrt(0.5)
    np.testing.assert_array_equal(got[:90], 1e-3)
    np.testing.assert_allclose(got[90:], 1e-3 * (1.0 - math.sqrt(0.5)), rtol=1e-15)


@needs_torch
def test_lr_from_torch_steps_a_scheduler_once_per_epoch():
    # StepLR(step_size=3) stepped at the end of each 10-update epoch drops after updates 30, 60, 90
    got = lr_from_torch(lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.1), 100,
                        base_lr=1e-3, updates_per_epoch=10)
    ref = Step(steps=100, peak=1e-3, milestones=(30, 60, 90), factors=(0.1, 0.1**2, 0.1**3)).lr()
    assert max_rel_err(ref, got) <= 1e-15
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="updates_per_epoch must be None or an integer >= 1"):
            lr_from_torch(lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=3), 10, updates_per_epoch=bad)


@needs_torch
@pytest.mark.filterwarnings("ignore::FutureWarning")  # timm deprecates PlateauLRScheduler
def test_real_timm_wsd_is_lrtune_wsd():
    timm_scheduler = pytest.importorskip("timm.scheduler")  # timm is not one of lrtune's dependencies
    for shape in ("linear", "1-sqrt", "cosine"):
        got = lr_from_torch(lambda opt: timm_scheduler.WSDLRScheduler(
            opt, t_initial=900, decay_t=200, warmup_t=100, warmup_lr_init=6e-6, lr_min=6e-5, decay_fn=shape,
            t_in_epochs=False), 1000, base_lr=6e-4)
        ref = parse_schedule(timm_wsd_spec(6e-4, 900, 200, 100, 6e-6, 6e-5, shape)).lr()
        assert max_rel_err(ref, got) <= 1e-12
    with pytest.raises(TypeError, match="PlateauLRScheduler lowers the LR"):
        lr_from_torch(lambda opt: timm_scheduler.PlateauLRScheduler(opt), 10)


@needs_torch
def test_to_lambda_lr_resumes_from_state_dicts():
    s = parse_schedule(EXAMPLES["wsd"])
    used = []

    def train(model, opt, sched, n):
        for _ in range(n):
            used.append(opt.param_groups[0]["lr"])
            model(torch.ones(2, 3)).sum().backward()
            opt.step()
            opt.zero_grad()
            sched.step()

    model = torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW(model.parameters())
    sched = to_lambda_lr(s, opt)
    train(model, opt, sched, 200)
    saved = opt.state_dict(), sched.state_dict()
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW(model.parameters())
    sched = to_lambda_lr(s, opt)
    opt.load_state_dict(saved[0])
    sched.load_state_dict(saved[1])
    train(model, opt, sched, s.steps - 200)
    np.testing.assert_allclose(used, s.lr(), rtol=1e-15, atol=0)


@needs_torch
def test_to_lambda_lr_resumed_with_a_changed_spec_follows_the_new_one_and_pickles():
    import pickle

    old = parse_schedule("wsd:steps=1000,peak=1e-3,warmup=50,cooldown=0.2")
    new = parse_schedule("wsd:steps=2000,peak=2e-3,warmup=50,cooldown=0.2")  # longer, higher peak
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW(model.parameters())
    sched = to_lambda_lr(old, opt)
    for _ in range(300):
        opt.step()
        sched.step()
    saved = opt.state_dict(), sched.state_dict()
    assert saved[1]["lr_lambdas"] == [{}]  # the schedule's LRs are not written into checkpoints
    opt = torch.optim.AdamW(model.parameters())
    sched = to_lambda_lr(new, opt)
    opt.load_state_dict(saved[0])
    sched.load_state_dict(saved[1])
    used = []
    for _ in range(new.steps - 300):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(used, new.lr()[300:], rtol=1e-15, atol=0)  # torch's own kept the old peak
    # the scheduler pickles (torch.save of the scheduler object, multiprocessing)
    back = pickle.loads(pickle.dumps(sched))
    assert back.get_last_lr() == sched.get_last_lr() and back.lr_lambdas[0](1999) == new.lr()[-1] / new.peak


@needs_torch
def test_to_lambda_lr_warns_when_param_groups_had_different_lrs():
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW([{"params": [model.weight], "lr": 1e-3}, {"params": [model.bias], "lr": 1e-2}])
    with pytest.warns(UserWarning, match=r"param groups had different LRs \(0.001, 0.01\); every group now follows"):
        to_lambda_lr("cosine:steps=10,peak=3e-4", opt)
    assert [g["lr"] for g in opt.param_groups] == [3e-4, 3e-4]


@needs_torch
def test_lr_from_torch_rejects_bad_steps():
    with pytest.raises(ValueError, match=r"steps must be an integer >= 1, got 0"):
        lr_from_torch(lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0), 0)


@needs_torch
def test_lr_from_torch_refuses_factories_that_do_not_drive_the_given_optimizer():
    mine = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    mine_sched = torch.optim.lr_scheduler.LinearLR(mine, start_factor=1.0, end_factor=0.0, total_iters=10)
    cases = [
        (lambda opt: None, TypeError, "must return an LR scheduler"),  # forgot return
        (lambda opt: opt, TypeError, "got SGD"),  # the optimizer itself
        (lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt), TypeError, "no LR array in advance"),
        (lambda opt: mine_sched, ValueError, "drives another optimizer"),  # a closure over the user's own
    ]
    for factory, error, message in cases:
        with pytest.raises(error, match=message):
            lr_from_torch(factory, 10)
    assert mine.param_groups[0]["lr"] == 1e-3  # the user's scheduler was not stepped


@needs_torch
def test_to_lambda_lr_keeps_a_tensor_lr_a_tensor():
    param = torch.nn.Parameter(torch.zeros(2))
    lr = torch.tensor(0.5)
    opt = torch.optim.AdamW([param], lr=lr)
    sched = to_lambda_lr("cosine:steps=20,peak=1e-3,warmup=5", opt)
    assert opt.param_groups[0]["lr"] is lr  # filled in place, as torch's own LambdaLR does
    got = []
    for _ in range(20):
        got.append(float(opt.param_groups[0]["lr"]))
        opt.step()
        sched.step()
    assert np.allclose(got, parse_schedule("cosine:steps=20,peak=1e-3,warmup=5").lr(), rtol=1e-6)


def test_warmup_ends_exactly_at_peak():
    # peak * (start + (1 - start) * 1) misses peak by an ulp for some values: then lr.max() !=
    # peak and the observed warmup of such a run came out one step longer
    rng = np.random.default_rng(0)
    for _ in range(500):
        peak, start, w = float(rng.uniform(1e-4, 1)), float(rng.uniform(0, 1)), int(rng.integers(2, 400))
        lr = Constant(steps=w + 10, peak=peak, warmup=w, start=start).lr()
        assert lr[w - 1] == peak and lr.max() == peak and np.all(np.diff(lr[:w]) >= 0)


def test_decays_too_short_to_decay_and_infinite_lrs_are_refused():
    for spec, message in [
        ("wsd:steps=100,peak=1,cooldown=0.005", "round(cooldown * steps) = 0 update"),
        ("wsd:steps=100,peak=1,cooldown=0.01", "round(cooldown * steps) = 1 update"),
        ("wsds:steps=40,peak=1,cycles=4,decay=0.1", "round(decay * 10) >= 2"),
        ("step:steps=10,peak=10,milestones=5,factors=1e308", "peak * factor is a finite number"),
        ("twostage:steps=10,peak=1e300,switch=5,factor=1e10", "peak * factor is a finite number"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_schedule(spec)
    assert parse_schedule("wsd:steps=100,peak=1,cooldown=0.02").lr()[-1] < 1  # 2 steps: a decay
    assert parse_schedule("wsd:steps=100,peak=1,cooldown=0").lr().min() == 1


def test_integers_beyond_float_precision_round_trip():
    spec = "step:steps=9007199254741002,peak=1.0,milestones=9007199254740993,factors=0.1"
    s = parse_schedule(spec)
    assert s.milestones == (2**53 + 1,) and s.spec() == spec


def test_rewarm_with_peak_scales_every_lr():
    s = parse_schedule("rewarm:steps=100,peak=0.0033,min=0.1,at=50,rewarm=5,peak2=0.0025666666641")
    t = s.with_peak(0.0011)
    assert np.max(np.abs(t.lr() / s.lr() * (0.0033 / 0.0011) - 1)) < 1e-11


# -- 3. families -----------------------------------------------------------------------

@pytest.mark.parametrize("family", sorted(EXAMPLES))
def test_spec_round_trip_length_and_peak(family):
    s = parse_schedule(EXAMPLES[family])
    assert s.family == family and type(s) is FAMILIES[family]
    back = parse_schedule(s.spec())
    assert back == s and hash(back) == hash(s) and back.spec() == s.spec()
    lr = s.lr()
    assert lr.dtype == np.float64 and lr.shape == (s.steps,)
    assert np.array_equal(back.lr(), lr)
    assert np.all(np.isfinite(lr)) and np.all(lr >= 0) and np.all(lr[s.warmup:] > 0)
    top = max(s.peak, getattr(s, "peak2", 0.0))
    assert lr.max() == pytest.approx(top, rel=1e-15)
    assert lr[s.warmup - 1] == pytest.approx(s.peak, rel=1e-15)  # the last warmup step is at peak


@pytest.mark.parametrize("family", sorted(set(EXAMPLES) - {"onecycle"}))  # one-cycle anneals its warmup
def test_warmup_is_linear_from_start_times_peak(family):
    s = parse_schedule(EXAMPLES[family])
    lr = s.lr()
    w = s.warmup
    assert lr[0] == pytest.approx(s.start * s.peak, rel=1e-15, abs=0)
    np.testing.assert_allclose(np.diff(lr[:w]), s.peak * (1 - s.start) / (w - 1), rtol=1e-9)
    assert np.all(lr[w:] <= max(s.peak, getattr(s, "peak2", 0.0)))


def test_every_family_example_in_the_docs_parses_and_round_trips():
    path = os.path.join(REPO, "docs", "schedules.md")
    if not os.path.exists(path):
        pytest.skip("docs/schedules.md is not present")
    with open(path) as f:
        specs = re.findall(r"^`([a-z]+:[^`]+)`$", f.read(), flags=re.M)
    assert {spec.split(":")[0] for spec in specs} == set(FAMILIES)
    for spec in specs:
        s = parse_schedule(spec)
        assert parse_schedule(s.spec()) == s and len(s.lr()) == s.steps


def test_schedule_equality_does_not_depend_on_numpy_or_list_values():
    a = Step(steps=np.int64(100), peak=np.float64(1e-3), warmup=np.int32(5),
             milestones=np.array([50, 80]), factors=[np.float32(0.5), 0.25])
    b = parse_schedule("step:steps=100,peak=1e-3,warmup=5,milestones=50/80,factors=0.5/0.25")
    assert a == b and hash(a) == hash(b)
    assert a.spec() == "step:steps=100,peak=0.001,warmup=5,milestones=50/80,factors=0.5/0.25"
    assert type(a.steps) is int and type(a.peak) is float and a.milestones == (50, 80)
    assert parse_schedule(WSD(steps=1000.0, peak=np.float64(3e-4)).spec()) == WSD(steps=1000, peak=3e-4)


@pytest.mark.parametrize("shape,floor", [("linear", 0.0), ("linear", 0.1), ("1-sqrt", 0.0), ("cosine", 0.05), ("exp", 0.1)])
def test_decays_respect_the_min_floor_and_approach_it(shape, floor):
    steps, peak, warmup = 1000, 2e-3, 50
    schedules = [WSD(steps=steps, peak=peak, warmup=warmup, min=floor, cooldown=0.3, shape=shape),
                 WSDS(steps=steps, peak=peak, warmup=warmup, min=floor, cycles=2, decay=0.3, shape=shape)]
    if shape == "linear":
        schedules.append(Linear(steps=steps, peak=peak, warmup=warmup, min=floor))
    if shape == "cosine":
        schedules += [Cosine(steps=steps, peak=peak, warmup=warmup, min=floor),
                      Cyclic(steps=steps, peak=peak, warmup=warmup, min=floor, cycles=3)]
    for s in schedules:
        lr = s.lr()
        assert np.all(lr[warmup:] > floor * peak), s
        # the last update is one decay step above the floor (the floor itself is never used)
        assert lr[-1] - floor * peak < 3 * (1 - floor) * peak / 300, s
        assert np.all(np.diff(lr[-150:]) < 0), s


def test_wsd_cooldown_position_and_special_cases():
    s = WSD(steps=1000, peak=1.0, warmup=100, cooldown=0.25, shape="linear")
    lr = s.lr()
    assert s.cooldown_steps == 250
    assert np.all(lr[99:751] == 1.0) and lr[751] == 1 - 1 / 250
    np.testing.assert_allclose(lr[750:], 1 - np.arange(250) / 250, rtol=1e-15)
    assert np.all(WSD(steps=1000, peak=1.0, cooldown=0.0).lr() == 1.0)
    for shape, other in [("linear", Linear), ("cosine", Cosine)]:
        full = WSD(steps=500, peak=1e-3, min=0.1, cooldown=1.0, shape=shape).lr()
        np.testing.assert_array_equal(full, other(steps=500, peak=1e-3, min=0.1).lr())
    # no stable phase: the cooldown starts at the last warmup step, both at peak
    s = WSD(steps=1000, peak=1.0, warmup=201, start=0.0, cooldown=0.8)
    lr = s.lr()
    assert lr[200] == 1.0 and lr[201] == 1 - 1 / 800 and np.all(np.diff(lr[200:]) < 0)
    with pytest.raises(ValueError, match=r"wsd: cooldown must be .*<= 800\), got 0.801"):
        s.replace(cooldown=0.801)


def test_step_milestones_are_the_first_updates_at_the_new_factor():
    s = Step(steps=300, peak=1.0, warmup=10, milestones=(100, 200), factors=(0.5, 0.1))
    lr = s.lr()
    assert lr[99] == 1.0 and lr[100] == 0.5 and lr[199] == 0.5 and lr[200] == 0.1 and lr[-1] == 0.1
    assert np.count_nonzero(lr == 0.5) == 100
    assert np.all(Step(steps=50, peak=2.0).lr() == 2.0)


def test_two_stage_switches_at_switch():
    s = TwoStage(steps=16000, peak=3e-4, warmup=2160, switch=8000, factor=0.3)
    lr = s.lr()
    assert lr[7999] == 3e-4 and np.all(lr[8000:] == 0.3 * 3e-4)
    assert np.count_nonzero(lr == 3e-4) == 8000 - 2159


def test_cyclic_restarts_at_peak_after_each_cycle():
    s = Cyclic(steps=1020, peak=1.0, warmup=20, min=0.1, cycles=4)
    lr = s.lr()
    starts = 20 + np.arange(4) * 250
    assert np.all(lr[starts] == 1.0)
    rises = np.flatnonzero(np.diff(lr[20:]) > 0) + 21
    np.testing.assert_array_equal(rises, starts[1:])
    np.testing.assert_array_equal(lr[20:270], lr[270:520])
    np.testing.assert_allclose(lr[269], 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 249 / 250)), rtol=1e-15)
    # uneven split: every cycle still restarts at peak and has at least one step
    lr = Cyclic(steps=10, peak=1.0, cycles=4).lr()
    assert np.count_nonzero(lr == 1.0) == 4


@pytest.mark.parametrize("warmup", [0, 50])
def test_wsds_returns_to_peak_after_each_decay(warmup):
    s = WSDS(steps=1000, peak=1.0, warmup=warmup, min=0.0, cycles=4, decay=0.1, shape="linear")
    lr = s.lr()
    below = lr < 1.0
    below[:warmup] = False
    # four decays of 25 steps, each ending right before a cycle end, then back at peak
    edges = np.diff(below.astype(int))
    np.testing.assert_array_equal(np.flatnonzero(edges == 1) + 1, [226, 476, 726, 976])
    np.testing.assert_array_equal(np.flatnonzero(edges == -1) + 1, [250, 500, 750])
    assert np.all(lr[[250, 500, 750]] == 1.0) and below[-1]
    np.testing.assert_allclose(lr[225:250], 1 - np.arange(25) / 25, rtol=1e-15)


def test_wsds_rejects_warmup_into_the_first_decay_and_empty_decays():
    WSDS(steps=100, peak=1.0, warmup=20, cycles=4, decay=0.2)  # warmup ends where the first decay begins
    with pytest.raises(ValueError, match=r"wsds: warmup must be <= 20, .*got 21"):
        WSDS(steps=100, peak=1.0, warmup=21, cycles=4, decay=0.2)
    with pytest.raises(ValueError, match=r"wsds: decay must be .*got 0.1"):
        WSDS(steps=10, peak=1.0, cycles=4, decay=0.1)


def test_rewarm_decays_then_rises_again_after_at():
    s = Rewarm(steps=1000, peak=1e-3, warmup=50, min=0.1, at=600, rewarm=100, peak2=5e-4)
    lr = s.lr()
    assert lr[49] == lr[50] == 1e-3 and np.all(np.diff(lr[50:600]) < 0) and lr[599] > 1e-4
    assert lr[600] == pytest.approx(1e-4, rel=1e-15)
    assert np.all(np.diff(lr[600:701]) > 0) and lr[700] == 5e-4
    assert np.all(np.diff(lr[700:]) < 0) and lr[-1] > 1e-4
    np.testing.assert_allclose(np.diff(lr[600:701]), 4e-4 / 100, rtol=1e-9)
    # no re-warm steps: a jump straight to peak2, which may also exceed peak
    lr = s.replace(rewarm=0, peak2=2e-3).lr()
    assert lr[599] < lr[600] == 2e-3 == lr.max()


@pytest.mark.parametrize("spec,words", [
    ("", ["non-empty"]),
    ("poly:steps=10,peak=1", ["family", "'poly'", "cosine"]),
    ("cosine:steps=10,peak=1,bar=2", ["unknown key", "'bar'", "min"]),
    ("cosine:steps=10,peak=1,peak=2", ["'peak'", "twice", "'1'", "'2'"]),
    ("cosine:steps=10,peak=1,warmup", ["key=value", "'warmup'"]),
    ("cosine:peak=1e-3", ["missing", "'steps'"]),
    ("cosine:steps=10", ["missing", "'peak'"]),
    ("cosine:steps=10,peak=abc", ["peak", "'abc'", "number"]),
    ("cosine:steps=10,peak=nan", ["peak", "'nan'"]),
    ("cosine:steps=ten,peak=1", ["steps", "'ten'", "integer"]),
    ("cosine:steps=10.5,peak=1", ["steps", "'10.5'", "integer"]),
    ("cosine:steps=0,peak=1", ["steps", ">= 1", "got 0"]),
    ("cosine:steps=10,peak=-1e-3", ["peak", "> 0", "got -0.001"]),
    ("cosine:steps=10,peak=1,warmup=10", ["warmup", "[0, steps=10)", "got 10"]),
    ("cosine:steps=10,peak=1,start=1.5", ["start", "got 1.5"]),
    ("cosine:steps=10,peak=1,min=2", ["min", "[0, 1]", "got 2.0"]),
    ("wsd:steps=10,peak=1,cooldown=1.5", ["cooldown", "[0, 1]", "got 1.5"]),
    ("wsd:steps=10,peak=1,shape=poly", ["shape", "1-sqrt", "got 'poly'"]),
    ("wsd:steps=10,peak=1,shape=exp", ["min", "shape=exp", "got 0.0"]),
    ("wsds:steps=10,peak=1,shape=exp", ["min", "shape=exp", "got 0.0"]),
    ("step:steps=100,peak=1,milestones=50/20,factors=0.1/0.01", ["milestones", "increasing", "(50, 20)"]),
    ("step:steps=100,peak=1,milestones=20/50,factors=0.1", ["factors", "as many", "(0.1,)"]),
    ("step:steps=100,peak=1,milestones=20/a,factors=0.1/0.2", ["milestones", "'20/a'"]),
    ("step:steps=100,peak=1,warmup=30,milestones=20,factors=0.1", ["milestones", "warmup=30", "(20,)"]),
    ("cyclic:steps=10,peak=1,warmup=5,cycles=6", ["cycles", "got 6"]),
    ("rewarm:steps=100,peak=1,at=100,peak2=1", ["at", "got 100"]),
    ("rewarm:steps=100,peak=1,at=50,rewarm=50,peak2=1", ["rewarm", "got 50"]),
    ("rewarm:steps=100,peak=1,at=50", ["peak2", "got 0.0"]),
    ("rewarm:steps=100,peak=1,min=0.5,at=50,peak2=0.2", ["peak2", "floor", "got 0.2"]),
    ("wsds:steps=100,peak=1,decay=0", ["decay", "(0, 1]", "got 0.0"]),
    ("twostage:steps=100,peak=1,warmup=10,switch=5", ["switch", "got 5"]),
    ("twostage:steps=100,peak=1,switch=50,factor=-1", ["factor", "got -1.0"]),
])
def test_bad_specs_raise_value_errors_naming_key_and_value(spec, words):
    with pytest.raises(ValueError) as info:
        parse_schedule(spec)
    message = str(info.value)
    for word in words:
        assert word in message, (word, message)


def test_direct_construction_with_wrong_types_raises_value_error():
    with pytest.raises(ValueError, match=r"cosine: peak must be a finite number > 0, got 'x'"):
        Cosine(steps=10, peak="x")
    with pytest.raises(ValueError, match=r"constant: steps must be an integer >= 1, got 2.5"):
        Constant(steps=2.5, peak=1.0)


def test_schaipp_spec_reproduces_the_runs_lr_arrays():
    from lrtune.datasets import load_schaipp, schaipp_spec

    curves = load_schaipp(group="main", n_layer="12", n_embd="768", horizon="15000")
    curves += load_schaipp(group="main", n_layer="12", n_embd="768", schedule="constant")[:2]
    curves += load_schaipp(group="main", n_layer="12", n_embd="768", decay_type="sqrt")[:2]
    assert {c.meta["schedule"] for c in curves} == {"wsd", "cosine", "constant"}
    assert {c.meta["decay_type"] for c in curves if c.meta["schedule"] == "wsd"} == {"linear", "sqrt"}
    for c in curves:
        lr = parse_schedule(schaipp_spec(c.meta)).lr()
        assert lr.size == c.lr.size
        if c.meta["schedule"] == "cosine":  # torch OneCycleLR's cosine warmup: equal after it
            assert np.max(np.abs(lr[300:] - c.lr[300:])) <= 1e-4 * c.lr.max(), c.name
        else:
            assert max_rel_err(lr, c.lr) <= 1e-6, c.name


def test_an_lr_array_given_as_a_spec_gets_a_short_message():
    with pytest.raises(ValueError, match=r"got an LR array of 16000 values: an array \(what lr_from_torch returns\) "
                                         r"has no spec") as info:
        parse_schedule(load_mpl("25M", ["wsdcon_9"])[0].lr)
    assert len(str(info.value)) < 400
    with pytest.raises(ValueError, match="schedule spec must be a non-empty string"):
        parse_schedule(np.array(3e-4))
