"""``lrtune suggest``: the schedule and peak LR a fitted law predicts best for a horizon."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from lrtune.cli._common import add_curve_args, add_law_args, load_curves
from lrtune.laws import load_law, make_law
from lrtune.suggest import COOLDOWN_SHAPES, FAMILIES, observed_warmup, suggest


def _floats(text: str, what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be numbers separated by commas, got {text!r}") from None
    if not values:
        raise ValueError(f"{what} is empty")
    return values


def _names(text: str, what: str, allowed: tuple[str, ...]) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(f"{what} must be some of {', '.join(allowed)} separated by commas, got {text!r}")
    return values


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "suggest", help="rank schedules and peak LRs for a horizon by predicted final loss",
        description="Fit a law on observed runs (at several peak LRs), then score every family x cooldown "
                    "fraction x cooldown shape x peak LR at the target horizon and print the best with "
                    "its band and the runners-up.")
    add_curve_args(p)
    add_law_args(p)
    p.add_argument("--steps", required=True, help="target horizon (optimizer updates; 50000 or 5e4)")
    p.add_argument("--fit", metavar="FIT.json", help="use this fitted law instead of fitting one on the curves")
    p.add_argument("--peak-lrs", metavar="LR1,LR2,...",
                   help="peak LRs to try (default: --n-peaks log-spaced over the observed runs' peaks)")
    p.add_argument("--n-peaks", type=int, default=40, help="size of the default peak-LR grid (default 40)")
    p.add_argument("--families", default=",".join(FAMILIES), help=f"default {','.join(FAMILIES)}")
    p.add_argument("--cooldowns", default="0.1,0.2,0.3,0.4,0.6,0.8", help="WSD cooldown fractions")
    p.add_argument("--shapes", default=",".join(COOLDOWN_SHAPES), help="WSD cooldown shapes")
    p.add_argument("--warmup", type=int, help="warmup steps (default: the longest observed run's)")
    p.add_argument("--min", type=float, default=0.0, dest="min_lr", help="final LR / peak (default 0)")
    p.add_argument("--top", type=int, default=5, help="runners-up to show (default 5)")
    p.add_argument("--level", type=float, default=0.9, help="band probability (default 0.9)")
    p.add_argument("--no-correction", action="store_true",
                   help="rank by the law alone (default: correct each candidate by the law's residuals on "
                        "the observed runs that resemble it)")
    p.add_argument("--free-form", action="store_true",
                   help="also optimise a free-form LR sequence against the law")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--plot", metavar="FILE.png", help="draw the predicted curves of the best few")
    p.add_argument("--emit", choices=("torch",), help="print Python that builds the suggestion as a LambdaLR")
    p.set_defaults(run=run)


def _steps(text: str) -> int:
    try:
        v = float(text)
        if not v.is_integer():
            raise ValueError
    except (ValueError, OverflowError):
        raise ValueError(f"--steps must be a whole number of optimizer updates, got {text!r}") from None
    if v < 2:
        raise ValueError(f"--steps must be at least 2, got {text!r}")
    return int(v)


def run(args: argparse.Namespace) -> int:
    args.steps = _steps(args.steps)
    if args.emit and args.format != "table":
        raise ValueError(f"--emit {args.emit} prints Python code, --format {args.format} prints JSON: give one of them")
    if args.fit and args.law is not None:
        fitted = load_law(args.fit).name
        if fitted != args.law:
            raise ValueError(f"--fit {args.fit} holds a {fitted} law but --law {args.law} was given: drop one")
    curves = load_curves(args.curves, schedule=args.schedule, db=args.db, columns=args.columns)
    if args.peak_lrs:
        peaks = _floats(args.peak_lrs, "--peak-lrs")
    else:
        if args.n_peaks < 2:
            raise ValueError(f"--n-peaks must be >= 2, got {args.n_peaks}")
        lo = min(c.peak_lr for c in curves)
        hi = max(c.peak_lr for c in curves)
        if hi <= lo * (1 + 1e-6):
            raise ValueError(f"all observed runs have peak LR {lo:g}: the law cannot rank peak LRs; "
                             "add runs at other peak LRs or give --peak-lrs")
        peaks = [float(f"{g:.3g}") for g in np.geomspace(lo, hi, args.n_peaks)]
    law = load_law(args.fit) if args.fit else make_law(args.law or "momentum").fit(curves)
    warmup, start = observed_warmup(curves)
    if args.warmup is not None:
        warmup = args.warmup
    elif warmup >= args.steps:
        raise ValueError(f"the observed runs warm up for {warmup} steps, not fewer than --steps {args.steps}; "
                         f"give --warmup")
    result = suggest(
        law, args.steps, peaks,
        families=_names(args.families, "--families", FAMILIES),
        cooldowns=_floats(args.cooldowns, "--cooldowns"),
        shapes=_names(args.shapes, "--shapes", COOLDOWN_SHAPES),
        warmup=warmup, start=start, min_lr=args.min_lr, level=args.level, top=args.top,
        free_form=args.free_form, curves=None if args.no_correction else curves,
    )
    if args.plot:
        print(f"wrote {_plot(law, result, args.plot, args.level)}", file=sys.stderr)
    if args.emit == "torch":
        if result.at_edge:  # the code alone would hide it: a comment in it and a warning line
            end = "smallest" if result.at_edge == "below" else "largest"
            note = (f"{result.best.peak_lr:.3g} is the {end} peak LR tried: the optimum may lie {result.at_edge} it "
                    f"(widen --peak-lrs)")
            print(f"lrtune: warning: {note}", file=sys.stderr)
            print(f"# note: {note}")
        print("import torch")
        print("from lrtune.schedules import to_lambda_lr")
        print()
        print("# optimizer = torch.optim.AdamW(model.parameters())")
        print(f"scheduler = to_lambda_lr({result.best.schedule!r}, optimizer)")
        print("# call scheduler.step() after every optimizer.step()")
        return 0
    if args.format == "json":
        print(json.dumps(result.to_dict()))
        return 0
    pct = f"{100 * args.level:g} %"
    print(f"horizon {result.steps}: {result.n_candidates} candidates scored by the {law.name} law in "
          f"{result.seconds:.2f} s ({result.candidates_per_second:,.0f} per second)")
    if not args.no_correction:
        print(f"predictions corrected by the law's residuals on the {len(curves)} observed runs "
              "(--no-correction: the law alone)")
    b = result.best
    print(f"\nbest: {b.schedule}")
    print(f"  peak LR {b.peak_lr:.3g}, predicted final loss {b.predicted_loss:.4f} "
          f"[{b.lower:.4f}, {b.upper:.4f}] ({pct} band)")
    if result.at_edge:
        end = "smallest" if result.at_edge == "below" else "largest"
        print(f"  note: {b.peak_lr:.3g} is the {end} peak LR tried, so the optimum may lie {result.at_edge} "
              f"it: widen the range (--peak-lrs, or observed runs at peak LRs {result.at_edge} it)")
    if result.alternatives:
        print("\nrunners-up (best peak LR of each other shape):")
        print(f"  {'loss':>8} {'lower':>8} {'upper':>8} {'peak LR':>9}  schedule")
        for a in result.alternatives:
            print(f"  {a.predicted_loss:>8.4f} {a.lower:>8.4f} {a.upper:>8.4f} {a.peak_lr:>9.3g}  {a.schedule}")
    if result.free_form is not None:
        f = result.free_form
        print(f"\n{f.label}:")
        print(f"  peak LR {f.peak_lr:.3g}, predicted final loss {f.predicted_loss:.4f} [{f.lower:.4f}, {f.upper:.4f}]")
        print("  knots (step:LR): " + " ".join(f"{t}:{v:.3g}" for t, v in f.knots))
    return 0


def _plot(law, result, path: str, level: float) -> str:
    from lrtune.plotting import plot_predictions
    from lrtune.schedules import parse_schedule

    def label(spec: str) -> str:
        s = parse_schedule(spec)
        what = f"wsd, {s.shape} cooldown {s.cooldown:g}" if s.family == "wsd" else s.family
        return f"{what}, peak {s.peak:.3g}"

    def factor(lr, predicted: float) -> float:  # the residual correction of the ranking, if any
        return predicted / float(np.ravel(law.predict(lr, [lr.size]))[-1])

    items = [result.best] + result.alternatives[:3]
    schedules = []
    for i, s in enumerate(items):
        lr = parse_schedule(s.schedule).lr()
        schedules.append((("best: " if i == 0 else "") + label(s.schedule), lr, factor(lr, s.predicted_loss)))
    if result.free_form is not None:
        f = result.free_form
        schedules.append(("free-form (optimised against the law)", f.lr, factor(f.lr, f.predicted_loss)))
    return plot_predictions(law, path, schedules=schedules, level=level,
                     title=f"{law.name} law: best schedules for {result.steps} steps")
