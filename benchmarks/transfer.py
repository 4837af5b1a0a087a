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

Two sets of sweeps are scored.  ``full grid``: every run of a configuration in the 124M grid,
groups main and grad_norm (the grad_norm group repeats the 50k sweeps and adds peak 3e-3, as
in the optima Schaipp et al. published); ``main only``: the main group alone, whose 50k
sweeps stop at 2e-3, so their optima for cooldowns >= 0.6 are extrapolations of the fit or
sit at its edge.  A status table at the top of the results file gives the issue's lines for
both.  The generated sweep's tables are in ``benchmarks/transfer_generated.py``.
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
from lrtune.transfer import FORMS, PeakLRSweep, PeakLRTransfer, extend_horizon, rewarm_plans

COMMAND = "python benchmarks/transfer.py"
HERE = os.path.dirname(os.path.abspath(__file__))
COOLDOWNS = (0.1, 0.2, 0.4, 0.6, 0.8, 0.9)
AVERAGED = "lrtune, averaged with no transfer"
from _report import OUT, emit, save, table  # noqa: E402  (benchmarks/ is on sys.path when run)



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


def optimum_stability(main_sweeps: dict, both: dict) -> None:
    emit("## How far a sweep's fitted optimum moves when a run beyond its edge is added (50k)\n")
    emit("The main group's 50k sweeps stop at peak 2e-3; the grad_norm group adds a run at 3e-3 (and repeats the "
         "others). Each cell: the optimum fitted on the main runs -> with all runs (factor). This is how much a "
         "target's reference optimum (and a source's) can rest on the fitted form where the sweep does not "
         "bracket it; the default form stays `inverse` (chosen by the leave-one-out loss error above, and the form "
         "of the published optima), so the tables score against it.\n")
    rows = []
    shifts = {f: [] for f in FORMS}
    for key in sorted(k for k in both if k[2] == 50000 and k in main_sweeps and k[0] == "wsd-linear"):
        row = [f"{key[1]:g}"]
        for form in FORMS:
            a = PeakLRSweep(form=form).fit_final(main_sweeps[key].peak_lrs_, main_sweeps[key].final_losses_,
                                                 main_sweeps[key].eta_)
            b = PeakLRSweep(form=form).fit_final(both[key].peak_lrs_, both[key].final_losses_, both[key].eta_)
            f = max(a.peak_lr_ / b.peak_lr_, b.peak_lr_ / a.peak_lr_)
            shifts[form].append(f)
            row.append(f"{'>' if above(a) else ''}{a.peak_lr_:.3g} -> {b.peak_lr_:.3g} (x{f:.2f})")
        rows.append(row)
    rows.append(["max"] + [f"x{max(shifts[f]):.2f}" for f in FORMS])
    table(["cooldown (WSD linear, 50k)"] + [f"form {f}" for f in FORMS], rows)


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
    return scores


