"""``lrtune transfer``: the optimal peak LR of a schedule from peak-LR sweeps of others."""

from __future__ import annotations

import argparse
import json

from lrtune.cli._common import add_columns_arg, load_curves
from lrtune.curves import DivergedRunError
from lrtune.transfer import FORMS, PeakLRSweep, PeakLRTransfer


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "transfer", help="carry the optimal peak LR of sweeps to another schedule",
        description="Fit each sweep's final loss against its peak LR, then move the optimum to the target "
                    "schedule with the convex bound's optimal-LR ratio (horizon and shape factors learned "
                    "from the sweeps when they span two horizons or shapes).")
    p.add_argument("--sweep", action="append", nargs="+", required=True, metavar="CURVE",
                   help="one sweep: curve CSV files or stored run names of one schedule at 3+ peak LRs "
                        "(repeat --sweep for sweeps at other horizons or shapes)")
    p.add_argument("--to", action="append", required=True, metavar="SPEC",
                   help="target schedule spec, e.g. wsd:steps=50000,warmup=300,cooldown=0.2 (its peak is "
                        "ignored; a re-warm needs peak and peak2, whose ratio is its shape); repeat --to for "
                        "several targets of one fit (JSON: a 'targets' list)")
    p.add_argument("--schedule", metavar="SPEC", help=argparse.SUPPRESS)  # refused with a pointer: see run
    p.add_argument("--db", metavar="URL", help="run store (SQLAlchemy URL); default $LRTUNE_DB or the user data dir")
    add_columns_arg(p)
    p.add_argument("--form", choices=FORMS, default="inverse",
                   help="final loss against peak LR: A/lr + B*lr + C (inverse, default) or a parabola in ln lr")
    p.add_argument("--level", type=float, default=0.9, help="interval probability (default 0.9)")
    p.add_argument("--noise", type=float, default=4e-4,
                   help="relative scatter of a final loss between seeds (default 4e-4, measured on 124M runs of "
                        "50k steps; small models and short runs scatter more: measure it on repeated runs)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.level < 1:
        raise ValueError(f"--level must be in (0, 1), got {args.level}")
    if args.schedule is not None:  # one spec, peak included, for runs that differ in their peak: never a sweep
        raise ValueError("--schedule cannot give a sweep's LRs: its runs differ in peak LR. Import each run with "
                         "its own spec (lrtune runs import FILE --name NAME --schedule SPEC) and pass the names "
                         "to --sweep, or give files with an lr column")
    from lrtune.transfer import _as_schedule_or_eta

    for i, to in enumerate(args.to, 1):  # a bad target fails before any fit
        try:
            _as_schedule_or_eta(to)
        except ValueError as e:
            raise ValueError(f"--to {i} of {len(args.to)}: {e}" if len(args.to) > 1 else str(e)) from None
    sweeps = []
    for i, items in enumerate(args.sweep, 1):
        try:  # a run that diverged after some finite losses is dropped from its sweep
            curves = load_curves(items, db=args.db, diverged="cut", columns=args.columns)
        except DivergedRunError as e:
            raise ValueError(f"{e}; a run without any finite loss before it cannot be read: leave it out of "
                             f"--sweep (it diverged at once)") from None
        try:
            sweeps.append(PeakLRSweep(form=args.form, level=args.level, noise=args.noise).fit(curves))
        except ValueError as e:
            raise ValueError(f"--sweep {i} of {len(args.sweep)}: {e}" if len(args.sweep) > 1 else str(e)) from None
    transfer = PeakLRTransfer(level=args.level).fit(sweeps)
    results = [transfer.predict(to) for to in args.to]
    if args.format == "json":
        targets = []
        for result in results:
            out = {"schedule": result.schedule, "peak_lr": result.peak_lr, "lower": result.lower,
                   "upper": result.upper}
            out.update({k: v for k, v in result.to_dict().items() if k not in out})
            targets.append(out)
        out = targets[0] if len(targets) == 1 else {"targets": targets}
        out["sweeps"] = [s.to_dict() for s in sweeps]
        print(json.dumps(out))
        return 0
    pct = f"{100 * args.level:g} %"
    print(f"{'sweep':>5} {'steps':>7} {'runs':>4} {'optimum':>9} {'lower':>9} {'upper':>9}  ({pct} interval)")
    for i, s in enumerate(sweeps, 1):
        edge = f"  optimum {s.at_edge_} the swept LRs" if s.at_edge_ else ""
        dropped = (f"  dropped as diverged: {', '.join(_named_drops(s))}" if s.dropped_ else "")
        if s.final_step_ < 0.95 * s.horizon_:
            dropped += f"  final losses read at step {s.final_step_}"
        print(f"{i:>5} {s.horizon_:>7} {s.peak_lrs_.size:>4} {s.peak_lr_:>9.3g} {s.lower_:>9.3g} "
              f"{s.upper_:>9.3g}{edge}{dropped}")
    for result in results:
        print(f"\ntarget: {result.schedule}")
        print(f"peak LR {result.peak_lr:.3g}  [{result.lower:.3g}, {result.upper:.3g}] ({pct} interval)")
        print(f"horizon factor {result.horizon_factor:.2f} +- {result.horizon_factor_sd:.2f}, "
              f"shape factor {result.shape_factor:.2f} +- {result.shape_factor_sd:.2f} (theory: 1)")
        print(f"theory only: {result.theory_peak_lr:.3g}   no transfer (nearest sweep's optimum): "
              f"{result.no_transfer_peak_lr:.3g}")
    return 0


def _named_drops(sweep: PeakLRSweep) -> list[str]:
    """``NAME (peak LR G)`` for each run the sweep dropped as diverged."""
    return [f"{name} (peak LR {g:g})" for name, g in zip(sweep.dropped_runs_, sweep.dropped_)]
