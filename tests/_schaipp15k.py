"""The 15k-step Schaipp 124M runs the pruner and scheduler tests replay."""

from __future__ import annotations

from lrtune.datasets import load_schaipp

# WSD (linear cooldown 0.1, 0.4, 0.6, 0.9) at 3 peak LRs and cosine at 2.
SUBSET = [("wsd", c, lr) for c in ("0.1", "0.4", "0.6", "0.9") for lr in ("0.0005", "0.001", "0.002")] + \
         [("cosine", "0.0", "0.001"), ("cosine", "0.0", "0.002")]


def grid_15k() -> list:
    """The curves of SUBSET, in its order (the first run of each configuration by name)."""
    curves = load_schaipp(group="main", n_layer="12", n_embd="768", horizon="15000", decay_type="linear")
    curves += load_schaipp(group="main", n_layer="12", n_embd="768", horizon="15000", schedule="cosine")
    picked = {}
    for c in sorted(curves, key=lambda c: c.name):
        key = (c.meta["schedule"], c.meta["cooldown_frac"], c.meta["base_lr"])
        if key in SUBSET and key not in picked:
            picked[key] = c
    return [picked[k] for k in SUBSET]


def train_losses(curves: list) -> list[tuple]:
    """Each curve's training loss (one minibatch every 50 steps: noisy) as ``(steps, loss)``,
    read from the Schaipp data's ``curves.csv.gz``."""
    import csv
    import gzip
    import os

    import numpy as np

    from lrtune.datasets import _default_schaipp_root

    names = {c.name for c in curves}
    points: dict = {n: [] for n in names}
    with gzip.open(os.path.join(_default_schaipp_root(), "curves.csv.gz"), "rt") as f:
        for row in csv.DictReader(f):
            if row["key"] in names and row["train_loss"] not in ("", "nan") and float(row["step"]) >= 1:
                points[row["key"]].append((int(float(row["step"])), float(row["train_loss"])))
    return [(np.array([s for s, _ in points[c.name]]), np.array([v for _, v in points[c.name]])) for c in curves]