def horizon_transfer(sweeps: dict, targets: dict, title: str) -> None:
    emit(f"## Horizon transfer: {title}\n")
    emit("Sources: the 15k and 25k sweeps. `lrtune` gets the two sweeps of the target's cooldown and learns "
         "the horizon factor h from them (shrunk toward the theory's 1); `lrtune, 12 sweeps` gets all twelve "
         "WSD-linear sweeps at 15k and 25k (cooldowns 0.1..0.9) and learns h and the shape factor s together; "
         f"`{AVERAGED}` gets the same two sweeps as lrtune but also weighs the hypothesis h = 0 (the optimum does "
         "not move with the horizon) with prior probability 0.5 against the theory's h ~ N(1, 0.5^2) and averages "
         "the two by their marginal likelihoods (not the default); "
         "theory only and no transfer start from the 25k sweep of the target's cooldown.\n")
    sources = [sweeps[("wsd-linear", c, T, 0.0)] for T in (15000, 25000) for c in COOLDOWNS]
    pooled = PeakLRTransfer().fit(sources)
    rows = []
    scores = {m: Score() for m in ("lrtune", "lrtune, 12 sweeps", AVERAGED, "theory only", "no transfer")}
    covered = []
    for c in COOLDOWNS:
        pair = [sweeps[("wsd-linear", c, T, 0.0)] for T in (15000, 25000)]
        single = PeakLRTransfer().fit(pair)
        averaged = PeakLRTransfer(null_weight=0.5).fit(pair)
        theory = PeakLRTransfer().fit([pair[1]])
        for T in (35000, 50000):
            ref = targets.get(("wsd-linear", c, T, 0.0))
            if ref is None:
                continue
            r = single.predict(ref.eta_)
            r2 = pooled.predict(ref.eta_)
            ra = averaged.predict(ref.eta_)
            th = theory.predict(ref.eta_)
            vals = {"lrtune": r.peak_lr, "lrtune, 12 sweeps": r2.peak_lr, AVERAGED: ra.peak_lr,
                    "theory only": th.theory_peak_lr, "no transfer": pair[1].peak_lr_}
            for m, v in vals.items():
                scores[m].add(v, ref)
            inside = r.lower <= ref.peak_lr_ <= r.upper
            covered.append(inside)
            rows.append([f"{c:g}", f"{T // 1000}k", ref_cell(ref), cell(r.peak_lr, ref) + f" h={r.horizon_factor:.2f}",
                         f"[{r.lower:.3g}, {r.upper:.3g}] {'yes' if inside else 'no'}",
                         cell(r2.peak_lr, ref), cell(ra.peak_lr, ref) + f" w={ra.theory_weight:.2f}",
                         cell(th.theory_peak_lr, ref), cell(pair[1].peak_lr_, ref)])
    table(["cooldown", "T", "sweep's optimum [90 %]", "lrtune", "lrtune 90 % interval, covers",
           "lrtune, 12 sweeps", AVERAGED + " (w: theory's posterior weight)", "theory only", "no transfer"], rows)
    table(SUMMARY_HEADER, [[m] + s.summary() for m, s in scores.items()])
    r = pooled.predict(sources[1].eta_, steps=50000)
    emit(f"lrtune's interval covers the sweep's optimum in {sum(covered)}/{len(covered)} rows. Learned from the "
         f"twelve sources: h = {r.horizon_factor:.2f} +- {r.horizon_factor_sd:.2f} (the optimum moves as "
         f"the bound's gamma*^h, about T^-{0.49 * r.horizon_factor:.2f} instead of T^-0.49), "
         f"s = {r.shape_factor:.2f} +- {r.shape_factor_sd:.2f}.\n")
    return scores


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
            pr = law.predict_interval(p.lr, [49800], warn=False)
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


def status(cool: dict, cool_main: dict, hor: dict, hor_main: dict) -> list[str]:
    """The issue's "Done when" lines, computed from the tables below."""
    out = ["## Status of the issue's lines (computed from the tables below)\n",
           "Factor line: predicted peak LR within a factor 1.25 of the target sweep's fitted optimum on every row; "
           "loss line: the target sweep's fitted loss at the predicted LR within 0.3 % of its fitted best on every "
           "row; horizon baseline line: lrtune's geo-mean factor and max regret no worse than reusing the source "
           "sweep's optimum unchanged. `full grid`: each sweep holds every run of its configuration in the 124M "
           "grid (groups main and grad_norm; the grad_norm group repeats the 50k sweeps and adds peak 3e-3, "
           "which is how Schaipp et al. got their published 50k optima); `main only`: the main group alone, "
           "whose 50k sweeps stop at 2e-3 so that their optima for cooldowns >= 0.6 are extrapolations (these "
           "rows are the tables as they stood before the full-grid sweeps were scored; the two sets differ only at "
           "50k, where the targets and, in the cooldown table, the 20 % source sweep gain the 3e-3 runs). A miss counted `extrapolated` is a row "
           "whose target optimum lies above its sweep's largest LR, i.e. the reference itself is an "
           "extrapolation of the fitted form.\n",
           "| table | sweeps | lrtune within 1.25 | max factor | max regret % | factor line | loss line | "
           "lrtune geo-mean factor | no transfer geo-mean factor | theory only geo-mean factor | "
           "beats no transfer | lrtune / no transfer geo-mean where the target optimum lies inside its sweep | "
           "averaged with no transfer (null_weight 0.5): within 1.25, max factor, geo-mean, max regret % |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, data, sc in (("cooldown transfer", "full grid", cool), ("cooldown transfer", "main only", cool_main),
                           ("horizon transfer", "full grid", hor), ("horizon transfer", "main only", hor_main)):
        lr, nt, th = sc["lrtune"], sc["no transfer"], sc["theory only"]
        f, r = np.array(lr.f), np.array(lr.r)
        n_in = int((f <= 1.25).sum())
        miss_above = sum(1 for fi, ins in zip(f, lr.inside) if fi > 1.25 and not ins)
        gm = lambda x: float(np.exp(np.mean(np.abs(np.log(np.array(x.f))))))
        gm_in = lambda x: float(np.exp(np.mean(np.abs(np.log(np.array(x.f)[np.array(x.inside)])))))
        beats = gm(lr) <= gm(nt) and max(lr.r) <= max(nt.r)
        out.append(f"| {name} | {data} | {n_in}/{f.size} | {f.max():.2f} | {r.max():.3f} | "
                   f"{'met' if n_in == f.size else f'unmet ({f.size - n_in} misses, {miss_above} with the target optimum extrapolated above its sweep)'} | "
                   f"{'met' if (r <= 0.3).all() else 'unmet'} | {gm(lr):.3f} | {gm(nt):.3f} | {gm(th):.3f} | "
                   f"{'yes' if beats else 'no'} | {gm_in(lr):.3f} / {gm_in(nt):.3f} ({sum(lr.inside)} rows) | "
                   + (f"{(np.array(sc[AVERAGED].f) <= 1.25).sum()}/{f.size}, {max(sc[AVERAGED].f):.2f}, "
                      f"{gm(sc[AVERAGED]):.3f}, {max(sc[AVERAGED].r):.3f} |" if AVERAGED in sc
                      else "- (one source: nothing to average) |"))
    out.append("")
    return out


