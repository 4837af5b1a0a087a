"""Speed of fitting, predicting, suggesting and pruning, against straightforward
implementations of the same computations timed in the same run.

Run as ``python benchmarks/speed.py`` (about 7 minutes on a shared 2-core machine);
prints the tables and writes them to ``benchmarks/results/speed.md``.  Timings on a busy
machine vary from run to run: every number is printed beside its baseline measured in the
same run, and the ratios are what carries over.

The baselines:

* per-step Python loops of each law (below): one loop over the steps, updating ``S1`` and
  the momentum ``m`` / ``S2`` step by step (momentum law), or keeping the list of LR
  changes and, at every requested step, summing ``d_k * G(eta_k^-gamma * S_k)`` over them
  (multi-power law); checked against lrtune's predictions in the same run;
* the multi-power loss drop as a direct ``O(T^2)`` double sum over steps and changes
  (in Python, and vectorised: ``multipower.loss_drop_exact``) against the binned sum;
* a pruner that builds a fresh ``FinalLossModel`` (fit and cross-validation on the
  completed trials) at every check, against ``ScheduleAwarePruner``'s model cached on the
  set of completed trials.

Where a baseline would take minutes it runs on a subset (of candidates, or at smaller
``T``) and is extrapolated, linearly in the candidates, or as ``T^2`` for the double sum;
the tables say which.

1. Fitting each law on the three 25M training curves of the multi-power-law split.
2. Predicting 1,000 WSD candidates of 50,000 steps at 100 steps each.
3. ``suggest``: ranking 1,000 candidates (20 shapes x 50 peak LRs) of 50,000 steps.
4. The multi-power loss drop at every step of one schedule, T = 10^3, 10^4, 10^5.
5. Pruner checks on Optuna studies of 10, 100 and 1,000 completed trials built from the
   Schaipp 124M runs (``create_trial`` + ``add_trial``).
6. Growth with the number of steps T = 10^3, 10^4, 10^5 of predict, fit (the MPL training
   curves resampled to T steps), suggest and the pruner check (Schaipp runs resampled).
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import optuna  # noqa: E402

from lrtune.curves import Curve  # noqa: E402
from lrtune.datasets import load_schaipp, mpl_split  # noqa: E402
from lrtune.integrations.optuna import ScheduleAwarePruner, record_schedule  # noqa: E402
from lrtune.laws import LAWS, make_law  # noqa: E402
from lrtune.laws import multipower as mp  # noqa: E402
from lrtune.laws.momentum import DECAY_GRID  # noqa: E402
from lrtune.schedules import WSD, parse_schedule  # noqa: E402
from lrtune.suggest import candidate_shapes, suggest  # noqa: E402

COMMAND = "python benchmarks/speed.py"
HERE = os.path.dirname(os.path.abspath(__file__))
SHAPES = ("linear", "1-sqrt", "cosine")
from _report import emit, save, table  # noqa: E402  (benchmarks/ is on sys.path when run)
from lrtune.datasets import schaipp_spec  # noqa: E402



def ratio(x: float) -> str:
    """A speed-up as text: ``123x``, ``1,087x`` or ``0.6x``."""
    return f"{x:,.0f}x" if x >= 10 else f"{x:.1f}x"


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    """Median wall time of ``repeat`` calls and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


# -- the loop baselines --------------------------------------------------------------------

def loop_momentum(lr: np.ndarray, steps: np.ndarray, law) -> np.ndarray:
    """``L0 + A*S1^-alpha - C*S2`` with ``m_t = lambda*m_{t-1} + (eta_{t-1} - eta_t)``,
    one step at a time (the law's warmup convention and peak-LR exponent)."""
    p = law.params_
    lr = [float(v) for v in lr]
    scale = max(lr) ** (p["peak_lr_exponent"] - 1.0)
    if law.warmup == "peak":  # warmup steps at the LR the warmup leads to
        end = next((t for t in range(1, len(lr)) if lr[t] < lr[t - 1]), len(lr))
        top = max(range(end), key=lambda t: (lr[t], -t))
        lr = [lr[top]] * top + lr[top:]
        prev = lr[0] * scale
    else:
        prev = 0.0
    want, out = set(int(s) for s in steps), []
    s1 = s2 = m = 0.0
    for t in range(int(steps[-1])):
        eta = lr[t] * scale
        s1 += eta
        m = p["decay"] * m + (prev - eta)
        s2 += m
        prev = eta
        if t + 1 in want:
            out.append(p["L0"] + p["A"] * s1 ** -p["alpha"] - p["C"] * s2)
    return np.array(out)


