"""Schedule families.

A schedule is a frozen dataclass whose fields are exactly the keys of its text spec;
:meth:`Schedule.lr` returns the per-step learning rates as a numpy array of length
``steps`` where ``lr[i]`` is used by optimizer update ``i + 1`` (theory.md convention).
Every family is a join of the pieces in :mod:`lrtune.schedules._pieces`.

Keys shared by every family: ``steps`` (horizon, number of optimizer updates),
``peak`` (peak LR), ``warmup`` (steps of linear warmup), ``start`` (warmup starts at
``start * peak``) and, where the family decays, ``min`` (final LR as a fraction of peak).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np

from lrtune.schedules import _pieces as P


def _check(cond: bool, family: str, key: str, value: object, allowed: str) -> None:
    if not cond:
        raise ValueError(f"{family}: {key} must be {allowed}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Base class: a learning-rate schedule over ``steps`` optimizer updates."""

    family: ClassVar[str] = ""
    steps: int
    peak: float
    warmup: int = 0
    start: float = 0.0

    def __post_init__(self) -> None:
        f = self.family
        _check(isinstance(self.steps, (int, np.integer)) and self.steps >= 1, f, "steps", self.steps, "an integer >= 1")
        _check(math.isfinite(self.peak) and self.peak > 0, f, "peak", self.peak, "a finite number > 0")
        _check(
            isinstance(self.warmup, (int, np.integer)) and 0 <= self.warmup < self.steps,
            f, "warmup", self.warmup, f"an integer in [0, steps={self.steps})",
        )
        _check(math.isfinite(self.start) and 0 <= self.start <= 1, f, "start", self.start, "in [0, 1]")
        if hasattr(self, "min"):
            _check(math.isfinite(self.min) and 0 <= self.min <= 1, f, "min", self.min, "in [0, 1]")
        self._validate()

    def _validate(self) -> None:  # family-specific checks
        pass

    # -- public API -------------------------------------------------------------------
    @property
    def peak_lr(self) -> float:
        return float(self.peak)

    @property
    def horizon(self) -> int:
        return int(self.steps)

    def lr(self) -> np.ndarray:
        """Per-step learning rates, ``lr[i]`` used by update ``i + 1``; length ``steps``."""
        body = self._body(self.steps - self.warmup)
        out = P.join([P.warmup(self.warmup, self.peak, self.start), body])
        assert out.shape == (self.steps,)
        return out

    def spec(self) -> str:
        """The text spec; ``parse_schedule(s.spec()) == s``."""
        from lrtune.schedules._spec import format_spec

        return format_spec(self)

    def replace(self, **changes: object) -> "Schedule":
        """A copy with some keys changed (``s.replace(peak=1e-3, steps=50_000)``)."""
        return dataclasses.replace(self, **changes)

    def __str__(self) -> str:
        return self.spec()

    def _body(self, n: int) -> np.ndarray:  # the part after warmup
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Constant(Schedule):
    """Constant LR at ``peak`` after the warmup."""

    family: ClassVar[str] = "constant"

    def _body(self, n: int) -> np.ndarray:
        return P.constant(n, self.peak)


@dataclasses.dataclass(frozen=True)
class Cosine(Schedule):
    """Cosine decay from ``peak`` (end of warmup) to ``min * peak`` at step ``steps``."""

    family: ClassVar[str] = "cosine"
    min: float = 0.0

    def _body(self, n: int) -> np.ndarray:
        return P.decay(n, self.peak, "cosine", self.min)


@dataclasses.dataclass(frozen=True)
class Linear(Schedule):
    """Linear decay from ``peak`` (end of warmup) to ``min * peak`` at step ``steps``."""

    family: ClassVar[str] = "linear"
    min: float = 0.0

    def _body(self, n: int) -> np.ndarray:
        return P.decay(n, self.peak, "linear", self.min)


@dataclasses.dataclass(frozen=True)
class WSD(Schedule):
    """Warmup-stable-decay: constant at ``peak``, then a cooldown over the last
    ``cooldown`` fraction of all steps with ``shape`` (linear, 1-sqrt, cosine, exp)
    down to ``min * peak``."""

    family: ClassVar[str] = "wsd"
    min: float = 0.0
    cooldown: float = 0.2
    shape: str = "linear"

    def _validate(self) -> None:
        _check(0 <= self.cooldown <= 1, "wsd", "cooldown", self.cooldown, "a fraction in [0, 1]")
        _check(self.shape in P.DECAY_SHAPES, "wsd", "shape", self.shape, "one of " + ", ".join(P.DECAY_SHAPES))
        _check(self.shape != "exp" or self.min > 0, "wsd", "min", self.min, "> 0 with shape=exp")
        _check(
            self.cooldown_steps <= self.steps - self.warmup, "wsd", "cooldown", self.cooldown,
            "short enough to start after the warmup",
        )

    @property
    def cooldown_steps(self) -> int:
        return int(round(self.cooldown * self.steps))

    def _body(self, n: int) -> np.ndarray:
        k = self.cooldown_steps
        return P.join([P.constant(n - k, self.peak), P.decay(k, self.peak, self.shape, self.min)])


