"""``lrtune runs``: import curve CSVs into the run store, list, export and delete runs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any

from lrtune.cli._common import Once, add_columns_arg, parse_columns
from lrtune.curves import Curve, read_curves, write_curve_csv
from lrtune.store import Store, StoreNotFoundError, _parse_url

_DB_HELP = "run store: SQLAlchemy URL or SQLite file (default $LRTUNE_DB, else the user data dir)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="keep runs in the run store: import, list, export, delete",
                       description="The run store keeps observed curves (and fits) in a database; "
                                   "other commands accept a stored run's name wherever they take a CSV.")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    imp = actions.add_parser("import", help="store the runs of curve CSV files",
                             description="Store one run per CSV run (the run column) or file (its stem).")
    imp.add_argument("files", nargs="+", metavar="FILE", help="curve CSV files (columns step, lr, loss; optional run)")
    imp.add_argument("--schedule", metavar="SPEC", action=Once,
                     help="schedule spec that gives the LR when the files do not")
    imp.add_argument("--name", help="name of the run (only when the files hold a single run)")
    imp.add_argument("--replace", action="store_true", help="overwrite stored runs of the same name")
    imp.add_argument("--diverged", choices=("raise", "cut"), default="raise",
                     help="a run whose loss turns NaN, infinite or <= 0: refuse it (raise, default) or store it up "
                          "to its last loss before and mark where it diverged (cut; transfer then drops it from a "
                          "sweep as diverged)")
    add_columns_arg(imp)

    ls = actions.add_parser("list", help="list the stored runs")
    ls.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")

    ex = actions.add_parser("export", help="write stored runs as a curve CSV")
    ex.add_argument("names", nargs="+", metavar="NAME", help="stored run names")
    ex.add_argument("-o", "--output", metavar="FILE.csv", help="output file (default: standard output)")

    rm = actions.add_parser("delete", help="delete stored runs (all or none)")
    rm.add_argument("names", nargs="+", metavar="NAME", help="stored run names")

    for q in (imp, ls, ex, rm):
        q.add_argument("--db", metavar="URL", help=_DB_HELP)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return _ACTIONS[args.action](args)


def _sidecar(path: str) -> str:
    """Where ``runs export -o FILE.csv`` keeps the runs' schedules and meta: FILE.runs.json."""
    return os.path.splitext(path)[0] + ".runs.json"


def _on_disk(db: str | None) -> None:
    """Refuse an SQLite store in memory (``sqlite://``, ``sqlite:///`` with no path, say an
    unset variable in ``$LRTUNE_DB``): a command's writes to it end with the command."""
    url = _parse_url(db)
    if url.drivername.startswith("sqlite") and url.database in (None, "", ":memory:"):
        raise ValueError(f"the run store {url.render_as_string(hide_password=True)} is an SQLite database in memory: "
                         f"what a command stores there is gone when it ends; give a file (--db runs.db, or "
                         f"LRTUNE_DB=sqlite:////path/to/runs.db)")


def _import(args: argparse.Namespace) -> int:
    _on_disk(args.db)
    curves: list[Curve] = []
    schedules: dict[str, str | None] = {}  # from an export's FILE.runs.json
    for path in args.files:
        found = read_curves(path, schedule=args.schedule, columns=parse_columns(args.columns), diverged=args.diverged)
        side = _sidecar(path)
        if os.path.isfile(side):
            try:
                with open(side) as f:
                    info = json.load(f)
            except ValueError:
                info = None
            if not isinstance(info, dict) or not all(isinstance(v, dict) for v in info.values()):
                raise ValueError(f"{side}: not the runs file 'lrtune runs export' writes (a JSON object of "
                                 f"run name -> schedule and meta)")
            for i, c in enumerate(found):
                if c.name in info:
                    found[i] = dataclasses.replace(c, meta={**info[c.name].get("meta", {}), **c.meta})
                    schedules[c.name] = info[c.name].get("schedule")
        curves.extend(found)
    if args.name is not None:
        if len(curves) != 1:
            raise ValueError(f"--name needs exactly one run, the files hold {len(curves)}: "
                             f"{', '.join(c.name for c in curves)}")
        curves = [dataclasses.replace(curves[0], name=args.name)]
    with Store(args.db) as store:
        if args.schedule is None and any(schedules.values()):  # each run with its exported schedule
            store.add_curves(curves, replace=args.replace,
                             schedules=[schedules.get(c.name) for c in curves])
        else:
            store.add_curves(curves, schedule=args.schedule, replace=args.replace)
        print(f"stored {len(curves)} run(s) in {store}: "
              + ", ".join(f"{c.name} ({c.steps.size} points, {c.horizon} steps)" for c in curves))
    return 0


def _list(args: argparse.Namespace) -> int:
    try:
        store = Store(args.db, create=False)
    except StoreNotFoundError as e:
        runs, where = [], e.url
    else:
        with store:
            runs, where = store.list_runs(), str(store)
    if args.format == "json":
        print(json.dumps([r.to_dict() for r in runs], indent=2))
        return 0
    if not runs:
        print(f"no runs stored in {where}", file=sys.stderr)
        return 0
    width = max(4, *(len(r.name) for r in runs))
    print(f"{'name':<{width}}  {'points':>6}  {'horizon':>8}  {'peak_lr':>10}  schedule")
    for r in runs:
        print(f"{r.name:<{width}}  {r.points:>6}  {r.horizon:>8}  {r.peak_lr:>10.4g}  {r.schedule or '-'}")
    return 0


def _export(args: argparse.Namespace) -> int:
    args.names = list(dict.fromkeys(args.names))  # a name given twice is one run
    with Store(args.db, create=False) as store:
        curves = store.get_curves(args.names)
        specs = {r.name: r.schedule for r in store.list_runs() if r.name in set(args.names)}
    if not args.output:
        write_curve_csv(curves, sys.stdout)
        return 0
    # the schedules and meta beside the CSV, read back by 'runs import'; each file written whole
    # or not at all (a full disk or a kill mid-write left a shorter CSV that imported as a shorter run)
    _write_whole(args.output, lambda f: write_curve_csv(curves, f))
    if os.path.exists(args.output) and not os.path.isfile(args.output):  # /dev/null, a pipe: no folder beside it
        print(f"wrote {len(curves)} run(s) to {args.output} (not a file: their schedules and meta are not "
              f"written; export to a file to keep them)", file=sys.stderr)
        return 0
    side = _sidecar(args.output)
    _write_whole(side, lambda f: json.dump({c.name: {"schedule": specs.get(c.name), "meta": c.meta}
                                            for c in curves}, f, indent=1))
    print(f"wrote {len(curves)} run(s) to {args.output} (schedules and meta: {side})", file=sys.stderr)
    return 0


def _write_whole(path: str, write: Any) -> None:
    """``write(f)`` into a temporary file beside ``path``, then moved onto it."""
    if os.path.exists(path) and not os.path.isfile(path):  # /dev/null, a pipe: nothing to replace
        with open(path, "w", newline="") as f:
            write(f)
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", newline="") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as e:
        raise OSError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _delete(args: argparse.Namespace) -> int:
    _on_disk(args.db)
    with Store(args.db, create=False) as store:
        store.delete_run(args.names)
        print(f"deleted {', '.join(args.names)} from {store}")
    return 0


_ACTIONS = {"import": _import, "list": _list, "export": _export, "delete": _delete}
