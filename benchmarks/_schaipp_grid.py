"""The Schaipp 124M grid as the benchmarks look it up."""

from __future__ import annotations

from lrtune.datasets import load_schaipp


class Grid:
    """The Schaipp 124M runs of one group, looked up by peak LR and schedule."""

    def __init__(self, group):
        self.curves = load_schaipp(n_layer="12", n_embd="768", group=group)

    def get(self, lr, kind, horizon=50000):
        for c in self.curves:
            m = c.meta
            if float(m["base_lr"]) != lr or int(m["horizon"]) != horizon:
                continue
            if kind == "constant" and m["schedule"] == "constant":
                return c
            if kind == "cosine" and m["schedule"] == "cosine" and not c.name.startswith(("cos_zero", "sl_")):
                return c
            if (kind == "wsd" and m["schedule"] == "wsd" and m["decay_type"] == "linear"
                    and m["cooldown_frac"] == "0.2" and not c.name.startswith("ann0.2_")):
                return c
        raise KeyError((lr, kind, horizon))

    def trio(self, lr, wsd_horizon=25000):
        return [self.get(lr, "constant"), self.get(lr, "cosine"), self.get(lr, "wsd", wsd_horizon)]

    def at(self, lr, exclude=()):
        names = {c.name for c in exclude}
        return [c for c in self.curves if float(c.meta["base_lr"]) == lr and c.name not in names]
