"""Real loss curves shipped with lrtune.

``mpl``: the curves of Luo et al. (ICLR 2025, MIT licence, see ``mpl/LICENSE``): models of
25M, 100M and 400M parameters trained under 9 schedules at peak LR 3e-4.  The source logs
the loss at step ``s`` after using ``lrs[0..s]``; it is loaded here at lrtune step
``s + 1`` (lrtune's step convention, docs/schedules.md) with ``lr = lrs``.

>>> from lrtune.datasets import load_mpl, mpl_split
>>> train, test = mpl_split("25M")
>>> [c.name for c in train]
['cosine_24000', 'constant_24000', 'wsdcon_9']
"""

from __future__ import annotations

import csv
import functools
import gzip
import numbers
import os
from collections import defaultdict

import numpy as np

from lrtune.curves import Curve

__all__ = ["MPL_MODELS", "MPL_SCHEDULES", "MPL_SPECS", "SCHAIPP_METRICS", "load_mpl", "load_schaipp", "mpl_runs",
           "mpl_split", "schaipp_runs", "schaipp_spec"]

_HERE = os.path.dirname(os.path.abspath(__file__))
MPL_MODELS = ("25M", "100M", "400M")
MPL_SCHEDULES = (
    "constant_24000", "constant_72000", "cosine_24000", "cosine_72000", "wsd_20000_24000",
    "wsdld_20000_24000", "wsdcon_3", "wsdcon_9", "wsdcon_18",
)
#: lrtune schedule specs that reproduce each run's LR array.
MPL_SPECS = {
    "constant_24000": "constant:steps=24000,peak=0.0003,warmup=2160",
    "constant_72000": "constant:steps=72000,peak=0.0003,warmup=2160",
    "cosine_24000": "cosine:steps=24000,peak=0.0003,warmup=2160,min=0.1",
    "cosine_72000": "cosine:steps=72000,peak=0.0003,warmup=2160,min=0.1",
    "wsd_20000_24000": "wsd:steps=24000,peak=0.0003,warmup=2160,min=0.1,cooldown=0.16666666666666666,shape=exp",
    "wsdld_20000_24000": "wsd:steps=24000,peak=0.0003,warmup=2160,min=0.1,cooldown=0.16666666666666666,shape=linear",
    "wsdcon_3": "twostage:steps=16000,peak=0.0003,warmup=2160,switch=8000,factor=0.1",
    "wsdcon_9": "twostage:steps=16000,peak=0.0003,warmup=2160,switch=8000,factor=0.3",
    "wsdcon_18": "twostage:steps=16000,peak=0.0003,warmup=2160,switch=8000,factor=0.6",
}
MPL_TRAIN = ("cosine_24000", "constant_24000", "wsdcon_9")
MPL_TEST = ("constant_72000", "cosine_72000", "wsd_20000_24000", "wsdld_20000_24000", "wsdcon_3", "wsdcon_18")
MODEL_SIZES = {"25M": 25e6, "100M": 100e6, "400M": 400e6}


@functools.lru_cache(maxsize=1)
def _mpl_tables() -> tuple[dict, dict]:
    points: dict[str, list] = defaultdict(list)
    with gzip.open(os.path.join(_HERE, "mpl", "curves.csv.gz"), "rt") as f:
        for row in csv.DictReader(f):
            points[row["key"]].append((int(row["step"]), float(row["loss"])))
    with np.load(os.path.join(_HERE, "mpl", "lr.npz")) as z:
        lrs = {k: z[k].astype(np.float64) for k in z.files}
    return dict(points), lrs


def mpl_runs() -> list[dict]:
    """The rows of ``mpl/runs.csv`` (model_size, schedule, peak_lr, ...)."""
    with open(os.path.join(_HERE, "mpl", "runs.csv"), newline="") as f:
        return list(csv.DictReader(f))