def form_robustness() -> None:
    """The status rows again with every sweep fitted by the other form (not the default)."""
    import contextlib
    import io

    rows = []
    for label, groups in (("full grid", ("main", "grad_norm")), ("main only", ("main",))):
        sw = fit_sweeps(grid_curves(groups), form="log-quadratic")
        n = len(OUT)
        with contextlib.redirect_stdout(io.StringIO()):
            c = cooldown_transfer(sw, (15000, 25000, 35000, 50000), "")
            h = horizon_transfer(sw, sw, "")
        del OUT[n:]
        block = status(c, c, h, h)
        rows += [r.replace("| full grid |", f"| {label}, log-quadratic |") for r in (block[-5], block[-3])]
    emit("## Robustness: the status rows with every sweep fitted by the log-quadratic form instead\n")
    emit("Not the default (the inverse form is; see the form choice above). Sources and targets are both refitted, "
         "so this shows how much the scores rest on the form the sweeps' optima are read from. The log-quadratic "
         "optima are the more stable ones when a run beyond the edge is added (section above), and under them the "
         "optima move less with the horizon than the inverse form's do: the cooldown line improves and the horizon "
         "transfer loses to no transfer.\n")
    table(["table", "sweeps", "lrtune within 1.25", "max factor", "max regret %", "factor line", "loss line",
           "lrtune geo-mean factor", "no transfer geo-mean factor", "theory only geo-mean factor",
           "beats no transfer", "lrtune / no transfer geo-mean where the target optimum lies inside its sweep",
           "averaged with no transfer (null_weight 0.5): within 1.25, max factor, geo-mean, max regret %"],
          [[x.strip() for x in r.strip().strip("|").split("|")] for r in rows])


def main() -> int:
    t0 = time.time()
    emit(f"Command: `{COMMAND}` (with OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1)\n")
    emit("# Peak-LR transfer on the Schaipp 124M grid\n")
    emit("Final loss = `final_val_loss_full`; sweeps fitted with `A/gamma + B*gamma + C`. Factor = "
         "max(pred/ref, ref/pred) against the target sweep's own fitted optimum (`>`: that optimum lies above "
         "the sweep's largest LR, an extrapolation); regret = the target sweep's fitted loss at the predicted "
         "LR over its fitted best. All defaults (sweep form, seed noise, priors of the transfer) were chosen "
         "on the Schaipp grid as described in the first two sections; nothing was tuned on the transfer rows.\n")
    status_at = len(OUT)
    seed_noise()
    form_choice()
    main_sweeps = fit_sweeps(grid_curves(("main",)))
    both = fit_sweeps(grid_curves(("main", "grad_norm")))
    optimum_stability(main_sweeps, both)
    cool = cooldown_transfer(both, (15000, 25000, 35000, 50000),
                             "full grid (every run of each configuration: main + grad_norm duplicates, which add "
                             "peak 3e-3 to every 50k cooldown)")
    cool_main = cooldown_transfer(main_sweeps, (15000, 25000, 35000, 50000),
                                  "main group only (the table before the full-grid sweeps; its 50k optima for "
                                  "cooldowns >= 0.6 are extrapolations or lie at the sweep's edge)")
    hor = horizon_transfer(both, both, "full grid, targets 35k and 50k")
    hor_main = horizon_transfer(main_sweeps, main_sweeps, "main group only, targets 35k and 50k")
    shape_transfer(both)
    form_robustness()
    extension()
    continual()
    block = status(cool, cool_main, hor, hor_main)
    print("\n".join(block))
    OUT[status_at:status_at] = block
    emit(f"Total time {time.time() - t0:.0f} s.")
    save("transfer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
