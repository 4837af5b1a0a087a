"""Generate real loss curves: a small transformer language model trained under many LR schedules.

Run as ``python benchmarks/generate_curves.py``; ``--help`` lists the options.  The default
grid is the committed sweep in ``benchmarks/data/generated/`` (README.md there has the exact
command, the data licence and the file layout).

What is trained
    A decoder-only transformer (causal self-attention, pre-LayerNorm, GELU MLP, learned
    positions), byte-level (vocabulary 256), on the text of the Python documentation
    topics shipped with every CPython (``pydoc_data.topics``, PSF licence, about 466k
    bytes).  The text is cut into 2048-byte chunks; every 10th chunk is held out for
    validation.  AdamW (betas 0.9/0.95, weight decay 0.1 on matrices), gradient clipping
    at norm 1, the LR set at every update by the lrtune schedule through
    :func:`lrtune.schedules.to_lambda_lr`.

What is logged
    The validation loss (mean cross-entropy in nats per byte over fixed validation windows)
    every ``eval_every`` updates and after the last one, and the LR of every update.  One
    CSV per run in the project's curve format (columns run, step, lr, loss; read it back
    with :func:`lrtune.read_curves`; a run that diverged before its first evaluation has
    LRs and no loss, and its JSON says ``diverged: true``) and one JSON per run with its
    settings and results;
    ``runs.csv`` indexes the JSONs.

A real sweep
    Every run starts from the same seeded initialisation and sees the same batches in the
    same order: the batch of update ``i`` depends only on the seed and ``i``.  Two runs
    whose LR arrays agree on the first ``d`` updates are therefore identical up to update
    ``d``, and the script trains that shared part once: it saves the model and optimizer
    state at the steps where runs of the grid part (a WSD cooldown leaves the constant run,
    a shorter WSD-S run is a prefix of a longer one, a re-warm continues a cosine run) and
    later runs resume from there.  The checkpoints are keyed by the exact LR prefix, the
    model, the data and the seed, so a resumed run computes the same numbers as one trained
    from step 0 (``--no-cache`` trains every run from step 0; tests check both agree).

Resumable: a run whose CSV and JSON exist is not trained again, so the sweep can be run in
chunks (``--max-minutes``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from typing import Callable, Iterable

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_OUT = os.path.join(HERE, "data", "generated")
DEFAULT_CACHE = os.path.join(tempfile.gettempdir(), "lrtune-generate-cache")

# -- model sizes -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Model and batch shape.  ``batch`` sequences of ``context`` bytes per update."""

    d_model: int
    n_layers: int
    n_heads: int
    context: int
    batch: int
    vocab: int = 256


MODEL_SIZES = {
    "tiny": ModelConfig(d_model=32, n_layers=1, n_heads=2, context=32, batch=8),  # --quick (tests)
    "small": ModelConfig(d_model=64, n_layers=2, n_heads=4, context=64, batch=16),  # the committed sweep (CPU)
    "large": ModelConfig(d_model=256, n_layers=6, n_heads=8, context=256, batch=64),  # a GPU (--device cuda)
}

# -- the schedule grid -------------------------------------------------------------------
# Each entry builds the spec of one schedule at horizon ``h`` and peak ``p`` with ``w``
# warmup updates.  The warmup is the same number of updates at every horizon, as in a
# sweep that changes only the horizon.


def _wsd(cooldown: float, shape: str) -> Callable[[int, float, int], str]:
    return lambda h, p, w: f"wsd:steps={h},peak={p!r},warmup={w},cooldown={cooldown!r},shape={shape}"


