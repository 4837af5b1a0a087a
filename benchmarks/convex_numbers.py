"""Reproduce the published convex-bound numbers (Schaipp et al., ICML 2025).

Run as ``python benchmarks/convex_numbers.py``; prints the tables and writes them to
``benchmarks/results/convex_numbers.md``.  Every published number is printed beside the
measured one; "match" means the measured value, rounded to the digits published, equals it.

Procedures (the ones that reproduce the published digits):

* gamma* fits: least squares of ln gamma* on ln T over T = 200, 210, ..., 500 with the
  reference's schedules (:func:`lrtune.bound.convex_schedule`, D = G = 1).
* ln gamma*(c = 1) - ln gamma*(c): at T = 1000; the c = 0.2 value over T = 400..10000.
* Horizon extension: rho solving gamma*(extended) = gamma*(WSD at T0 = 4000), and the
  point of the grid rho = 0.025, 0.05, ..., 1 whose gamma* is closest (the published
  values are points of that grid).
* Real data (Schaipp 124M grid, horizon 50k, linear cooldowns): final loss =
  ``final_val_loss_full``; configurations run twice are averaged; fit
  ``a / gamma + b * gamma + c``; best gamma = argmin of the fit on
  ``np.logspace(-4, -2, 100)`` (published) and sqrt(a / b) (exact minimiser).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import defaultdict

import numpy as np
from scipy import optimize

from lrtune.bound import convex_schedule, fit_lr_sweep, optimal_base_lr
from lrtune.datasets import schaipp_runs

COMMAND = "python benchmarks/convex_numbers.py"
HERE = os.path.dirname(os.path.abspath(__file__))
FIT_GRID = np.arange(200, 501, 10)
LR_GRID = np.logspace(-4, -2, 100)
RHO_GRID = np.round(np.arange(1, 41) * 0.025, 3)


def gamma_star(family: str, T: int, c: float = 0.2, shape: str = "linear") -> float:
    return optimal_base_lr(convex_schedule(family, int(T), c, shape))


def power_fit(Ts: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    """gamma* = a * T^b by least squares on logs."""
    b, ln_a = np.polyfit(np.log(Ts), np.log(g), 1)
    return float(np.exp(ln_a)), float(b)


def decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def row(name: str, published: str, measured: float, shown: str | None = None, digits: int | None = None) -> list[str]:
    """A table row; the match compares ``measured`` rounded to ``published``'s decimals."""
    d = decimals(published) if digits is None else digits
    ok = round(measured, d) == round(float(published), d)
    return [name, published, shown if shown is not None else f"{measured:.4f}", "yes" if ok else "NO"]


def sig_cells(published: str, measured: float, exact: float) -> list[str]:
    """Cells for a value published with a few significant digits (7.4e-4)."""
    mant = published.split("e")[0]
    sig = len(mant.replace(".", "").lstrip("0"))
    ok = float(f"{measured:.{sig - 1}e}") == float(published)
    return [published, f"{measured:.3e} (exact {exact:.3e})", "yes" if ok else "NO"]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# -- 1. gamma* power laws ---------------------------------------------------------------

def fits_section() -> str:
    g_cos = np.array([gamma_star("cosine", T) for T in FIT_GRID])
    g_wsd = np.array([gamma_star("wsd", T, 0.2) for T in FIT_GRID])
    a_c, b_c = power_fit(FIT_GRID, g_cos)
    a_w, b_w = power_fit(FIT_GRID, g_wsd)
    ratio = g_cos / g_wsd
    rows = [
        row("cosine: a", "0.920", a_c, f"{a_c:.5f}"),
        row("cosine: exponent", "-0.492", b_c, f"{b_c:.5f}"),
        row("WSD 20% linear: a", "0.471", a_w, f"{a_w:.5f}"),
        row("WSD 20% linear: exponent", "-0.488", b_w, f"{b_w:.5f}"),
        row("gamma*_cos / gamma*_wsd at T = 400", "1.9", float(ratio[FIT_GRID == 400][0]), f"{float(ratio[FIT_GRID == 400][0]):.4f}"),
    ]
    other = np.arange(100, 1001, 10)
    a2c, b2c = power_fit(other, [gamma_star("cosine", T) for T in other])
    a2w, b2w = power_fit(other, [gamma_star("wsd", T, 0.2) for T in other])
    return (
        "## gamma* power laws (D = G = 1, T = 200, 210, ..., 500)\n\n"
        + table(["quantity", "published", "measured", "match"], rows)
        + f"\n\nRatio gamma*_cos / gamma*_wsd over the grid: {ratio.min():.3f} .. {ratio.max():.3f}."
        + "\nSensitivity to the grid: over T = 100, 110, ..., 1000 the fits are cosine "
        + f"{a2c:.3f} T^{b2c:.3f} and WSD {a2w:.3f} T^{b2w:.3f}.\n"
    )


