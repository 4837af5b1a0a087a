"""Peak-LR transfer on the Schaipp 124M grid (main group, n_layer=12, n_embd=768).

Run as ``python benchmarks/transfer.py``; prints the tables and writes them to
``benchmarks/results/transfer.md``.

A sweep is the runs of one schedule (family, cooldown fraction, shape, horizon, final LR)
at 3+ peak LRs; its final loss is ``final_val_loss_full`` (whole validation set at the
last step) and its fitted optimum comes from :class:`lrtune.transfer.PeakLRSweep`
(``A/gamma + B*gamma + C``).  For every transfer the tables give, beside lrtune's
prediction, the theory-only result (the bound's ratio, h = s = 1) and the no-transfer
baseline (the nearest source sweep's optimum unchanged):

* factor: ``max(pred / ref, ref / pred)`` against the target sweep's own fitted optimum
  ``ref`` (marked ``>`` when that optimum lies above the sweep's largest LR, i.e. is an
  extrapolation of the fit);
* regret: the target sweep's fitted final loss at the predicted LR over its fitted best,
  in %.

Defaults (sweep form, seed noise) are chosen on one part of the data and checked on
another; the tables say which.
"""

from __future__ import annotations

import collections
import os
import sys
import time

import numpy as np

from lrtune.datasets import load_schaipp
from lrtune.laws import LAWS, make_law
from lrtune.schedules import parse_schedule
from lrtune.transfer import PeakLRSweep, PeakLRTransfer, extend_horizon, rewarm_plans

COMMAND = "python benchmarks/transfer.py"
HERE = os.path.dirname(os.path.abspath(__file__))
COOLDOWNS = (0.1, 0.2, 0.4, 0.6, 0.8, 0.9)
from _report import OUT, emit, table  # noqa: E402  (benchmarks/ is on sys.path when run)



# -- data --------------------------------------------------------------------------------

def sweep_key(meta: dict) -> tuple:
    family = meta["schedule"] if meta["schedule"] != "wsd" else "wsd-" + meta["decay_type"]
    final = round(float(meta["final_lr"]) / float(meta["base_lr"]), 2)
    return family, float(meta["cooldown_frac"]), int(meta["horizon"]), final


def grid_curves(groups: tuple[str, ...] = ("main",)) -> dict[tuple, list]:
    out: dict[tuple, list] = collections.defaultdict(list)
    for g in groups:
        for c in load_schaipp(n_layer="12", n_embd="768", group=g):
            out[sweep_key(c.meta)].append(c)
    return out


def fit_sweeps(curves: dict[tuple, list], **options) -> dict[tuple, PeakLRSweep]:
    out = {}
    for key, cs in curves.items():
        if len({c.peak_lr for c in cs}) < 3:
            continue
        out[key] = PeakLRSweep(**options).fit_final(
            [float(c.meta["base_lr"]) for c in cs], [float(c.meta["final_val_loss_full"]) for c in cs], cs[0].lr)
    return out


def factor(pred: float, ref: PeakLRSweep) -> float:
    return max(pred / ref.peak_lr_, ref.peak_lr_ / pred)


def above(ref: PeakLRSweep) -> bool:
    return ref.peak_lr_ > ref.peak_lrs_.max() * 1.0001


def cell(pred: float, ref: PeakLRSweep) -> str:
    return f"{pred:.3g} (x{factor(pred, ref):.2f}, {100 * ref.regret(pred)[()]:.3f} %)"


def ref_cell(ref: PeakLRSweep) -> str:
    return f"{'>' if above(ref) else ''}{ref.peak_lr_:.3g} [{ref.lower_:.3g}, {ref.upper_:.3g}]"


