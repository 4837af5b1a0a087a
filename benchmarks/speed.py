"""Speed of fitting and predicting, against plain per-step Python loops of the same laws.

Run as ``python benchmarks/speed.py``; prints the tables and writes them to
``benchmarks/results/speed.md``.

The loop baselines (below) compute each law the straightforward way: one Python loop
over the steps, updating ``S1`` and the momentum ``m`` / ``S2`` step by step (momentum
law), or keeping the list of LR changes and, at every requested step, summing
``d_k * G(eta_k^-gamma * S_k)`` over them (multi-power law).  They are checked against
lrtune's predictions in the same run.  Where a loop would take minutes it runs on a
subset of the candidates and its time is extrapolated linearly (the tables say so).

1. Fitting each law on the three 25M training curves of the multi-power-law split; the
   loops are timed for one evaluation of the law at the training points.
2. Predicting 1,000 WSD candidates of 50,000 steps (peak LR, cooldown fraction and shape
   varied) at 100 steps each, one 2-d ``predict`` call.
3. Growth with the number of steps ``T``: 100 candidates at 100 steps, and one cosine
   schedule predicted at every step (binned loss drop against the exact ``O(P * K)`` sum).
"""

from __future__ import annotations

import os
import time

import numpy as np

from lrtune.datasets import mpl_split
from lrtune.laws import LAWS, make_law
from lrtune.laws import multipower as mp
from lrtune.schedules import WSD, parse_schedule

COMMAND = "python benchmarks/speed.py"
HERE = os.path.dirname(os.path.abspath(__file__))
SHAPES = ("linear", "1-sqrt", "cosine")
from _report import OUT, emit, table  # noqa: E402  (benchmarks/ is on sys.path when run)



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
        evals = "-"
        if name == "multipower":  # count the law evaluations its fit makes
            calls = [0]
            inner = mp._residuals

            def counting(z, data):
                calls[0] += 1
                return inner(z, data)

            mp._residuals = counting
            try:
                make_law(name).fit(train, band=False)
            finally:
                mp._residuals = inner
            evals = f"{calls[0]} (loop fit: {calls[0] * loop_s:.0f} s, extrapolated)"
        rows.append([name, f"{fit_s:.3f}", f"{fit_band_s:.3f}", f"{1e3 * one_s:.2f}", f"{1e3 * loop_s:.0f}",
                     f"{loop_s / one_s:.0f}x", f"{diff:.1e}", evals])
    table(["law", "fit (s)", "fit with band (s)", "one evaluation (ms)", "loop: one evaluation (ms)",
           "loop / lrtune", "max rel. diff", "evaluations in the fit"], rows)
    emit("One evaluation: the law at the 437 logged points of the three curves (lrtune: "
         "`predict`, loop: the baseline). The momentum law's fit solves linear least "
         "squares over a grid of its nonlinear parameters from precomputed areas, not a "
         "sequence of law evaluations, so no loop fit is extrapolated for it.")
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
                     f"{loop_s * n / k / lrtune_s:.0f}x", f"{diff:.1e}"])
    table(["law", "lrtune (s)", "loop (measured)", "loop, 1,000 (s, extrapolated)", "loop / lrtune",
           "max rel. diff (subset)"], rows)
    emit("lrtune: one `predict(lr, steps)` call with `lr` of shape (1000, 50000), median of 3. "
         "Peak LR log-uniform in [1e-4, 3e-3], cooldown fraction uniform in [0.1, 0.5], shape "
         "linear / 1-sqrt / cosine, warmup 1,000 steps, decay to 0; the law is the 25M fit of "
         "section 1.")
    emit()


def growth_section(laws: dict) -> None:
    emit("## 3. Growth with the number of steps")
    emit()
    rows = []
    for T in (1_000, 10_000, 100_000):
        lr = wsd_candidates(100, T, seed=1)
        steps = np.linspace(T // 100, T, 100).astype(np.int64)
        row = [f"{T:,}"]
        for name, law in laws.items():
            lrtune_s, _ = timed(lambda: law.predict(lr, steps), repeat=3)
            k = 2 if name == "multipower" else 10
            loop_s, _ = timed(lambda: [LOOPS[name](r, steps, law) for r in lr[:k]])
            row += [f"{lrtune_s:.4f}", f"{loop_s * 100 / k:.2f}"]
        rows.append(row)
    table(["steps T", "momentum (s)", "momentum loop (s, extrapolated)", "multipower (s)",
           "multipower loop (s, extrapolated)"], rows)
    emit("100 WSD candidates of T steps (as in section 2), predicted at 100 steps; the "
         "loops run on 10 (momentum) or 2 (multi-power) candidates, extrapolated to 100.")
    emit()
    p = laws["multipower"].params_
    rows = []
    for T in (1_000, 10_000, 100_000):
        lr = parse_schedule(f"cosine:steps={T},peak=3e-4,warmup={T // 50},min=0.1").lr()
        steps = np.arange(1, T + 1)
        binned_s, binned = timed(lambda: mp.loss_drop(lr, steps, p["B"], p["C"], p["beta"], p["gamma"]))
        if T <= 10_000:
            exact_s, exact = timed(lambda: mp.loss_drop_exact(lr, steps, p["B"], p["C"], p["beta"], p["gamma"]))
            err = f"{float(np.max(np.abs(binned - exact))) / 3.0:.1e}"
            exact_txt = f"{exact_s:.3f}"
        else:
            exact_txt, err = "-", "-"
        rows.append([f"{T:,}", f"{binned_s:.3f}", exact_txt, err])
    table(["steps T", "binned loss drop (s)", "exact O(P*K) sum (s)", "max abs. diff / 3.0"], rows)
    emit("One cosine schedule (warmup 2 %, decay to 10 %), the loss drop of the 25M fit at "
         "every step (P = T, K = T - warmup changes). The exact sum at T = 100,000 would "
         "evaluate 5e9 terms and is not run; the difference is divided by 3.0, about the "
         "loss, to read as a relative error.")
    emit()


def main() -> int:
    emit("# Speed")
    emit()
    emit(f"Command: `{COMMAND}`")
    emit()
    emit(f"Machine: {os.cpu_count()} CPU cores, shared; wall-clock seconds.")
    emit()
    laws: dict = {}
    fit_section(laws)
    candidates_section(laws)
    growth_section(laws)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "speed.md"), "w") as f:
        f.write("\n".join(OUT) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
