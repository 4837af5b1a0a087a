"""``lrtune plot``: a PNG of observed and predicted curves with bands, LR underneath."""

from __future__ import annotations

import argparse
import sys

from lrtune.cli._common import Once, add_columns_arg, load_curves
from lrtune.laws import load_law
from lrtune.plotting import plot_predictions
from lrtune.schedules import parse_schedule


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="plot observed and predicted curves with their bands",
                       description="Write a PNG: observed curves and the fit's predictions with bands, "
                                   "the LR schedules underneath.")
    p.add_argument("fit", metavar="FIT.json", help="a fit written by 'lrtune fit -o'")
    p.add_argument("curves", nargs="*", metavar="CURVE", help="observed curve CSVs (or stored run names)")
    p.add_argument("--predict", action="append", default=[], metavar="SPEC",
                   help="also draw the prediction for this schedule (repeatable)")
    p.add_argument("--schedule", metavar="SPEC", action=Once,
                   help="schedule spec giving the LR of the curves when the files do not")
    p.add_argument("--db", metavar="URL", help="run store (SQLAlchemy URL)")
    add_columns_arg(p)
    p.add_argument("--level", type=float, default=0.9, help="band probability (default 0.9)")
    p.add_argument("-o", "--output", required=True, metavar="FILE.png")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    law = load_law(args.fit)
    curves = load_curves(args.curves, schedule=args.schedule, db=args.db, columns=args.columns) if args.curves else []
    schedules = [(spec, parse_schedule(spec).lr()) for spec in args.predict]
    if not curves and not schedules:
        raise ValueError("nothing to plot: give curve files or --predict SPEC")
    path = plot_predictions(law, args.output, curves, schedules, level=args.level)
    print(f"wrote {path}", file=sys.stderr)
    return 0
