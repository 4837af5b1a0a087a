"""Schedule families.

A schedule is a frozen dataclass whose fields are exactly the keys of its text spec;
:meth:`Schedule.lr` returns the per-step learning rates as a numpy array of length
``steps`` where ``lr[i]`` is used by optimizer update ``i + 1`` (the step convention of docs/schedules.md).
Every family is a join of the pieces in :mod:`lrtune.schedules._pieces`.

Keys shared by every family: ``steps`` (horizon, number of optimizer updates),
``peak`` (peak LR), ``warmup`` (steps of linear warmup), ``start`` (warmup starts at
``start * peak``) and, where the family decays, ``min`` (final LR as a fraction of peak:
the floor the decay ends at; the last update runs one decay step above it).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import ClassVar

import numpy as np

from lrtune.schedules import _pieces as P


def _check(cond: bool, family: str, key: str, value: object, allowed: str) -> None:
    if not cond:
        raise ValueError(f"{family}: {key} must be {allowed}, got {value!r}")


def _coerce(kind: str, value: object) -> object:
    """Plain Python values for the dataclass fields, so that equality, hashing and
    :meth:`Schedule.spec` do not depend on whether a value came as a numpy scalar, a
    list or an integral float.  Values that do not fit are left for the checks to reject."""
    if isinstance(value, bool):
        return value
    if kind == "int":
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, numbers.Real) and float(value).is_integer():
            return int(value)
    elif kind == "float":
        if isinstance(value, numbers.Real):
            return float(value)
    elif kind == "str" and isinstance(value, str):
        return value.strip().lower()  # shape=Cosine is cosine, as family names are case-insensitive
    elif kind.startswith("tuple[") and isinstance(value, (list, tuple, np.ndarray)):
        item = "int" if kind.startswith("tuple[int") else "float"
        return tuple(_coerce(item, v) for v in value)
    return value


def _is_real(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Base class: a learning-rate schedule over ``steps`` optimizer updates."""

    family: ClassVar[str] = ""
    steps: int
    peak: float
    warmup: int = 0
    start: float = 0.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, _coerce(str(field.type), getattr(self, field.name)))
        f = self.family
        _check(_is_int(self.steps) and self.steps >= 1, f, "steps", self.steps, "an integer >= 1")
        _check(_is_real(self.peak) and self.peak > 0, f, "peak", self.peak, "a finite number > 0")
        _check(
            _is_int(self.warmup) and 0 <= self.warmup < self.steps,
            f, "warmup", self.warmup, f"an integer in [0, steps={self.steps})",
        )
        _check(_is_real(self.start) and 0 <= self.start <= 1, f, "start", self.start, "a number in [0, 1]")
        if hasattr(self, "min"):
            _check(_is_real(self.min) and 0 <= self.min <= 1, f, "min", self.min, "a number in [0, 1]")
        self._validate()

    def _validate(self) -> None:  # family-specific checks
        pass

    # -- public API -------------------------------------------------------------------
    @property
    def peak_lr(self) -> float:
        """The ``peak`` key (a re-warm's ``peak2`` or a step factor above 1 can lie above it;
        :attr:`lrtune.curves.Curve.peak_lr` is the largest LR of the array)."""
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

    def with_peak(self, peak: float) -> "Schedule":
        """The same shape at another peak LR: every LR of the schedule times ``peak / self.peak``
        (``replace(peak=...)`` alone keeps keys that are LRs of their own, like a re-warm's
        ``peak2``, where they were)."""
        return self.replace(peak=peak)

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
    down to ``min * peak``.

    The cooldown has ``round(cooldown * steps)`` steps (0, or at least 2: its first step
    runs at ``peak``) and starts at index ``steps - round(cooldown * steps)``, at ``peak``.  It may start at the last warmup
    step (``warmup - 1``, also at ``peak``), so a WSD without a stable phase is allowed.
    """

    family: ClassVar[str] = "wsd"
    min: float = 0.0
    cooldown: float = 0.2
    shape: str = "linear"

    def _validate(self) -> None:
        _check(_is_real(self.cooldown) and 0 <= self.cooldown <= 1, "wsd", "cooldown", self.cooldown, "a fraction in [0, 1]")
        _check(self.shape in P.DECAY_SHAPES, "wsd", "shape", self.shape, "one of " + ", ".join(P.DECAY_SHAPES))
        _check(self.shape != "exp" or self.min > 0, "wsd", "min", self.min, "> 0 with shape=exp")
        k = self.cooldown_steps
        _check(self.cooldown == 0 or k >= 2, "wsd", "cooldown", self.cooldown,
               f"0 or long enough for a decay: round(cooldown * steps) = {k} update(s), and the first cooldown "
               f"update runs at peak, so at least 2 are needed (cooldown >= {2 / self.steps:.3g} for steps={self.steps})")
        longest = self.steps - max(self.warmup - 1, 0)
        _check(
            self.cooldown_steps <= longest, "wsd", "cooldown", self.cooldown,
            f"short enough to start at or after the last warmup step (round(cooldown * steps) <= {longest})",
        )

    @property
    def cooldown_steps(self) -> int:
        """Number of cooldown steps, ``round(cooldown * steps)``."""
        return int(round(self.cooldown * self.steps))

    def _body(self, n: int) -> np.ndarray:
        k = self.cooldown_steps
        skip = max(self.warmup - (self.steps - k), 0)  # 1 when the cooldown starts at the last warmup step
        return P.join([P.constant(n - k + skip, self.peak), P.decay(k, self.peak, self.shape, self.min)[skip:]])


@dataclasses.dataclass(frozen=True)
class Step(Schedule):
    """Piecewise constant: ``peak * factors[j]`` from step ``milestones[j]`` on
    (``lr[i] = peak * factors[j]`` for ``i >= milestones[j]``, i.e. from update
    ``milestones[j] + 1``, as torch's ``MultiStepLR``; factors are absolute, not cumulative)."""

    family: ClassVar[str] = "step"
    milestones: tuple[int, ...] = ()
    factors: tuple[float, ...] = ()

    def _validate(self) -> None:
        m, fs = self.milestones, self.factors
        _check(isinstance(m, tuple) and all(_is_int(a) for a in m), "step", "milestones", m, "integers")
        _check(isinstance(fs, tuple) and all(_is_real(f) and f > 0 for f in fs), "step", "factors", fs, "finite numbers > 0")
        _check(len(m) == len(fs), "step", "factors", fs, f"as many values as milestones ({len(m)})")
        _check(all(self.warmup <= a < self.steps for a in m), "step", "milestones", m,
               f"steps in [warmup={self.warmup}, steps={self.steps})")
        _check(all(a < b for a, b in zip(m, m[1:])), "step", "milestones", m, "strictly increasing")
        _check(all(math.isfinite(self.peak * f) and self.peak * f > 0 for f in fs), "step", "factors", fs,
               f"such that peak * factor is a finite number > 0 (peak={self.peak!r})")

    def _body(self, n: int) -> np.ndarray:
        i = np.arange(self.warmup, self.steps)
        k = np.searchsorted(np.asarray(self.milestones, dtype=np.int64), i, side="right")
        factors = np.concatenate([[1.0], np.asarray(self.factors, dtype=np.float64)])
        return self.peak * factors[k]


@dataclasses.dataclass(frozen=True)
class Cyclic(Schedule):
    """Cyclic cosine (SGDR without growth): ``cycles`` equal cosine decays from ``peak``
    to ``min * peak`` after the warmup, each restarting at ``peak``.

    The ``steps - warmup`` steps after the warmup are split at
    ``warmup + round(j * (steps - warmup) / cycles)``; without warmup and with ``steps``
    a multiple of ``cycles`` this is torch's ``CosineAnnealingWarmRestarts(T_0=steps // cycles)``.
    """

    family: ClassVar[str] = "cyclic"
    min: float = 0.0
    cycles: int = 4

    def _validate(self) -> None:
        _check(
            _is_int(self.cycles) and 1 <= self.cycles <= self.steps - self.warmup,
            "cyclic", "cycles", self.cycles, f"an integer in [1, steps - warmup = {self.steps - self.warmup}]",
        )

    def _body(self, n: int) -> np.ndarray:
        edges = np.linspace(0, n, self.cycles + 1).round().astype(int)
        return P.join([P.decay(b - a, self.peak, "cosine", self.min) for a, b in zip(edges, edges[1:])])


@dataclasses.dataclass(frozen=True)
class Rewarm(Schedule):
    """Continual pre-training: cosine decay from ``peak`` to ``min * peak`` until step
    ``at``, linear re-warm to ``peak2`` over ``rewarm`` steps, cosine decay from ``peak2``
    to ``min * peak`` until ``steps``.

    ``lr[at]`` is the floor ``min * peak`` (the first decay stops one step short of it);
    the re-warm climbs from there and ``lr[at + rewarm] = peak2``.  With ``rewarm=0`` the
    LR jumps to ``peak2`` at ``at``.  ``peak2`` may be above ``peak`` but not below the floor.
    """

    family: ClassVar[str] = "rewarm"
    min: float = 0.0
    at: int = 0
    rewarm: int = 0
    peak2: float = 0.0

    def _validate(self) -> None:
        _check(_is_int(self.at) and self.warmup < self.at < self.steps, "rewarm", "at", self.at,
               f"a step in (warmup={self.warmup}, steps={self.steps})")
        _check(_is_int(self.rewarm) and 0 <= self.rewarm < self.steps - self.at, "rewarm", "rewarm", self.rewarm,
               f"an integer in [0, steps - at = {self.steps - self.at})")
        _check(_is_real(self.peak2) and self.peak2 > 0, "rewarm", "peak2", self.peak2, "a finite number > 0")
        _check(self.peak2 >= self.min * self.peak, "rewarm", "peak2", self.peak2,
               f">= the floor min * peak = {self.min * self.peak!r}")

    def with_peak(self, peak: float) -> "Rewarm":
        """``peak2`` is scaled with ``peak`` and kept to 12 significant digits (a readable spec)."""
        peak2 = self.peak2 * peak / self.peak
        short = float(f"{peak2:.12g}")  # a readable spec (1e-12 off at most), unless rounding crosses the floor
        return self.replace(peak=peak, peak2=short if short >= self.min * peak else peak2)

    def _body(self, n: int) -> np.ndarray:
        floor = self.min * self.peak
        first = P.decay(self.at - self.warmup, self.peak, "cosine", self.min)
        rise = P.ramp(self.rewarm, floor, self.peak2)
        rest = self.steps - self.at - self.rewarm
        second = P.decay(rest, self.peak2, "cosine", floor / self.peak2)
        return P.join([first, rise, second])


@dataclasses.dataclass(frozen=True)
class WSDS(Schedule):
    """WSD-S (Wen et al.): one main branch at ``peak`` split into ``cycles`` equal cycles;
    the last ``decay`` fraction of each cycle decays to ``min * peak`` with ``shape`` and
    the next cycle resumes at ``peak`` from the decayed point.

    Cycles are counted from step 0 (the first one holds the warmup): cycle ``j`` ends at
    ``e_j = round(j * steps / cycles)``, its decay has ``round(decay * (e_j - e_{j-1}))``
    steps ending at ``e_j - 1`` and ``lr[e_j] = peak``.  Every decay has at least two steps
    (its first runs at ``peak``) and the warmup ends before the first decay starts.
    """

    family: ClassVar[str] = "wsds"
    min: float = 0.0
    cycles: int = 4
    decay: float = 0.1
    shape: str = "linear"

    def _validate(self) -> None:
        _check(
            _is_int(self.cycles) and 1 <= self.cycles <= self.steps - self.warmup,
            "wsds", "cycles", self.cycles, f"an integer in [1, steps - warmup = {self.steps - self.warmup}]",
        )
        _check(_is_real(self.decay) and 0 < self.decay <= 1, "wsds", "decay", self.decay, "a fraction in (0, 1]")
        _check(self.shape in P.DECAY_SHAPES, "wsds", "shape", self.shape, "one of " + ", ".join(P.DECAY_SHAPES))
        _check(self.shape != "exp" or self.min > 0, "wsds", "min", self.min, "> 0 with shape=exp")
        ends, lengths = self._decays()
        shortest = int(np.diff(np.concatenate([[0], ends])).min())
        _check(lengths.min() >= 2, "wsds", "decay", self.decay,
               f"large enough for a decay in every cycle (round(decay * {shortest}) >= 2: the first decay step "
               f"runs at peak)")
        first = int(ends[0] - lengths[0])
        _check(self.warmup <= first, "wsds", "warmup", self.warmup,
               f"<= {first}, the step where the first decay begins")

    def _decays(self) -> tuple[np.ndarray, np.ndarray]:
        """End (exclusive) and length of every cycle's decay."""
        ends = np.linspace(0, self.steps, self.cycles + 1).round().astype(np.int64)
        lengths = np.round(self.decay * np.diff(ends)).astype(np.int64)
        return ends[1:], lengths

    def _body(self, n: int) -> np.ndarray:
        ends, lengths = self._decays()
        i = np.arange(self.warmup, self.steps)
        c = np.searchsorted(ends, i, side="right")  # cycle of each step
        into = i - (ends[c] - lengths[c])  # steps since the cycle's decay began (< 0: before it)
        u = np.maximum(into, 0) / lengths[c]
        return self.peak * np.where(into >= 0, P.decay_factor(u, self.shape, self.min), 1.0)


@dataclasses.dataclass(frozen=True)
class TwoStage(Schedule):
    """Two-stage: ``peak`` until step ``switch``, then ``factor * peak``
    (``lr[i] = factor * peak`` for ``i >= switch``)."""

    family: ClassVar[str] = "twostage"
    switch: int = 0
    factor: float = 0.1

    def _validate(self) -> None:
        _check(_is_int(self.switch) and self.warmup <= self.switch < self.steps, "twostage", "switch", self.switch,
               f"a step in [warmup={self.warmup}, steps={self.steps})")
        _check(_is_real(self.factor) and self.factor > 0, "twostage", "factor", self.factor, "a finite number > 0")
        _check(math.isfinite(self.peak * self.factor) and self.peak * self.factor > 0, "twostage", "factor",
               self.factor, f"such that peak * factor is a finite number > 0 (peak={self.peak!r})")

    def _body(self, n: int) -> np.ndarray:
        return P.join([P.constant(self.switch - self.warmup, self.peak), P.constant(self.steps - self.switch, self.factor * self.peak)])


@dataclasses.dataclass(frozen=True)
class OneCycle(Schedule):
    """One cycle (torch's ``OneCycleLR``): from ``start * peak`` up to ``peak`` over the
    first ``warmup`` updates, then down to ``min * peak`` at the last update, both phases
    annealed with ``shape`` (``cosine`` or ``linear``).

    With ``e = warmup - 1``: ``lr[i] = a(start * peak, peak, i / e)`` for ``i <= e`` and
    ``lr[i] = a(peak, min * peak, (i - e) / (steps - 1 - e))`` after, where
    ``a(x, y, u) = y + (x - y) (1 + cos(pi u)) / 2`` (cosine) or ``x + (y - x) u`` (linear).
    ``OneCycleLR(max_lr=P, total_steps=T, pct_start=W / T, div_factor=d, final_div_factor=f,
    anneal_strategy="cos" | "linear")`` is ``onecycle:steps=T,peak=P,warmup=W,start=1/d,
    min=1/(d f)`` (the defaults ``start=0.04`` and ``min=4e-06`` are torch's ``d = 25``,
    ``f = 1e4``); ``three_phase=True`` has no spec.  Unlike the other families its warmup is
    annealed with ``shape``, not linear, and its last update runs at ``min * peak``.
    """

    family: ClassVar[str] = "onecycle"
    start: float = 0.04
    min: float = 4e-06
    shape: str = "cosine"

    def _validate(self) -> None:
        _check(self.shape in ("cosine", "linear"), "onecycle", "shape", self.shape, "cosine or linear")
        _check(2 <= self.warmup <= self.steps - 1, "onecycle", "warmup", self.warmup,
               f"an integer in [2, steps - 1 = {self.steps - 1}] (updates up to the peak)")

    def lr(self) -> np.ndarray:
        i = np.arange(self.steps, dtype=np.float64)
        e = float(self.warmup - 1)
        up = i <= e
        u = np.where(up, i / e, (i - e) / (self.steps - 1 - e))
        x = np.where(up, self.start * self.peak, self.peak)
        y = np.where(up, self.peak, self.min * self.peak)
        if self.shape == "cosine":
            return y + (x - y) / 2.0 * (np.cos(np.pi * u) + 1.0)
        return (y - x) * u + x


FAMILIES: dict[str, type[Schedule]] = {
    cls.family: cls for cls in (Constant, Cosine, Linear, WSD, Step, Cyclic, Rewarm, WSDS, TwoStage, OneCycle)
}
