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



def train_losses(curves: list) -> list:
    """Each curve's run with its training loss instead (one minibatch every 50 steps: noisy)."""
    return load_schaipp(keys=[c.name for c in curves], metric="train_loss")