def loop_multipower(lr: np.ndarray, steps: np.ndarray, law) -> np.ndarray:
    """``L0 + A*S1^-alpha - B * sum_k d_k G(eta_k^-gamma S_k)`` over the changes from the
    first decrease on, summed change by change at each requested step."""
    p = law.params_
    lr = [float(v) for v in lr]
    want, out, changes = set(int(s) for s in steps), [], []
    s1, decaying = 0.0, False
    for t in range(int(steps[-1])):
        if t > 0 and lr[t] != lr[t - 1]:
            decaying = decaying or lr[t] < lr[t - 1]
            if decaying:
                changes.append((lr[t - 1] - lr[t], lr[t] ** -p["gamma"], s1))
        s1 += lr[t]
        if t + 1 in want:
            drop = 0.0
            for d, scale, area_before in changes:
                drop += d * (1.0 - (p["C"] * scale * (s1 - area_before) + 1.0) ** -p["beta"])
            out.append(p["L0"] + p["A"] * s1 ** -p["alpha"] - p["B"] * drop)
    return np.array(out)


LOOPS = {"momentum": loop_momentum, "multipower": loop_multipower}


def wsd_candidates(n: int, steps: int, seed: int = 0) -> np.ndarray:
    """``n`` WSD schedules: peak LR log-uniform in [1e-4, 3e-3], cooldown in [0.1, 0.5],
    shape cycling over linear, 1-sqrt, cosine; warmup 2 % of the steps; decay to 0."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, steps))
    for i in range(n):
        out[i] = WSD(steps=steps, peak=float(10 ** rng.uniform(-4, np.log10(3e-3))), warmup=steps // 50,
                     cooldown=float(rng.uniform(0.1, 0.5)), shape=SHAPES[i % 3], min=0.0).lr()
    return out


def fit_section(laws: dict) -> None:
    emit("## 1. Fitting on the three 25M training curves")
    emit()
    train, _ = mpl_split("25M")
    rows = []
    for name in LAWS:
        fit_s, law = timed(lambda: make_law(name).fit(train, band=False), repeat=3)
        fit_band_s, _ = timed(lambda: make_law(name).fit(train), repeat=1)
        laws[name] = law
        one_s, pred = timed(lambda: [law.predict(c.lr, c.steps) for c in train], repeat=5)
        loop_s, loop_pred = timed(lambda: [LOOPS[name](c.lr, c.steps, law) for c in train])
        diff = max(float(np.max(np.abs(a / b - 1))) for a, b in zip(pred, loop_pred))
        evals = f"{len(DECAY_GRID)} decay values (loop fit: >= {len(DECAY_GRID) * loop_s:.1f} s, {ratio(len(DECAY_GRID) * loop_s / fit_s)})"
        if name == "multipower":  # count the law evaluations its fit makes
            n = count_evaluations(train)
            evals = f"{n} (loop fit: {n * loop_s:.0f} s, extrapolated, {ratio(n * loop_s / fit_s)})"
        rows.append([name, f"{fit_s:.3f}", f"{fit_band_s:.3f}", f"{1e3 * one_s:.2f}", f"{1e3 * loop_s:.0f}",
                     ratio(loop_s / one_s), f"{diff:.1e}", evals])
    table(["law", "fit (s)", "fit with band (s)", "one evaluation (ms)", "loop: one evaluation (ms)",
           "loop / lrtune", "max rel. diff", "evaluations in the fit"], rows)
    emit("One evaluation: the law at the 437 logged points of the three curves (lrtune: "
         "`predict`, loop: the baseline). Loop fit: the evaluations the fit needs times one loop "
         "evaluation, against lrtune's fit without the band. The multi-power fit's evaluations are "
         "counted (calls of its residual function). The momentum law's fit solves linear least "
         "squares over a grid of its nonlinear parameters from areas computed once per decay value, "
         f"so its loop fit is given as a lower bound: one loop pass per value of the decay grid "
         f"({len(DECAY_GRID)}), ignoring the refinement.")
    emit()


def candidates_section(laws: dict) -> None:
    emit("## 2. 1,000 WSD candidates of 50,000 steps, 100 steps each")
    emit()
    T, n = 50_000, 1_000
    lr = wsd_candidates(n, T)
    steps = np.linspace(T // 100, T, 100).astype(np.int64)
    subset = {"momentum": 20, "multipower": 4}
    rows = []
    for name, law in laws.items():
        lrtune_s, pred = timed(lambda: law.predict(lr, steps), repeat=3)
        k = subset[name]
        loop_s, loop_pred = timed(lambda: np.array([LOOPS[name](row, steps, law) for row in lr[:k]]))
        diff = float(np.max(np.abs(pred[:k] / loop_pred - 1)))
        rows.append([name, f"{lrtune_s:.3f}", f"{loop_s:.2f} s for {k}", f"{loop_s * n / k:.0f}",
                     ratio(loop_s * n / k / lrtune_s), f"{diff:.1e}"])
    table(["law", "lrtune (s)", "loop (measured)", "loop, 1,000 (s, extrapolated)", "loop / lrtune",
           "max rel. diff (subset)"], rows)
    emit("lrtune: one `predict(lr, steps)` call with `lr` of shape (1000, 50000), median of 3. "
         "Peak LR log-uniform in [1e-4, 3e-3], cooldown fraction uniform in [0.1, 0.5], shape "
         "linear / 1-sqrt / cosine, warmup 1,000 steps, decay to 0; the law is the 25M fit of "
         "section 1.")
    emit()


def growth_section(laws: dict) -> None:
    emit("## 6. Growth with the number of steps")
    emit()
    emit("### Predicting")
    emit()
    rows = []
    for T in (1_000, 10_000, 100_000):
        lr = wsd_candidates(100, T, seed=1)
        steps = np.linspace(T // 100, T, 100).astype(np.int64)
        row, ratios = [f"{T:,}"], []
        for name, law in laws.items():
            lrtune_s, _ = timed(lambda: law.predict(lr, steps), repeat=3)
            k = 2 if name == "multipower" else 10
            loop_s, _ = timed(lambda: [LOOPS[name](r, steps, law) for r in lr[:k]])
            row += [f"{lrtune_s:.4f}", f"{loop_s * 100 / k:.2f}"]
            ratios.append(ratio(loop_s * 100 / k / lrtune_s))
        rows.append(row + [", ".join(ratios)])
    table(["steps T", "momentum (s)", "momentum loop (s, extrapolated)", "multipower (s)",
           "multipower loop (s, extrapolated)", "loop / lrtune (momentum, multipower)"], rows)
    emit("100 WSD candidates of T steps (as in section 2), predicted at 100 steps; the "
         "loops run on 10 (momentum) or 2 (multi-power) candidates, extrapolated to 100.")
    emit()


# -- suggest -------------------------------------------------------------------------------

PEAKS_50 = np.geomspace(1e-4, 3e-3, 50)


def suggest_candidates(T: int) -> np.ndarray:
    """The LR arrays ``suggest`` ranks at horizon ``T``: its 20 default shapes x 50 peaks."""
    eta = np.stack([s.lr() for s in candidate_shapes(T, warmup=T // 50)])
    return (PEAKS_50[None, :, None] * eta[:, None, :]).reshape(-1, T)


def time_suggest(law, name: str, T: int, k: int) -> tuple[float, float, float, int]:
    """(lrtune suggest s, per-candidate predict() s, per-step loop s: extrapolated from
    ``k`` candidates, number of candidates)."""
    lrtune_s, res = timed(lambda: suggest(law, T, PEAKS_50, warmup=T // 50), repeat=3)
    cand = suggest_candidates(T)
    n = cand.shape[0]
    assert n == res.n_candidates, (n, res.n_candidates)
    pick = np.linspace(0, n - 1, k).astype(int)
    final = np.array([T])
    per_s, per = timed(lambda: [law.predict(cand[i], final)[0] for i in pick], repeat=3)  # a few calls: median
    loop_s, loop = timed(lambda: [LOOPS[name](cand[i], final, law)[0] for i in pick])
    assert np.allclose(per, loop, rtol=1e-5), (per, loop)
    return lrtune_s, per_s * n / k, loop_s * n / k, n


def suggest_section(laws: dict) -> None:
    emit("## 3. Suggest: ranking 1,000 candidates of 50,000 steps")
    emit()
    T = 50_000
    rows = []
    for name, law in laws.items():
        k = 20 if name == "momentum" else 4
        lrtune_s, per_s, loop_s, n = time_suggest(law, name, T, k)
        rows.append([name, f"{n:,}", f"{lrtune_s:.3f}", f"{per_s:.2f}", ratio(per_s / lrtune_s),
                     f"{loop_s:.1f}", ratio(loop_s / lrtune_s)])
    table(["law", "candidates", "lrtune `suggest` (s)", "one `predict` per candidate (s, extrap.)",
           "ratio", "per-step loop per candidate (s, extrap.)", "loop / lrtune"], rows)
    emit("`suggest(law, 50000, peaks)`: its 20 default shapes (cosine, linear, WSD with cooldown 0.1..0.8 x "
         "linear / 1-sqrt / cosine; warmup 1,000 steps) x 50 peak LRs log-spaced in [1e-4, 3e-3], median of 3, "
         "including building the candidates and ranking them. The momentum law's areas are linear in the LR, so "
         "suggest integrates each shape once and rescales it for the 50 peaks (`MomentumLaw.predict_peaks`); the "
         "multi-power law's are not, and every candidate is predicted (in batches). The baselines score the same "
         "candidates' final "
         "loss one at a time: a 1-d `law.predict(lr, [T])` call each, or the per-step loop of section 1 "
         "(20 candidates for momentum, 4 for multi-power, spread over the list; extrapolated linearly to "
         "all; checked against each other to 1e-5).")
    emit()


# -- the O(T^2) loss drop ------------------------------------------------------------------

def python_loss_drop(lr: np.ndarray, steps: np.ndarray, B: float, C: float, beta: float, gamma: float) -> np.ndarray:
    """``LD(s) = B * sum_k d_k * G(eta_k^-gamma * (S1(s) - S1(k)))``: a direct double sum
    in Python over the requested steps and every LR change before them (from the first
    decrease on), ``G(x) = 1 - (C x + 1)^-beta``."""
    lr = [float(v) for v in lr]
    start = int(mp.decay_start(np.asarray(lr)))
    cs = [0.0]
    for v in lr:
        cs.append(cs[-1] + v)
    changes = [(i, lr[i - 1] - lr[i], lr[i] ** -gamma) for i in range(max(1, start), len(lr)) if lr[i] != lr[i - 1]]
    out = []
    for s in steps:
        s = int(s)
        total = 0.0
        for i, d, scale in changes:
            if i > s - 1:
                break
            total += d * (1.0 - (C * scale * (cs[s] - cs[i]) + 1.0) ** -beta)
        out.append(B * total)
    return np.array(out)


def power_fit(ts: list[int], secs: list[float]) -> tuple[float, float]:
    """``seconds = a * T^b`` by least squares in logs: (a, b)."""
    b, log_a = np.polyfit(np.log(ts), np.log(secs), 1)
    return float(np.exp(log_a)), float(b)


def loss_drop_section(laws: dict) -> dict:
    emit("## 4. The multi-power loss drop: binned against the O(T^2) double sum")
    emit()
    p = laws["multipower"].params_
    args = (p["B"], p["C"], p["beta"], p["gamma"])
    cosine = lambda T: parse_schedule(f"cosine:steps={T},peak=3e-4,warmup={T // 50},min=0.1").lr()
    py_t, py_s, np_t, np_s, rows, out = [], [], [], [], [], {}
    for T in (500, 1_000, 2_000, 4_000):  # the Python double sum: T^2 / 2 terms
        lr, steps = cosine(T), np.arange(1, T + 1)
        s, ref = timed(lambda: python_loss_drop(lr, steps, *args))
        py_t.append(T)
        py_s.append(s)
        assert np.allclose(ref, mp.loss_drop_exact(lr, steps, *args), rtol=1e-9, atol=1e-12)
    for T in (1_000, 3_000, 10_000):
        lr, steps = cosine(T), np.arange(1, T + 1)
        s, _ = timed(lambda: mp.loss_drop_exact(lr, steps, *args))
        np_t.append(T)
        np_s.append(s)
    _, b_py = power_fit(py_t, py_s)
    _, b_np = power_fit(np_t, np_s)
    for T in (1_000, 10_000, 100_000):
        lr, steps = cosine(T), np.arange(1, T + 1)
        binned_s, binned = timed(lambda: mp.loss_drop(lr, steps, *args), repeat=3 if T < 100_000 else 1)
        if T in np_t:
            exact_s, exact_txt = np_s[np_t.index(T)], f"{np_s[np_t.index(T)]:.3f}"
            exact = mp.loss_drop_exact(lr, steps, *args)
            err = f"{float(np.max(np.abs(binned - exact))) / 3.0:.1e}"
        else:
            exact_s = np_s[-1] * (T / np_t[-1]) ** 2
            exact_txt, err = f"{exact_s:.0f} (T^2)", "-"
        if T in py_t:
            py = py_s[py_t.index(T)]
            py_txt = f"{py:.2f}"
        else:
            py = py_s[-1] * (T / py_t[-1]) ** 2
            py_txt = f"{py:.1f} (T^2)" if py < 100 else f"{py:,.0f} (T^2)"
        out[T] = (binned_s, exact_s, py)
        rows.append([f"{T:,}", f"{binned_s:.3f}", exact_txt, ratio(exact_s / binned_s), py_txt,
                     ratio(py / binned_s), err])
    table(["steps T", "lrtune binned (s)", "exact sum, numpy (s)", "exact / binned", "double sum, Python (s)",
           "Python / binned", "max abs. diff / 3.0"], rows)
    emit("One cosine schedule (warmup 2 %, decay to 10 %), the loss drop of the 25M fit at every step "
         "(P = T points, K ~ T changes: T^2 / 2 terms). lrtune: `multipower.loss_drop` (changes binned by "
         "distance, `bin_ratio` 0.05). Exact sum, numpy: `multipower.loss_drop_exact`, the same double sum "
         "vectorised, measured at T = " + ", ".join(f"{t:,}" for t in np_t) + "; Python: a plain double loop "
         "over steps and changes (`python_loss_drop` here, checked against the numpy sum to 1e-9), measured "
         "at T = " + ", ".join(f"{t:,}" for t in py_t) + ". '(T^2)': not run, extrapolated from the largest "
         "measured T as its time x (T / T_measured)^2, the growth of the double sum's T^2 / 2 terms (a power "
         f"law seconds = a T^b fitted to the measurements gives b = {b_np:.2f} for numpy and {b_py:.2f} for "
         "Python on this run). "
         "The difference is divided by 3.0, about the loss, to read as a relative error.")
    emit()
    return out


# -- the pruner -----------------------------------------------------------------------------

def rescale_spec(spec: str, T: int) -> str:
    """The same schedule over ``T`` steps: step counts (steps, warmup, switch) scaled."""
    s = parse_schedule(spec)
    f = T / s.steps
    changes = {"steps": T}
    for field in ("warmup", "switch"):
        v = getattr(s, field, None)
        if v:
            changes[field] = max(1, int(round(v * f)))
    return s.replace(**changes).spec()


def resampled(c, spec: str, T: int, factor: float) -> tuple[list[int], list[float]]:
    """The curve's (step, loss) points with steps multiplied by ``factor`` (rounded; a
    point landing on the step of the one before is dropped), up to ``T``."""
    steps = np.maximum(1, np.rint(c.steps * factor).astype(np.int64))
    keep = np.append(True, steps[1:] > steps[:-1]) & (steps <= T)
    return steps[keep].tolist(), c.loss[keep].tolist()


class PrunerStudy:
    """An Optuna study (in-memory storage) of ``n`` completed trials made from real curves
    and ``running`` trials observed up to 30-90 % of their schedule."""

    def __init__(self, curves: list, specs: list[str], n: int, running: int = 10, horizon: int | None = None,
                 seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(curves))
        self.study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=seed))

        def points(k: int):
            c, spec = curves[k], specs[k]
            if horizon is None:
                return spec, c.steps.tolist(), c.loss.tolist()
            new = rescale_spec(spec, horizon)
            steps, loss = resampled(c, new, horizon, horizon / c.lr.size)
            return new, steps, loss

        for i in range(n):
            spec, steps, loss = points(int(order[i % len(curves)]))
            self.study.add_trial(optuna.trial.create_trial(
                state=optuna.trial.TrialState.COMPLETE, value=float(loss[-1]), user_attrs={"lr_schedule": spec},
                intermediate_values={int(s): float(v) for s, v in zip(steps, loss)}))
        self.running = []
        for j in range(running):
            spec, steps, loss = points(int(order[(n + j) % len(curves)]))
            t = self.study.ask()
            record_schedule(t, spec)
            m = max(4, int(len(steps) * rng.uniform(0.3, 0.9)))
            for s, v in zip(steps[:m], loss[:m]):
                t.report(float(v), int(s))
            self.running.append(self.study._storage.get_trial(t._trial_id))

    def time_cached(self, rounds: int = 3) -> tuple[float, np.ndarray, int]:
        """lrtune: one pruner for all checks; (first check s, later checks s, prunes)."""
        pruner = ScheduleAwarePruner()
        t = time.perf_counter()
        pruned = int(pruner.prune(self.study, self.running[0]))
        first = time.perf_counter() - t
        later = []
        for _ in range(rounds):
            for tr in self.running:
                t = time.perf_counter()
                pruned += int(pruner.prune(self.study, tr))
                later.append(time.perf_counter() - t)
        return first, np.array(later), pruned

    def time_fresh(self, checks: int) -> np.ndarray:
        """Baseline: a fresh FinalLossModel at every check (the pruner's caches emptied)."""
        pruner = ScheduleAwarePruner()
        out = []
        for tr in self.running[:checks]:
            pruner._models.clear()
            pruner._curves.clear()
            t = time.perf_counter()
            pruner.prune(self.study, tr)
            out.append(time.perf_counter() - t)
        return np.array(out)


def schaipp_124m() -> tuple[list, list[str]]:
    curves = sorted(load_schaipp(group="main", n_layer="12", n_embd="768"), key=lambda c: c.name)
    return curves, [schaipp_spec(c.meta) for c in curves]


def pruner_section() -> None:
    emit("## 5. Pruner checks: cached model against a fresh fit at every check")
    emit()
    curves, specs = schaipp_124m()
    rows = []
    for n in (10, 100, 1_000):
        ps = PrunerStudy(curves, specs, n)
        first, later, pruned = ps.time_cached()
        if n < 1_000:
            fresh = ps.time_fresh(2)
            fresh_txt = f"{np.median(fresh):.2f}"
        else:  # a fresh check is the first check again: measured once above
            fresh = np.array([first])
            fresh_txt = f"{first:.1f} (= first check)"
        med = float(np.median(later))
        rows.append([f"{n:,}", f"{first:.2f}", f"{1e3 * med:.1f}", f"{1e3 * np.percentile(later, 95):.1f}",
                     str(later.size), fresh_txt, ratio(np.median(fresh) / med)])
        print(f"[pruner {n} trials: {rows[-1]}]", file=sys.stderr, flush=True)
    table(["completed trials", "lrtune: first check (s)", "lrtune: later checks, median (ms)", "p95 (ms)",
           "later checks", "fresh model per check (s)", "fresh / lrtune median"], rows)
    emit(f"Studies built from the {len(curves)} Schaipp 124M runs (group main, all horizons 15k-50k, cycled in a "
         "random order): each completed trial is added with `optuna.trial.create_trial` + `study.add_trial` "
         "with its real validation losses every 200 steps as intermediate values and its schedule spec as the "
         "`lr_schedule` user attribute; 10 running trials (`study.ask`) report the next runs up to 30-90 % of "
         "their points. In-memory storage. lrtune: `ScheduleAwarePruner()` (defaults, momentum law) asked for "
         "each running trial, 3 rounds after a first check; the first check fits the law and its cross-"
         "validation on the completed trials, later checks reuse that model (it is keyed on the set of "
         "completed trials). Baseline: the same pruner with its caches emptied before each check, so every "
         "check builds a fresh `FinalLossModel` from the completed trials (median of 2 checks; at 1,000 trials "
         "the fresh check is the first check, measured once, to keep the run short). The cache saves the "
         "checks between two completions, not the refit: the first check after each completed trial refits, "
         "and that refit fits at most the 64 completed curves with the lowest final loss "
         "(`lrtune.integrations._forecast.MAX_CURVES`), so past 64 trials only reading the trials from "
         "storage grows (the first-check column).")
    emit()


# -- growth with the number of steps ------------------------------------------------------------

def mpl_resampled(T: int) -> list:
    """The three 25M training curves of the multi-power-law split, each schedule and its
    logged steps scaled by ``T / 24000`` (same losses; the 16,000-step ``wsdcon_9`` becomes
    ``2T/3`` steps)."""
    out = []
    for c in mpl_split("25M")[0]:
        f = T / 24_000
        spec = rescale_spec(c.meta["spec"], max(2, int(round(c.lr.size * f))))
        lr = parse_schedule(spec).lr()
        steps, loss = resampled(c, spec, lr.size, f)
        out.append(Curve(np.array(steps), np.array(loss), lr, name=c.name, meta=dict(c.meta, spec=spec)))
    return out


def growth_fit_section() -> None:
    emit("### Fitting")
    emit()
    rows = []
    for T in (1_000, 10_000, 100_000):
        train = mpl_resampled(T)
        row = [f"{T:,}"]
        for name in LAWS:
            fit_s, law = timed(lambda: make_law(name).fit(train, band=False), repeat=3 if T < 100_000 else 1)
            k = 1 if name == "momentum" else 3  # loop evaluations timed
            loop_s, _ = timed(lambda: [[LOOPS[name](c.lr, c.steps, law) for c in train] for _ in range(k)])
            loop_s /= k
            if name == "momentum":
                loop_fit = len(DECAY_GRID) * loop_s
            else:
                calls = count_evaluations(train)
                loop_fit = calls * loop_s
            row += [f"{fit_s:.3f}", f"{loop_fit:.2f}" if loop_fit < 10 else f"{loop_fit:.0f}", ratio(loop_fit / fit_s)]
        rows.append(row)
        print(f"[fit growth {T}: {row}]", file=sys.stderr, flush=True)
    table(["steps T", "momentum fit (s)", "loop fit, at least (s)", "ratio", "multipower fit (s)",
           "loop fit (s, extrap.)", "ratio"], rows)
    emit("The three 25M training curves of the multi-power-law split resampled to T steps: each schedule "
         "rescaled (steps, warmup and switch x T / 24,000) and each logged loss moved to its step x T / 24,000 "
         "(real losses, same fractions of training; "
         f"{' / '.join(str(c.steps.size) for c in mpl_resampled(1_000))} logged points at T = 1,000, all "
         f"{' / '.join(str(c.steps.size) for c in mpl_split('25M')[0])} at larger T). `fit(band=False)`. Loop fit: the number of law evaluations the fit needs times one per-step "
         "loop evaluation on the three curves (section 1); for the momentum law a lower bound, one loop pass "
         f"per value of its decay grid ({len(DECAY_GRID)}), ignoring the refinement.")
    emit()


def count_evaluations(train: list) -> int:
    calls = [0]
    inner = mp._residuals

    def counting(z, data):
        calls[0] += 1
        return inner(z, data)

    mp._residuals = counting
    try:
        make_law("multipower").fit(train, band=False)
    finally:
        mp._residuals = inner
    return calls[0]


def growth_suggest_section(laws: dict) -> None:
    emit("### Suggest")
    emit()
    rows = []
    for T in (1_000, 10_000, 100_000):
        row = [f"{T:,}"]
        for name, law in laws.items():
            k = 10 if name == "momentum" else 2
            lrtune_s, _, loop_s, n = time_suggest(law, name, T, k)
            row += [f"{lrtune_s:.3f}", f"{loop_s:.1f}", ratio(loop_s / lrtune_s)]
        rows.append(row)
    table(["steps T", "momentum suggest (s)", "loop (s, extrap.)", "ratio", "multipower suggest (s)",
           "loop (s, extrap.)", "ratio"], rows)
    emit("1,000 candidates as in section 3 at horizon T (warmup T / 50); loops on 10 (momentum) or 2 "
         "(multi-power) candidates, extrapolated to 1,000.")
    emit()


def growth_pruner_section() -> None:
    emit("### Pruner check")
    emit()
    curves, specs = schaipp_124m()
    rows = []
    for T in (1_000, 10_000, 100_000):
        ps = PrunerStudy(curves, specs, 20, horizon=T, seed=1)
        first, later, _ = ps.time_cached(rounds=2)
        fresh = ps.time_fresh(2)
        med = float(np.median(later))
        rows.append([f"{T:,}", f"{first:.2f}", f"{1e3 * med:.1f}", f"{1e3 * np.percentile(later, 95):.1f}",
                     f"{np.median(fresh):.2f}", ratio(np.median(fresh) / med)])
        print(f"[pruner growth {T}: {rows[-1]}]", file=sys.stderr, flush=True)
    table(["steps T", "lrtune: first check (s)", "later checks, median (ms)", "p95 (ms)",
           "fresh model per check (s)", "fresh / lrtune median"], rows)
    emit("Studies of 20 completed and 10 running trials as in section 5, from the Schaipp 124M runs resampled "
         "to T steps (schedule rescaled; the real losses, logged every 200 steps of the original run, moved to "
         "the same fraction of T).")
    emit()


def growth_section_all(laws: dict) -> None:
    growth_section(laws)  # predict
    growth_fit_section()
    growth_suggest_section(laws)
    growth_pruner_section()


def main() -> int:
    emit("# Speed")
    emit()
    emit(f"Command: `{COMMAND}`")
    emit()
    emit(f"Machine: {os.cpu_count()} CPU cores, shared; wall-clock seconds.")
    emit()
    emit("Every ratio compares lrtune with a straightforward implementation of the same computation "
         "timed in the same run (the machine's load varies between runs, so only the ratios carry over).")
    emit()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("lrtune.integrations").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    t0 = time.time()
    laws: dict = {}
    for section in (fit_section, candidates_section, suggest_section, loss_drop_section):
        section(laws)
        print(f"[{section.__name__} done: {time.time() - t0:.0f} s]", file=sys.stderr, flush=True)
    pruner_section()
    print(f"[pruner_section done: {time.time() - t0:.0f} s]", file=sys.stderr, flush=True)
    growth_section_all(laws)
    emit(f"Wall time of this benchmark: {time.time() - t0:.0f} s.")
    emit()
    save("speed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