SCHEDULES: dict[str, Callable[[int, float, int], str]] = {
    "constant": lambda h, p, w: f"constant:steps={h},peak={p!r},warmup={w}",
    "wsd-c0.1-linear": _wsd(0.1, "linear"),
    "wsd-c0.2-linear": _wsd(0.2, "linear"),
    "wsd-c0.4-linear": _wsd(0.4, "linear"),
    "wsd-c0.1-1-sqrt": _wsd(0.1, "1-sqrt"),
    "wsd-c0.2-1-sqrt": _wsd(0.2, "1-sqrt"),
    "wsd-c0.4-1-sqrt": _wsd(0.4, "1-sqrt"),
    # two drops by 10x at 50 % and 75 % of the horizon (MultiStepLR, gamma=0.1)
    "step": lambda h, p, w: f"step:steps={h},peak={p!r},warmup={w},milestones={h // 2}/{3 * h // 4},factors=0.1/0.01",
    # WSD-S: cycles of 100 updates, each closing with a linear decay over its last 20 %, then back to
    # peak; the runs at shorter horizons are prefixes of the longest (one WSD-S run serves every horizon)
    "wsds": lambda h, p, w: f"wsds:steps={h},peak={p!r},warmup={w},cycles={max(h // 100, 1)},decay=0.2,shape=linear",
    "cosine": lambda h, p, w: f"cosine:steps={h},peak={p!r},warmup={w}",
    # cosine to 0 at half the horizon, re-warm over 5 % of the horizon, cosine again
    "rewarm": lambda h, p, w: f"rewarm:steps={h},peak={p!r},warmup={w},at={h // 2},rewarm={h // 20},peak2={p!r}",
    "linear": lambda h, p, w: f"linear:steps={h},peak={p!r},warmup={w}",
    # 4 cosine cycles (SGDR without growth)
    "cyclic": lambda h, p, w: f"cyclic:steps={h},peak={p!r},warmup={w},cycles=4",
}

DEFAULTS = dict(
    horizons=[200, 400, 800],
    peaks=[5e-4, 1e-3, 2e-3, 4e-3, 8e-3],
    families=list(SCHEDULES),
    model_size="small",
    warmup=20,
    eval_every=20,
    val_windows=64,
    seed=0,
)
QUICK = dict(
    horizons=[30],
    peaks=[3e-3],
    families=["constant", "wsd-c0.2-linear"],
    model_size="tiny",
    warmup=5,
    eval_every=10,
    val_windows=16,
)

# -- data --------------------------------------------------------------------------------

CHUNK = 2048
VAL_EVERY = 10


@dataclasses.dataclass(frozen=True)
class Data:
    train: np.ndarray  # uint8 bytes
    val: np.ndarray
    sha256: str  # of the whole text

    def describe(self) -> dict:
        return {
            "source": "pydoc_data.topics.topics (CPython documentation topics, PSF licence)",
            "python": platform.python_version(),
            "text_bytes": int(self.train.size + self.val.size),
            "train_bytes": int(self.train.size),
            "val_bytes": int(self.val.size),
            "sha256": self.sha256,
            "split": f"{CHUNK}-byte chunks, every {VAL_EVERY}th chunk held out for validation",
        }


def load_data() -> Data:
    """The documentation topics, sorted by name and joined by blank lines, as UTF-8 bytes."""
    import pydoc_data.topics

    topics = pydoc_data.topics.topics
    text = "\n\n".join(topics[k] for k in sorted(topics)).encode("utf-8")
    raw = np.frombuffer(text, dtype=np.uint8)
    chunk = np.arange(raw.size) // CHUNK
    is_val = chunk % VAL_EVERY == VAL_EVERY - 1
    return Data(raw[~is_val].copy(), raw[is_val].copy(), hashlib.sha256(text).hexdigest())


def train_batch(data: Data, cfg: ModelConfig, seed: int, update: int) -> np.ndarray:
    """The ``(batch, context + 1)`` bytes of update ``update`` (1-based): a function of the
    seed and the update number only, so every run sees the same data order."""
    rng = np.random.default_rng([seed, update])
    starts = rng.integers(0, data.train.size - cfg.context - 1, size=cfg.batch)
    return data.train[starts[:, None] + np.arange(cfg.context + 1)]


def val_windows(data: Data, cfg: ModelConfig, n: int) -> np.ndarray:
    """``n`` fixed validation windows, evenly spaced over the held-out bytes."""
    starts = np.linspace(0, data.val.size - cfg.context - 1, n).astype(np.int64)
    return data.val[starts[:, None] + np.arange(cfg.context + 1)]


# -- model -------------------------------------------------------------------------------


