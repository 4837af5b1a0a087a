"""Figures: observed and predicted loss curves with their bands, the LR underneath."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import numpy as np

from lrtune.curves import Curve
from lrtune.laws import Law
from lrtune.laws._base import as_lr_array
from lrtune.schedules import Schedule


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _schedule_item(s: Any) -> tuple[str, np.ndarray, None, float]:
    """(label, LR array, None, factor) of one ``schedules`` entry: a spec, a schedule, or a
    (label, LR array / spec / schedule[, factor]) tuple."""
    if isinstance(s, str):
        return s, np.asarray(as_lr_array(s), float), None, 1.0
    if isinstance(s, Schedule):
        return s.spec(), s.lr(), None, 1.0
    if isinstance(s, (tuple, list)) and len(s) in (2, 3) and isinstance(s[0], str):
        return s[0], np.asarray(as_lr_array(s[1]), float), None, float(s[2]) if len(s) > 2 else 1.0
    raise ValueError(f"schedules: each entry is a spec, a schedule or a (label, LR array or spec[, factor]) tuple, "
                     f"got {type(s).__name__}")


def plot_predictions(law: Law, path: str, curves: Sequence[Curve] = (),
                     schedules: Sequence[tuple[str, np.ndarray]] = (), level: float = 0.9,
                     title: str | None = None, n_points: int = 200) -> str:
    """Write a PNG: top, observed curves (dots) and the law's prediction with its band
    for every curve and extra schedule; bottom, their LR schedules.

    ``schedules`` are specs, schedule objects or (label, lr array / spec / schedule) pairs
    predicted without observations, or (label, lr array, factor) triples whose prediction and band are multiplied by ``factor`` (a
    correction of the law's own, like suggest's residual correction).  A ``path``
    without an extension gets ``.png``; the path written is returned.  Steps where the law
    has no finite value (step 1 of a warmup from LR 0) are not drawn.
    """
    if not os.path.splitext(os.fspath(path))[1]:
        path = os.fspath(path) + ".png"
    if not curves and not schedules:
        raise ValueError("nothing to plot: give curves or schedules")
    plt = _pyplot()
    fig, (ax, ax_lr) = plt.subplots(2, 1, figsize=(9, 7), sharex=True,
                                    gridspec_kw={"height_ratios": [3, 1]})
    curves = [curves] if isinstance(curves, Curve) else list(curves)
    items = [(c.name, c.lr, c, 1.0) for c in curves]
    items += [_schedule_item(s) for s in ([schedules] if isinstance(schedules, (str, Schedule)) else schedules)]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lo_y, hi_y = np.inf, -np.inf
    styles = ("-", "--", "-.", ":")  # predictions that coincide (a WSD before its cooldown) stay apart
    for i, (label, lr, curve, factor) in enumerate(items):
        color, style = colors[i % len(colors)], styles[i % len(styles)]
        label = label if len(label) <= 40 else f"{label[:18]}...{label[-19:]}"  # long file names crowd the axes
        first = int(curve.steps[0]) if curve is not None else max(1, lr.size // 50)
        steps = np.unique(np.linspace(first, lr.size, n_points).round().astype(np.int64))
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):  # no LR yet at step 1: no loss
            pred = law.predict_interval(lr, steps, level=level,
                                        model_size=None if curve is None else law.curve_model_size(curve))
        pred = dataclasses.replace(pred, loss=pred.loss * factor, lower=pred.lower * factor,
                                   upper=pred.upper * factor) if factor != 1.0 else pred
        ax.plot(steps, pred.loss, color=color, linestyle=style, label=f"{label} (predicted)")
        ax.fill_between(steps, pred.lower, pred.upper, color=color, alpha=0.2, linewidth=0)
        low, high = pred.lower[np.isfinite(pred.lower)], pred.upper[np.isfinite(pred.upper)]
        if low.size:
            lo_y = min(lo_y, low.min())
        if high.size:
            hi_y = max(hi_y, np.percentile(high, 90))
        if curve is not None:
            ax.plot(curve.steps, curve.loss, ".", color=color, markersize=2.5, label=f"{label} (observed)")
            lo_y = min(lo_y, curve.loss.min())
        ax_lr.plot(np.arange(1, lr.size + 1), lr, color=color, linestyle=style)
    if np.isfinite(lo_y) and np.isfinite(hi_y) and hi_y >= lo_y:
        pad = 0.05 * (hi_y - lo_y) or 0.01 * max(abs(hi_y), 1e-12)
        ax.set_ylim(lo_y - pad, hi_y + pad)
    ax.set_ylabel("loss")
    ax.set_title(title or f"{law.name} law: prediction with {int(round(100 * level))} % band")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("step")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