class Score:
    """Collects factor and regret of one method over the rows of a table."""

    def __init__(self) -> None:
        self.f: list[float] = []
        self.r: list[float] = []
        self.inside: list[bool] = []

    def add(self, pred: float, ref: PeakLRSweep) -> None:
        self.f.append(factor(pred, ref))
        self.r.append(100 * float(ref.regret(pred)))
        self.inside.append(not above(ref))

    def summary(self) -> list[str]:
        f, r, ins = np.array(self.f), np.array(self.r), np.array(self.inside)
        return [f"{np.exp(np.mean(np.abs(np.log(f)))):.3f}", f"{np.exp(np.mean(np.abs(np.log(f[ins])))):.3f}",
                f"{f.max():.2f}",
                f"{(f <= 1.25).sum()}/{f.size}", f"{(f[ins] <= 1.25).sum()}/{ins.sum()}",
                f"{r.mean():.3f}", f"{r.max():.3f}", f"{(r <= 0.3).sum()}/{r.size}"]


SUMMARY_HEADER = ["method", "geo-mean factor", "geo-mean where ref inside sweep", "max factor", "factor <= 1.25",
                  "<= 1.25 where ref inside sweep",
                  "mean regret %", "max regret %", "regret <= 0.3 %"]


# -- sections ----------------------------------------------------------------------------

def seed_noise() -> float:
    runs = collections.defaultdict(list)
    for g in ("main", "grad_norm"):
        for c in load_schaipp(n_layer="12", n_embd="768", group=g):
            runs[sweep_key(c.meta) + (float(c.meta["base_lr"]),)].append(float(c.meta["final_val_loss_full"]))
    d = np.array([(v[0] - v[1]) / np.mean(v) for v in runs.values() if len(v) == 2 and max(v) < 5])
    sd = float(np.sqrt(np.mean(d**2) / 2))
    emit("## Seed scatter of a final loss (sets the default `noise`)\n")
    emit(f"{d.size} configurations of the 124M grid were run twice (groups main and grad_norm): relative "
         f"sd of one final loss = {sd:.2e} (PeakLRSweep default noise = 4e-4).\n")
    return sd


def form_choice() -> None:
    emit("## Sweep form: leave-one-out error of the final loss at a held-out interior peak LR\n")
    emit("Chosen on the main group's sweeps of <= 25k steps; checked on the main group's 50k sweeps and on "
         "the grad_norm group (50k, peak LRs 1e-4..3e-3).\n")
    rows = []
    sets = [("main, <= 25k (choose)", ("main",), lambda k: k[2] <= 25000),
            ("main, 50k (check)", ("main",), lambda k: k[2] > 25000),
            ("grad_norm, 50k (check)", ("grad_norm",), lambda k: True)]
    for form in ("inverse", "log-quadratic"):
        row = [form]
        for _, groups, sel in sets:
            errs = []
            for key, s in fit_sweeps(grid_curves(groups), form=form).items():
                g, y = s.peak_lrs_, s.final_losses_
                if not sel(key) or np.unique(g).size < 4:
                    continue
                for i in range(g.size):
                    if g[i] in (g.min(), g.max()):
                        continue
                    keep = np.arange(g.size) != i
                    loo = PeakLRSweep(form=form).fit_final(g[keep], y[keep], s.eta_)
                    errs.append(abs(float(loo.predict_loss(g[i])) - y[i]))
            row.append(f"{np.mean(errs):.4f} (n={len(errs)})")
        rows.append(row)
    table(["form"] + [s[0] for s in sets], rows)


def cooldown_transfer(sweeps: dict, horizons: tuple[int, ...], title: str) -> None:
    emit(f"## Cooldown transfer: {title}\n")
    emit("Source: the WSD sweep with 20 % linear cooldown at the same horizon (one sweep, so lrtune is the "
         "theory's ratio with an interval). Cells: predicted peak LR (factor, regret).\n")
    rows = []
    scores = {m: Score() for m in ("lrtune", "theory only", "no transfer")}
    covered = []
    for T in horizons:
        src = sweeps[("wsd-linear", 0.2, T, 0.0)]
        tr = PeakLRTransfer().fit([src])
        for c in COOLDOWNS:
            if c == 0.2 or ("wsd-linear", c, T, 0.0) not in sweeps:
                continue
            ref = sweeps[("wsd-linear", c, T, 0.0)]
            r = tr.predict(ref.eta_)
            for m, v in (("lrtune", r.peak_lr), ("theory only", r.theory_peak_lr),
                         ("no transfer", r.no_transfer_peak_lr)):
                scores[m].add(v, ref)
            inside = r.lower <= ref.peak_lr_ <= r.upper
            covered.append(inside)
            rows.append([f"{T // 1000}k", f"{c:g}", ref_cell(ref), cell(r.peak_lr, ref),
                         f"[{r.lower:.3g}, {r.upper:.3g}] {'yes' if inside else 'no'}",
                         cell(r.theory_peak_lr, ref), cell(r.no_transfer_peak_lr, ref)])
    table(["T", "cooldown", "sweep's optimum [90 %]", "lrtune", "lrtune 90 % interval, covers",
           "theory only", "no transfer"], rows)
    table(SUMMARY_HEADER, [[m] + s.summary() for m, s in scores.items()])
    emit(f"lrtune's interval covers the sweep's optimum in {sum(covered)}/{len(covered)} rows.\n")


