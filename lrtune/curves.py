"""Observed loss curves: validation and the curve CSV format.

A :class:`Curve` holds the logged steps, the loss at each, and the per-step LR array of
the run (``lr[i]`` is used by update ``i + 1``; a loss at step ``s`` depends on
``lr[:s]``).  Every constructor checks its input and raises ``ValueError`` naming the
field, the bad value and what is allowed.

CSV format: a header row; columns ``step``, ``lr``, ``loss`` in any order (extra columns
ignored); an optional ``run`` column holds several runs in one file.  A row may leave
``loss`` empty: rows with an LR and no loss are how a file gives the LR of every step
from 1 to the last.  ``lr`` on a row with step ``s`` is the LR of update ``s``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import numbers
import os
import warnings
import weakref
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["Curve", "DivergedRunError", "read_curves", "read_lr_csv", "write_curve_csv", "check_lr", "check_steps", "check_loss"]


def show_value(v: Any) -> str:
    """A value in an error message: numbers plainly (1.5, not np.float64(1.5))."""
    return repr(float(v)) if isinstance(v, numbers.Real) and not isinstance(v, bool) else repr(v)


class DivergedRunError(ValueError):
    """The loss is NaN, infinite or not positive: the run diverged or the log is broken."""


def _as_1d(name: str, values: Any, dtype: type) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-d array of numbers") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-d, got shape {arr.shape}")
    return arr


def check_lr(lr: Any, *, name: str = "lr") -> np.ndarray:
    """A validated float64 LR array: 1-d, non-empty, finite and >= 0."""
    arr = _as_1d(name, lr, np.float64)
    if arr.size == 0:
        raise ValueError(f"{name} is empty: give the LR of every step from 1 to the last")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name} must be finite: {name.rsplit(': ', 1)[-1]}[{i}] (update {i + 1}) is {arr[i]}")
    if (arr < 0).any():
        i = int(np.argmax(arr < 0))
        raise ValueError(f"{name} must be >= 0: {name.rsplit(': ', 1)[-1]}[{i}] (update {i + 1}) is {arr[i]}")
    return arr


def check_steps(steps: Any, *, name: str = "steps", last: int | None = None) -> np.ndarray:
    """Validated int64 steps: integers >= 1, strictly increasing, at most ``last``."""
    arr = _as_1d(name, steps, np.float64)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
        raise ValueError(f"{name} must be integers, got {arr[~(np.isfinite(arr) & (arr == np.round(arr)))][:3].tolist()}")
    if np.abs(arr).max() >= 2.0 ** 62:
        raise ValueError(f"{name} must be step counts, got {arr[np.argmax(np.abs(arr))]:g}")
    arr = arr.astype(np.int64)
    if arr[0] < 1:
        raise ValueError(f"{name} must be >= 1 (a loss at step s is measured after s updates), got {arr[0]}")
    d = np.diff(arr)
    if (d == 0).any():
        raise ValueError(f"{name} has a duplicate step {arr[1:][d == 0][0]}")
    if (d < 0).any():
        i = int(np.argmax(d < 0))
        raise ValueError(f"{name} must be sorted increasingly: step {arr[i + 1]} comes after {arr[i]}")
    if last is not None and arr[-1] > last:
        raise ValueError(f"{name} go up to {arr[-1]} but the LR is known only for steps 1..{last}")
    return arr


def check_loss(loss: Any, *, name: str = "loss") -> np.ndarray:
    arr = _as_1d(name, loss, np.float64)
    bad = ~np.isfinite(arr) | (arr <= 0)
    if bad.any():
        i = int(np.argmax(bad))
        where = f"{name.rsplit(': ', 1)[-1]}[{i}] is {arr[i]}"
        if np.isnan(arr[i]) and not bad[i + 1:].all():  # finite losses follow: a gap in the log
            raise DivergedRunError(
                f"{name} must be finite and > 0: {where}, with finite losses after it. A missing value is no "
                f"loss: leave those points out of steps and loss (keep = np.isfinite(loss)), as read_curves does "
                f"with a file")
        raise DivergedRunError(
            f"{name} must be finite and > 0 (a NaN, infinite or non-positive loss means a diverged "
            f"run or a broken log): {where}"
        )
    return arr


#: LR arrays lrtune keeps unchanged, by id: curves share them instead of copying
_SHARED: "weakref.WeakValueDictionary[int, np.ndarray]" = weakref.WeakValueDictionary()


def shared_lr(lr: np.ndarray) -> np.ndarray:
    """Make ``lr`` read-only and let every :class:`Curve` built on it share it instead of
    copying it (for arrays that are never changed again, like a cache's)."""
    lr.setflags(write=False)
    _SHARED[id(lr)] = lr
    return lr


@dataclasses.dataclass(frozen=True, eq=False)
class Curve:
    """One run: logged ``steps`` (ints >= 1, increasing), ``loss`` at those steps, and the
    per-step ``lr`` of the whole run (at least ``steps[-1]`` long)."""

    steps: np.ndarray
    loss: np.ndarray
    lr: np.ndarray
    name: str = "run"
    meta: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.meta is None:
            object.__setattr__(self, "meta", {})
        if not isinstance(self.meta, dict):
            raise ValueError(f"{self.name}: meta must be a dict, got {type(self.meta).__name__}")
        if not isinstance(self.name, str):
            object.__setattr__(self, "name", str(self.name))
        lr = check_lr(self.lr, name=f"{self.name}: lr")
        if not lr.any():
            raise ValueError(f"{self.name}: lr is 0 at every step, so the run did not train; give the LR it used")
        steps = check_steps(self.steps, name=f"{self.name}: steps", last=lr.size)
        loss = check_loss(self.loss, name=f"{self.name}: loss")
        if loss.size != steps.size:
            raise ValueError(f"{self.name}: steps and loss have different lengths ({steps.size} and {loss.size})")
        # copies: a buffer the caller reuses for the next run must not change this one; an
        # LR array lrtune keeps unchanged (:func:`shared_lr`, a cached schedule's) is shared,
        # so many curves of one long schedule do not each hold a copy
        object.__setattr__(self, "steps", np.array(steps, copy=True))
        object.__setattr__(self, "loss", np.array(loss, copy=True))
        object.__setattr__(self, "lr", lr if _SHARED.get(id(lr)) is lr else np.array(lr, copy=True))

    @property
    def peak_lr(self) -> float:
        """The largest LR of the run (a schedule's ``peak_lr`` is its ``peak`` key, which a
        re-warm's ``peak2`` can exceed)."""
        return float(self.lr.max())

    @property
    def horizon(self) -> int:
        return int(self.lr.size)

    def truncated(self, last_step: int) -> "Curve":
        """The curve observed up to ``last_step`` (the LR array is kept whole)."""
        keep = self.steps <= last_step
        return dataclasses.replace(self, steps=self.steps[keep], loss=self.loss[keep])

    def to_rows(self) -> list[tuple[int, float, float | None]]:
        """(step, lr, loss or None) for every step 1..horizon."""
        loss_at = dict(zip(self.steps.tolist(), self.loss.tolist()))
        return [(s, float(self.lr[s - 1]), loss_at.get(s)) for s in range(1, self.lr.size + 1)]


def _parse_float(text: str, what: str) -> float | None:
    text = text.strip()
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{what}: not a number: {text!r}") from None


def _read_runs(path: str | os.PathLike | io.TextIOBase, needed: tuple[str, ...],
               columns: dict[str, str] | None = None) -> tuple[str, dict[str, list]]:
    """Parse a curve CSV into {run: [(step, lr or None, loss or None), ...]}."""
    if isinstance(path, io.TextIOBase):
        name = getattr(path, "name", None) or "<stream>"
    else:
        name = os.fspath(path)
    if isinstance(path, io.TextIOBase):
        text = path.read().removeprefix("\ufeff")
    else:
        if not os.path.exists(path):
            raise ValueError(f"{name}: no such file")
        if os.path.isdir(path):
            raise ValueError(f"{name}: is a folder, not a CSV file")
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark
                text = f.read()
        except UnicodeDecodeError as e:
            raise ValueError(f"{name}: not a UTF-8 text file ({e.reason} at byte {e.start}); "
                             f"a CSV is expected (a compressed file must be unpacked first)") from None
    if not text.strip():
        raise ValueError(f"{name}: the file is empty (expected a header row with step, lr, loss)")
    if text.lstrip()[:1] in ("{", "["):
        return name, _parse_json(name, text, columns, needed)
    try:
        return name, _parse_rows(name, text, needed, columns)
    except csv.Error as e:
        raise ValueError(f"{name}: not a readable CSV file ({e})") from None


COLUMNS = ("step", "lr", "loss", "run")


def check_columns(columns: dict[str, str] | None) -> dict[str, str]:
    """A column mapping ``{lrtune's name: the file's}`` (keys among step, lr, loss, run)."""
    if columns is None:
        return {}
    if not isinstance(columns, dict):
        raise ValueError(f"columns must be a dict {{lrtune's name: the file's column}}, got {columns!r}")
    bad = sorted(k for k in columns if k not in COLUMNS)
    if bad:
        raise ValueError(f"columns: unknown column name(s) {', '.join(map(repr, bad))}; lrtune's are "
                         f"{', '.join(COLUMNS)}")
    return {k: str(v).strip().lower() for k, v in columns.items()}


def _parse_json(name: str, text: str, columns: dict[str, str] | None, needed: tuple[str, ...]) -> dict[str, list]:
    """The rows of a Hugging Face ``trainer_state.json`` (its ``log_history``): the loss of
    ``columns["loss"]`` (default ``eval_loss`` where the log has one, else the training
    ``loss``) at each logged step, and ``learning_rate``, which the Trainer logs for the next
    update, as the LR of update ``s + 1``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{name}: neither a CSV file nor readable JSON ({e.msg} at line {e.lineno})") from None
    history = data.get("log_history") if isinstance(data, dict) else None
    if not isinstance(history, list):
        raise ValueError(f"{name}: a JSON file, not a CSV; lrtune reads CSV curve files and Hugging Face's "
                         f"trainer_state.json (it has no 'log_history' list)")
    mapping = check_columns(columns)
    step_key, lr_key = mapping.get("step", "step"), mapping.get("lr", "learning_rate")
    entries = [e for e in history if isinstance(e, dict)]
    keys = {k.lower(): k for e in entries for k in e}
    loss_key = mapping.get("loss") or ("eval_loss" if "eval_loss" in keys else "loss")
    for ours, theirs in (("step", step_key), ("loss", loss_key)):
        if theirs not in keys:
            raise ValueError(f"{name}: no {theirs!r} in the log_history of this trainer_state.json to read as "
                             f"{ours!r}; its keys are {_shown_header(sorted(keys))}")
    step_key, loss_key, lr_key = keys[step_key], keys[loss_key], keys.get(lr_key)
    at: dict[int, list] = {}  # step: [lr, loss]
    for i, e in enumerate(entries):
        where = f"{name}, log_history[{i}]"
        if e.get(step_key) is None or (e.get(loss_key) is None and (lr_key is None or e.get(lr_key) is None)):
            continue
        step = _parse_float(str(e[step_key]), f"{where}, step")
        if step is None or not float(step).is_integer() or step < 0:
            raise ValueError(f"{where}: step must be an integer >= 0, got {e[step_key]!r}")
        step = int(step)
        for key, slot, s in ((lr_key, 0, step + 1), (loss_key, 1, step)):  # the logged LR is update s + 1's
            value = e.get(key) if key is not None else None
            if value is None:
                continue
            v = _parse_float(str(value), f"{where}, {key}")
            held = at.setdefault(s, [None, None])
            if held[slot] is not None and held[slot] != v:
                raise ValueError(f"{where}: step {s} is logged twice with different {key} ({held[slot]!r}, {v!r}): "
                                 f"a resumed run logging steps again? keep one entry per step")
            held[slot] = v
    if not at:
        raise ValueError(f"{name}: the log_history has no entry with both {step_key!r} and {loss_key!r}")
    last = max((s for s, v in at.items() if v[1] is not None), default=0)
    for s in [s for s in at if s > last]:  # the LR logged at the last step is that of an update never run
        del at[s]
    if "lr" in needed and sum(v[0] is not None for s, v in at.items() if s >= 1) < max(at):
        raise ValueError(f"{name}: a trainer_state.json does not log every update's LR (it logs the next update's, "
                         f"every logging_steps): give the run's schedule (--schedule SPEC; schedule= in Python), "
                         f"whose LRs at the logged steps are checked")
    folder = os.path.basename(os.path.dirname(os.path.abspath(name))) if name != "<stream>" else "trainer_state"
    if folder.startswith("checkpoint-"):  # output_dir/checkpoint-N/trainer_state.json: the run is output_dir
        folder = os.path.basename(os.path.dirname(os.path.dirname(os.path.abspath(name)))) or folder
    return {folder: [(s, v[0], v[1]) for s, v in sorted(at.items())]}


def _absent(value: float | None) -> bool:
    """An empty cell or a NaN: what an export writes where a row has no value."""
    return value is None or math.isnan(value)


def _shown_header(header: list[str], limit: int = 300) -> str:
    text = ", ".join(header)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(header)} columns)"


def _parse_rows(name: str, text: str, needed: tuple[str, ...], columns: dict[str, str] | None = None) -> dict[str, list]:
    reader = csv.reader(io.StringIO(text, newline=None))  # \r, \r\n and \n all end a row
    header = [h.strip().lower() for h in next(reader)]
    shown = _shown_header(header)  # the file's own names, for messages
    mapping = check_columns(columns)
    for ours, theirs in mapping.items():  # the file's column takes lrtune's name
        if theirs not in header:
            raise ValueError(f"{name}: no column {theirs!r} to read as {ours!r}; the header has {shown}")
        if theirs != ours:
            header = [f"{h} (unused)" if h == ours else h for h in header]
            header[header.index(theirs)] = ours
    missing = [c for c in needed if c not in header]
    if missing:
        sep = next((f" (separated by {what}: lrtune reads comma-separated files)" for c, what in
                    ((";", "semicolons"), ("\t", "tabs")) if len(header) == 1 and c in header[0]), "")
        hint = ("; a file without LRs needs its schedule (--schedule SPEC where the command takes it, "
                "schedule= in Python)" if missing == ["lr"] else "")
        hint += (f"; columns named otherwise are read with --columns {missing[0]}=NAME,... "
                 f"(columns= in Python)") if not mapping else ""
        read_as = "".join(f", reading {theirs!r} as {ours!r}" for ours, theirs in mapping.items())
        raise ValueError(f"{name}: missing column(s) {', '.join(missing)}; the header has {shown}{read_as}{sep}"
                         f"{hint}")
    col = {c: header.index(c) for c in ("step", "lr", "loss", "run") if c in header}
    runs: dict[str, list[tuple[int, float | None, float | None]]] = {}
    default_run = os.path.splitext(os.path.basename(name))[0]
    for lineno, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < len(header) or any(c.strip() for c in row[len(header):]):
            raise ValueError(f"{name}, line {lineno}: {len(row)} fields, the header has {len(header)}"
                             + (" (a decimal comma?)" if len(row) > len(header) else ""))
        where = f"{name}, line {lineno}"
        step = _parse_float(row[col["step"]], f"{where}, step")
        if step is None or not float(step).is_integer():
            raise ValueError(f"{where}: step must be an integer, got {row[col['step']]!r}")
        if abs(step) >= 2**62:
            raise ValueError(f"{where}: step {row[col['step']].strip()} is far too large for a number of optimizer "
                             f"updates")
        lr = _parse_float(row[col["lr"]], f"{where}, lr") if "lr" in col else None
        if lr is not None and math.isnan(lr):  # an export's marker of a missing value: no LR is NaN
            lr = None
        loss = _parse_float(row[col["loss"]], f"{where}, loss") if "loss" in col else None
        run = row[col["run"]].strip() if "run" in col else default_run
        if lr is None and loss is None:  # a row of other metrics only (a logger's export): nothing to read
            continue
        rows = runs.setdefault(run, [])
        if rows and rows[-1][0] == step and (rows[-1][1] is None or lr is None) and \
                (_absent(rows[-1][2]) or _absent(loss)):
            # one step over two rows, each giving what the other leaves empty or NaN (a logger that writes
            # its training and validation metrics, or its LR, on rows of their own): one row
            prev = rows[-1]
            rows[-1] = (prev[0], lr if prev[1] is None else prev[1], loss if _absent(prev[2]) else prev[2])
            continue
        rows.append((int(step), lr, loss))
    if not runs:
        raise ValueError(f"{name}: the file has a header but no rows")
    return runs


def read_curves(path: str | os.PathLike | io.TextIOBase, schedule: Any = None, diverged: str = "raise",
                columns: dict[str, str] | None = None) -> list[Curve]:
    """Read the curves of a CSV file (one per ``run`` value, in order of appearance).

    ``schedule`` (a spec string or :class:`~lrtune.schedules.Schedule`) gives the LR when
    the file does not; then the ``lr`` column may be missing or empty.  LRs the file does
    give must agree with the schedule's (a ValueError names the first step that differs).

    A NaN, infinite or non-positive loss (a diverged run, or a broken log) raises a
    :class:`DivergedRunError` naming the step; with ``diverged="cut"`` the run is kept up
    to its last loss before that step, and ``meta["diverged_at"]`` holds the step (a run
    without any loss before it still raises).

    ``columns`` maps lrtune's column names to the file's, for files written by other tools:
    ``{"step": "Step", "lr": "learning_rate", "loss": "train/loss"}`` (case is ignored).
    """
    if diverged not in ("raise", "cut"):
        raise ValueError(f"diverged must be 'raise' or 'cut', got {diverged!r}")
    name, runs = _read_runs(path, ("step", "loss") if schedule is not None else ("step", "lr", "loss"), columns)
    for run, rows in runs.items():
        if all(loss is None for _, _, loss in rows):
            raise ValueError(f"{name}: no row of run {run!r} has a loss (is the loss column missing?)")
    return [_curve_from_rows(f"{name} (run {run})" if len(runs) > 1 else name, run, rows, schedule, diverged)
            for run, rows in runs.items()]


def read_lr_csv(path: str | os.PathLike | io.TextIOBase,
                columns: dict[str, str] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The LR array of a one-run CSV and the steps that have a loss (None if no row has one);
    ``columns`` as for :func:`read_curves`."""
    name, runs = _read_runs(path, ("step", "lr"), columns)
    if len(runs) != 1:
        raise ValueError(f"{name}: holds {len(runs)} runs ({', '.join(list(runs)[:3])}); give one run")
    (run, rows), = runs.items()
    steps = _check_row_steps(name, rows)
    # here the schedule is given instead of the file, not beside it
    lr = _lr_from_rows(name, rows, int(steps[-1]), hint="; or give the schedule's spec instead of the file")
    with_loss = np.array([s for s, _, loss in rows if not _absent(loss) and s >= 1], dtype=np.int64)
    return lr, (with_loss if with_loss.size else None)


def _check_row_steps(where: str, rows: list) -> np.ndarray:
    steps = np.array([r[0] for r in rows], dtype=np.int64)
    d = np.diff(steps)
    if (d == 0).any():
        raise ValueError(f"{where}: duplicate step {steps[1:][d == 0][0]} (two rows give its lr or its loss)")
    if (d < 0).any():
        i = int(np.argmax(d < 0))
        again = (" (the steps start again: two runs with one name?)" if steps[i + 1] <= steps[0] else
                 " (a resumed run logging some steps again? keep the rows of its last attempt at each step)")
        raise ValueError(f"{where}: steps must be sorted increasingly: step {steps[i + 1]} comes after {steps[i]}"
                         + again)
    if steps[0] < 0:
        raise ValueError(f"{where}: steps must be >= 0, got {steps[0]}")
    return steps


def _lr_from_rows(where: str, rows: list, last: int, hint: str = " or pass --schedule SPEC") -> np.ndarray:
    known = np.unique(np.array([s for s, v, _ in rows if v is not None and 1 <= s <= last], dtype=np.int64))
    if known.size < last:  # found without an array as long as the last step (a mistyped 1e9)
        gap = np.flatnonzero(known != np.arange(1, known.size + 1))
        first = int(gap[0]) + 1 if gap.size else known.size + 1
        ahead = (" (only the last step lacks one: a logger that records the LR of the next update, as Hugging "
                 "Face's Trainer and Lightning's LearningRateMonitor do, logs every LR one step early; leave "
                 "lr out of --columns and give the schedule)") if known.size == last - 1 and first == last else ""
        raise ValueError(
            f"{where}: the LR is unknown for {last - known.size} of steps 1..{last} (first: {first}){ahead}; add a "
            f"row with the LR of every step (the loss may be empty){hint}"
        )
    lr = np.full(last, np.nan)
    for s, v, _ in rows:
        if v is not None and s >= 1:
            lr[s - 1] = v
    unknown = np.flatnonzero(np.isnan(lr))
    if unknown.size:
        first = unknown[:5] + 1
        raise ValueError(
            f"{where}: the LR is unknown for {unknown.size} of steps 1..{last} (first: "
            f"{', '.join(map(str, first))}); add a row with the LR of every step (the loss may be "
            f"empty){hint}"
        )
    return check_lr(lr, name=f"{where}: lr")


def _curve_from_rows(where: str, run: str, rows: list, schedule: Any, diverged: str = "raise") -> Curve:
    steps = _check_row_steps(where, rows)
    with_loss = [(s, loss) for s, _, loss in rows if loss is not None and s >= 1]
    if not with_loss:
        raise ValueError(f"{where}: no row has a loss")
    # NaN is how many exports mark an empty cell (pandas, W&B). A NaN loss that finite losses follow
    # is such a missing value. NaNs after the last finite loss are a divergence, unless the run
    # marks empty cells so and they span less than its longest gap between finite losses (the rows
    # after its last evaluation, before the next was due).
    def last_finite() -> int:
        return max((i for i, (_, v) in enumerate(with_loss) if math.isfinite(v)), default=-1)

    last = last_finite()
    if last >= 0 and any(math.isnan(v) for _, v in with_loss[:last]):
        finite = [s for s, v in with_loss if math.isfinite(v)]
        gap = max(np.diff(finite), default=0)
        trailing = [s for s, v in with_loss[last + 1:] if math.isnan(v)]
        markers = bool(trailing) and trailing[-1] - with_loss[last][0] < gap  # no evaluation was due in them
        with_loss = [(s, v) for i, (s, v) in enumerate(with_loss) if not (math.isnan(v) and (i < last or markers))]
    # an infinite loss with finite ones after it (a step that overflowed in half precision) is missing
    last = last_finite()
    infinite = [s for i, (s, v) in enumerate(with_loss) if i < last and math.isinf(v)]
    if infinite:
        with_loss = [(s, v) for i, (s, v) in enumerate(with_loss) if not (i < last and math.isinf(v))]
        warnings.warn(f"{where}: {len(infinite)} infinite loss(es) with finite losses after them (first at step "
                      f"{infinite[0]}) read as missing values, not as a divergence", UserWarning, stacklevel=4)
    meta: dict[str, Any] = {}
    bad = next(((s, v) for s, v in with_loss if not (math.isfinite(v) and v > 0)), None)
    if bad is not None:
        good = [(s, v) for s, v in with_loss if s < bad[0]]
        if diverged == "raise" or not good:
            raise DivergedRunError(f"{where}: loss must be finite and > 0, but at step {bad[0]} it is {bad[1]!r} "
                                   f"(a NaN, infinite or non-positive loss means a diverged run or a broken log)")
        with_loss, meta = good, {"diverged_at": int(bad[0])}
    loss_steps = np.array([s for s, _ in with_loss], dtype=np.int64)
    loss = np.array([v for _, v in with_loss])
    if schedule is not None:
        from lrtune.schedules import parse_schedule

        lr = parse_schedule(schedule).lr()
        if lr.size < loss_steps[-1]:
            raise ValueError(f"{where}: the schedule has {lr.size} steps but the file has a loss at step {loss_steps[-1]}")
        given = [(s, v) for s, v, _ in rows if v is not None and 1 <= s <= lr.size]
        if given:  # the file's own LRs must be the schedule's
            _check_agrees(where, "file", np.array([s for s, _ in given], dtype=np.int64),
                          np.array([v for _, v in given]), lr)
        if any(v is not None and s > lr.size for s, v, _ in rows):
            raise ValueError(f"{where}: the schedule has {lr.size} steps but the file has an LR at step {int(steps[-1])}")
    else:
        lr = _lr_from_rows(where, rows, int(steps[-1]))
    return Curve(loss_steps, loss, lr, name=run, meta=meta)


def with_schedule_lr(curve: Curve, lr: np.ndarray, where: str) -> Curve:
    """``curve`` with the LR array ``lr`` of a schedule given for it, which must agree with
    the LRs the curve has (a ValueError names the first step that differs)."""
    if lr.size < curve.steps[-1]:
        raise ValueError(f"{where}: the schedule has {lr.size} steps but the run has a loss at step {curve.steps[-1]}")
    if curve.lr.size > lr.size:
        raise ValueError(f"{where}: the schedule has {lr.size} steps but the run has an LR at step {curve.lr.size}")
    _check_agrees(where, "run", np.arange(1, curve.lr.size + 1), curve.lr, lr)
    return dataclasses.replace(curve, lr=lr)


def _check_agrees(where: str, whose: str, at: np.ndarray, given: np.ndarray, lr: np.ndarray) -> None:
    """The LRs ``given`` at (1-based) steps ``at`` by a file or a stored run must be those of
    the schedule ``lr`` given for it too; a ValueError names the first step that differs."""
    scale = float(np.max(np.abs(lr)))
    diff = lr_difference(given, lr[at - 1], scale)
    if diff is not None and whose == "file":
        inside = at < lr.size  # the LR of the next update: Hugging Face's Trainer and Lightning log that one
        if inside.sum() >= 2 and lr_difference(given[inside], lr[at[inside] - 1], scale) is not None and \
                lr_difference(given[inside], lr[at[inside]], scale) is None:
            warnings.warn(f"{where}: the file's lr at step s is the schedule's LR of update s + 1 (a logger that "
                          f"records the LR of the next update, as Hugging Face's Trainer and Lightning's "
                          f"LearningRateMonitor do): the schedule's LRs are used", UserWarning, stacklevel=5)
            return
    if diff is not None:
        i, n = diff
        raise ValueError(f"{where}: the {whose}'s lr at step {at[i]} is {given[i]:.8g} but the schedule gives "
                         f"{lr[at[i] - 1]:.8g} ({n} steps differ); drop --schedule to use the "
                         f"{whose}'s LRs, or fix the spec")


def lr_difference(given: np.ndarray, lr: np.ndarray, scale: float) -> tuple[int, int] | None:
    """Where LRs ``given`` for a run differ from a schedule's ``lr`` at the same steps
    (beyond a relative 1e-5, or 1e-9 of ``scale``, the peak: float32 logs and LRs written with
    6 significant digits agree): the first index and how many differ; ``None`` when they agree."""
    bad = ~np.isclose(given, lr, rtol=1e-5, atol=1e-9 * scale)
    return (int(np.argmax(bad)), int(bad.sum())) if bad.any() else None


def write_curve_csv(curves: Sequence[Curve] | Curve, path: str | os.PathLike | io.TextIOBase) -> None:
    """Write curves in the CSV format (every step with its LR; loss where observed)."""
    if isinstance(curves, Curve):
        curves = [curves]
    curves = list(curves)
    if not all(isinstance(c, Curve) for c in curves):
        raise ValueError(f"write_curve_csv(curves, path) takes lrtune.curves.Curve objects first, got "
                         f"{type(curves[0] if curves and not isinstance(curves[0], Curve) else curves).__name__}"
                         + (": the arguments are swapped?" if isinstance(path, (list, tuple, Curve)) else ""))
    names = [c.name for c in curves]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # one file, one name per run: read back, their rows would merge into one run
        raise ValueError(f"several curves are named {twice[0]!r}: give each run its own name "
                         f"(dataclasses.replace(curve, name=...)) before writing them to one file")
    f = path if isinstance(path, io.TextIOBase) else open(path, "w", newline="")
    try:
        w = csv.writer(f)
        w.writerow(["run", "step", "lr", "loss"])
        for c in curves:
            for s, lr, loss in c.to_rows():
                w.writerow([c.name, s, repr(lr), "" if loss is None else repr(loss)])
    finally:
        if f is not path:
            f.close()


def curves_summary(curves: Iterable[Curve]) -> str:
    return ", ".join(f"{c.name} ({c.steps.size} points, {c.horizon} steps)" for c in curves)
