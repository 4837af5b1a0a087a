"""Memory of long horizons and long studies, each beside the way it was done before,
measured in the same run.

Run as ``python benchmarks/memory.py``; prints three tables and writes
``benchmarks/results/memory.md``:

1. ``suggest`` at horizons of 1e5 to 1e7 steps (the momentum law fitted on the bundled
   25M curves, three peak LRs, the default families): peak memory of the call, in a fresh
   process each, beside the same call followed by its old last step (the top six
   candidates' bands computed from one stacked array).
2. The Ray Tune scheduler holding completed 50k-step trials (the Schaipp 124M runs,
   replayed as stub trials): memory it holds and its pickle, beside the same with a private
   copy of the schedule's LR array per trial.
3. The Optuna pruner in a study loaded again for every trial (``optuna.load_study`` and
   ``optimize(n_trials=1)`` per trial, on SQLite, one pruner object): cached curves and wall
   time, beside caches keyed on the storage object ``load_study`` creates anew each time.
"""

from __future__ import annotations

import gc
import os
import pickle
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _report import emit, save, table  # noqa: E402

_SUGGEST = """
import resource, sys
import numpy as np
from lrtune import mpl_split
from lrtune.laws import make_law
from lrtune.suggest import predict_batch, suggest
steps, stacked = int(float(sys.argv[1])), sys.argv[2] == "1"
law = make_law("momentum").fit(mpl_split("25M")[0])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
r = suggest(law, steps, [2e-4, 3e-4, 4e-4], warmup=2160)
if stacked:  # the old last step: the top candidates' LR arrays stacked, their bands at once
    from lrtune.schedules import parse_schedule
    lr = np.stack([parse_schedule(s.schedule).lr() for s in [r.best] + r.alternatives])
    predict_batch(law, lr, [steps], level=0.9)
print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def suggest_memory() -> None:
    emit("## 1. `suggest` at long horizons\n")
    emit("Peak resident memory of a fresh process (after fitting the law, whose own peak is the "
         "baseline subtracted), MiB; the old way stacks the six best candidates' LR arrays and "
         "computes their bands at once.\n")
    rows = []
    for steps in ("1e5", "1e6", "1e7"):
        got = []
        for stacked in ("0", "1"):
            out = subprocess.run([sys.executable, "-c", _SUGGEST, steps, stacked], capture_output=True, text=True,
                                 check=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
            before, after = map(int, out.stdout.split())
            got.append(max(after - before, 0) / 1024)
        rows.append([steps, f"{got[0]:.0f}", f"{got[1]:.0f}", f"{got[1] / got[0]:.2f}" if got[0] >= 1 else "-"])
    table(["steps", "now (MiB)", "old way (MiB)", "old / now"], rows)


def _replay_ray(curves, n: int, copies: bool) -> tuple[float, float]:
    import lrtune.integrations.ray._scheduler as sched_module
    from lrtune.integrations._forecast import schedule_lr
    from lrtune.integrations.ray import ScheduleAwareScheduler
    from ray.tune.experiment import Trial

    lr_of = (lambda spec: np.array(schedule_lr(spec))) if copies else schedule_lr  # a writeable copy per trial
    old, sched_module.schedule_lr = sched_module.schedule_lr, lr_of
    try:
        gc.collect()
        tracemalloc.start()
        s = ScheduleAwareScheduler(metric="loss", mode="min", time_attr="step", n_startup_trials=10**6)
        for k in range(n):
            c = curves[k % len(curves)]
            t = Trial("__fake", config={"lr_schedule": schedule_spec(c)}, stub=True)
            s.on_trial_add(None, t)
            for st, v in zip(c.steps.tolist(), c.loss.tolist()):
                s.on_trial_result(None, t, {"loss": v, "step": st})
            s.on_trial_complete(None, t, {"loss": float(c.loss[-1]), "step": int(c.steps[-1])})
            s._fitted()  # what a decision reads: the completed trials' curves
        held = tracemalloc.get_traced_memory()[0] / 2**20
        tracemalloc.stop()
        return held, len(pickle.dumps(s)) / 2**20
    finally:
        sched_module.schedule_lr = old


def schedule_spec(curve) -> str:
    from lrtune.datasets import schaipp_spec

    return schaipp_spec(curve.meta)


def ray_memory() -> None:
    from lrtune.datasets import load_schaipp

    emit("## 2. The Ray Tune scheduler with many completed trials\n")
    emit("Completed 50k-step trials (20 Schaipp 124M runs, cycled), 249 results each: memory the "
         "scheduler holds (tracemalloc, MiB) and its pickle (MiB); the old way holds a copy of the "
         "schedule's LR array (50k values) in every trial's curve.\n")
    curves = load_schaipp(group="main", n_layer="12", n_embd="768", horizon="50000")[:20]
    rows = []
    for n in (100, 400):
        now, old = _replay_ray(curves, n, False), _replay_ray(curves, n, True)
        rows.append([str(n), f"{now[0]:.0f}", f"{old[0]:.0f}", f"{old[0] / now[0]:.1f}",
                     f"{now[1]:.1f}", f"{old[1]:.1f}"])
    table(["completed trials", "held now", "held, old way", "old / now", "pickle now", "pickle, old way"], rows)


def _optuna_loop(n: int, old_keys: bool) -> tuple[int, int, float]:
    import optuna

    import lrtune.integrations.optuna._common as common
    from lrtune.datasets import load_schaipp, schaipp_spec
    from lrtune.integrations.optuna import ScheduleAwarePruner, record_schedule

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    curves = sorted(load_schaipp(group="main", n_layer="12", n_embd="768", horizon="15000"), key=lambda c: c.name)
    order = np.random.default_rng(0).permutation(len(curves))
    old = common.storage_key
    if old_keys:  # the storage object load_study made: new at every load
        common.storage_key = lambda storage: ("object", id(storage))
    try:
        with tempfile.TemporaryDirectory() as d:
            url = f"sqlite:///{d}/study.db"
            optuna.create_study(study_name="loop", storage=url)
            pruner = ScheduleAwarePruner()
            t0 = time.perf_counter()
            keep = []  # every loaded study stays alive, as in a long-running service
            for k in range(n):
                i = int(order[k % len(order)])
                study = optuna.load_study(study_name="loop", storage=url, pruner=pruner)
                keep.append(study)

                def objective(trial, i=i):
                    record_schedule(trial, schaipp_spec(curves[i].meta))
                    for s, v in zip(curves[i].steps.tolist(), curves[i].loss.tolist()):
                        trial.report(v, s)
                        if trial.should_prune():
                            raise optuna.TrialPruned()
                    return float(curves[i].loss[-1])

                study.optimize(objective, n_trials=1)
            wall = time.perf_counter() - t0
            completed = sum(t.state.name == "COMPLETE" for t in study.trials)
            return completed, len(pruner._curves), wall
    finally:
        common.storage_key = old


def optuna_memory() -> None:
    emit("## 3. The Optuna pruner in a study loaded again for every trial\n")
    emit("`optuna.load_study(...)` then `study.optimize(objective, n_trials=1)`, once per trial, one "
         "`ScheduleAwarePruner()` (the Schaipp 124M 15k runs replayed in a random order, SQLite): "
         "completed trials, curves in the pruner's cache, wall time; the old way keys the caches on "
         "the storage object each `load_study` creates.\n")
    rows = []
    n = 22
    now, old = _optuna_loop(n, False), _optuna_loop(n, True)
    rows.append([str(n), str(now[0]), str(now[1]), str(old[1]), f"{now[2]:.1f}", f"{old[2]:.1f}",
                 f"{old[2] / now[2]:.2f}"])
    table(["trials", "completed", "cached curves now", "cached, old way", "wall s now", "wall s, old way",
           "old / now"], rows)


def main() -> None:
    t0 = time.time()
    emit("# Memory of long horizons and long studies\n")
    emit("Command: `python benchmarks/memory.py` (environment `OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "
         "RAY_AUTH_MODE=disabled`). Each part beside the way it was done before, measured in the same run.\n")
    suggest_memory()
    ray_memory()
    optuna_memory()
    emit(f"Total time {time.time() - t0:.0f} s.")
    save("memory")


if __name__ == "__main__":
    main()