def horizon_transfer(sweeps: dict, targets: dict, title: str) -> None:
    emit(f"## Horizon transfer: {title}\n")
    emit("Sources: the 15k and 25k sweeps. `lrtune` gets the two sweeps of the target's cooldown and learns "
         "the horizon factor h from them (shrunk toward the theory's 1); `lrtune, 12 sweeps` gets all twelve "
         "WSD-linear sweeps at 15k and 25k (cooldowns 0.1..0.9) and learns h and the shape factor s together; "
         "theory only and no transfer start from the 25k sweep of the target's cooldown.\n")
    sources = [sweeps[("wsd-linear", c, T, 0.0)] for T in (15000, 25000) for c in COOLDOWNS]
    pooled = PeakLRTransfer().fit(sources)
    rows = []
    scores = {m: Score() for m in ("lrtune", "lrtune, 12 sweeps", "theory only", "no transfer")}
    covered = []
    for c in COOLDOWNS:
        pair = [sweeps[("wsd-linear", c, T, 0.0)] for T in (15000, 25000)]
        single = PeakLRTransfer().fit(pair)
        theory = PeakLRTransfer().fit([pair[1]])
        for T in (35000, 50000):
            ref = targets.get(("wsd-linear", c, T, 0.0))
            if ref is None:
                continue
            r = single.predict(ref.eta_)
            r2 = pooled.predict(ref.eta_)
            th = theory.predict(ref.eta_)
            vals = {"lrtune": r.peak_lr, "lrtune, 12 sweeps": r2.peak_lr,
                    "theory only": th.theory_peak_lr, "no transfer": pair[1].peak_lr_}
            for m, v in vals.items():
                scores[m].add(v, ref)
            inside = r.lower <= ref.peak_lr_ <= r.upper
            covered.append(inside)
            rows.append([f"{c:g}", f"{T // 1000}k", ref_cell(ref), cell(r.peak_lr, ref) + f" h={r.horizon_factor:.2f}",
                         f"[{r.lower:.3g}, {r.upper:.3g}] {'yes' if inside else 'no'}",
                         cell(r2.peak_lr, ref), cell(th.theory_peak_lr, ref), cell(pair[1].peak_lr_, ref)])
    table(["cooldown", "T", "sweep's optimum [90 %]", "lrtune", "lrtune 90 % interval, covers",
           "lrtune, 12 sweeps", "theory only", "no transfer"], rows)
    table(SUMMARY_HEADER, [[m] + s.summary() for m, s in scores.items()])
    r = pooled.predict(sources[1].eta_, steps=50000)
    emit(f"lrtune's interval covers the sweep's optimum in {sum(covered)}/{len(covered)} rows. Learned from the "
         f"twelve sources: h = {r.horizon_factor:.2f} +- {r.horizon_factor_sd:.2f} (the optimum moves as "
         f"the bound's gamma*^h, about T^-{0.49 * r.horizon_factor:.2f} instead of T^-0.49), "
         f"s = {r.shape_factor:.2f} +- {r.shape_factor_sd:.2f}.\n")


