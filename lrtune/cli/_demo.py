"""``lrtune demo``: fit both laws on bundled real curves, predict held-out schedules."""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from lrtune.datasets import MPL_MODELS, mpl_split
from lrtune.laws import LAWS, make_law
from lrtune.plotting import plot_predictions


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="fit both laws on bundled real curves and predict held-out schedules",
                       description="Fit every law on three real training curves (the multi-power-law "
                                   "paper's split), print predicted vs actual loss for six held-out "
                                   "schedules and write a PNG per law.")
    p.add_argument("--model", choices=MPL_MODELS, default="25M", help="model size of the bundled curves (default 25M)")
    p.add_argument("--out", default="lrtune-demo", metavar="DIR", help="folder for the PNGs and fits (default lrtune-demo)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    os.makedirs(args.out, exist_ok=True)
    train, test = mpl_split(args.model)
    print(f"{args.model} model: fitting on {', '.join(c.name for c in train)}; "
          f"predicting {', '.join(c.name for c in test)}\n")
    for name in LAWS:
        t0 = time.perf_counter()
        law = make_law(name).fit(train)
        fit_s = time.perf_counter() - t0
        print(f"== {name} law (fit in {fit_s:.2f} s; R^2 {law.r2_:.4f}, train error {100 * law.mean_rel_error_:.3f} %)")
        print(f"{'held-out schedule':<20} {'step':>6} {'actual':>7} {'predicted':>9} {'90% band':>17} {'error':>7}")
        errors, inside = [], []
        for c in test:
            pred = law.predict_interval(c.lr, c.steps, model_size=law.curve_model_size(c))
            err = np.abs(pred.loss - c.loss) / c.loss
            errors.append(err)
            inside.append((c.loss >= pred.lower) & (c.loss <= pred.upper))
            for j in np.unique(np.linspace(0, c.steps.size - 1, 3).round().astype(int)):
                print(f"{c.name:<20} {c.steps[j]:>6} {c.loss[j]:>7.4f} {pred.loss[j]:>9.4f} "
                      f"[{pred.lower[j]:.4f}, {pred.upper[j]:.4f}] {100 * err[j]:>6.2f}%")
        e, ins = np.concatenate(errors), np.concatenate(inside)
        print(f"held-out mean error {100 * e.mean():.3f} %, worst {100 * e.max():.3f} %, "
              f"{100 * ins.mean():.1f} % of points inside the 90 % band")
        png = os.path.join(args.out, f"demo_{name}_{args.model}.png")
        plot_predictions(law, png, test, level=0.9,
                         title=f"{name} law fitted on 3 curves ({args.model}), held-out schedules")
        law.to_json(os.path.join(args.out, f"fit_{name}_{args.model}.json"))
        print(f"wrote {png}\n")
    return 0