def load_mpl(model: str = "25M", schedules: tuple[str, ...] | list[str] | None = None,
             max_step: int | None = None) -> list[Curve]:
    """Curves of one model size (``"25M"``, ``"100M"`` or ``"400M"``).

    ``max_step`` drops losses after that lrtune step (the published split cuts 24000-step
    curves to source steps < 24000).  ``Curve.meta`` holds ``model_size`` and ``spec``.
    """
    if model not in MPL_MODELS:
        raise ValueError(f"model must be one of {', '.join(MPL_MODELS)}, got {model!r}")
    if isinstance(schedules, str):  # one name, not its letters
        schedules = [schedules]
    schedules = list(MPL_SCHEDULES if schedules is None else schedules)
    unknown = [s for s in schedules if s not in MPL_SCHEDULES]
    if unknown:
        raise ValueError(f"unknown MPL schedule(s) {unknown}; known: {', '.join(MPL_SCHEDULES)}")
    if max_step is not None and (isinstance(max_step, bool) or not isinstance(max_step, numbers.Integral)):
        raise ValueError(f"max_step must be an integer step, got {max_step!r}")
    points, lrs = _mpl_tables()
    out = []
    for sched in schedules:
        key = f"{model}_{sched}"
        pts = np.array(points[key])
        steps = pts[:, 0].astype(np.int64) + 1
        loss = pts[:, 1]
        if max_step is not None:
            keep = steps <= max_step
            if not keep.any():
                raise ValueError(f"{sched}: no loss at or before max_step={max_step} (the first is at step {steps[0]})")
            steps, loss = steps[keep], loss[keep]
        out.append(Curve(steps, loss, lrs[key], name=sched,
                         meta={"model_size": MODEL_SIZES[model], "spec": MPL_SPECS[sched], "model": model}))
    return out


def mpl_split(model: str = "25M") -> tuple[list[Curve], list[Curve]]:
    """The published train/test split of the multi-power-law paper (Luo et al., ICLR 2025).

    Train: cosine_24000, constant_24000, wsdcon_9; test: constant_72000, cosine_72000,
    wsd_20000_24000, wsdld_20000_24000, wsdcon_3, wsdcon_18.  24000-step curves end at
    source steps < 24000 (lrtune steps <= 24000); the 72000-step test curves are whole.
    """
    train = load_mpl(model, MPL_TRAIN)
    test = load_mpl(model, MPL_TEST)
    return train, test


# -- Schaipp et al. (ICML 2025): not bundled in the package (12 MB of LR arrays); the
# repository keeps it in benchmarks/data/schaipp.  load_schaipp reads any copy of it.

#: where the Schaipp data lies in lrtune's source tree
SCHAIPP_FOLDER = os.path.join("benchmarks", "data", "schaipp")


def _default_schaipp_root() -> str:
    env = os.environ.get("LRTUNE_SCHAIPP_DATA")
    if env:
        return env
    # a source checkout (pip install -e .): the folder beside the package; an installed
    # package: the folder of the checkout the command runs in, as the benchmarks do
    beside = os.path.join(os.path.dirname(os.path.dirname(_HERE)), SCHAIPP_FOLDER)
    here = os.path.abspath(SCHAIPP_FOLDER)
    return here if not os.path.isdir(beside) and os.path.isdir(here) else beside


#: The loss columns of the Schaipp ``curves.csv.gz`` that :func:`load_schaipp` reads.
SCHAIPP_METRICS = ("val_loss", "train_loss")


@functools.lru_cache(maxsize=4)
def _schaipp_tables(root: str) -> tuple[list[dict], dict[str, dict]]:
    if not os.path.isdir(root):
        raise ValueError(f"{root}: no Schaipp data folder; it ships in lrtune's source tree as {SCHAIPP_FOLDER}: "
                         f"run from the checkout's root, set LRTUNE_SCHAIPP_DATA to the folder, or pass root=")
    with open(os.path.join(root, "runs.csv"), newline="") as f:
        runs = list(csv.DictReader(f))
    points: dict[str, dict[str, list]] = {m: defaultdict(list) for m in SCHAIPP_METRICS}
    with gzip.open(os.path.join(root, "curves.csv.gz"), "rt") as f:
        for row in csv.DictReader(f):
            for m in SCHAIPP_METRICS:
                if row[m]:
                    points[m][row["key"]].append((int(row["step"]), float(row[m])))
    return runs, {m: dict(p) for m, p in points.items()}