def shape_transfer(sweeps: dict) -> None:
    emit("## Shape transfer: WSD (20 % linear cooldown) to cosine (to 10 %) and to WSD with 1-sqrt cooldown\n")
    emit("Target at 50k. `lrtune` gets the WSD-linear 20 % sweeps at 25k and 50k and the target shape's sweep "
         "at 25k (two shapes: it learns the shape factor s); theory only starts from the WSD sweep at 50k. Two "
         "sources could be reused unchanged: the WSD sweep at 50k and the target shape's sweep at 25k; both "
         "are shown.\n")
    rows = []
    scores = {m: Score() for m in ("lrtune", "theory only", "no transfer (WSD, 50k)",
                                   "no transfer (target shape, 25k)")}
    for key in (("cosine", 0.0, 25000, 0.1), ("wsd-sqrt", 0.2, 25000, 0.0)):
        tgt_key = (key[0], key[1], 50000, key[3])
        if key not in sweeps or tgt_key not in sweeps:
            continue
        ref = sweeps[tgt_key]
        base = sweeps[("wsd-linear", 0.2, 50000, 0.0)]
        srcs = [sweeps[("wsd-linear", 0.2, 25000, 0.0)], base, sweeps[key]]
        r = PeakLRTransfer().fit(srcs).predict(ref.eta_)
        th = PeakLRTransfer().fit([base]).predict(ref.eta_)
        for m, v in (("lrtune", r.peak_lr), ("theory only", th.theory_peak_lr),
                     ("no transfer (WSD, 50k)", base.peak_lr_),
                     ("no transfer (target shape, 25k)", sweeps[key].peak_lr_)):
            scores[m].add(v, ref)
        rows.append([key[0], ref_cell(ref), cell(r.peak_lr, ref) + f" s={r.shape_factor:.2f}",
                     f"[{r.lower:.3g}, {r.upper:.3g}]", cell(th.theory_peak_lr, ref), cell(base.peak_lr_, ref),
                     cell(sweeps[key].peak_lr_, ref), f"{th.bound_ratio:.2f}",
                     f"{sweeps[key].peak_lr_ / sweeps[('wsd-linear', 0.2, 25000, 0.0)].peak_lr_:.2f}",
                     f"{ref.peak_lr_ / base.peak_lr_:.2f}"])
    table(["target (50k)", "sweep's optimum [90 %]", "lrtune", "lrtune 90 % interval", "theory only",
           "no transfer (WSD sweep, 50k)", "no transfer (target shape's sweep, 25k)", "bound ratio to WSD",
           "ratio in the data at 25k", "ratio in the data at 50k"], rows)
    table(SUMMARY_HEADER, [[m] + s.summary() for m, s in scores.items()])


def extension() -> None:
    emit("## Horizon extension of a tuned WSD run (25k, 20 % linear cooldown, peak 1e-3) to 50k\n")
    emit("Laws fitted on the main group's 25k runs at peak 1e-3 (WSD-linear cooldowns 0.1..0.9, cosine to "
         "10 %); predicted and observed val_loss at step 49800 (the last logged step). The observed column is "
         "the real 50k run with that schedule, where the grid has one.\n")
    cs = [c for c in load_schaipp(n_layer="12", n_embd="768", group="main", horizon="25000")
          if abs(c.peak_lr - 1e-3) < 1e-9 and c.meta["decay_type"] in ("linear", "cosine")]
    real = {sweep_key(c.meta): c for c in load_schaipp(n_layer="12", n_embd="768", group="main", horizon="50000")
            if abs(c.peak_lr - 1e-3) < 1e-9}
    tuned = "wsd:steps=25000,peak=0.001,warmup=301,start=0.01,cooldown=0.2"
    laws = {name: make_law(name).fit(cs) for name in ("momentum", "multipower") if name in LAWS}
    plans = extend_horizon(tuned, 50000)
    rows = []
    for p in plans:
        obs = "-"
        if p.spec is not None:
            s = parse_schedule(p.spec)
            for (fam, c, T, _), run in real.items():
                if fam == "wsd-linear" and abs(c - s.cooldown) < 0.01:
                    obs = f"{run.loss[-1]:.4f} (cooldown {c:g})"
        preds = []
        for name, law in laws.items():
            pr = law.predict_interval(p.lr, [49800])
            preds.append(f"{pr.loss[-1]:.4f} [{pr.lower[-1]:.4f}, {pr.upper[-1]:.4f}]")
        rows.append([p.name, p.description, f"{p.parameter:.3f}", f"{p.optimal_peak_ratio:.3f}", *preds, obs])
    table(["plan", "schedule", "rho or cooldown", "gamma* ratio"] + [f"{n} law" for n in laws] + ["observed"], rows)
    emit("Real 50k WSD-linear runs at peak 1e-3 (val_loss at step 49800): " + ", ".join(
        f"cooldown {c:g}: {run.loss[-1]:.4f}" for (fam, c, T, _), run in sorted(real.items()) if fam == "wsd-linear")
        + ". The longer cooldown is capped at 1 - 20000/50000 = 0.6: the cooldown cannot start before the "
          "checkpoint at step 20000.\n")
    emit("wssd rho that keeps gamma* of a WSD run tuned at 4000 steps (20 % linear cooldown, no warmup) "
         "(published: 0.625, 0.525, 0.425, 0.375 on a grid of step 0.025):\n")
    rows = []
    for k in (1.5, 2, 3, 4):
        p = extend_horizon("wsd:steps=4000,peak=1,cooldown=0.2", int(4000 * k))
        rho = [x for x in p if x.name == "wssd"][0].parameter
        rows.append([f"{k:g}x", f"{rho:.3f}", f"{round(rho / 0.025) * 0.025:.3f}"])
    table(["extension", "rho", "nearest grid point"], rows)


