"""``lrtune suggest`` on the Schaipp 124M grid, and its candidate throughput.

Run as ``python benchmarks/suggest.py``; prints the tables and writes them to
``benchmarks/results/suggest.md``.

Suggestion: each law is fitted on the val-loss curves of every main-group 124M run
(n_layer=12, n_embd=768) of at most 25k steps; :func:`lrtune.suggest.suggest` ranks
cosine, linear and WSD (cooldown 0.1..0.8 x linear / 1-sqrt / cosine) x 40 peak LRs
log-spaced over the observed peaks at 50k steps.  Its suggestion is compared with the
real 50k runs of the grid (final loss = ``final_val_loss_full``): the run nearest to the
suggestion (the smallest mean absolute difference between the two LR arrays) beside the
best 50k run.  The same law ranking only the 40 schedules the grid ran at 50k shows how
much of the gap is the law's ranking.  Baselines:

* no transfer: the best run of at most 25k steps (lowest final loss among the 25k runs),
  its schedule and peak LR reused at 50k;
* theory only: that schedule at 50k with its peak multiplied by the bound's
  ``gamma*(50k) / gamma*(25k)``.

Throughput: candidates scored per second by :func:`lrtune.suggest.suggest` at 50k steps.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from scipy import stats

from lrtune.bound import optimal_base_lr
from lrtune.datasets import load_schaipp
from lrtune.laws import LAWS, make_law
from lrtune.schedules import parse_schedule
from lrtune.suggest import observed_warmup, predict_batch, suggest

COMMAND = "python benchmarks/suggest.py"
HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = 50000
from _report import emit, save, table  # noqa: E402  (benchmarks/ is on sys.path when run)



def run_shape(meta: dict) -> tuple[str, float]:
    """(shape, cooldown fraction) of a Schaipp run: ``cosine`` (to ~0), ``cosine-10%``,
    ``constant``, ``wsd-linear``, ``wsd-1-sqrt``."""
    if meta["schedule"] == "cosine":
        return ("cosine" if float(meta["final_lr"]) < 1e-6 else "cosine-10%"), 1.0
    if meta["schedule"] == "constant":
        return "constant", 0.0
    return "wsd-" + {"linear": "linear", "sqrt": "1-sqrt"}[meta["decay_type"]], float(meta["cooldown_frac"])


def nearest_run(lr: np.ndarray, runs: list) -> object:
    """The run whose LR array is closest to ``lr``: smallest mean |difference| over the steps."""
    return min(runs, key=lambda c: float(np.mean(np.abs(c.lr - lr))))


def describe(c) -> str:
    sh, cd = run_shape(c.meta)
    what = sh if sh in ("cosine", "cosine-10%", "constant") else f"{sh} {cd:g}"
    return f"{what}, peak {c.peak_lr:.3g}: {float(c.meta['final_val_loss_full']):.4f}"


def case(curves: list, max_seen: int, target: int, title: str, speed: list | None = None) -> None:
    """Suggest for ``target`` steps from the runs of at most ``max_seen`` steps."""
    seen = [c for c in curves if c.horizon <= max_seen]
    real = [c for c in curves if c.horizon == target and float(c.meta["final_val_loss_full"]) < 5]
    best_real = min(real, key=lambda c: float(c.meta["final_val_loss_full"]))
    best_loss = float(best_real.meta["final_val_loss_full"])
    emit(f"## {title}\n")
    emit(f"{len(seen)} runs of at most {max_seen // 1000}k steps observed; {len(real)} real {target // 1000}k runs "
         f"to compare with. Best real {target // 1000}k run: {describe(best_real)}.\n")
    warmup, start = observed_warmup(seen)
    lo, hi = min(c.peak_lr for c in seen), max(c.peak_lr for c in seen)
    peaks = [float(f"{g:.3g}") for g in np.geomspace(lo, hi, 40)]

    def gap(c) -> str:
        return f"{100 * (float(c.meta['final_val_loss_full']) / best_loss - 1):.2f} %"

    longest = [c for c in seen if c.horizon == max_seen]
    best_seen = min(longest, key=lambda c: float(c.meta["final_val_loss_full"]))
    eta = at_horizon(best_seen, target)
    ratio = optimal_base_lr(eta) / optimal_base_lr(best_seen.lr / best_seen.peak_lr)
    base_none = nearest_run(best_seen.peak_lr * eta, real)
    base_theory = nearest_run(best_seen.peak_lr * ratio * eta, real)
    rows = [["no transfer", f"best {max_seen // 1000}k run reused: {describe(best_seen)}", "-",
             describe(base_none), gap(base_none)],
            ["theory only", f"same schedule, peak x {ratio:.3f} = {best_seen.peak_lr * ratio:.3g}", "-",
             describe(base_theory), gap(base_theory)]]
    for name in ("momentum", "multipower"):
        if name not in LAWS:
            continue
        tf = time.time()
        law = make_law(name).fit(seen)
        fit_s = time.time() - tf
        res = suggest(law, target, peaks, warmup=warmup, start=start, top=2, curves=seen)
        for i, sg in enumerate([res.best] + res.alternatives):
            near = nearest_run(parse_schedule(sg.schedule).lr(), real)
            rows.append([f"lrtune ({name} law)" if i == 0 else f"  runner-up {i} ({name})", sg.schedule,
                         f"{sg.predicted_loss:.4f} [{sg.lower:.4f}, {sg.upper:.4f}]", describe(near), gap(near)])
        raw = suggest(law, target, peaks, warmup=warmup, start=start, top=0)
        near = nearest_run(parse_schedule(raw.best.schedule).lr(), real)
        rows.append([f"  {name} law without the residual correction", raw.best.schedule,
                     f"{raw.best.predicted_loss:.4f} [{raw.best.lower:.4f}, {raw.best.upper:.4f}]", describe(near),
                     gap(near)])
        # the same law ranking only the schedules the grid ran at the target horizon
        pred = predict_batch(law, np.stack([c.lr for c in real]), [target])[:, -1]
        pick = real[int(np.argmin(pred))]
        rho = stats.spearmanr(pred, [float(c.meta["final_val_loss_full"]) for c in real])[0]
        rows.append([f"  {name} law ranking the real {target // 1000}k schedules",
                     f"Spearman {rho:.2f} between predicted and real final loss over the {len(real)} runs",
                     f"{pred.min():.4f}", describe(pick), gap(pick)])
        if speed is not None:  # throughput: 1,000 candidates (20 shapes x 50 peaks), best of three
            for steps in (25000, target):
                runs = [suggest(law, steps, np.geomspace(lo, hi, 50), warmup=warmup, start=start, top=0)
                        for _ in range(3)]
                speed.append([name, f"{fit_s:.1f}", f"{runs[0].n_candidates}", f"{steps}",
                              f"{max(r.candidates_per_second for r in runs):,.0f}",
                              f"{max(r.candidates_per_cpu_second for r in runs):,.0f}"])
    table(["method", f"suggested schedule ({target // 1000}k)", "predicted val loss [90 %]",
           f"nearest real {target // 1000}k run: final loss", f"gap to the best {target // 1000}k run"], rows)


def main() -> int:
    t0 = time.time()
    emit(f"Command: `{COMMAND}`\n")
    emit("# Suggest on the Schaipp 124M grid\n")
    emit("The nearest real run to a schedule is the one whose LR array has the smallest mean absolute "
         "difference to it; final loss = `final_val_loss_full`. lrtune's predictions are corrected by the "
         "law's residuals on the observed runs (`ResidualCorrection`, whose defaults were chosen on the first "
         "table and are checked on the second); the row without the correction is shown below each law.\n")
    curves = [c for c in load_schaipp(n_layer="12", n_embd="768", group="main")]
    speed: list = []
    case(curves, 15000, 25000, "Choose: 25k from the runs of at most 15k steps")
    case(curves, 25000, TARGET, "Check: 50k from the runs of at most 25k steps", speed)
    emit("## Candidate throughput\n")
    emit("Building and scoring 1,000 candidates (the residual correction, a fixed cost per call, is not "
         "counted). Wall time measures the machine as much as lrtune when other jobs share it; CPU time of "
         f"the process is given beside it (load average during the run: {os.getloadavg()[0]:.1f} on "
         f"{os.cpu_count()} cores).\n")
    table(["law", "fit on the 25k-or-shorter runs (s)", "candidates", "steps",
           "candidates per second, wall (best of 3)", "per CPU second (best of 3)"], speed)
    emit(f"Total time {time.time() - t0:.0f} s.")
    save("suggest")
    return 0


def at_horizon(curve, steps: int) -> np.ndarray:
    """The normalised schedule of a Schaipp run at another horizon (docs/schedules.md gives the
    WSD and constant specs; a cosine run is stretched in relative time)."""
    from lrtune.transfer import eta_at_horizon

    m = curve.meta
    if m["schedule"] in ("wsd", "constant"):
        shape = {"linear": "linear", "sqrt": "1-sqrt"}.get(m["decay_type"], "linear")
        fam = "wsd" if m["schedule"] == "wsd" else "constant"
        extra = f",cooldown={m['cooldown_frac']},shape={shape}" if fam == "wsd" else ""
        return eta_at_horizon(f"{fam}:steps={steps},peak=1,warmup=301,start=0.01{extra}")
    return eta_at_horizon(curve.lr, steps)


if __name__ == "__main__":
    sys.exit(main())
