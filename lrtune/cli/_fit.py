"""``lrtune fit``: fit one law on observed curves and write it as JSON."""

from __future__ import annotations

import argparse
import sys

from lrtune.cli._common import add_curve_args, add_law_args, load_curves
from lrtune.laws import make_law


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="fit a law on observed loss curves",
                       description="Fit one law on all the curves; print parameters, R^2 and mean relative error.")
    add_law_args(p)
    add_curve_args(p)
    p.add_argument("-o", "--output", metavar="FIT.json", help="write the fitted law here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    curves = load_curves(args.curves, schedule=args.schedule, db=args.db, columns=args.columns)
    law = make_law(args.law or "momentum").fit(curves)
    print(law.summary())
    if args.output:
        law.to_json(args.output)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0
