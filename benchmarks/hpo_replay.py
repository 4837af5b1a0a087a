"""HPO replay benchmark: grids of real loss curves replayed as trials through Optuna and Ray Tune.

Each run of a grid is one trial; its objective reports the run's real validation-loss curve
step by step, so every pruner / scheduler decides on exactly the losses the run produced.
Two grids, one study per horizon:

* ``schaipp``: the Schaipp 124M grid (``grid()`` of
  benchmarks/replay_pruning.py), horizons 15000/25000/35000/50000, a loss every 200
  optimizer steps (20-41 runs per horizon; the 5e-3 cosine run at 50k diverged: it reports
  its real, huge losses);
* ``generated``: the project's sweep in benchmarks/data/generated (13 schedules x 5 peak LRs
  per horizon 200/400/800, a loss every 20 updates; no run diverged).

Methods, all on the same random trial orders (``numpy.random.default_rng(order).permutation``):
Optuna pruners (lrtune ScheduleAwarePruner at its defaults and an aggressive setting,
lrtune pruner + ScheduleSampler on half the grid's trials, NopPruner, MedianPruner,
SuccessiveHalvingPruner, HyperbandPruner, WilcoxonPruner) and Ray Tune schedulers
(lrtune ScheduleAwareScheduler, ASHAScheduler, HyperBandScheduler, MedianStoppingRule),
the latter driven by a sequential replay driver (one trial at a time, like
``max_concurrent_trials=1``) that calls the real scheduler objects with real
``ray.tune.experiment.Trial`` objects; ``verify`` checks the driver against real
``tune.Tuner`` runs.  ``spearman`` measures how well lrtune's final-loss forecast ranks the
runs from 10/25/50 % of training, against the raw loss at the same step.

    python benchmarks/hpo_replay.py all                 # everything (default 20 orders)
    python benchmarks/hpo_replay.py optuna --grid generated --methods nop,median --orders 3
    python benchmarks/hpo_replay.py ray --grid schaipp --orders 0-4
    python benchmarks/hpo_replay.py spearman
    python benchmarks/hpo_replay.py verify --order-list 0  # driver vs real tune.Tuner
    python benchmarks/hpo_replay.py render              # rewrite .md/.png from the .json

Results go to benchmarks/results/hpo_replay.json (incrementally, keyed by
method|grid|horizon|order, so parts can be rerun separately) and are rendered to
benchmarks/results/hpo_replay.md and hpo_replay.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import hashlib
import json
import math
import os
import sys
import time
import traceback
import warnings
from collections import OrderedDict

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import numpy as np
import optuna
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from lrtune import read_curves  # noqa: E402
from lrtune.datasets import schaipp_spec  # noqa: E402
from lrtune.curves import Curve  # noqa: E402
from lrtune.laws import make_law  # noqa: E402
from lrtune.integrations._forecast import FinalLossModel, is_diverging, law_factory, schedule_lr  # noqa: E402
from lrtune.integrations.optuna import (ScheduleAwarePruner, ScheduleSampler, ScheduleSpace,  # noqa: E402
                                        record_schedule)

import replay_pruning  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

GRIDS = {"schaipp": (15000, 25000, 35000, 50000), "generated": (200, 400, 800)}
GENERATED = os.path.join(HERE, "data", "generated", "curves")
STORE = os.path.join(HERE, "results", "hpo_replay.json")
RESULTS_MD = os.path.join(HERE, "results", "hpo_replay.md")
RESULTS_PNG = os.path.join(HERE, "results", "hpo_replay.png")
N_STARTUP = 4  # trials the lrtune model needs completed (pruner / sampler / Spearman protocol)
FRACTIONS = (0.1, 0.25, 0.5)
#: more completed runs for the Spearman protocol's second table (at 25 % of training), where
#: at least MIN_RANKED runs are left to rank
MORE_STARTUP = (8, 16)
MIN_RANKED = 10


# -- grids --------------------------------------------------------------------------------

@dataclasses.dataclass
class Run:
    name: str
    spec: str
    steps: np.ndarray  # optimizer steps of the reported losses
    loss: np.ndarray
    horizon: int

    @property
    def final(self) -> float:
        v = float(self.loss[-1])
        return v if math.isfinite(v) else math.inf

    @property
    def last_step(self) -> int:
        return int(self.steps[-1])

    def curve(self, upto: int | None = None) -> Curve:
        keep = slice(None) if upto is None else self.steps <= upto
        return Curve(self.steps[keep], self.loss[keep], np.asarray(schedule_lr(self.spec)), name=self.name)


_GRID_CACHE: dict = {}


def load_grid(grid: str, horizon: int) -> list[Run]:
    """The runs of one horizon of a grid, sorted by name."""
    key = (grid, horizon)
    if key in _GRID_CACHE:
        return _GRID_CACHE[key]
    runs = []
    if grid == "schaipp":
        for c in replay_pruning.grid(horizon):
            runs.append(Run(c.name, schaipp_spec(c.meta), np.asarray(c.steps, np.int64),
                            np.asarray(c.loss, float), horizon))
    elif grid == "generated":
        for path in sorted(glob.glob(os.path.join(GENERATED, "*.json"))):
            meta = json.load(open(path))
            if int(meta["horizon"]) != horizon:
                continue
            (c,) = read_curves(os.path.join(GENERATED, meta["csv"]))
            keep = np.isfinite(c.loss) | (c.steps > 0)  # every logged point, NaN losses included
            runs.append(Run(meta["run"], meta["spec"], np.asarray(c.steps[keep], np.int64),
                            np.asarray(c.loss[keep], float), horizon))
    else:
        raise ValueError(f"unknown grid {grid!r}")
    runs.sort(key=lambda r: r.name)
    if not runs:
        raise ValueError(f"no runs for grid {grid} horizon {horizon}")
    _GRID_CACHE[key] = runs
    return runs


def trial_order(n: int, order: int) -> np.ndarray:
    return np.random.default_rng(order).permutation(n)


# -- metrics ------------------------------------------------------------------------------

def summarize(runs: list[Run], trials: list[tuple[int, int, bool]]) -> dict:
    """``trials``: (run index, optimizer steps it used, completed).  Steps fraction is over
    running *every run of the grid* to its end; regret is the final loss of the best
    completed trial minus the grid's best final loss."""
    finals = np.array([r.final for r in runs])
    best = int(np.argmin(finals))
    used = int(sum(s for _, s, _ in trials))
    total = int(sum(r.last_step for r in runs))
    completed = sorted({i for i, _, done in trials if done})
    out = {"fraction": used / total, "used": used, "n_trials": len(trials), "n_completed": len(completed),
           "kept_best": best in completed}
    if not completed:
        out.update(regret=float("nan"), regret_rel=float("nan"), chosen=None)
        return out
    chosen = min(completed, key=lambda i: finals[i])
    out.update(regret=float(finals[chosen] - finals[best]),
               regret_rel=float((finals[chosen] - finals[best]) / finals[best] * 100), chosen=runs[chosen].name)
    return out


