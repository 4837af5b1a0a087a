"""Tune the LR schedule of a small byte-level language model, end to end, on CPU.

The model and data are those of ``benchmarks/generate_curves.py``: a decoder-only
transformer trained on the CPython documentation topics (``pydoc_data.topics``), the
validation loss in nats per byte.  Each trial trains it under one LR schedule (peak LR,
family ``wsd`` or ``cosine``, WSD cooldown fraction) through
:func:`lrtune.schedules.to_lambda_lr` and reports the validation loss every ``--eval-every``
optimizer steps.

    python examples/tune_lm.py optuna [--trials N] [--steps T] [--tiny] [--out DIR]
    python examples/tune_lm.py ray    [--trials N] [--steps T] [--tiny] [--out DIR]

``optuna``: ``ScheduleSampler`` proposes the schedules, ``ScheduleAwarePruner`` prunes,
the study lives in ``DIR/study.db`` (SQLite).  ``ray``: ``tune.Tuner`` with the
``ScheduleAwareScheduler``; the schedules are drawn at random from the same space
(``ScheduleSpace.sample``) and the trainable reads ``config["lr_schedule"]``.

It prints the best trial (its spec and final loss), how many trials were pruned or
stopped, and the optimizer steps trained against running every trial to the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BENCH = os.path.join(ROOT, "benchmarks")

# model, horizon and search space of the two settings
SETTINGS = {
    "full": dict(model="small", trials=30, steps=400, eval_every=20, warmup=20, val_windows=64,
                 peak_lr=(3e-4, 2e-2)),
    "tiny": dict(model="tiny", trials=6, steps=60, eval_every=10, warmup=5, val_windows=16,
                 peak_lr=(1e-3, 3e-2)),
}


def _gc():
    """benchmarks/generate_curves.py, imported for its model, data and optimizer."""
    if BENCH not in sys.path:
        sys.path.insert(0, BENCH)
    import generate_curves

    return generate_curves


def train(spec: str, steps: int, eval_every: int, model_size: str, val_windows: int, seed: int = 0):
    """Train under the schedule ``spec``; yield ``(optimizer_step, validation_loss)`` every
    ``eval_every`` steps (the caller may stop early by not asking for more)."""
    import torch
    from torch.nn import functional as F

    from lrtune.schedules import parse_schedule, to_lambda_lr

    torch.set_num_threads(1)
    gc = _gc()
    cfg = gc.MODEL_SIZES[model_size]
    data = gc.load_data()
    val = torch.as_tensor(gc.val_windows(data, cfg, val_windows), dtype=torch.long)
    model = gc.build_model(cfg, seed)
    opt = gc.build_optimizer(model, parse_schedule(spec).peak, "cpu")
    sched = to_lambda_lr(spec, opt)

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            logits = model(val[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, cfg.vocab), val[:, 1:].reshape(-1)).item()
        model.train()
        return loss

    for step in range(1, steps + 1):
        batch = torch.as_tensor(gc.train_batch(data, cfg, seed, step), dtype=torch.long)
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), gc.OPTIMIZER["grad_clip_norm"])
        opt.step()
        sched.step()
        if step % eval_every == 0 or step == steps:
            yield step, evaluate()


def make_space(s: dict):
    from lrtune.integrations.optuna import ScheduleSpace

    return ScheduleSpace(steps=s["steps"], peak_lr=s["peak_lr"], families=("wsd", "cosine"),
                         cooldown=(0.1, 0.9), warmup=s["warmup"])


def summary(mode: str, best_spec: str, best_loss: float, n: int, n_stopped: int, n_done: int, used: int,
            total: int, wall: float, extra: dict) -> dict:
    word = "pruned" if mode == "optuna" else "stopped"
    print(f"best trial: {best_spec}  final validation loss {best_loss:.4f} nats/byte")
    print(f"trials: {n} ({n_done} completed, {n_stopped} {word})")
    if extra.get("why"):  # what the pruner / scheduler recorded for the trials it stopped
        print(f"why {word}: " + ", ".join(f"{k} {reason}" for reason, k in sorted(extra["why"].items())))
    print(f"optimizer steps: {used} of {total} if every trial ran to the end ({used / total:.0%})")
    print(f"wall time: {wall:.1f} s")
    out = dict(mode=mode, best_spec=best_spec, best_loss=best_loss, trials=n, completed=n_done, stopped=n_stopped,
               steps_used=used, steps_all=total, wall_s=round(wall, 1), **extra)
    return out


# -- Optuna ------------------------------------------------------------------------------


def run_optuna(s: dict, out: str, seed: int) -> dict:
    import optuna

    from lrtune.integrations.optuna import PRUNED_ATTR, ScheduleAwarePruner, ScheduleSampler, suggest_schedule

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = make_space(s)
    db = os.path.join(out, "study.db")
    study = optuna.create_study(storage=f"sqlite:///{db}", study_name="tune_lm", load_if_exists=True,
                                sampler=ScheduleSampler(space, seed=seed), pruner=ScheduleAwarePruner())

    def objective(trial):
        schedule = suggest_schedule(trial, space)  # records trial.user_attrs["lr_schedule"]
        loss = math.nan
        for step, loss in train(schedule.spec(), s["steps"], s["eval_every"], s["model"], s["val_windows"], seed):
            trial.report(loss, step)  # step = optimizer steps
            if trial.should_prune():
                raise optuna.TrialPruned()
        return loss

    t0 = time.time()
    done_before = len(study.trials)
    study.optimize(objective, n_trials=s["trials"])
    trials = study.trials[done_before:]
    S = optuna.trial.TrialState
    complete = [t for t in trials if t.state == S.COMPLETE]
    pruned = [t for t in trials if t.state == S.PRUNED]
    used = sum(max(t.intermediate_values, default=0) for t in trials)
    best = study.best_trial
    # the pruner records why it pruned a trial in the trial's user attribute "lrtune_pruned"
    why = Counter(t.user_attrs.get(PRUNED_ATTR, {}).get("reason", "other") for t in pruned)
    return summary("optuna", best.user_attrs["lr_schedule"], best.value, len(trials), len(pruned), len(complete), used,
                   len(trials) * s["steps"], time.time() - t0, dict(storage=db, best_params=best.params, why=dict(why)))


# -- Ray Tune ----------------------------------------------------------------------------


def run_ray(s: dict, out: str, seed: int) -> dict:
    import numpy as np
    import ray
    from ray import tune

    from lrtune.integrations.ray import ScheduleAwareScheduler

    space = make_space(s)
    specs = [space.schedule(p).spec() for p in space.sample(np.random.default_rng(seed), s["trials"])]
    steps, every, model_size, n_val = s["steps"], s["eval_every"], s["model"], s["val_windows"]
    root = ROOT

    def trainable(config):
        for p in (root, os.path.join(root, "benchmarks")):
            if p not in sys.path:
                sys.path.insert(0, p)
        for step, loss in train(config["lr_schedule"], steps, every, model_size, n_val, seed):
            tune.report({"loss": loss, "step": step})  # training_iteration k = step every * k

    scheduler = ScheduleAwareScheduler(step_unit=every)
    t0 = time.time()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([ROOT, BENCH, os.environ.get("PYTHONPATH", "")])}})
    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={"lr_schedule": tune.grid_search(specs)},
            tune_config=tune.TuneConfig(metric="loss", mode="min", scheduler=scheduler),
            run_config=tune.RunConfig(name="tune_lm", storage_path=os.path.abspath(os.path.join(out, "ray")),
                                      verbose=0))
        results = tuner.fit()
        if results.errors:
            raise RuntimeError(f"{len(results.errors)} Ray Tune trial(s) failed: {results.errors[0]!r}")
        rows = []
        for r in results:
            df = r.metrics_dataframe
            last = int(df["step"].max()) if df is not None and len(df) else 0
            loss = float(df["loss"].iloc[-1]) if df is not None and len(df) else math.nan
            rows.append((r.config["lr_schedule"], last, loss))
    finally:
        ray.shutdown()
    complete = [r for r in rows if r[1] >= steps]
    best = min(complete or rows, key=lambda r: r[2])
    why = Counter(w["reason"] for w in scheduler.stop_reasons.values())  # why the scheduler stopped each trial
    return summary("ray", best[0], best[2], len(rows), len(rows) - len(complete), len(complete),
                   sum(r[1] for r in rows), len(rows) * steps, time.time() - t0, dict(why=dict(why)))


def _lr_range(text: str) -> tuple[float, float]:
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (two numbers), got {text!r}") from None
    if len(values) != 2 or not 0 < values[0] < values[1]:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH with 0 < LOW < HIGH, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["optuna", "ray"])
    p.add_argument("--trials", type=int, help="number of trials (default 30; --tiny 6)")
    p.add_argument("--steps", type=int, help="optimizer steps per trial (default 400; --tiny 60)")
    p.add_argument("--eval-every", type=int, help="steps between validation losses (default 20; --tiny 10)")
    p.add_argument("--tiny", action="store_true", help="a tiny model and horizon: the whole run takes seconds")
    p.add_argument("--peak-lr", type=_lr_range, metavar="LOW,HIGH",
                   help="range of the peak LR (default 3e-4,2e-2; --tiny 1e-3,3e-2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="tune_lm_out", help="folder for the study / Ray results (default tune_lm_out)")
    args = p.parse_args(argv)
    s = dict(SETTINGS["tiny" if args.tiny else "full"])
    for key in ("trials", "steps", "eval_every", "peak_lr"):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    if s["trials"] < 1 or s["eval_every"] < 1 or s["steps"] < 2:
        p.error(f"--trials and --eval-every must be >= 1 and --steps >= 2, got {s['trials']}, {s['eval_every']} "
                f"and {s['steps']}")
    try:  # a horizon too short for the space's warmup and cooldowns
        make_space(s)
    except ValueError as e:
        p.error(str(e))
    os.makedirs(args.out, exist_ok=True)
    print(f"tune_lm {args.mode}: {s['trials']} trials x {s['steps']} steps, model {s['model']}, "
          f"loss every {s['eval_every']} steps, peak LR {s['peak_lr']}, wsd/cosine -> {args.out}")
    result = (run_optuna if args.mode == "optuna" else run_ray)(s, args.out, args.seed)
    with open(os.path.join(args.out, f"{args.mode}_summary.json"), "w") as f:
        json.dump(result, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