@dataclasses.dataclass(frozen=True)
class Step(Schedule):
    """Piecewise constant: ``peak * factors[j]`` from step ``milestones[j]`` on
    (milestones are optimizer steps, i.e. ``lr[i]`` for ``i >= milestone``)."""

    family: ClassVar[str] = "step"
    milestones: tuple[int, ...] = ()
    factors: tuple[float, ...] = ()

    def _validate(self) -> None:
        m, fs = tuple(self.milestones), tuple(self.factors)
        _check(len(m) == len(fs), "step", "factors", fs, f"as many values as milestones ({len(m)})")
        _check(all(self.warmup <= a < self.steps for a in m), "step", "milestones", m, "steps in [warmup, steps)")
        _check(all(a < b for a, b in zip(m, m[1:])), "step", "milestones", m, "strictly increasing")
        _check(all(math.isfinite(f) and f > 0 for f in fs), "step", "factors", fs, "finite numbers > 0")

    def _body(self, n: int) -> np.ndarray:
        i = np.arange(self.warmup, self.steps)
        k = np.searchsorted(np.asarray(self.milestones, dtype=np.int64), i, side="right")
        factors = np.concatenate([[1.0], np.asarray(self.factors, dtype=np.float64)])
        return self.peak * factors[k]


@dataclasses.dataclass(frozen=True)
class Cyclic(Schedule):
    """Cyclic cosine (SGDR without growth): ``cycles`` equal cosine decays from ``peak``
    to ``min * peak`` after the warmup, each restarting at ``peak``."""

    family: ClassVar[str] = "cyclic"
    min: float = 0.0
    cycles: int = 4

    def _validate(self) -> None:
        _check(
            isinstance(self.cycles, (int, np.integer)) and 1 <= self.cycles <= self.steps - self.warmup,
            "cyclic", "cycles", self.cycles, "an integer in [1, steps - warmup]",
        )

    def _body(self, n: int) -> np.ndarray:
        edges = np.linspace(0, n, self.cycles + 1).round().astype(int)
        return P.join([P.decay(b - a, self.peak, "cosine", self.min) for a, b in zip(edges, edges[1:])])


@dataclasses.dataclass(frozen=True)
class Rewarm(Schedule):
    """Continual pre-training: cosine decay from ``peak`` to ``min * peak`` until step
    ``at``, linear re-warm to ``peak2`` over ``rewarm`` steps, cosine decay from ``peak2``
    to ``min * peak`` until ``steps``."""

    family: ClassVar[str] = "rewarm"
    min: float = 0.0
    at: int = 0
    rewarm: int = 0
    peak2: float = 0.0

    def _validate(self) -> None:
        _check(self.warmup < self.at < self.steps, "rewarm", "at", self.at, "a step in (warmup, steps)")
        _check(0 <= self.rewarm < self.steps - self.at, "rewarm", "rewarm", self.rewarm, "in [0, steps - at)")
        _check(math.isfinite(self.peak2) and self.peak2 > 0, "rewarm", "peak2", self.peak2, "a finite number > 0")

    def _body(self, n: int) -> np.ndarray:
        floor = self.min * self.peak
        first = P.decay(self.at - self.warmup, self.peak, "cosine", self.min)
        # the first decay ends one step short of its floor; the re-warm starts at the floor
        rise = P.ramp(self.rewarm, floor, self.peak2)
        rest = self.steps - self.at - self.rewarm
        second = P.decay(rest, self.peak2, "cosine", floor / self.peak2)
        return P.join([first, rise, second])


@dataclasses.dataclass(frozen=True)
class WSDS(Schedule):
    """WSD-S (Wen et al.): one main branch at ``peak`` split into ``cycles`` equal cycles;
    the last ``decay`` fraction of each cycle decays to ``min * peak`` with ``shape`` and
    the next cycle resumes at ``peak`` from the decayed point."""

    family: ClassVar[str] = "wsds"
    min: float = 0.0
    cycles: int = 4
    decay: float = 0.1
    shape: str = "linear"

    def _validate(self) -> None:
        _check(
            isinstance(self.cycles, (int, np.integer)) and 1 <= self.cycles <= self.steps - self.warmup,
            "wsds", "cycles", self.cycles, "an integer in [1, steps - warmup]",
        )
        _check(0 < self.decay <= 1, "wsds", "decay", self.decay, "a fraction in (0, 1]")
        _check(self.shape in P.DECAY_SHAPES, "wsds", "shape", self.shape, "one of " + ", ".join(P.DECAY_SHAPES))
        _check(self.shape != "exp" or self.min > 0, "wsds", "min", self.min, "> 0 with shape=exp")

    def _body(self, n: int) -> np.ndarray:
        # cycles are equal in optimizer steps, counted from step 0 (the first holds the warmup)
        edges = np.linspace(0, self.steps, self.cycles + 1).round().astype(int)
        parts = []
        for a, b in zip(edges, edges[1:]):
            k = int(round(self.decay * (b - a)))
            a = max(a, self.warmup)
            k = min(k, b - a)
            parts += [P.constant(b - a - k, self.peak), P.decay(k, self.peak, self.shape, self.min)]
        return P.join(parts)


@dataclasses.dataclass(frozen=True)
class TwoStage(Schedule):
    """Two-stage: ``peak`` until step ``switch``, then ``factor * peak``
    (``lr[i] = factor * peak`` for ``i >= switch``)."""

    family: ClassVar[str] = "twostage"
    switch: int = 0
    factor: float = 0.1

    def _validate(self) -> None:
        _check(self.warmup <= self.switch < self.steps, "twostage", "switch", self.switch, "a step in [warmup, steps)")
        _check(math.isfinite(self.factor) and self.factor > 0, "twostage", "factor", self.factor, "a number > 0")

    def _body(self, n: int) -> np.ndarray:
        return P.join([P.constant(self.switch - self.warmup, self.peak), P.constant(self.steps - self.switch, self.factor * self.peak)])


FAMILIES: dict[str, type[Schedule]] = {
    cls.family: cls for cls in (Constant, Cosine, Linear, WSD, Step, Cyclic, Rewarm, WSDS, TwoStage)
}
