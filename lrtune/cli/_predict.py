"""``lrtune predict``: the loss a fitted law predicts for a schedule, with its band."""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from lrtune.cli._common import Once, add_columns_arg, load_curves, parse_columns, parse_steps
from lrtune.curves import read_curves, read_lr_csv
from lrtune.laws import load_law
from lrtune.schedules import parse_schedule


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict the loss curve of a schedule from a fit",
                       description="Predict the loss (with a band) of a schedule given as an LR CSV or a spec.")
    p.add_argument("fit", metavar="FIT.json", help="a fit written by 'lrtune fit -o'")
    p.add_argument("--lr-csv", metavar="FILE.csv",
                   help="CSV with the LR of every step (columns step, lr), or a stored run's name; with "
                        "--schedule, a curve file whose steps with a loss are the steps to predict at")
    p.add_argument("--schedule", metavar="SPEC", action=Once,
                   help="schedule spec, e.g. wsd:steps=24000,peak=3e-4,cooldown=0.2")
    p.add_argument("--steps", metavar="S1,S2,...",
                   help="steps to predict at (default: the steps of --lr-csv that have a loss, "
                        "else 100 evenly spaced steps ending at the last step)")
    p.add_argument("--level", type=float, default=0.9, help="band probability (default 0.9)")
    p.add_argument("--model-size", type=float,
                   help="parameters of the model: required by, and only taken by, a law fitted across model sizes")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output (default: table)")
    p.add_argument("--db", metavar="URL", help="run store for a stored run's name (SQLAlchemy URL); default "
                                              "$LRTUNE_DB or the user data dir")
    add_columns_arg(p)
    p.set_defaults(run=run)


def predict_targets(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """(lr array, steps) from --lr-csv/--schedule and --steps."""
    steps = parse_steps(args.steps)
    if args.lr_csv is None and args.schedule is None:
        raise ValueError("give the schedule to predict: --schedule SPEC or --lr-csv FILE.csv (or both: the spec's "
                         "LRs at the steps of the file that have a loss)")
    if args.lr_csv and args.schedule:  # a held-out run without an LR for every step (a logger's export)
        if os.path.isfile(args.lr_csv):
            runs = read_curves(args.lr_csv, schedule=args.schedule, columns=parse_columns(args.columns))
        else:
            runs = load_curves([args.lr_csv], schedule=args.schedule, db=args.db)
        if len(runs) != 1:
            raise ValueError(f"{args.lr_csv}: holds {len(runs)} runs ({', '.join(c.name for c in runs[:3])}); "
                             f"give one run")
        return runs[0].lr, (runs[0].steps if steps is None else steps)
    if args.lr_csv:
        if os.path.isfile(args.lr_csv):
            lr, loss_steps = read_lr_csv(args.lr_csv, columns=parse_columns(args.columns))
        else:  # a stored run (the error names the store when there is none of that name)
            (run,) = load_curves([args.lr_csv], db=args.db)
            lr, loss_steps = run.lr, run.steps
        if steps is None:
            steps = loss_steps
    else:
        lr = parse_schedule(args.schedule).lr()
    if steps is None:
        steps = np.unique(np.linspace(lr.size / 100, lr.size, 100).round().astype(np.int64).clip(1))
    return lr, steps


def run(args: argparse.Namespace) -> int:
    law = load_law(args.fit)
    sized = bool(getattr(law, "model_size", False))
    if sized and args.model_size is None:
        raise ValueError(f"{args.fit} was fitted across model sizes: give the model's number of parameters "
                         f"with --model-size N")
    if not sized and args.model_size is not None:
        raise ValueError(f"--model-size: {args.fit} has no model-size term (it was fitted on one model size), "
                         f"so it cannot predict another size")
    lr, steps = predict_targets(args)
    pred = law.predict_interval(lr, steps, level=args.level, model_size=args.model_size)
    if args.format == "json":
        print(json.dumps(pred.to_dict()))
    elif args.format == "csv":
        print("step,loss,lower,upper")
        for row in zip(pred.steps, pred.loss, pred.lower, pred.upper):
            print(",".join([str(int(row[0]))] + [repr(float(x)) for x in row[1:]]))
    else:
        print(f"{'step':>8} {'loss':>9} {'lower':>9} {'upper':>9}   ({int(100 * args.level)} % band, law {law.name})")
        for s, l, lo, hi in zip(pred.steps, pred.loss, pred.lower, pred.upper):
            print(f"{s:>8} {l:>9.4f} {lo:>9.4f} {hi:>9.4f}")
    return 0