def build_model(cfg: ModelConfig, seed: int):
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = cfg.d_model
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

        def forward(self, x):
            b, t, d = x.shape
            h = cfg.n_heads
            q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
            return x + self.out(F.gelu(self.fc(self.ln2(x))))

    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok = nn.Embedding(cfg.vocab, cfg.d_model)
            self.pos = nn.Embedding(cfg.context, cfg.d_model)
            self.blocks = nn.ModuleList(Block() for _ in range(cfg.n_layers))
            self.ln = nn.LayerNorm(cfg.d_model)
            self.head = nn.Linear(cfg.d_model, cfg.vocab, bias=False)

        def forward(self, idx):
            x = self.tok(idx) + self.pos.weight[: idx.shape[1]]
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln(x))

    torch.manual_seed(seed)
    model = LM()
    for name, p in model.named_parameters():  # GPT-2 initialisation
        if p.dim() == 2:
            std = 0.02 / math.sqrt(2 * cfg.n_layers) if name.endswith(("proj.weight", "out.weight")) else 0.02
            nn.init.normal_(p, 0.0, std)
        elif name.endswith("bias"):
            nn.init.zeros_(p)
    return model


OPTIMIZER = {"name": "AdamW", "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1,
             "weight_decay_on": "matrices (not biases, LayerNorm)", "grad_clip_norm": 1.0}


def build_optimizer(model, peak: float, device: str):
    import torch

    decay = [p for p in model.parameters() if p.dim() == 2]
    rest = [p for p in model.parameters() if p.dim() != 2]
    groups = [{"params": decay, "weight_decay": OPTIMIZER["weight_decay"]}, {"params": rest, "weight_decay": 0.0}]
    kw = dict(lr=peak, betas=tuple(OPTIMIZER["betas"]), eps=OPTIMIZER["eps"])
    try:
        return torch.optim.AdamW(groups, fused=True, **kw)
    except (RuntimeError, TypeError):  # pragma: no cover - fused AdamW missing on this device
        return torch.optim.AdamW(groups, **kw)


# -- the grid and the prefix plan ---------------------------------------------------------


@dataclasses.dataclass
class Run:
    name: str
    schedule: str  # key of SCHEDULES
    spec: str
    peak: float
    horizon: int
    lr: np.ndarray
    resume_at: int = 0  # filled by plan(): updates taken from a checkpoint
    saves: tuple[int, ...] = ()  # filled by plan(): steps where a checkpoint is written

    @property
    def family(self) -> str:
        return self.spec.split(":", 1)[0]


def peak_label(peak: float) -> str:
    return f"{peak:.3g}"