# -- 2. cooldown length and shape ---------------------------------------------------------

def cooldown_section() -> str:
    T = 1000
    rows = []
    for shape, pubs in (("linear", {0.1: "0.78", 0.4: "0.50", 0.6: "0.345", 0.8: "0.183"}),
                        ("1-sqrt", {0.1: "1.14", 0.2: "1.01", 0.4: "0.80"})):
        full = math.log(gamma_star("wsd", T, 1.0, shape))
        for c, pub in pubs.items():
            rows.append(row(f"{shape}, c = {c}", pub, full - math.log(gamma_star("wsd", T, c, shape)), digits=None))
    c02 = {t: math.log(gamma_star("wsd", t, 1.0)) - math.log(gamma_star("wsd", t, 0.2)) for t in (400, 1000, 4000, 10000)}
    lo, hi = min(c02.values()), max(c02.values())
    in_range = round(lo, 3) >= 0.665 and round(hi, 3) <= 0.670
    rows.insert(1, ["linear, c = 0.2 (T = 400..10000)", "0.665..0.670", f"{lo:.4f} .. {hi:.4f}", "yes" if in_range else "NO"])
    cross = math.log(gamma_star("wsd", T, 1.0, "linear")) - math.log(gamma_star("wsd", T, 0.2, "1-sqrt"))
    rows.append(row("ln gamma*(linear c = 1) - ln gamma*(1-sqrt c = 0.2)", "0.61", cross))
    per_T = ", ".join(f"T = {t}: {v:.4f}" for t, v in c02.items())
    return (
        "## ln gamma*(c = 1) - ln gamma*(c), WSD, T = 1000\n\n"
        + table(["cooldown", "published", "measured", "match"], rows)
        + f"\n\nLinear c = 0.2 by horizon: {per_T}.\n"
    )


# -- 3. horizon extension (wssd) ----------------------------------------------------------

def extended(T0: int, k: float, rho: float) -> np.ndarray:
    """WSD at T0 extended to k*T0: 1 until 0.8*T0, then rho, then the last 20 % of k*T0
    cooled down linearly from rho (the reference's cooldown, T + 1 points)."""
    eta = convex_schedule("wsd", int(round(k * T0)), 0.2)
    eta[int(0.8 * T0):] *= rho
    return eta


def wssd_section() -> str:
    T0 = 4000
    target = gamma_star("wsd", T0, 0.2)
    rows = []
    for k, pub in ((1.5, "0.625"), (2, "0.525"), (3, "0.425"), (4, "0.375")):
        def f(rho: float) -> float:
            return math.log(optimal_base_lr(extended(T0, k, rho))) - math.log(target)
        exact = optimize.brentq(f, 0.3, 1.0, xtol=1e-10)
        on_grid = min(RHO_GRID, key=lambda r: abs(f(r)))
        ok = abs(on_grid - float(pub)) < 1e-9
        rows.append([f"{k}x T0", pub, f"{on_grid:.3f} (exact {exact:.4f})", "yes" if ok else "NO"])
    return (
        "## Horizon extension: rho keeping gamma* of WSD(T0 = 4000, c = 0.2)\n\n"
        + table(["extension", "published", "measured: grid 0.025 (exact root)", "match"], rows)
        + "\n\nThe published values are points of the grid rho = 0.025, 0.05, ...; the exact roots "
        "differ by up to 0.012 (gamma* is flat in rho near them).\n"
    )


# -- 4. real data -----------------------------------------------------------------------

