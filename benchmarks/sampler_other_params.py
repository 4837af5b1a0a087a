"""ScheduleSampler in a study that tunes another hyperparameter too (the README's example).

The objective is the README's Optuna example: ``suggest_schedule`` for the schedule, a
TPE-sampled weight decay, ``ScheduleAwarePruner`` checking every 200 steps.  Training is
simulated so that every proposal can be scored: a momentum law fitted on the real Schaipp
124M 15k-step runs (WSD linear cooldowns 0.1..0.9 and cosine at peak LRs 5e-4..2e-3) gives
the validation loss of any schedule, times a weight-decay penalty ``1 + 0.002 ln(wd / 0.1)^2``
(0.1 is best), with 0.025 % evaluation noise.  A pruner stops trials whose weight decay is
bad as well as trials whose schedule is: the sampler must not take the first for the second.

Printed per sampler and seed: the best value found, and the median of the proposed
schedules' own final losses (noise-free, weight decay left out) over trials 4-13, 14-26 and
27-39, against the best schedule of the space.

    python benchmarks/sampler_other_params.py            # seeds 0 and 1, about 2 min
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import optuna  # noqa: E402

from lrtune.datasets import load_schaipp  # noqa: E402
from lrtune.integrations.optuna import (ScheduleAwarePruner, ScheduleSampler, ScheduleSpace,  # noqa: E402
                                        suggest_schedule)
from lrtune.laws import make_law  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "sampler_other_params.md")
SPACE = ScheduleSpace(steps=20_000, peak_lr=(1e-4, 3e-3), families=("wsd", "cosine"), cooldown=(0.1, 0.9), warmup=500)
N_TRIALS = 40
EVAL_EVERY = 200


def simulator():
    curves = load_schaipp(group="main", n_layer="12", n_embd="768", horizon="15000", decay_type="linear")
    curves += load_schaipp(group="main", n_layer="12", n_embd="768", horizon="15000", schedule="cosine")
    return make_law("momentum").fit(curves, band=False)


def make_objective(law):
    def objective(trial: optuna.Trial) -> float:
        schedule = suggest_schedule(trial, SPACE)
        wd = trial.suggest_float("weight_decay", 1e-3, 0.3, log=True)
        lr = schedule.lr()
        steps = np.arange(EVAL_EVERY, lr.size + 1, EVAL_EVERY)
        loss = law.predict(lr, steps) * (1 + 0.002 * np.log(wd / 0.1) ** 2)
        rng = np.random.default_rng(int(lr.max() * 1e9) % 2**32)
        loss = loss * (1 + 2.5e-4 * rng.standard_normal(loss.size))
        for s, v in zip(steps.tolist(), loss.tolist()):
            trial.report(v, s)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(loss[-1])
    return objective


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    law = simulator()

    def schedule_final(params: dict) -> float:
        lr = SPACE.schedule(params).lr()
        return float(law.predict(lr, [lr.size])[0])

    best_space = min(schedule_final(p) for p in SPACE.sample(np.random.default_rng(0), 3000))
    rows = []
    t_all = time.time()
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name, sampler in (("ScheduleSampler", ScheduleSampler(SPACE, seed=seed)),
                              ("TPESampler", optuna.samplers.TPESampler(seed=seed))):
            t0 = time.time()
            study = optuna.create_study(sampler=sampler, pruner=ScheduleAwarePruner())
            study.optimize(make_objective(law), n_trials=N_TRIALS)
            f = np.array([schedule_final(t.params) for t in study.trials])
            rows.append([name, seed, f"{study.best_value:.4f}", f"{np.median(f[4:14]):.4f}",
                         f"{np.median(f[14:27]):.4f}", f"{np.median(f[27:]):.4f}", f"{time.time() - t0:.0f}"])
            print(" | ".join(map(str, rows[-1])), flush=True)
    header = ["sampler", "seed", "best value", "schedules of trials 4-13 (median final)", "trials 14-26",
              "trials 27-39", "wall s"]
    lines = [
        "# ScheduleSampler in a study that also tunes the weight decay",
        "",
        "Command: `python benchmarks/sampler_other_params.py` "
        f"({(time.time() - t_all) / 60:.1f} min; set-up in the script's docstring).",
        "",
        f"Best schedule of the space (3,000 random candidates, by the simulator): final loss {best_space:.4f}. "
        f"{N_TRIALS} trials per study, `ScheduleAwarePruner()` in every study.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(map(str, r)) + " |" for r in rows),
        "",
    ]
    with open(RESULTS, "w") as fh:
        fh.write("\n".join(lines))
    print(f"wrote {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