def build_grid(schedules: Iterable[str], horizons: Iterable[int], peaks: Iterable[float], warmup: int) -> list[Run]:
    """Runs ordered so that a run's prefix donors come first: peak, schedule (in the order
    of SCHEDULES: constant before the WSD cooldowns, cosine before re-warm), longest horizon
    first."""
    from lrtune.schedules import parse_schedule

    schedules = [s for s in SCHEDULES if s in set(schedules)]
    runs = []
    for p in sorted(peaks):
        for s in schedules:
            for h in sorted(horizons, reverse=True):
                sched = parse_schedule(SCHEDULES[s](h, p, warmup))
                runs.append(Run(f"{s}_h{h}_p{peak_label(p)}", s, sched.spec(), sched.peak, h, sched.lr()))
    names = [r.name for r in runs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # one file per name: the second run would overwrite the first
        raise ValueError(f"peak LRs {sorted(r.peak for r in runs if r.name == twice[0])} share the run name {twice[0]} "
                         f"(names keep 3 significant digits): give peaks that differ in them")
    return runs


def shared_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """Number of leading updates at which two LR arrays are bit-identical."""
    n = min(a.size, b.size)
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n


def branch_points(runs: list[Run], min_steps: int) -> dict[str, list[int]]:
    """For every run, the lengths (>= ``min_steps``) of the LR prefixes it shares with the
    other runs of the grid, longest first."""
    out = {}
    for r in runs:
        ds = {shared_prefix(r.lr, q.lr) for q in runs if q is not r and q.peak == r.peak}
        out[r.name] = sorted((d for d in ds if d >= min_steps), reverse=True)
    return out


def plan(runs: list[Run], points: dict[str, list[int]], available: Callable[[Run, int], bool],
         finished: Callable[[Run], bool]) -> list[Run]:
    """The runs to train, in order, each with its resume point (the longest shared prefix
    that has a checkpoint, or will have one once the earlier runs are trained) and the
    steps where it writes checkpoints for later runs."""
    todo, promised = [], set()
    for r in runs:
        if finished(r):
            continue
        d0 = next((d for d in points[r.name] if (r.name, d) in promised or available(r, d)), 0)
        r.resume_at = d0
        r.saves = tuple(sorted(d for d in points[r.name] if d > d0))
        todo.append(r)
        for q in runs:  # the prefixes this run's checkpoints will serve
            if q is not r and q.peak == r.peak:
                d = shared_prefix(r.lr, q.lr)
                if d in r.saves:
                    promised.add((q.name, d))
    return todo


# -- checkpoints -------------------------------------------------------------------------


class Cache:
    """Model and optimizer states keyed by everything that determines them: the model,
    the data, the seed, the device and the exact LR of every update so far."""

    def __init__(self, root: str | None, context: dict) -> None:
        self.root = root
        self.context = json.dumps(context, sort_keys=True).encode()

    def key(self, lr_prefix: np.ndarray) -> str:
        h = hashlib.sha256(self.context)
        h.update(np.ascontiguousarray(lr_prefix, dtype=np.float64).tobytes())
        return h.hexdigest()[:32]

    def path(self, lr_prefix: np.ndarray) -> str | None:
        return None if self.root is None else os.path.join(self.root, self.key(lr_prefix) + ".pt")

    def has(self, lr_prefix: np.ndarray) -> bool:
        p = self.path(lr_prefix)
        return p is not None and os.path.exists(p)

    def save(self, lr_prefix: np.ndarray, state: dict) -> None:
        import torch

        p = self.path(lr_prefix)
        if p is None or os.path.exists(p):
            return
        os.makedirs(self.root, exist_ok=True)
        tmp = p + f".tmp{os.getpid()}"
        torch.save(state, tmp)
        os.replace(tmp, p)

    def load(self, lr_prefix: np.ndarray) -> dict:
        import torch

        return torch.load(self.path(lr_prefix), map_location="cpu", weights_only=False)

    def remove(self, lr_prefix: np.ndarray) -> None:
        p = self.path(lr_prefix)
        if p is not None and os.path.exists(p):
            os.remove(p)


# -- training ----------------------------------------------------------------------------


class Progress:
    """tqdm when it is installed, else a one-line counter on stderr."""

    def __init__(self, total: int) -> None:
        self.total, self.n, self.desc, self.t0 = total, 0, "", time.time()
        try:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr)
        except ImportError:  # pragma: no cover - tqdm is optional
            self.bar = None

    def set(self, desc: str) -> None:
        self.desc = desc
        if self.bar is not None:
            self.bar.set_description(desc)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.n % 25 == 0 or self.n == self.total:
            rate = self.n / max(time.time() - self.t0, 1e-9)
            sys.stderr.write(f"\r{self.desc} {self.n}/{self.total} steps ({rate:.1f} steps/s)   ")
            sys.stderr.flush()

    def grow(self, n: int) -> None:
        """``n`` more steps to train than planned."""
        self.total += n
        if self.bar is not None:
            self.bar.total += n
            self.bar.refresh()

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:  # pragma: no cover - tqdm is optional
            sys.stderr.write("\r" + line + "\n")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.total:  # pragma: no cover - tqdm is optional
            sys.stderr.write("\n")