def continual() -> None:
    emit("## Continual pre-training: re-warm choices scored by the momentum law\n")
    emit("Law fitted on the main group's runs of at most 25k steps at peak 1e-3 (WSD-linear and cosine); the "
         "first phase is a 25k cosine run at peak 1e-3 down to 10 %, continued to 35k. The grid has no "
         "re-warmed runs, so there is no observed column: this shows the ranking the law gives (best five and "
         "worst three).\n")
    cs = [c for c in load_schaipp(n_layer="12", n_embd="768", group="main")
          if c.horizon <= 25000 and abs(c.peak_lr - 1e-3) < 1e-9 and c.meta["decay_type"] in ("linear", "cosine")]
    law = make_law("momentum").fit(cs)
    plans = rewarm_plans(law, "cosine:steps=25000,peak=0.001,warmup=301,start=0.01,min=0.1", 35000)
    rows = [[f"{p.peak2:.2g}", f"{p.rewarm}", f"{p.predicted_loss:.4f} [{p.lower:.4f}, {p.upper:.4f}]",
             f"{p.bump:+.4f}"] for p in plans[:5] + plans[-3:]]
    table(["peak2", "re-warm steps", "predicted final loss at 35k [90 %]", "bump after the re-warm"], rows)


def main() -> int:
    t0 = time.time()
    emit(f"Command: `{COMMAND}`\n")
    emit("# Peak-LR transfer on the Schaipp 124M grid\n")
    emit("Final loss = `final_val_loss_full`; sweeps fitted with `A/gamma + B*gamma + C`. Factor = "
         "max(pred/ref, ref/pred) against the target sweep's own fitted optimum (`>`: that optimum lies above "
         "the sweep's largest LR, an extrapolation); regret = the target sweep's fitted loss at the predicted "
         "LR over its fitted best.\n")
    seed_noise()
    form_choice()
    main_sweeps = fit_sweeps(grid_curves(("main",)))
    both = fit_sweeps(grid_curves(("main", "grad_norm")))
    cooldown_transfer(main_sweeps, (15000, 25000, 35000, 50000), "main group")
    cooldown_transfer(both, (50000,), "check at 50k with the grad_norm duplicates added (they add peak 3e-3 "
                      "to every cooldown, so the sweeps' optima are no longer extrapolated)")
    horizon_transfer(main_sweeps, main_sweeps, "main group, targets 35k and 50k")
    horizon_transfer(main_sweeps, {k: v for k, v in both.items() if k[2] == 50000},
                     "check: 50k targets with the grad_norm duplicates added")
    shape_transfer(main_sweeps)
    extension()
    continual()
    emit(f"Total time {time.time() - t0:.0f} s.")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "transfer.md"), "w") as f:
        f.write("\n".join(OUT) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