def _finite(a) -> np.ndarray:
    a = np.asarray(a, float)
    return np.where(np.isfinite(a), a, 1e9)


def spearman_cells(store: dict, grid: str, k: int = N_STARTUP) -> tuple[list[dict], list[int]]:
    """The Spearman results at 25 % of training of ``grid``'s studies whose model had ``k``
    completed runs (``N_STARTUP`` or one of ``MORE_STARTUP``), and their horizons."""
    cells = {}
    for key, v in store.items():
        method, g, h, _ = key.split("|")
        if method == "spearman" and g == grid:
            cell = v["0.25"] if k == N_STARTUP else v.get("startup", {}).get(str(k))
            if cell is not None:
                cells[key] = (int(h), cell)
    return [c for _, c in cells.values()], sorted({h for h, _ in cells.values()})


def spearman(a, b) -> float:
    return float(stats.spearmanr(_finite(a), _finite(b))[0])


def forecast_ranking(runs: list[Run], order: np.ndarray, fractions=FRACTIONS, n_startup: int = N_STARTUP) -> dict:
    """Spearman correlation of predicted vs true final losses of every run not among the
    first ``n_startup`` of ``order`` that did not diverge: lrtune's forecast (FinalLossModel
    fitted on those first runs, the pruner's defaults) and the raw loss at the same step.
    A run the pruner would have stopped as diverging (its loss rising above
    ``divergence_ratio`` times its lowest so far) is not a finished curve: it is ranked
    with the others but not fitted, as in a study."""
    pruner = ScheduleAwarePruner()
    ratio = pruner._divergence_ratio

    def diverged(r: Run) -> bool:  # the pruner's rule at some report
        return any(is_diverging(r.loss[:k], ratio) for k in range(1, r.loss.size + 1))

    first = [i for i in order if not diverged(runs[i])][:n_startup]
    fit = [runs[i] for i in first]
    model = FinalLossModel([r.curve() for r in fit], law_factory(LAW), burn_in=pruner._min_progress,
                           min_error=pruner._min_error, max_folds=pruner._max_folds)
    rest = [runs[i] for i in order if i not in set(first)]
    truth = [r.final for r in rest]

    def raw_at(r: Run, f: float) -> tuple[np.ndarray, float]:
        cut = r.steps <= f * r.horizon
        if not cut.any():
            cut[0] = True
        return cut, float(r.loss[cut][-1])

    out = {}
    for f in fractions:
        # a run that cannot be forecast yet is ranked by its raw loss scaled to a final loss by
        # the fitted runs' mean ratio of final to raw loss at this fraction (a raw loss mixed
        # unscaled with forecasts of final losses would rank it far above every forecast run)
        to_final = float(np.mean([r.final / raw_at(r, f)[1] for r in fit]))
        pred, raw, fallback = [], [], 0
        for r in rest:
            cut, raw_v = raw_at(r, f)
            lr = np.asarray(schedule_lr(r.spec))
            fc = None
            ok = np.isfinite(r.loss[cut]) & (r.loss[cut] > 0)
            if ok.all():
                fc = model.forecast(lr, r.steps[cut], r.loss[cut])
            if fc is None or not math.isfinite(fc.final):
                fallback += 1
                pred.append(raw_v * to_final)
            else:
                pred.append(fc.final)
            raw.append(raw_v)
        out[f"{f:g}"] = {"lrtune": spearman(pred, truth), "raw": spearman(raw, truth), "fallback": fallback,
                         "n": len(rest)}
    return out


# -- Optuna -------------------------------------------------------------------------------

_Momentum = type(make_law("momentum"))


_FIT_CACHE: "OrderedDict[tuple, dict]" = OrderedDict()


class NoBandMomentum(_Momentum):
    """The momentum law (default settings) fitted with ``band=False``: the same parameters and
    predictions, without the leave-one-curve-out refits that only ``predict_interval`` uses
    (neither the pruner's forecast nor the sampler's score calls it).  Fits are memoised on
    the curves' data (steps, losses, LR arrays): a fit is a deterministic function of them,
    so the methods replayed on one study (which fit the same first completed trials) share
    the work without changing any decision."""

    def fit(self, curves, *, band: bool = False):
        curves = [curves] if isinstance(curves, Curve) else list(curves)
        key = (json.dumps(self.get_config(), sort_keys=True, default=str),) + tuple(
            (c.steps.tobytes(), c.loss.tobytes(), hashlib.blake2b(np.ascontiguousarray(c.lr).tobytes(),
                                                                  digest_size=16).digest()) for c in curves)
        hit = _FIT_CACHE.get(key)
        if hit is not None:
            _FIT_CACHE.move_to_end(key)
            self.__dict__.update(hit)
            self.fitted_on_ = [c.name for c in curves]
            return self
        super().fit(curves, band=False)
        _FIT_CACHE[key] = dict(self.__dict__)
        while len(_FIT_CACHE) > 4000:
            _FIT_CACHE.popitem(last=False)
        return self


def fast_law():
    return NoBandMomentum()


FAST = os.environ.get("HPO_REPLAY_FULL_LAW", "") != "1"  # HPO_REPLAY_FULL_LAW=1: the plain "momentum" law
LAW = fast_law if FAST else "momentum"

def schedule_space(grid: str, horizon: int, runs: list[Run]) -> ScheduleSpace:
    """The ScheduleSampler's space for a grid (continuous ranges covering the grid's
    categorical / discrete values; see ``nearest_run``)."""
    peaks = sorted({float(np.max(schedule_lr(r.spec))) for r in runs})
    if grid == "schaipp":
        return ScheduleSpace(steps=horizon, peak_lr=(peaks[0], peaks[-1]), families=("wsd", "cosine", "constant"),
                             cooldown=(0.1, 0.9), shapes=("linear", "1-sqrt"), warmup=301)
    return ScheduleSpace(steps=horizon, peak_lr=(peaks[0], peaks[-1]), families=("wsd", "cosine", "linear", "constant"),
                         cooldown=(0.1, 0.4), shapes=("linear", "1-sqrt"), warmup=20)


def _shape(lr: np.ndarray) -> tuple[float, np.ndarray]:
    peak = float(lr.max())
    return peak, lr / peak


def nearest_run(proposal_lr: np.ndarray, runs: list[Run], exclude: set[int]) -> int:
    """The grid run (not in ``exclude``) closest to a proposed schedule: |ln peak ratio| plus
    the mean absolute difference of the LR arrays normalised by their peaks."""
    p_peak, p_shape = _shape(np.asarray(proposal_lr, float))
    best, best_d = -1, math.inf
    for i, r in enumerate(runs):
        if i in exclude:
            continue
        peak, shape = _shape(np.asarray(schedule_lr(r.spec), float))
        n = min(shape.size, p_shape.size)
        d = abs(math.log(peak / p_peak)) + float(np.mean(np.abs(shape[:n] - p_shape[:n])))
        if d < best_d:
            best, best_d = i, d
    return best


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    return {
        "lrtune": lambda: ScheduleAwarePruner(law=LAW),
        "lrtune-aggr": lambda: ScheduleAwarePruner(confidence=0.8, margin=0.002, law=LAW),
        "lrtune-late": lambda: ScheduleAwarePruner(max_progress=0.9, law=LAW),
        "lrtune+sampler": lambda: ScheduleAwarePruner(law=LAW),
        "nop": optuna.pruners.NopPruner,
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0),
        "sha": optuna.pruners.SuccessiveHalvingPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "wilcoxon": optuna.pruners.WilcoxonPruner,
    }[name]()


