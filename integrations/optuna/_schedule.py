"""A trial's LR schedule: sampled from a declared space, recorded as a user attribute."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from lrtune.schedules import Schedule, parse_schedule

__all__ = ["SCHEDULE_ATTR", "ScheduleSpace", "record_schedule", "suggest_schedule", "trial_schedule"]

#: The user attribute that holds a trial's schedule spec (``trial.user_attrs[SCHEDULE_ATTR]``).
SCHEDULE_ATTR = "lr_schedule"

_FAMILIES = ("wsd", "cosine", "linear", "constant")
_SHAPES = ("linear", "1-sqrt", "cosine")


def record_schedule(trial: optuna.trial.BaseTrial, schedule: str | Schedule) -> Schedule:
    """Record the LR schedule a trial trains with, for :class:`ScheduleAwarePruner` and
    :class:`ScheduleSampler`.

    Call it once, before the first ``trial.report``.  The spec is stored as the user
    attribute ``"lr_schedule"`` of the trial, so every process sharing the study's
    storage (and a resumed study) sees it.  A trial without one, or with one that does
    not parse, is never pruned by the model (only for a NaN, infinite or diverging loss).

    Example:

        .. code::

            schedule = record_schedule(trial, "wsd:steps=20000,peak=1e-3,warmup=500,cooldown=0.2")
            lrs = schedule.lr()  # lrs[i] is the LR of optimizer update i + 1

    Args:
        trial: the trial.
        schedule: a spec string (``"cosine:steps=10000,peak=3e-4,warmup=200"``) or a
            :class:`~lrtune.schedules.Schedule`.  Steps are optimizer steps.

    Returns:
        The parsed schedule.
    """
    parsed = parse_schedule(schedule)
    trial.set_user_attr(SCHEDULE_ATTR, parsed.spec())
    return parsed


def trial_schedule(trial: optuna.trial.FrozenTrial) -> Schedule:
    """The schedule recorded on a trial; ``ValueError`` when it is missing or malformed."""
    spec = trial.user_attrs.get(SCHEDULE_ATTR)
    if spec is None:
        raise ValueError(f"trial {trial.number} has no {SCHEDULE_ATTR!r} user attribute "
                         f"(call lrtune.integrations.optuna.record_schedule(trial, spec))")
    if isinstance(spec, (list, tuple)):
        raise ValueError(f"trial {trial.number}: user attribute {SCHEDULE_ATTR!r} holds an LR array of {len(spec)} "
                         f"values, not a schedule spec (record_schedule(trial, spec) records one; "
                         f"lrtune.schedules.lr_from_torch gives only the array)")
    try:
        return parse_schedule(spec)
    except (ValueError, TypeError) as e:
        text, why = repr(spec), str(e)
        text = text if len(text) <= 200 else text[:200] + f"... ({len(text)} characters)"
        why = why if len(why) <= 200 else why[:200] + "..."
        raise ValueError(f"trial {trial.number}: user attribute {SCHEDULE_ATTR!r} = {text} is not a "
                         f"schedule spec: {why}") from None


class ScheduleSpace:
    """The LR schedules a study searches over, as Optuna parameters.

    A schedule is a family (``"schedule"``), a peak LR (``"peak_lr"``, log scale) and,
    for WSD, a cooldown fraction (``"cooldown_fraction"``) and a cooldown shape
    (``"decay_shape"``), plus the warmup (``"warmup_steps"``) when it is a range; a
    choice with one value is fixed and not suggested.  The horizon ``steps`` is fixed:
    trials compete at equal compute.  :func:`suggest_schedule` suggests these parameters
    and records the spec; :class:`ScheduleSampler` proposes them.

    Example:

        .. code::

            space = ScheduleSpace(steps=25_000, peak_lr=(1e-4, 3e-3), families=("wsd", "cosine"),
                                  cooldown=(0.1, 0.9), warmup=300)
            space.schedule({"schedule": "wsd", "peak_lr": 1e-3, "cooldown_fraction": 0.4})

    Args:
        steps: horizon, in optimizer steps.
        peak_lr: ``(low, high)`` range of the peak LR (log-uniform), or one value.
        families: schedule families to choose from: ``"wsd"``, ``"cosine"``, ``"linear"``,
            ``"constant"``.
        cooldown: ``(low, high)`` range of the WSD cooldown, as a fraction of ``steps``,
            or one value.
        shapes: WSD cooldown shapes to choose from (``"linear"``, ``"1-sqrt"``, ``"cosine"``).
        warmup: linear warmup length in optimizer steps, or a ``(low, high)`` range.
        min_lr: final LR of decaying schedules, as a fraction of the peak.
    """

    PEAK_LR = "peak_lr"
    FAMILY = "schedule"
    COOLDOWN = "cooldown_fraction"
    SHAPE = "decay_shape"
    WARMUP = "warmup_steps"

    def __init__(self, steps: int, peak_lr: float | tuple[float, float], families: Sequence[str] = ("wsd", "cosine"),
                 cooldown: float | tuple[float, float] = (0.1, 0.9), shapes: Sequence[str] = ("linear",),
                 warmup: int | tuple[int, int] = 0, min_lr: float = 0.0) -> None:
        if not (isinstance(steps, (int, np.integer)) and steps >= 2):
            raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
        self.steps = int(steps)
        self.peak_lr = _range("peak_lr", peak_lr, float, lambda v: math.isfinite(v) and v > 0, "> 0")
        families = tuple(families) if not isinstance(families, str) else (families,)
        if not families or any(f not in _FAMILIES for f in families) or len(set(families)) != len(families):
            raise ValueError(f"families must be distinct values among {', '.join(_FAMILIES)}, got {families!r}")
        self.families = families
        self.cooldown = _range("cooldown", cooldown, float, lambda v: 0 < v <= 1, "in (0, 1]")
        shapes = tuple(shapes) if not isinstance(shapes, str) else (shapes,)
        if not shapes or any(s not in _SHAPES for s in shapes) or len(set(shapes)) != len(shapes):
            raise ValueError(f"shapes must be distinct values among {', '.join(_SHAPES)}, got {shapes!r}")
        self.shapes = shapes
        self.warmup = _range("warmup", warmup, int, lambda v: 0 <= v < steps, f"in [0, steps={steps})")
        if not (isinstance(min_lr, (int, float)) and 0 <= min_lr < 1):
            raise ValueError(f"min_lr must be a fraction of the peak in [0, 1), got {min_lr!r}")
        self.min_lr = float(min_lr)
        # WSD's rule: the cooldown may start at the last warmup step (transformers' warmup schedules map so)
        if "wsd" in families and round(self.cooldown[1] * steps) > steps - max(self.warmup[1] - 1, 0):
            raise ValueError(f"cooldown up to {self.cooldown[1]} of {steps} steps does not fit after a warmup of "
                             f"{self.warmup[1]} steps (it may start at the last warmup step at the earliest)")

    def __repr__(self) -> str:
        return (f"ScheduleSpace(steps={self.steps}, peak_lr={self.peak_lr}, families={self.families}, "
                f"cooldown={self.cooldown}, shapes={self.shapes}, warmup={self.warmup}, min_lr={self.min_lr})")

    def distributions(self) -> dict[str, BaseDistribution]:
        """Optuna distributions of the parameters that vary (WSD ones only when WSD is a family)."""
        out: dict[str, BaseDistribution] = {}
        if len(self.families) > 1:
            out[self.FAMILY] = CategoricalDistribution(self.families)
        if self.peak_lr[0] < self.peak_lr[1]:
            out[self.PEAK_LR] = FloatDistribution(*self.peak_lr, log=True)
        if "wsd" in self.families:
            if self.cooldown[0] < self.cooldown[1]:
                out[self.COOLDOWN] = FloatDistribution(*self.cooldown)
            if len(self.shapes) > 1:
                out[self.SHAPE] = CategoricalDistribution(self.shapes)
        if self.warmup[0] < self.warmup[1]:
            out[self.WARMUP] = IntDistribution(*self.warmup)
        return out

    def schedule(self, params: dict[str, Any]) -> Schedule:
        """The schedule of a parameter dict (parameters left out take their fixed value)."""
        family = params.get(self.FAMILY, self.families[0])
        peak = float(params.get(self.PEAK_LR, self.peak_lr[0]))
        warmup = int(params.get(self.WARMUP, self.warmup[0]))
        base = f"{family}:steps={self.steps},peak={peak!r},warmup={warmup}"
        if family == "wsd":
            cooldown = float(params.get(self.COOLDOWN, self.cooldown[0]))
            shape = params.get(self.SHAPE, self.shapes[0])
            base += f",cooldown={cooldown!r},shape={shape}"
        if family != "constant":
            base += f",min={self.min_lr!r}"
        return parse_schedule(base)

    def suggest(self, trial: optuna.trial.BaseTrial) -> Schedule:
        """Suggest the parameters on ``trial``, record the spec and return the schedule."""
        dists = self.distributions()
        params: dict[str, Any] = {}
        for name in (self.FAMILY, self.PEAK_LR, self.COOLDOWN, self.SHAPE, self.WARMUP):
            if name not in dists or (name in (self.COOLDOWN, self.SHAPE) and params.get(self.FAMILY, self.families[0]) != "wsd"):
                continue
            d = dists[name]
            if isinstance(d, CategoricalDistribution):
                params[name] = trial.suggest_categorical(name, d.choices)
            elif isinstance(d, IntDistribution):
                params[name] = trial.suggest_int(name, d.low, d.high)
            else:
                params[name] = trial.suggest_float(name, d.low, d.high, log=d.log)
        schedule = self.schedule(params)
        record_schedule(trial, schedule)
        return schedule

    def sample(self, rng: np.random.Generator, n: int, fixed: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """``n`` random parameter dicts (uniform, log-uniform for the peak LR); parameters in
        ``fixed`` take its values (a fixed family decides which WSD parameters are drawn)."""
        dists = self.distributions()
        fixed = fixed or {}
        out = []
        for _ in range(n):
            p: dict[str, Any] = {}
            for name, d in dists.items():
                if name in fixed:
                    p[name] = fixed[name]
                elif isinstance(d, CategoricalDistribution):
                    p[name] = d.choices[rng.integers(len(d.choices))]
                elif isinstance(d, IntDistribution):
                    p[name] = int(rng.integers(d.low, d.high + 1))
                elif d.log:
                    p[name] = float(np.exp(rng.uniform(np.log(d.low), np.log(d.high))))
                else:
                    p[name] = float(rng.uniform(d.low, d.high))
            if p.get(self.FAMILY, self.families[0]) != "wsd":
                p.pop(self.COOLDOWN, None)
                p.pop(self.SHAPE, None)
            out.append(p)
        return out


def suggest_schedule(trial: optuna.trial.BaseTrial, space: ScheduleSpace) -> Schedule:
    """Suggest a schedule from ``space`` on ``trial`` and record its spec.

    The parameters are ordinary Optuna parameters (``"schedule"``, ``"peak_lr"``,
    ``"cooldown_fraction"``, ``"decay_shape"``, ``"warmup_steps"``; see
    :class:`ScheduleSpace`), so any sampler can propose them and
    :class:`ScheduleSampler` proposes them from the law.  The spec is recorded with
    :func:`record_schedule`.

    Example:

        .. code::

            space = ScheduleSpace(steps=20_000, peak_lr=(1e-4, 3e-3), warmup=500)

            def objective(trial):
                schedule = suggest_schedule(trial, space)
                for step, loss in train(schedule.lr()):  # your training loop
                    trial.report(loss, step)
                    if trial.should_prune():
                        raise optuna.TrialPruned()
                return loss

    Args:
        trial: the trial.
        space: the declared :class:`ScheduleSpace`.

    Returns:
        The suggested :class:`~lrtune.schedules.Schedule`.
    """
    if not isinstance(space, ScheduleSpace):
        raise ValueError(f"space must be a ScheduleSpace, got {type(space).__name__}")
    return space.suggest(trial)


def _range(name: str, value: Any, kind: type, ok: Any, allowed: str) -> tuple[Any, Any]:
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be a number or a (low, high) pair, got {value!r}")
    try:
        if kind is int and not all(isinstance(v, (int, np.integer)) for v in pair):
            raise TypeError
        low, high = kind(pair[0]), kind(pair[1])
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {'integers' if kind is int else 'numbers'}, got {value!r}") from None
    if not (ok(low) and ok(high)) or low > high:
        raise ValueError(f"{name} must be {allowed} with low <= high, got {value!r}")
    return low, high