def schaipp_runs(root: str | None = None) -> list[dict]:
    """The rows of the Schaipp ``runs.csv`` (schedule, decay_type, cooldown_frac, base_lr,
    horizon, model_size, dataset, group, ...)."""
    return _schaipp_tables(root or _default_schaipp_root())[0]


def load_schaipp(keys: list[str] | None = None, root: str | None = None, metric: str = "val_loss",
                 **where: str) -> list[Curve]:
    """Loss curves of the Schaipp runs, step 0 dropped: ``metric="val_loss"`` (every 200
    steps, 32 batches: smooth) or ``"train_loss"`` (one minibatch every 50 steps: noisy).

    Select runs by ``keys`` (returned in the order of ``keys``) or by column values of
    ``runs.csv`` given as strings (returned in the file's order), e.g.
    ``load_schaipp(n_embd="768", n_layer="12", group="main", schedule="wsd")``.
    ``Curve.meta`` holds the run's row (``base_lr``, ``horizon``, ``cooldown_frac``, ...)
    and ``model_size``.
    """
    if metric not in SCHAIPP_METRICS:
        raise ValueError(f"metric must be one of {SCHAIPP_METRICS}, got {metric!r}")
    if isinstance(keys, str):  # one key, not its letters
        keys = [keys]
    root = root or _default_schaipp_root()
    runs, points = _schaipp_tables(root)
    unknown = sorted(set(where) - set(runs[0])) if runs else []
    if unknown:  # a misspelt column selected nothing, silently
        raise ValueError(f"unknown Schaipp column(s) {', '.join(unknown)}; runs.csv has {', '.join(runs[0])}")
    series = points[metric]
    rows = [r for r in runs if (keys is None or r["key"] in keys)
            and all(r.get(k) == str(v) for k, v in where.items())]
    if keys is not None:
        missing = set(keys) - {r["key"] for r in rows}
        if missing:
            raise ValueError(f"unknown Schaipp run key(s): {sorted(missing)[:3]}")
        position = {k: i for i, k in enumerate(keys)}
        rows.sort(key=lambda r: position[r["key"]])
    out = []
    with np.load(os.path.join(root, "lr.npz")) as z:
        for r in rows:
            pts = np.array([p for p in series[r["key"]] if p[0] >= 1])
            meta = dict(r)
            meta["model_size"] = float(r["model_size"])
            out.append(Curve(pts[:, 0].astype(np.int64), pts[:, 1], z[r["key"]].astype(np.float64),
                             name=r["key"], meta=meta))
    return out


def schaipp_spec(meta: dict) -> str:
    """The lrtune spec of a Schaipp run from its ``runs.csv`` row (``Curve.meta``): WSD
    (linear or 1-sqrt cooldown), constant, or cosine to ``final_lr``.  Cosine runs are torch
    ``OneCycleLR`` with a cosine warmup: the spec's linear warmup differs over the first 300
    updates only (after them the LR agrees to 6e-4 of the peak, to 1e-4 for most runs;
    ``lr_from_torch`` gives the exact array)."""
    h, lr = int(meta["horizon"]), float(meta["base_lr"])
    if meta["schedule"] == "wsd":
        shape = {"linear": "linear", "sqrt": "1-sqrt"}[meta["decay_type"]]
        return f"wsd:steps={h},peak={lr},warmup=301,start=0.01,cooldown={meta['cooldown_frac']},shape={shape}"
    if meta["schedule"] == "constant":
        return f"constant:steps={h},peak={lr},warmup=301,start=0.01"
    return f"cosine:steps={h},peak={lr},warmup=300,start=0.01,min={float(meta['final_lr']) / lr!r}"