OPTUNA_METHODS = {
    "lrtune": "lrtune ScheduleAwarePruner()",
    "lrtune-aggr": "lrtune ScheduleAwarePruner(confidence=0.8, margin=0.002)",
    "lrtune-late": "lrtune ScheduleAwarePruner(max_progress=0.9)",
    "lrtune+sampler": "lrtune pruner + ScheduleSampler (half the trials)",
    "nop": "NopPruner",
    "median": "MedianPruner(n_startup_trials=4)",
    "sha": "SuccessiveHalvingPruner()",
    "hyperband": "HyperbandPruner()",
    "wilcoxon": "WilcoxonPruner() (step = report index)",
}


def replay_optuna(grid: str, horizon: int, order_seed: int, method: str) -> dict:
    """One Optuna study: the grid's runs as trials in the order's sequence (or, for
    ``lrtune+sampler``, the grid runs nearest to ScheduleSampler's proposals)."""
    runs = load_grid(grid, horizon)
    order = trial_order(len(runs), order_seed)
    pruner = make_pruner(method)
    wilcoxon = method == "wilcoxon"
    used: dict[int, tuple[int, int]] = {}
    n_trials = len(runs)
    sampler = optuna.samplers.RandomSampler(seed=order_seed)
    space = None
    if method == "lrtune+sampler":
        space = schedule_space(grid, horizon, runs)
        sampler = ScheduleSampler(space, seed=order_seed, law=LAW, independent_sampler=optuna.samplers.RandomSampler(seed=order_seed))
        n_trials = math.ceil(len(runs) / 2)
    replayed: set[int] = set()

    def objective(trial: optuna.Trial) -> float:
        if space is not None and trial.number >= N_STARTUP:
            proposal = space.suggest(trial)  # ScheduleSampler's proposal (records its spec, overwritten below)
            i = nearest_run(proposal.lr(), runs, replayed)
        elif space is not None:
            i = int(next(j for j in order if int(j) not in replayed))
        else:
            i = int(order[trial.number])
        replayed.add(i)
        r = runs[i]
        record_schedule(trial, r.spec)
        for k, (s, v) in enumerate(zip(r.steps.tolist(), r.loss.tolist())):
            trial.report(v, k if wilcoxon else s)
            used[trial.number] = (i, s)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(r.loss[-1])

    # a fixed name: HyperbandPruner assigns brackets from a hash of the study name
    study = optuna.create_study(direction="minimize", pruner=pruner, sampler=sampler,
                                study_name=f"{grid}-{horizon}-{order_seed}-{method}")
    study.optimize(objective, n_trials=n_trials, catch=(ValueError,))
    trials = []
    for t in study.trials:
        i, s = used[t.number]
        trials.append((i, s, t.state == optuna.trial.TrialState.COMPLETE))
    return summarize(runs, trials)


# -- Ray Tune -----------------------------------------------------------------------------

RAY_METHODS = {
    "ray-lrtune": "lrtune ScheduleAwareScheduler()",
    "ray-asha": "ASHAScheduler(grace 10 %, rf 4)",
    "ray-hyperband": "HyperBandScheduler(max_t, rf 3)",
    "ray-median": "MedianStoppingRule(grace 10 %)",
}


