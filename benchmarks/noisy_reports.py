"""The Schaipp 124M grid replayed through Optuna with noisy reports: each trial reports its
training loss (one minibatch, every 50 steps) and returns its final validation loss.

Run as ``python benchmarks/noisy_reports.py --horizons 15000,25000 --orders 5``; prints a
table and writes ``benchmarks/results/noisy_reports.md``.  Same studies as
``replay_pruning.py`` (one per horizon and order, in-memory storage, trials one after
another), lrtune's pruner with its defaults beside MedianPruner on the same orders.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import optuna

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import replay_pruning as R  # noqa: E402
from _report import emit, save, table  # noqa: E402
from lrtune.datasets import load_schaipp, schaipp_spec  # noqa: E402
from lrtune.integrations.optuna import ScheduleAwarePruner, record_schedule  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)


def replay(curves, train, order, pruner) -> dict:
    specs = [schaipp_spec(c.meta) for c in curves]

    def objective(trial: optuna.Trial) -> float:
        i = int(order[trial.number])
        trial.set_user_attr("run", i)
        record_schedule(trial, specs[i])
        for s, v in zip(train[i].steps.tolist(), train[i].loss.tolist()):
            trial.report(v, s)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(curves[i].loss[-1])  # the validation loss

    study = optuna.create_study(pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=len(order))
    return R.summarize(curves, [(t.user_attrs["run"], t.last_step, t.state == optuna.trial.TrialState.COMPLETE)
                                for t in study.trials])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--horizons", default="15000", help="comma-separated horizons of the 124M grid")
    ap.add_argument("--orders", type=int, default=5)
    args = ap.parse_args()
    horizons = [int(h) for h in args.horizons.split(",")]
    command = "python benchmarks/noisy_reports.py " + " ".join(sys.argv[1:])
    emit("# Noisy reports: training loss of one minibatch instead of the validation loss")
    emit()
    emit(f"Command: `{command.strip()}`")
    emit()
    emit("Each trial reports the run's training loss (one minibatch every 50 steps; the noise of one "
         "report, measured by the pruner, is about 3.6 % of the loss at 15k) and returns the run's final "
         "validation loss; the best run is the one of lowest final validation loss. Orders as in "
         "`replay_pruning.py`. Before the noise was measured, every trial after the first ones was pruned "
         "(one high minibatch read as a divergence, noisy last reports compared with validation losses).")
    emit()
    rows = []
    start = time.time()
    for h in horizons:
        curves = R.grid(h)
        train = load_schaipp(keys=[c.name for c in curves], metric="train_loss")
        for name, make in (("lrtune ScheduleAwarePruner()", ScheduleAwarePruner),
                           ("MedianPruner(4, 10 % warmup)",
                            lambda: optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=h // 10))):
            res = [replay(curves, train, np.random.default_rng(o).permutation(len(curves)), make())
                   for o in range(args.orders)]
            rows.append([str(h), name, str(len(res)), f"{np.mean([r['fraction'] for r in res]):.3f}",
                         f"{sum(r['kept_best'] for r in res)}/{len(res)}",
                         f"{np.mean([r['regret'] for r in res]):.4f}", f"{max(r['regret'] for r in res):.4f}",
                         " ".join(f"{r['fraction']:.2f}" for r in res)])
            print(rows[-1], flush=True)
    table(["horizon", "pruner", "studies", "steps used", "kept best", "mean regret", "max regret",
           "steps per order"], rows)
    emit(f"Wall time: {time.time() - start:.0f} s.")
    save("noisy_reports")


if __name__ == "__main__":
    main()