def real_section() -> str:
    runs = [r for r in schaipp_runs() if r["n_layer"] == "12" and r["n_embd"] == "768" and r["dataset"] == "slimpajama"
            and r["schedule"] == "wsd" and r["decay_type"] == "linear" and r["horizon"] == "50000"]
    by = defaultdict(lambda: defaultdict(list))
    for r in runs:
        by[float(r["cooldown_frac"])][float(r["base_lr"])].append(float(r["final_val_loss_full"]))
    published = {0.1: "7.4e-4", 0.2: "8.5e-4", 0.4: "1.07e-3", 0.6: "1.23e-3", 0.8: "1.42e-3", 0.9: "1.56e-3", 0.994: "1.71e-3"}
    rows, best = [], {}
    for c, pub in published.items():
        lrs = np.array(sorted(by[c]))
        loss = np.array([np.mean(by[c][g]) for g in lrs])
        fit = fit_lr_sweep(lrs, loss)
        best[c] = float(LR_GRID[np.argmin(fit(LR_GRID))])
        n_runs = sum(len(v) for v in by[c].values())
        rows.append([f"{c}", f"{n_runs} runs / {lrs.size} LRs"] + sig_cells(pub, best[c], fit.best_base_lr))
    pooled = [(g, l) for g, ls in by[0.2].items() for l in ls]
    fit_pooled = fit_lr_sweep([g for g, _ in pooled], [l for _, l in pooled])
    best_pooled = float(LR_GRID[np.argmin(fit_pooled(LR_GRID))])
    ln_ratio = math.log(best[0.994] / best[0.2])
    theory = math.log(gamma_star("wsd", 1000, 1.0)) - math.log(gamma_star("wsd", 1000, 0.2))
    th_994 = {T: math.log(gamma_star("wsd", T, 0.994)) - math.log(gamma_star("wsd", T, 0.2)) for T in (1000, 50000)}
    rows.append(["ln ratio c = 0.994 / c = 0.2", "", "0.698", f"{ln_ratio:.4f}", "yes" if round(ln_ratio, 3) == 0.698 else "NO"])
    rows.append(["theory: ln gamma*(c = 1) - ln gamma*(c = 0.2), T = 1000", "", "0.67", f"{theory:.4f}",
                 "yes" if round(theory, 2) == 0.67 else "NO"])
    return (
        "## Real data: Schaipp 124M, horizon 50k, best base LR per cooldown fraction\n\n"
        + table(["cooldown", "data", "published", "measured: grid argmin (exact sqrt(a/b))", "match"], rows)
        + "\n\nBest gamma is the argmin of the fitted a/gamma + b*gamma + c on np.logspace(-4, -2, 100)"
        " (every published value is a point of that grid); final_val_loss_full, duplicate"
        " configurations averaged.  Theory for c = 0.994 itself: "
        + ", ".join(f"T = {T}: {v:.4f}" for T, v in th_994.items())
        + " (0.66 to two digits; the published 0.67 is the c = 1 value of the table above)."
        + f"  Taking the 9 runs at c = 0.2 as separate points instead of averaging the duplicates gives"
        f" {best_pooled:.3e} (exact {fit_pooled.best_base_lr:.3e}).\n"
    )


def timing_section() -> str:
    eta = convex_schedule("wsd", 100_000, 0.2)
    optimal_base_lr(eta)
    reps = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(10):
            optimal_base_lr(eta)
        reps.append((time.perf_counter() - t) / 10)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"## Speed\n\noptimal_base_lr at T = 100,000: {min(reps) * 1e3:.1f} ms (best of 5 x 10 calls; "
            f"{os.cpu_count()} CPUs, 1-minute load average {load:.1f} during the run).\n")


def main() -> int:
    parts = [fits_section(), cooldown_section(), wssd_section(), real_section(), timing_section()]
    text = f"Command: `{COMMAND}`\n\n# Convex-bound numbers (Schaipp et al., ICML 2025)\n\n" + "\n".join(parts)
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "convex_numbers.md"), "w") as f:
        f.write(text)
    return 0 if "| NO |" not in text else 1


if __name__ == "__main__":
    sys.exit(main())