@dataclasses.dataclass
class Trainer:
    cfg: ModelConfig
    data: Data
    seed: int
    eval_every: int
    n_val: int
    device: str
    cache: Cache

    def __post_init__(self) -> None:
        import torch

        self.torch = torch
        self.val = torch.as_tensor(val_windows(self.data, self.cfg, self.n_val), dtype=torch.long, device=self.device)

    def evaluate(self, model) -> float:
        torch = self.torch
        from torch.nn import functional as F

        total = 0.0
        with torch.no_grad():
            for chunk in self.val.split(64):
                logits = model(chunk[:, :-1])
                total += F.cross_entropy(logits.reshape(-1, self.cfg.vocab), chunk[:, 1:].reshape(-1),
                                         reduction="sum").item()
        return total / (self.val.shape[0] * self.cfg.context)

    def eval_steps(self, horizon: int) -> set[int]:
        return set(range(self.eval_every, horizon + 1, self.eval_every)) | {horizon}

    def train(self, run: Run, progress: Progress) -> dict:
        """Train ``run`` (from its resume point) and return its results."""
        import warnings

        torch = self.torch
        from torch.nn import functional as F
        from lrtune.schedules import to_lambda_lr

        t0 = time.perf_counter()
        model = build_model(self.cfg, self.seed).to(self.device)
        opt = build_optimizer(model, run.peak, self.device)
        evals: list[tuple[int, float]] = []
        start, source = 0, None
        if run.resume_at and self.cache.has(run.lr[: run.resume_at]):
            state = self.cache.load(run.lr[: run.resume_at])
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            start, source = run.resume_at, state["source"]
            keep = self.eval_steps(run.horizon)
            evals = [(s, v) for s, v in state["evals"] if s in keep]
        elif run.resume_at:  # its donor diverged before writing it, or the cache was cleared
            progress.write(f"{run.name}: no checkpoint at update {run.resume_at} (the run that was to write it "
                           f"diverged before it, or the cache was cleared): training from update 0")
            progress.grow(run.resume_at)
        sched = to_lambda_lr(run.spec, opt)  # sets every group's LR from this run's schedule
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()"
            for _ in range(start):
                sched.step()
        saves, eval_at = set(run.saves), self.eval_steps(run.horizon)
        diverged = False
        progress.set(run.name)
        model.train()
        for step in range(start + 1, run.horizon + 1):
            xy = torch.as_tensor(train_batch(self.data, self.cfg, self.seed, step), dtype=torch.long, device=self.device)
            logits = model(xy[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, self.cfg.vocab), xy[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), OPTIMIZER["grad_clip_norm"])
            opt.step()
            sched.step()
            progress.update()
            if step in eval_at:
                v = self.evaluate(model)
                if not math.isfinite(v):
                    diverged = True
                    progress.update(run.horizon - step)
                    break
                evals.append((step, v))
            if step in saves:
                self.cache.save(run.lr[:step], {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                                "evals": evals, "source": run.name, "step": step})
        if not diverged and (not evals or evals[-1][0] != run.horizon):
            evals.append((run.horizon, self.evaluate(model)))  # a run resumed at its last step
        return {"evals": evals, "diverged": diverged, "wall_s": time.perf_counter() - t0,
                "steps_trained": run.horizon - start,
                "resumed_from": None if source is None else {"run": source, "step": start}}


# -- output ------------------------------------------------------------------------------


def run_paths(out: str, run: Run) -> tuple[str, str]:
    base = os.path.join(out, "curves", run.name)
    return base + ".csv", base + ".json"


def is_finished(out: str, run: Run) -> bool:
    return all(os.path.exists(p) for p in run_paths(out, run))


#: settings a finished run must share with this invocation to count as one of its runs
SAME_SETTINGS = ("seed", "model", "data", "optimizer", "eval")


def other_settings(out: str, runs: list[Run], settings: dict) -> str | None:
    """Why a finished run under ``out`` is not a run of this grid and these settings (None
    if every one is): a finished run is skipped, so one made otherwise would pass for it."""
    for run in runs:
        if not is_finished(out, run):
            continue
        with open(run_paths(out, run)[1]) as f:
            meta = json.load(f)
        if meta.get("spec") != run.spec:
            return f"{run.name} was made with schedule {meta.get('spec')}, not {run.spec}"
        for key in SAME_SETTINGS:
            if meta.get(key) != settings[key]:
                return f"{run.name} was made with other {key} settings (it has {meta.get(key)}, this command asks for {settings[key]})"
    return None


