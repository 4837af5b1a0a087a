"""Helpers shared by the sub-commands (argument parsing and reading curves)."""

from __future__ import annotations

import argparse
import importlib.util
from typing import Sequence

import numpy as np

from lrtune.curves import Curve, check_columns, read_curves


class Once(argparse.Action):
    """An option that may be given once: argparse keeps the last of repeated ones silently
    (a second ``--schedule`` made every file follow it)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        if getattr(namespace, self.dest, None) is not None:
            why = (": it gives the LRs of every curve file; import runs with different schedules one by one "
                   "(lrtune runs import FILE --name NAME --schedule SPEC) and pass their names"
                   if option_string == "--schedule" else "")
            parser.error(f"{option_string} may be given once{why}")
        setattr(namespace, self.dest, values)


def parse_steps(text: str | None) -> np.ndarray | None:
    """``"100,200,300"`` -> array of ints (None when not given)."""
    if text is None:
        return None
    try:
        values = [int(float(v)) for v in text.split(",") if v.strip()]
        if any(float(v) != int(float(v)) for v in text.split(",") if v.strip()):
            raise ValueError
    except ValueError:
        raise ValueError(f"--steps must be integers separated by commas, got {text!r}") from None
    if not values:
        raise ValueError("--steps is empty")
    return np.asarray(values, dtype=np.int64)


def load_curves(items: Sequence[str], schedule: str | None = None, db: str | None = None,
                diverged: str = "raise", columns: str | None = None) -> list[Curve]:
    """Curves from CSV files (or from the run store by name, when lrtune.store exists);
    ``columns``: the text of ``--columns``."""
    mapping = parse_columns(columns)
    if importlib.util.find_spec("lrtune.store") is not None:
        from lrtune.store import resolve_curves

        return resolve_curves(list(items), db=db, schedule=schedule, diverged=diverged, columns=mapping)
    curves: list[Curve] = []
    for path in items:
        curves.extend(read_curves(path, schedule=schedule, diverged=diverged, columns=mapping))
    return curves


def parse_columns(text: str | None) -> dict[str, str] | None:
    """``--columns step=Step,lr=learning_rate,loss=train/loss`` as a dict."""
    if text is None:
        return None
    out = {}
    for part in text.split(","):
        ours, eq, theirs = part.partition("=")
        if not eq or not ours.strip() or not theirs.strip():
            raise ValueError(f"--columns takes NAME=COLUMN pairs separated by commas (e.g. "
                             f"step=Step,lr=learning_rate,loss=train/loss), got {part!r}")
        out[ours.strip().lower()] = theirs.strip()
    check_columns(out)  # unknown names fail here, before any file is read
    return out


def add_columns_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--columns", metavar="NAME=COLUMN,...",
                   help="read files whose columns are named otherwise, e.g. step=Step,lr=learning_rate,loss=train/loss")


def add_curve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("curves", nargs="+", metavar="CURVE",
                   help="curve CSV files (columns step, lr, loss; optional run) or stored run names")
    p.add_argument("--schedule", metavar="SPEC", action=Once,
                   help="schedule spec that gives the LR when the files do not (once: it applies to every file)")
    p.add_argument("--db", metavar="URL", help="run store (SQLAlchemy URL); default $LRTUNE_DB or the user data dir")
    add_columns_arg(p)


def add_law_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--law", choices=("momentum", "multipower"), default=None,
                   help="which law to fit (default: momentum)")