def make_scheduler(method: str, n_points: int):
    from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler, MedianStoppingRule

    from lrtune.integrations.ray import ScheduleAwareScheduler

    it = "training_iteration"
    return {
        "ray-lrtune": lambda: ScheduleAwareScheduler(time_attr="step", step_unit=1, law=LAW),
        "ray-asha": lambda: ASHAScheduler(time_attr=it, max_t=n_points, grace_period=max(1, n_points // 10),
                                          reduction_factor=4),
        "ray-hyperband": lambda: HyperBandScheduler(time_attr=it, max_t=n_points, reduction_factor=3),
        "ray-median": lambda: MedianStoppingRule(time_attr=it, grace_period=max(1, n_points // 10),
                                                 min_samples_required=3),
    }[method]()


class ReplayController:
    """The part of Ray Tune's TuneController a scheduler talks to, for a sequential replay."""

    def __init__(self, scheduler) -> None:
        self.scheduler = scheduler
        self.trials: list = []

    def get_trials(self):
        return self.trials

    def get_live_trials(self):
        from ray.tune.experiment import Trial

        return [t for t in self.trials if t.status not in (Trial.TERMINATED, Trial.ERROR)]

    def stop_trial(self, trial) -> None:
        from ray.tune.experiment import Trial

        if trial.status in (Trial.ERROR, Trial.TERMINATED):
            return
        if trial.status in (Trial.PENDING, Trial.PAUSED):
            self.scheduler.on_trial_remove(self, trial)
        else:
            self.scheduler.on_trial_complete(self, trial, dict(trial.last_result))
        trial.set_status(Trial.TERMINATED)

    def pause_trial(self, trial, should_checkpoint: bool = True) -> None:
        from ray.tune.experiment import Trial

        trial.set_status(Trial.PAUSED)

    def _wrapped(self):
        return self


def ray_trial(run: int, spec: str, number: int):
    from ray.tune.experiment import Trial

    return Trial("replay", config={"run": run, "lr_schedule": spec}, trial_id=f"{number:05d}", stub=True)


def drive_ray(runs: list[Run], order: np.ndarray, scheduler, max_results: int | None = None, lazy: bool = True) -> tuple[list, list]:
    """Replay ``runs`` in ``order`` through a real Ray Tune scheduler, one trial at a time.

    Trials are created (``on_trial_add``) one at a time, as Tune's grid search does under
    ``max_concurrent_trials=1``: the next trial of the order is added when no trial is
    pending or running, or when the scheduler has nothing to run (``lazy=False`` adds them
    all up front instead).  ``choose_trial_to_run`` picks the trial to run; it reports one
    result per logged loss (``training_iteration`` k, ``step``, ``loss``, ``done`` on the
    last) and ``on_trial_result`` decides (not on the last result: like Tune, which stops a
    trial whose result says ``done`` without asking the scheduler): CONTINUE goes on, STOP ends it (``on_trial_complete``, as
    Tune's ``stop_trial`` does for a running trial), PAUSE parks it (it resumes where it
    stopped when chosen again, as from a checkpoint); a run that reports its last loss
    completes (``on_trial_complete``).  Returns ``summarize`` input and the decision log."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    scheduler.set_search_properties("loss", "min")
    ctl = ReplayController(scheduler)
    pos = {}
    queue = [int(i) for i in order]

    def add_next() -> bool:
        if not queue:
            return False
        i = queue.pop(0)
        t = ray_trial(i, runs[i].spec, len(ctl.trials))
        ctl.trials.append(t)
        pos[t.trial_id] = 0
        scheduler.on_trial_add(ctl, t)
        return True

    if not lazy:
        while add_next():
            pass
    log = []
    n_results = 0
    while True:
        if lazy and not any(t.status in (Trial.PENDING, Trial.RUNNING) for t in ctl.trials):
            add_next()
        t = scheduler.choose_trial_to_run(ctl)
        if t is None and lazy and add_next():
            t = scheduler.choose_trial_to_run(ctl)
        if t is None:
            break
        t.set_status(Trial.RUNNING)
        r = runs[t.config["run"]]
        while True:
            j = pos[t.trial_id]
            pos[t.trial_id] = j + 1
            done = j + 1 == r.steps.size
            result = {"loss": float(r.loss[j]), "step": int(r.steps[j]), "training_iteration": j + 1, "done": done,
                      "trial_id": t.trial_id}
            t.update_last_result(result)
            n_results += 1
            if done:  # Tune does not ask the scheduler about a result with done=True: it completes the trial
                scheduler.on_trial_complete(ctl, t, result)
                t.set_status(Trial.TERMINATED)
                log.append((t.trial_id, j + 1, "DONE"))
                break
            decision = scheduler.on_trial_result(ctl, t, result)
            if decision == TrialScheduler.STOP:
                log.append((t.trial_id, j + 1, "STOP"))
                ctl.stop_trial(t)
                break
            if decision == TrialScheduler.PAUSE:
                log.append((t.trial_id, j + 1, "PAUSE"))
                t.set_status(Trial.PAUSED)
                break
        if max_results is not None and n_results > max_results:
            raise RuntimeError("replay driver: too many results (scheduler loop?)")
    leftover = [t for t in ctl.trials if t.status not in (Trial.TERMINATED,)]
    for t in leftover:  # PAUSED / PENDING trials nobody resumes: they end where they are
        log.append((t.trial_id, pos[t.trial_id], "LEFT " + t.status))
    trials = []
    for t in ctl.trials:
        r = runs[t.config["run"]]
        n = pos[t.trial_id]
        trials.append((t.config["run"], int(r.steps[n - 1]) if n else 0, n == r.steps.size))
    return trials, log


def replay_ray(grid: str, horizon: int, order_seed: int, method: str, n_trials: int | None = None) -> dict:
    runs = load_grid(grid, horizon)
    order = trial_order(len(runs), order_seed)[:n_trials]
    n_points = max(r.steps.size for r in runs)
    trials, log = drive_ray(runs, order, make_scheduler(method, n_points), max_results=50 * sum(r.steps.size for r in runs))
    out = summarize(runs, trials)
    out["pauses"] = sum(1 for x in log if x[2] == "PAUSE")
    return out


def tuner_ray(grid: str, horizon: int, order_seed: int, method: str, tmp: str, n_trials: int | None = None) -> dict:
    """The same study through a real ``tune.Tuner`` (``max_concurrent_trials=1``), a class
    Trainable that replays the run and checkpoints its position when paused."""
    from ray import tune

    runs = load_grid(grid, horizon)
    order = trial_order(len(runs), order_seed)[:n_trials]
    n_points = max(r.steps.size for r in runs)
    data = {i: (runs[i].steps.tolist(), runs[i].loss.tolist()) for i in range(len(runs))}
    specs = {i: runs[i].spec for i in range(len(runs))}

    class Replay(tune.Trainable):
        def setup(self, config, data=None):
            self.steps, self.loss = data[config["run"]]
            self.j = 0

        def step(self):
            j = self.j
            self.j += 1
            return {"loss": self.loss[j], "step": self.steps[j], "done": self.j == len(self.steps)}

        def save_checkpoint(self, checkpoint_dir):
            with open(os.path.join(checkpoint_dir, "pos.json"), "w") as f:
                json.dump({"j": self.j}, f)

        def load_checkpoint(self, checkpoint_dir):
            with open(os.path.join(checkpoint_dir, "pos.json")) as f:
                self.j = json.load(f)["j"]

    param_space = {"run": tune.grid_search([int(i) for i in order]),
                   "lr_schedule": tune.sample_from(lambda spec: specs[spec.config["run"]])}
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(Replay, data=data), {"cpu": 1}),
        param_space=param_space,
        tune_config=tune.TuneConfig(metric="loss", mode="min", scheduler=make_scheduler(method, n_points),
                                    max_concurrent_trials=1, time_budget_s=900),
        run_config=tune.RunConfig(storage_path=tmp, verbose=0),
    )
    t0 = time.time()
    results = tuner.fit()
    wall = time.time() - t0
    if results.errors:
        raise RuntimeError(f"{len(results.errors)} Ray trials failed: {results.errors[0]}")
    trials = []
    for r in results:
        last = int(r.metrics.get("step", 0)) if r.metrics else 0
        run = r.config["run"]
        trials.append((run, last, last >= runs[run].last_step))
    out = summarize(runs, trials)
    out["wall"] = wall
    return out


# -- running ------------------------------------------------------------------------------

def parse_orders(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += list(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def _task(args: tuple) -> list[tuple[str, dict]]:
    """All wanted methods on one study (grid, horizon, order), in one process so that they
    share the law-fit memo."""
    methods, grid, h, o = args
    out = []
    for method in methods:
        t0 = time.time()
        try:
            if method in OPTUNA_METHODS:
                r = replay_optuna(grid, h, o, method)
            elif method in RAY_METHODS:
                r = replay_ray(grid, h, o, method)
            else:
                runs = load_grid(grid, h)
                order = trial_order(len(runs), o)
                r = forecast_ranking(runs, order)
                r["startup"] = {str(k): forecast_ranking(runs, order, (0.25,), k)["0.25"]
                                for k in MORE_STARTUP if len(runs) - k >= MIN_RANKED}
        except Exception:  # one failed study must not end the run: it is reported, and its order is incomplete
            r = {"error": traceback.format_exc()}
        r["wall"] = time.time() - t0
        out.append((f"{method}|{grid}|{h}|{o}", r))
    _FIT_CACHE.clear()
    return out


def _cost(task: tuple) -> float:  # longest first, for the pool
    methods, grid, h, _ = task
    runs = load_grid(grid, h)
    return len(runs) * sum(r.steps.size for r in runs) * (1 + 3 * sum(m.startswith(("lrtune", "ray-lrtune")) for m in methods))


def run_tasks(tasks: list[tuple], data: dict, save, jobs: int, after=None) -> None:
    # order by order, so that a run cut short still has whole orders; the slow sampler studies are
    # spread out (its order k runs with the others' order 4k)
    tasks = sorted(tasks, key=lambda t: (t[3] * 4 if t[0] == ["lrtune+sampler"] else t[3], -_cost(t)))
    store = data.setdefault("results", {})
    done = 0
    if jobs <= 1:
        it = map(_task, tasks)
        pool = None
    else:
        import multiprocessing as mp

        pool = mp.get_context("fork").Pool(jobs, maxtasksperchild=20)
        it = pool.imap_unordered(_task, tasks)
    try:
        for res in it:
            done += 1
            for key, r in res:
                if "error" in r:
                    data.setdefault("errors", {})[key] = r["error"]
                    print(f"[study {done}/{len(tasks)}] {key}: FAILED\n{r['error']}", flush=True)
                    continue
                store[key] = r
                if "fraction" in r:
                    msg = f"steps {r['fraction']:.3f} regret {r['regret_rel']} % kept {r['kept_best']}"
                else:
                    msg = " ".join(f"{f}: {v['lrtune']:.2f}/{v['raw']:.2f}" for f, v in r.items() if f in
                                   {f"{x:g}" for x in FRACTIONS})
                print(f"[study {done}/{len(tasks)}] {key}: {msg} ({r['wall']:.1f} s)", flush=True)
            save()
    finally:
        if pool is not None:
            pool.close()
            pool.join()
        save()
    if after is not None:  # the tune.Tuner check: after the pool (a fork after ray.init() could deadlock)
        after()


# -- report -------------------------------------------------------------------------------

def table(rows: list[list], header: list[str]) -> str:
    return replay_pruning.table(rows, header)


ALL_METHODS = {**OPTUNA_METHODS, **RAY_METHODS}


def complete_orders(store: dict) -> dict:
    """Only the orders of a (method, grid) that have a result for every horizon of the grid
    (a run cut short leaves its last order unfinished)."""
    have: dict[tuple, set] = {}
    for k in store:
        m, g, h, o = k.split("|")
        have.setdefault((m, g, o), set()).add(int(h))
    return {k: v for k, v in store.items()
            if have[(k.split("|")[0], k.split("|")[1], k.split("|")[3])] >= set(GRIDS[k.split("|")[1]])}


def method_stats(store: dict, method: str, grid: str) -> dict | None:
    rs = [v for k, v in store.items() if k.split("|")[0] == method and k.split("|")[1] == grid]
    if not rs:
        return None
    reg = np.array([r["regret_rel"] for r in rs], float)
    return {"n": len(rs), "fraction": float(np.mean([r["fraction"] for r in rs])),
            "regret_rel": float(np.nanmean(reg)), "regret_rel_max": float(np.nanmax(reg)),
            "regret": float(np.nanmean([r["regret"] for r in rs])),
            "kept": sum(bool(r["kept_best"]) for r in rs), "failed": int(np.isnan(reg).sum()),
            "within_noise": None, "wall": float(np.sum([r["wall"] for r in rs]))}


def plot(data: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    store = complete_orders(data.get("results", {}))
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    markers = "o s D ^ v < > P X * h p".split()
    for ax, grid in zip(axes, GRIDS):
        for n, m in enumerate(ALL_METHODS):
            s = method_stats(store, m, grid)
            if s is None:
                continue
            color = "C3" if m.startswith(("lrtune", "ray-lrtune")) else f"C{n % 10 if n % 10 != 3 else 9}"
            ax.scatter(s["fraction"], s["regret_rel"], marker=markers[n % len(markers)], s=70, color=color,
                       edgecolor="k", linewidth=0.5, label=ALL_METHODS[m], zorder=3)
        ax.axhline(0.2, color="grey", ls=":", lw=1)
        ax.axvline(0.25, color="grey", ls=":", lw=1)
        ax.set_xlabel("optimizer steps used (fraction of running every trial fully)")
        ax.set_ylabel("mean regret of the chosen trial (% of best final loss)")
        ax.set_title(f"{grid} grid (horizons {', '.join(map(str, GRIDS[grid]))})")
        ax.set_xlim(0, 1.05)
        ax.set_ylim(bottom=-0.05)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def headline(data: dict) -> list[str]:
    """Plain statements per grid: does lrtune's pruner reach regret <= 0.2 % with <= 25 % of
    the steps, is its regret lower than every method with similar or fewer steps, and does its
    forecast rank better than the raw loss at 25 %."""
    store = complete_orders(data.get("results", {}))
    out = []
    for grid in GRIDS:
        stats_ = {m: method_stats(store, m, grid) for m in ALL_METHODS}
        stats_ = {m: s for m, s in stats_.items() if s is not None}
        lr_methods = [m for m in ("lrtune", "lrtune-aggr", "lrtune-late", "lrtune+sampler", "ray-lrtune")
                      if m in stats_]
        if not lr_methods:
            continue
        parts = []
        for m in lr_methods:
            s = stats_[m]
            ok = s["fraction"] <= 0.25 and s["regret_rel"] <= 0.2
            others = [o for o in stats_ if not o.startswith(("lrtune", "ray-lrtune")) and o != "nop"
                      and stats_[o]["fraction"] <= s["fraction"] + 0.05]
            better = [o for o in others if stats_[o]["regret_rel"] <= s["regret_rel"]]
            worse = [o for o in others if o not in better]
            txt = (f"**{ALL_METHODS[m]}**: steps {s['fraction']:.3f}, mean regret {s['regret_rel']:.3f} %, kept the "
                   f"best run in {s['kept']}/{s['n']} studies; regret <= 0.2 % with <= 25 % of the steps: "
                   f"**{'yes' if ok else 'no'}**")
            if s["fraction"] > 0.25:
                txt += " (it uses more than 25 % of the steps)"
            if others:
                txt += ("; against the other methods with similar or fewer steps (up to "
                        f"{s['fraction'] + 0.05:.2f}): lower regret than "
                        + (", ".join(f"{ALL_METHODS[o]} ({stats_[o]['fraction']:.2f}, {stats_[o]['regret_rel']:.3f} %)"
                                     for o in worse) or "none")
                        + "; equal or lower regret: "
                        + (", ".join(f"{ALL_METHODS[o]} ({stats_[o]['fraction']:.2f}, {stats_[o]['regret_rel']:.3f} %)"
                                     for o in better) or "none"))
            parts.append(txt + ".")
        for k in (N_STARTUP, *MORE_STARTUP):
            cells, _ = spearman_cells(store, grid, k)
            if not cells:
                continue
            a, b = np.nanmean([c["lrtune"] for c in cells]), np.nanmean([c["raw"] for c in cells])
            if k == N_STARTUP:
                parts.append(f"Spearman at 25 % of training: lrtune forecast {a:.3f} vs raw loss {b:.3f}: "
                             f"**{'lrtune ranks better' if a > b else 'lrtune does NOT rank better'}** (model of "
                             f"the first {N_STARTUP} runs).")
            else:
                parts.append(f"With {k} completed runs: {a:.3f} vs {b:.3f}.")
        out.append(f"- **{grid} grid**: " + " ".join(parts))
    return out


def render(data: dict) -> str:
    store = complete_orders(data.get("results", {}))
    noise = data.get("noise")
    lines = ["# HPO replay: real loss curves replayed as trials through Optuna and Ray Tune", ""]
    head = headline(data)
    if head:
        lines += ["## Headline (computed from the stored results)", ""] + head + [""]
    lines += ["## Commands", "", "Run from the repository root (environment: `OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "
              "MKL_NUM_THREADS=1 RAY_AUTH_MODE=disabled`):", ""]
    lines += [f"    {c}" for c in data.get("commands", [])]
    if data.get("wall"):
        lines += ["", "Wall times: " + "; ".join(f"`{k}` {v / 60:.1f} min" for k, v in data["wall"].items())]
    lines += ["", "## Set-up", "",
              "Each run of a grid is one trial: its objective reports the run's real validation-loss curve step by "
              "step, so every pruner / scheduler decides on exactly the losses the run produced. One study per "
              "grid horizon:", "",
              "- **schaipp**: the Schaipp 124M grid (`grid()` of benchmarks/replay_pruning.py, specs from `lrtune.datasets.schaipp_spec`), "
              "horizons 15000 / 25000 / 35000 / 50000 (22 / 38 / 20 / 41 runs), a loss every 200 optimizer steps; "
              "the 5e-3 cosine run at 50k diverged and reports its real losses (up to 7.8);",
              "- **generated**: benchmarks/data/generated, 13 schedules x 5 peak LRs = 65 runs per horizon 200 / 400 "
              "/ 800, a loss every 20 updates (`lrtune.read_curves`, spec from each run's .json; no run diverged, "
              "the 8e-3 runs spike to ~6 after warmup and recover).", "",
              "Methods: Optuna pruners (lrtune `ScheduleAwarePruner` at its defaults and at `confidence=0.8, "
              "margin=0.002`; lrtune pruner + `ScheduleSampler`; `NopPruner`, `MedianPruner`, "
              "`SuccessiveHalvingPruner`, `HyperbandPruner`, `WilcoxonPruner`) and Ray Tune schedulers (lrtune "
              "`ScheduleAwareScheduler`, `ASHAScheduler`, `HyperBandScheduler`, `MedianStoppingRule`, through the "
              "replay driver checked below).", ""]
    lines += ["Every study replays the grid's runs as trials, one after another, in a random order "
              "(`numpy.random.default_rng(order).permutation`, the same orders for every method). "
              "**Steps** is the optimizer steps the trials ran over those of running every run of the grid to its "
              "end. **Regret** is the final loss of the best *completed* trial minus the grid's best final loss "
              "(relative: in % of the best). **Kept best**: studies in which the grid's best run completed. Means "
              "are over all studies (orders x horizons) of a grid.", ""]
    if noise:
        lines += [f"Seed noise (Schaipp, `seed_noise()` in replay_pruning.py): the {noise[1]} 124M configurations that "
                  f"were run twice differ by a standard deviation of {noise[0]:.5f} per run in final loss, "
                  f"about {noise[0] / 2.95 * 100:.3f} % of a final loss near 2.95; regrets below that are ties. "
                  "The generated grid has one seed per run, so no such measure exists there.", ""]
    if "grids" in data:
        lines += ["## The grids", "", table(data["grids"], ["grid", "horizon", "runs", "best final (run)",
                                                            "gap to 2nd", "runs within 0.2 % of best"]), ""]
    for grid in GRIDS:
        rows = []
        for m, label in ALL_METHODS.items():
            s = method_stats(store, m, grid)
            if s is None:
                continue
            rows.append([label, "Ray (driver)" if m.startswith("ray-") else "Optuna", s["n"], f"{s['fraction']:.3f}",
                         f"{s['regret_rel']:.3f}", f"{s['regret_rel_max']:.3f}", f"{s['regret']:.4f}",
                         f"{s['kept']}/{s['n']}", s["failed"], f"{s['wall']:.0f}"])
        if rows:
            lines += [f"## {grid} grid: methods", "",
                      table(rows, ["method", "library", "studies", "steps", "mean regret %", "max regret %",
                                   "mean regret", "kept best", "no completed trial", "worker wall s"]), ""]
            per_h = []
            for m, label in ALL_METHODS.items():
                for h in GRIDS[grid]:
                    rs = [v for k, v in store.items() if k.split("|")[:3] == [m, grid, str(h)]]
                    if rs:
                        per_h.append([label, h, len(rs), f"{np.mean([r['fraction'] for r in rs]):.3f}",
                                      f"{np.nanmean([r['regret_rel'] for r in rs]):.3f}",
                                      f"{sum(bool(r['kept_best']) for r in rs)}/{len(rs)}"])
            lines += ["<details><summary>per horizon</summary>", "",
                      table(per_h, ["method", "horizon", "studies", "steps", "mean regret %", "kept best"]), "",
                      "</details>", ""]
    sp_rows = []
    for grid in GRIDS:
        rs = [v for k, v in store.items() if k.split("|")[0] == "spearman" and k.split("|")[1] == grid]
        if not rs:
            continue
        for f in FRACTIONS:
            key = f"{f:g}"
            lr_ = np.nanmean([r[key]["lrtune"] for r in rs])
            raw = np.nanmean([r[key]["raw"] for r in rs])
            fb = sum(r[key]["fallback"] for r in rs)
            n = sum(r[key]["n"] for r in rs)
            sp_rows.append([grid, f"{f * 100:g} %", len(rs), f"{lr_:.3f}", f"{raw:.3f}", f"{lr_ - raw:+.3f}",
                            f"{fb}/{n}"])
    if sp_rows:
        _P = ScheduleAwarePruner()
        lines += ["## Ranking the final losses early (Spearman)", "",
                  "Per study (grid, horizon, order): the first 4 runs of the order that did not diverge (the 5e-3 "
                  "cosine run at 50k is skipped as the pruner would stop it) are run fully and "
                  f"`integrations._forecast.FinalLossModel` (law `momentum`, `burn_in={_P._min_progress:g}`, "
                  f"`min_error={_P._min_error:g}`, `max_folds={_P._max_folds}`: the pruner's defaults) is fitted on them; every other run of that horizon is "
                  "forecast from its curve up to 10/25/50 % of its horizon. Where it cannot be forecast yet "
                  "(its last 3 points must lie after `burn_in` = 10 % of the horizon, so at 10 % it never can) "
                  "its raw loss times the fitted runs' mean ratio of final to raw loss at that fraction is used instead "
                  "(counted in *fallback*; on the scale of a final loss, so it ranks among the forecasts). Baseline: the raw loss at the same step "
                  "(what ASHA / successive halving rank by). Spearman correlation with the true final losses, mean "
                  "over studies.", "",
                  table(sp_rows, ["grid", "at", "studies", "lrtune forecast", "raw loss", "difference",
                                  "fallback to raw"]), ""]
        more = []
        for grid in GRIDS:
            for k in (N_STARTUP, *MORE_STARTUP):
                cells, hs = spearman_cells(store, grid, k)
                if not cells:
                    continue
                a, b = np.nanmean([c["lrtune"] for c in cells]), np.nanmean([c["raw"] for c in cells])
                more.append([grid, k, ", ".join(map(str, hs)), len(cells), f"{a:.3f}", f"{b:.3f}", f"{a - b:+.3f}",
                             f"{sum(c['fallback'] for c in cells)}/{sum(c['n'] for c in cells)}"])
        if any(row[1] != N_STARTUP for row in more):
            lines += ["The same at 25 % of training with more runs completed before the forecast (the first 4, 8 "
                      f"or 16 runs of each order; a horizon counts where at least {MIN_RANKED} runs are left to "
                      "rank, so the Schaipp rows with 16 leave out 15k and 35k). A pruner's model holds every "
                      "trial completed so far: the first row is what it knows right after its startup trials, "
                      "the others later in a study.", "",
                      table(more, ["grid", "completed runs", "horizons", "studies", "lrtune forecast", "raw loss",
                                   "difference", "fallback to raw"]), ""]
    ver = data.get("verify", {})
    if ver:
        rows = [[k.split("|")[0], k.split("|")[1], k.split("|")[2], k.split("|")[3], v.get("trials", ""), v["driver_used"], v["tuner_used"],
                 "yes" if v["driver_used"] == v["tuner_used"] else "NO", f"{v['driver_regret']:.4f}",
                 f"{v['tuner_regret']:.4f}", f"{v['tuner_wall']:.0f}"] for k, v in sorted(ver.items())]
        lines += ["## Ray driver against real `tune.Tuner` runs", "",
                  "The Ray numbers above come from the replay driver (`drive_ray`): the real scheduler objects "
                  "(`ray.tune.schedulers` classes and lrtune's), real `ray.tune.experiment.Trial` objects, trials "
                  "created one at a time as Tune's grid search does under `max_concurrent_trials=1` (the next one "
                  "when none is pending or running), STOP honoured (`on_trial_complete`, as Tune's `stop_trial`), "
                  "PAUSE parks a trial that resumes where it stopped when the scheduler chooses it again. Checked "
                  "against real `tune.Tuner` runs (`max_concurrent_trials=1`, a class `Trainable` replaying the run "
                  "and checkpointing its position when paused, `ray.init(num_cpus=2)`) on the first 10 trials of "
                  "order 0 at the smallest horizon of each grid (a Tuner trial costs 10-20 s on this shared "
                  "machine): optimizer steps used by the driver and by Tune. Adding all trials up front instead "
                  "(`drive_ray(lazy=False)`) does NOT match Tune for MedianStoppingRule (it then pauses trials while "
                  "others are pending: 7600 vs Tune's 8240 steps on generated 200, order 0, all 65 trials, where "
                  "the lazy driver gives 8240) and would let HyperBand pause and halve trials.", "",
                  table(rows, ["method", "grid", "horizon", "order", "trials", "driver steps", "Tuner steps", "same",
                               "driver regret", "Tuner regret", "Tuner wall s"]), ""]
    if data.get("errors"):
        lines += ["## Failed studies", "", "These raised an error; their orders are left out of the tables "
                  "(last line of each traceback):", ""]
        lines += [f"- `{k}`: {v.strip().splitlines()[-1]}" for k, v in sorted(data["errors"].items())] + [""]
    if data.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in data["notes"]] + [""]
    return "\n".join(lines)


NOTES = [
    "WilcoxonPruner compares a trial's values with the best trial's at equal report indices (step = report "
    "index, as its docs describe for per-instance evaluations). Here the reports are one learning curve, not "
    "independent instances, and the objective returns the final loss (the metric regret is measured on), not the "
    "mean of the reports as its docs assume; it was run anyway as asked, with its defaults (p_threshold=0.1).",
    "lrtune pruner + ScheduleSampler: the study has a budget of half the grid's trials (rounded up). The first 4 "
    "trials are the first runs of the order (the sampler proposes nothing before 4 trials completed); after that "
    "ScheduleSampler proposes a schedule in a `ScheduleSpace` and the replayed trial is the not-yet-replayed grid run "
    "nearest to the proposal (|ln peak ratio| + mean |difference| of the peak-normalised LR arrays). "
    "ScheduleSampler cannot take the grids' values directly: `ScheduleSpace` has continuous ranges for the peak LR "
    "and cooldown, one `min_lr` for all families, and no step / WSD-S / re-warm / cyclic families (13 schedules of "
    "the generated grid, the cosine-to-10 % runs of Schaipp), so those runs are reached only as nearest neighbours. "
    "Its steps fraction is over the whole grid, like every other method's.",
    "MedianPruner / SuccessiveHalvingPruner / HyperbandPruner / WilcoxonPruner run at Optuna's defaults "
    "(MedianPruner with n_startup_trials=4); their step is the optimizer step (Wilcoxon: the report index). "
    "Optuna studies: in-memory storage, RandomSampler(seed=order) (the sampler is irrelevant: the objective "
    "replays the order).",
    "Ray schedulers: ASHA with max_t = the runs' number of evaluations, grace 10 % of it, reduction factor 4 "
    "(as in replay_pruning.py); HyperBand (synchronous) with max_t and reduction factor 3; MedianStoppingRule with "
    "grace 10 % and min_samples_required=3 (hard stop); their time attribute is training_iteration (one per "
    "logged loss). ScheduleAwareScheduler uses time_attr='step' (optimizer steps).",
    "The lrtune law is the default `momentum` law fitted with `band=False` (`NoBandMomentum`): same parameters and "
    "predictions, without the leave-one-curve-out refits that only `predict_interval` uses (the pruner, scheduler "
    "and sampler only call `predict`). Fits are memoised on the curves' data within a study, so the methods on one "
    "study share them (the first model of every lrtune method is the Spearman protocol's 4-run fit). "
    "`HPO_REPLAY_FULL_LAW=1` uses the plain law instead (on generated 200 order 0, `ScheduleAwarePruner()` takes "
    "identical decisions with both: 9320 steps, same chosen run; 4.6 s and 5.0 s for that study alone, the "
    "memoisation pays off across the methods of a study). The worker wall "
    "seconds in the tables are therefore not each method's own cost.",
    "The Ray driver does not pass a trial's last result (done=True) to `on_trial_result`: Tune completes the "
    "trial without asking the scheduler. This matters for ScheduleAwareScheduler: a trial stopped at its last "
    "result would not count as completed in its model, and the driver's steps would no longer match Tune's.",
    "HyperBandScheduler (synchronous HyperBand) prunes nothing here: with `max_concurrent_trials=1` Tune creates "
    "the next trial only when no trial is pending or running, so a bracket never fills and every trial runs to "
    "max_t (the `tune.Tuner` checks above show the same). MedianStoppingRule likewise never pauses (no other "
    "trial is pending).",
    "Why lrtune does not reach regret <= 0.2 % with a quarter of the steps. Schaipp grid: 7 to 12 runs per "
    "horizon end within 0.5 % of the best, the best is within 0.0002-0.0032 of the second (seed noise 0.00124), "
    "and the forecast's error before a run's cooldown is larger than those gaps; the pruner keeps such runs "
    "until their cooldowns separate them, which costs about half the steps. Methods that rank by the raw loss "
    "stop them earlier and lose the best run in most studies (MedianPruner kept it in 13 of 80). Generated "
    "grid: its runs are 200-800 updates of a 137k-parameter model; at 25 % of training the law's forecasts err "
    "by 3-6 % depending on the peak LR (`benchmarks/results/generalisation.md`: 1.3 % from a fit at the same peak, "
    "2.9 % across a factor 2 in peak LR), so the pruner's error bars are wide and it stops few runs early, "
    "while the raw loss at 25 % already ranks the final losses well (Spearman 0.86): the median and Hyperband "
    "rules do better there.",
    "Diverged runs: the only diverged run (Schaipp cosine to 0 at 5e-3, 50k) reports its real losses (final "
    "7.55, finite); every method handles it like any bad run. The generated grid has no diverged run (all 195 "
    "finish with finite losses).",
]


def grid_rows() -> list[list]:
    rows = []
    for grid, hs in GRIDS.items():
        for h in hs:
            runs = load_grid(grid, h)
            finals = np.array([r.final for r in runs])
            o = np.argsort(finals)
            rows.append([grid, h, len(runs), f"{finals[o[0]]:.4f} ({runs[o[0]].name})",
                         f"{finals[o[1]] - finals[o[0]]:.4f}", int(np.sum(finals <= 1.002 * finals.min()))])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=("all", "optuna", "ray", "spearman", "verify", "render"))
    ap.add_argument("--grid", default="schaipp,generated", help="comma-separated grids")
    ap.add_argument("--horizons", default=None, help="comma-separated horizons (default: all of the grid)")
    ap.add_argument("--methods", default=None, help="comma-separated method keys: " + ",".join(ALL_METHODS))
    ap.add_argument("--orders", type=int, default=20, help="number of random trial orders (orders 0..N-1)")
    ap.add_argument("--order-list", default=None, help="explicit orders instead, e.g. '0,3,5-7'")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--sampler-orders", type=int, default=5,
                    help="lrtune+sampler runs on the first N orders only (it refits 8 bootstrap laws per completed trial)")
    ap.add_argument("--no-verify", action="store_true", help="'all' without the real tune.Tuner check")
    ap.add_argument("--verify-trials", type=int, default=10,
                    help="tune.Tuner check on the first N trials of the order (a Tuner trial costs seconds)")
    ap.add_argument("--store", default=STORE)
    ap.add_argument("--resume", action="store_true",
                    help="'all': keep the studies already in the store instead of starting afresh")
    args = ap.parse_args()
    t_start = time.time()
    grids = [g for g in args.grid.split(",") if g]
    orders = parse_orders(args.order_list) if args.order_list else list(range(args.orders))
    fresh = args.part == "all" and not args.resume  # 'all' makes the committed results from scratch
    data = json.load(open(args.store)) if os.path.exists(args.store) and not fresh else {}
    data.setdefault("commands", [])
    data.setdefault("wall", {})
    command = "python benchmarks/hpo_replay.py " + " ".join(sys.argv[1:])
    if args.part != "render" and command not in data["commands"]:
        data["commands"].append(command)
    if "grids" not in data:
        data["grids"] = grid_rows()
        data["noise"] = list(replay_pruning.seed_noise())
    data["notes"] = NOTES + data.get("extra_notes", [])

    def save() -> None:
        os.makedirs(os.path.dirname(args.store), exist_ok=True)
        with open(args.store, "w") as f:
            json.dump(data, f, indent=1, default=float)
        if args.store == STORE:
            with open(RESULTS_MD, "w") as f:
                f.write(render(data))
            plot(data, RESULTS_PNG)

    def horizons(g):
        return [int(h) for h in args.horizons.split(",")] if args.horizons else list(GRIDS[g])

    tasks = []
    if args.part in ("all", "optuna", "ray", "spearman"):
        want = args.methods.split(",") if args.methods else None
        methods = []
        if args.part in ("all", "optuna"):
            methods += [m for m in OPTUNA_METHODS if want is None or m in want]
        if args.part in ("all", "ray"):
            methods += [m for m in RAY_METHODS if want is None or m in want]
        if args.part in ("all", "spearman") and (want is None or "spearman" in want):
            methods.append("spearman")
        # Spearman first: its 4-curve fit is the one every lrtune method makes first
        methods = sorted(methods, key=lambda m: m != "spearman")
        sampler = "lrtune+sampler" in methods
        methods = [m for m in methods if m != "lrtune+sampler"]
        for g in grids:
            for h in horizons(g):
                for o in orders:
                    if methods:
                        tasks.append((methods, g, h, o))
                    if sampler and o < args.sampler_orders:
                        tasks.append((["lrtune+sampler"], g, h, o))
        verify_in = None
        if args.part == "all" and not args.no_verify:
            verify_in = lambda: verify(data, save, grids, None, [0], list(RAY_METHODS), args.verify_trials)  # noqa: E731
        run_tasks(tasks, data, save, args.jobs, verify_in)
    elif args.part == "verify":
        want = args.methods.split(",") if args.methods else list(RAY_METHODS)
        verify(data, save, grids, args.horizons, orders, want, args.verify_trials)
    if args.part != "render":
        data["wall"][command] = time.time() - t_start
    save()
    print(f"total wall time {time.time() - t_start:.1f} s")


VERIFY_HORIZONS = {"schaipp": 15000, "generated": 200}


def verify(data: dict, save, grids: list[str], horizons: str | None, orders: list[int], want: list[str],
           n_trials: int | None = None) -> None:
    """Driver against real tune.Tuner runs (smallest horizon of each grid by default)."""
    ver = data.setdefault("verify", {})
    with replay_pruning.local_ray("rayv") as tmp:
        for g in grids:
            for h in ([int(x) for x in horizons.split(",")] if horizons else [VERIFY_HORIZONS[g]]):
                for o in orders:
                    for m in want:
                        d = replay_ray(g, h, o, m, n_trials)
                        tr = tuner_ray(g, h, o, m, os.path.join(tmp, f"run{len(ver)}"), n_trials)
                        ver[f"{m}|{g}|{h}|{o}"] = {"trials": n_trials or len(load_grid(g, h)),
                                                   "driver_used": d["used"], "tuner_used": tr["used"],
                                                   "driver_regret": d["regret"], "tuner_regret": tr["regret"],
                                                   "tuner_wall": tr["wall"], "driver_pauses": d["pauses"]}
                        print(f"verify {m} {g} {h} order {o}: driver {d['used']} Tuner {tr['used']} steps "
                              f"(regret {d['regret']:.4f} / {tr['regret']:.4f}, {tr['wall']:.0f} s)", flush=True)
                        save()


if __name__ == "__main__":
    main()