def write_run(out: str, run: Run, result: dict, settings: dict) -> dict:
    """The run's curve CSV, then its JSON (a run counts as finished once both exist)."""
    from lrtune.curves import Curve, write_curve_csv
    from lrtune.schedules import parse_schedule

    csv_path, json_path = run_paths(out, run)
    os.makedirs(os.path.dirname(csv_path), exist_ok=True)
    evals = result["evals"]
    buf = io.StringIO()
    if evals:
        steps, loss = zip(*evals)
        write_curve_csv(Curve(np.array(steps), np.array(loss), run.lr, name=run.name), buf)
    else:  # diverged before the first evaluation: the LR alone
        w = csv.writer(buf)
        w.writerow(["run", "step", "lr", "loss"])
        w.writerows([run.name, s + 1, repr(float(v)), ""] for s, v in enumerate(run.lr))
    with open(csv_path + ".tmp", "w", newline="") as f:
        f.write(buf.getvalue())
    os.replace(csv_path + ".tmp", csv_path)
    sched = parse_schedule(run.spec)
    final = evals[-1][1] if evals and not result["diverged"] else None
    meta = {
        "run": run.name,
        "schedule": run.schedule,
        "spec": run.spec,
        "family": run.family,
        "peak_lr": run.peak,
        "horizon": run.horizon,
        "warmup": sched.warmup,
        "cooldown": getattr(sched, "cooldown", None),
        "shape": getattr(sched, "shape", None),
        "final_val_loss": final,
        "min_val_loss": min(v for _, v in evals) if evals else None,
        "diverged": result["diverged"],
        "wall_s": round(result["wall_s"], 3),
        "steps_trained": result["steps_trained"],
        "resumed_from": result["resumed_from"],
        "csv": os.path.basename(csv_path),
        **settings,
    }
    with open(json_path + ".tmp", "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    os.replace(json_path + ".tmp", json_path)
    return meta


INDEX_COLUMNS = ["run", "schedule", "family", "horizon", "peak_lr", "cooldown", "shape", "final_val_loss",
                 "min_val_loss", "diverged", "wall_s", "steps_trained", "spec"]


def read_index(out: str) -> list[dict]:
    """The JSON of every finished run under ``out``, sorted by schedule, horizon, peak."""
    folder = os.path.join(out, "curves")
    metas = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.endswith(".json") and os.path.exists(os.path.join(folder, name[:-5] + ".csv")):
            with open(os.path.join(folder, name)) as f:
                metas.append(json.load(f))
    order = {s: i for i, s in enumerate(SCHEDULES)}
    return sorted(metas, key=lambda m: (order.get(m["schedule"], len(order)), m["horizon"], m["peak_lr"]))


def write_index(out: str, metas: list[dict]) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "runs.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(INDEX_COLUMNS)
        for m in metas:
            w.writerow(["" if m.get(c) is None else m[c] for c in INDEX_COLUMNS])


def parabola_peak(peaks: list[float], losses: list[float]) -> float | None:
    """The peak LR at the vertex of the parabola in ln(peak) through the best grid point
    and its two neighbours; None when the best is at the edge of the grid."""
    i = int(np.argmin(losses))
    if i == 0 or i == len(peaks) - 1:
        return None
    x = np.log(peaks[i - 1: i + 2])
    a, b, _ = np.polyfit(x, losses[i - 1: i + 2], 2)
    return float(np.exp(-b / (2 * a)))


def report(metas: list[dict], command: str) -> str:
    """Markdown: the grid and the final validation loss per schedule x horizon x peak LR."""
    if not metas:
        return "No finished runs.\n"
    peaks = sorted({m["peak_lr"] for m in metas})
    rows: dict[tuple[str, int], dict[float, dict]] = {}
    for m in metas:
        rows.setdefault((m["schedule"], m["horizon"]), {})[m["peak_lr"]] = m
    m0 = metas[0]
    wall = sum(m["wall_s"] for m in metas)
    steps = sum(m["steps_trained"] for m in metas)
    full = sum(m["horizon"] for m in metas)
    cfg = m0["model"]
    lines = [
        f"Command: `{command}`",
        "",
        "# Generated loss curves: final validation loss per schedule, horizon and peak LR",
        "",
        f"Model: decoder-only transformer, {cfg['n_layers']} layers, d_model {cfg['d_model']}, "
        f"{cfg['n_heads']} heads, context {cfg['context']} bytes, batch {cfg['batch']}, "
        f"{cfg['parameters']:,} parameters; byte-level, trained on the CPython documentation topics "
        f"(`pydoc_data.topics`, {m0['data']['train_bytes']:,} train / {m0['data']['val_bytes']:,} validation bytes, "
        f"Python {m0['data']['python']}). AdamW (betas 0.9/0.95, weight decay 0.1), clip 1.0, "
        f"warmup {m0['warmup']} updates, seed {m0['seed']}; torch {m0['torch']} on {m0['device']} "
        f"({m0['threads']} thread).",
        "",
        f"Runs: {len(metas)} ({len({m['schedule'] for m in metas})} schedules x {len({m['horizon'] for m in metas})} "
        f"horizons x {len(peaks)} peak LRs). Updates trained: {steps:,} of {full:,} "
        f"(shared LR prefixes are trained once). Training wall time: {wall / 60:.1f} min.",
        "",
        "Loss: validation cross-entropy in nats per byte after the last update. "
        "**Bold**: the best peak LR of the row; `*` marks a best peak at the edge of the grid. "
        "Vertex: the peak LR at the minimum of the parabola in ln(peak) through the best grid "
        "point and its two neighbours (an estimate of the optimum between grid points).",
        "",
        "| schedule | horizon | " + " | ".join(f"peak {peak_label(p)}" for p in peaks) + " | best peak | vertex |",
        "|---|---|" + "---|" * len(peaks) + "---|---|",
    ]
    for (s, h), by_peak in rows.items():
        finals = {p: by_peak[p]["final_val_loss"] for p in peaks if p in by_peak and by_peak[p]["final_val_loss"] is not None}
        best = min(finals, key=finals.get) if finals else None
        cells = []
        for p in peaks:
            if p not in by_peak:
                cells.append("")
            elif by_peak[p]["final_val_loss"] is None:
                cells.append("diverged")
            else:
                v = f"{by_peak[p]['final_val_loss']:.4f}"
                cells.append(f"**{v}**" if p == best else v)
        edge = "*" if best is not None and best in (peaks[0], peaks[-1]) else ""
        full = [p for p in peaks if p in finals]
        vertex = parabola_peak(full, [finals[p] for p in full]) if len(full) == len(peaks) else None
        lines.append(f"| {s} | {h} | " + " | ".join(cells) + f" | {peak_label(best) if best else ''}{edge} | "
                     + (f"{vertex:.2g}" if vertex else "") + " |")
    return "\n".join(lines) + "\n"


# -- main --------------------------------------------------------------------------------


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _names(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    bad = [n for n in names if n not in SCHEDULES]
    if not names:
        raise argparse.ArgumentTypeError(f"no schedule given; known: {', '.join(SCHEDULES)}")
    if bad:
        raise argparse.ArgumentTypeError(f"unknown schedule(s) {', '.join(bad)}; known: {', '.join(SCHEDULES)}")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Schedules: " + ", ".join(SCHEDULES))
    p.add_argument("--out", default=None, help=f"output folder (default {os.path.relpath(DEFAULT_OUT, ROOT)}; with --quick required)")
    p.add_argument("--horizons", type=_ints, help="comma-separated horizons in updates (default 200,400,800)")
    p.add_argument("--peaks", type=_floats, help="comma-separated peak LRs (default 5e-4,1e-3,2e-3,4e-3,8e-3)")
    p.add_argument("--families", type=_names, help="comma-separated schedules of the grid (default: all)")
    p.add_argument("--quick", action="store_true", help="a tiny grid for tests: tiny model, 30 updates, 2 runs")
    p.add_argument("--model-size", choices=list(MODEL_SIZES), help="tiny (--quick), small (default; CPU) or large (for a GPU with --device cuda)")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--warmup", type=int, help="warmup updates of every schedule (default 20)")
    p.add_argument("--eval-every", type=int, help="updates between validation evaluations (default 20)")
    p.add_argument("--seed", type=int, default=0, help="initialisation and data-order seed (default 0)")
    p.add_argument("--cache", default=DEFAULT_CACHE, help="folder for the shared-prefix checkpoints (default: in the temp dir)")
    p.add_argument("--no-cache", action="store_true", help="train every run from step 0")
    p.add_argument("--keep-cache", action="store_true", help="keep the grid's checkpoints once every run is finished")
    p.add_argument("--max-minutes", type=float, help="start no new run after this many minutes (run again to continue)")
    p.add_argument("--report", metavar="FILE", help="also write the markdown summary table to FILE")
    p.add_argument("--dry-run", action="store_true", help="print the plan (runs, resume points, updates) and exit")
    args = p.parse_args(argv)
    base = dict(DEFAULTS, **(QUICK if args.quick else {}))
    for key in ("horizons", "peaks", "families", "model_size", "warmup", "eval_every"):
        if getattr(args, key) is None:
            setattr(args, key, base[key])
    args.val_windows = base["val_windows"]
    if args.out is None:
        if args.quick:
            p.error("--quick needs --out DIR (the committed sweep lives in the default folder)")
        args.out = DEFAULT_OUT
    for name in ("horizons", "peaks"):
        values = getattr(args, name)
        if not values or any(v <= 0 for v in values):
            p.error(f"--{name} must be positive numbers, got {values}")
    if args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    if args.max_minutes is not None and not args.max_minutes > 0:
        p.error(f"--max-minutes must be > 0, got {args.max_minutes}")
    if args.warmup < 0 or args.eval_every < 1:
        p.error(f"--warmup must be >= 0 and --eval-every >= 1, got {args.warmup} and {args.eval_every}")
    return args


def command_line(argv: list[str]) -> str:
    return "python benchmarks/generate_curves.py" + "".join(" " + a for a in argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    import torch

    try:  # an unwritable output or report folder, or a device torch lacks, before any training
        os.makedirs(os.path.join(args.out, "curves"), exist_ok=True)
        if args.report:
            os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
        torch.zeros(1, device=args.device)
    except (OSError, RuntimeError) as e:
        print(f"generate_curves: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    cfg = MODEL_SIZES[args.model_size]
    data = load_data()
    try:
        runs = build_grid(args.families, args.horizons, args.peaks, args.warmup)
    except ValueError as e:
        print(f"generate_curves: {e}", file=sys.stderr)
        return 2
    n_params = sum(p.numel() for p in build_model(cfg, args.seed).parameters())
    settings = {
        "seed": args.seed,
        "model": {**dataclasses.asdict(cfg), "parameters": n_params, "size": args.model_size},
        "data": data.describe(),
        "optimizer": OPTIMIZER,
        "eval": {"every": args.eval_every, "windows": args.val_windows, "loss": "cross-entropy, nats per byte"},
        "device": args.device,
        "threads": args.threads,
        "torch": torch.__version__,
    }
    why = other_settings(args.out, runs, settings)
    if why:
        print(f"generate_curves: {args.out} already holds runs made otherwise: {why}; use another --out, or "
              f"delete those runs to make them again", file=sys.stderr)
        return 2
    cache_context = {k: settings[k] for k in ("seed", "model", "optimizer", "device", "torch")}
    cache_context.update(data=data.sha256, eval=settings["eval"])
    cache = Cache(None if args.no_cache else args.cache, cache_context)
    points = branch_points(runs, min_steps=args.eval_every) if not args.no_cache else {r.name: [] for r in runs}
    todo = plan(runs, points, lambda r, d: cache.has(r.lr[:d]), lambda r: is_finished(args.out, r))
    skipped = len(runs) - len(todo)
    total = sum(r.horizon - r.resume_at for r in todo)
    print(f"generate_curves: {len(runs)} runs in the grid, {skipped} finished, {len(todo)} to train "
          f"({total:,} updates; model {args.model_size}, {n_params:,} parameters) -> {args.out}", file=sys.stderr)
    if args.dry_run:
        for r in todo:
            print(f"{r.name}: {r.horizon - r.resume_at} updates" + (f" (resumes at {r.resume_at})" if r.resume_at else "")
                  + (f", checkpoints at {', '.join(map(str, r.saves))}" if r.saves else ""))
        return 0
    trainer = Trainer(cfg, data, args.seed, args.eval_every, args.val_windows, args.device, cache)
    t0 = time.time()
    progress = Progress(total)
    stopped = False
    try:
        for i, run in enumerate(todo):
            if args.max_minutes is not None and time.time() - t0 > 60 * args.max_minutes:
                stopped = True
                break
            result = trainer.train(run, progress)
            meta = write_run(args.out, run, result, settings)
            src = result["resumed_from"]
            final = "diverged" if meta["diverged"] else f"{meta['final_val_loss']:.4f}"
            progress.write(f"[{skipped + i + 1}/{len(runs)}] {run.name}: final val loss {final}, "
                           f"{result['wall_s']:.1f} s" + (f" (from {src['run']} at step {src['step']})" if src else ""))
    finally:
        progress.close()
    metas = read_index(args.out)
    write_index(args.out, metas)
    if args.report:
        with open(args.report, "w") as f:
            f.write(report(metas, command_line(argv)))
    if stopped:
        print(f"generate_curves: stopped after {args.max_minutes} min; run the same command again to continue",
              file=sys.stderr)
        return 0
    if not args.keep_cache and all(is_finished(args.out, r) for r in runs):
        for r in runs:  # the grid is done: its checkpoints are no longer needed
            for d in points[r.name]:
                cache.remove(r.lr[:d])
        if cache.root and os.path.isdir(cache.root) and not os.listdir(cache.root):
            shutil.rmtree(cache.root, ignore_errors=True)
    print(f"generate_curves: done in {time.time() - t0:.0f} s; {len(metas)} runs in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
