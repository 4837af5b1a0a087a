"""Torch interoperability, both ways.

* :func:`to_lambda_lr` turns an lrtune schedule into a ``torch.optim.lr_scheduler.LambdaLR``
  (call ``scheduler.step()`` after every ``optimizer.step()``).
* :func:`lr_from_torch` returns the exact per-step LR array of any torch LR scheduler,
  built by a factory on a dummy optimizer, so that a user's own scheduler (for example
  ``transformers.get_wsd_schedule``, a ``LambdaLR``, timm's ``WSDLRScheduler``) is used as
  is instead of being re-implemented.  docs/schedules.md lists which torch schedulers equal which lrtune specs.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable

import numpy as np

from lrtune.schedules._families import Schedule
from lrtune.schedules._spec import parse_schedule


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:  # pragma: no cover - exercised only without torch
        raise ImportError("this needs torch: pip install 'lrtune[torch]' (torch==2.13.0)") from e
    return torch


_SCHEDULE_LR = None


def _ScheduleLR() -> type:
    """``LambdaLR`` whose ``load_state_dict`` keeps the peak of the schedule it was built
    with (torch's restores the checkpoint's ``base_lrs``: a changed peak was ignored while a
    changed shape was followed) and sets the next update's LR from it."""
    global _SCHEDULE_LR
    if _SCHEDULE_LR is None:
        torch = _torch()

        class ScheduleLR(torch.optim.lr_scheduler.LambdaLR):
            def load_state_dict(self, state_dict: dict) -> None:
                base_lrs = list(self.base_lrs)
                super().load_state_dict(state_dict)
                self.base_lrs = base_lrs
                last = []
                for group, base, factor in zip(self.optimizer.param_groups, base_lrs, self.lr_lambdas):
                    value = base * factor(self.last_epoch)
                    if torch.is_tensor(group["lr"]):
                        group["lr"].fill_(value)
                    else:
                        group["lr"] = value
                    last.append(value)
                self._last_lr = last

        ScheduleLR.__module__ = __name__
        ScheduleLR.__qualname__ = "ScheduleLR"
        _SCHEDULE_LR = ScheduleLR
    return _SCHEDULE_LR


def __getattr__(name: str) -> Any:  # pickle finds ScheduleLR here (built when torch is first needed)
    if name == "ScheduleLR":
        return _ScheduleLR()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _factor(factors: np.ndarray, i: int) -> float:
    """The LR factor of update ``i + 1``; past the last step, the last one."""
    return float(factors[min(i, factors.size - 1)])


def to_lambda_lr(schedule: Schedule | str, optimizer: Any) -> Any:
    """A ``LambdaLR`` that makes ``optimizer`` follow ``schedule`` exactly.

    The optimizer's LR of every param group is set to the schedule's peak (a warning says
    so when the groups had different LRs) and the lambda returns ``lr[i] / peak``; past the
    last step the LR stays at the last value.  To resume, build it again from the spec, then
    load the optimizer's and the scheduler's state dicts: the step count comes from the
    checkpoint and the LRs from the spec, so a resumed run with a changed spec (a longer
    horizon, another peak) follows the new one from the saved step.  The scheduler pickles.

    Example::

        opt = torch.optim.AdamW(model.parameters())
        sched = to_lambda_lr("wsd:steps=1000,peak=1e-3,warmup=100,cooldown=0.2", opt)
        for batch in batches:
            loss(batch).backward(); opt.step(); opt.zero_grad(); sched.step()
    """
    torch = _torch()
    schedule = parse_schedule(schedule)
    factors = schedule.lr() / schedule.peak  # an array: 8 bytes a step, not a Python float's 32
    before = sorted({float(g["lr"]) for g in optimizer.param_groups})
    if len(before) > 1:
        warnings.warn(f"to_lambda_lr: the optimizer's param groups had different LRs "
                      f"({', '.join(f'{v:g}' for v in before[:4])}); every group now follows the schedule "
                      f"(peak {schedule.peak:g}). For per-group LRs, give each group its own LambdaLR factor",
                      UserWarning, stacklevel=2)
    for group in optimizer.param_groups:
        if torch.is_tensor(group["lr"]):  # a tensor LR (compiled / capturable steps) stays a tensor
            group["lr"].fill_(schedule.peak)
        else:
            group["lr"] = schedule.peak
        group.pop("initial_lr", None)
    # a partial of a module-level function pickles, and LambdaLR's state_dict saves its
    # (empty) __dict__ rather than the factors
    return _ScheduleLR()(optimizer, functools.partial(_factor, factors))


def lr_from_torch(factory: Callable[[Any], Any], steps: int, base_lr: float = 1.0,
                  updates_per_epoch: int | None = None) -> np.ndarray:
    """The LR used by each of ``steps`` updates under the scheduler ``factory(optimizer)``.

    ``factory`` receives a dummy SGD optimizer whose LR is ``base_lr`` and returns a
    torch LR scheduler; the LR of the first param group is read before every update and
    ``scheduler.step()`` is called after it, as in a training loop.  ``lr[i]`` is the LR
    of update ``i + 1`` (lrtune's convention).  The dummy optimizer itself is never
    stepped: torch's schedulers do not depend on it, and skipping it makes a 50k-step
    schedule take a fraction of a second.

    ``updates_per_epoch``: the loop steps the scheduler once per epoch of that many
    updates instead of after every update (``scheduler.step()`` at the end of an epoch).

    timm's schedulers (``timm.scheduler``, such as ``WSDLRScheduler`` and
    ``CosineLRScheduler``) are stepped as timm's training loop steps them:
    ``step_update(n)`` after update ``n`` and ``step(epoch)`` at the end of each epoch.
    One built with ``t_in_epochs=False`` counts updates; one built with
    ``t_in_epochs=True`` (timm's default) counts epochs and needs ``updates_per_epoch``.

    Example::

        lr = lr_from_torch(lambda opt: torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=1e-3, total_steps=10_000), steps=10_000, base_lr=1e-3)
        lr = lr_from_torch(lambda opt: timm.scheduler.WSDLRScheduler(
            opt, t_initial=9_000, decay_t=2_000, warmup_t=1_000, t_in_epochs=False),
            steps=10_000, base_lr=1e-3)
    """
    torch = _torch()
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if updates_per_epoch is not None and (isinstance(updates_per_epoch, bool)
                                          or not isinstance(updates_per_epoch, (int, np.integer))
                                          or updates_per_epoch < 1):
        raise ValueError(f"updates_per_epoch must be None or an integer >= 1, got {updates_per_epoch!r}")
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=base_lr)
    sched = factory(opt)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau
    if isinstance(sched, plateau) or isinstance(getattr(sched, "lr_scheduler", None), plateau):
        raise TypeError(f"lr_from_torch: {type(sched).__name__} lowers the LR when a metric stops improving: it has "
                        f"no LR array in advance")
    if sched is opt or not callable(getattr(sched, "step", None)):
        raise TypeError(f"lr_from_torch: factory must return an LR scheduler (an object with step()) built on the "
                        f"optimizer it is given, got {type(sched).__name__}")
    if isinstance(getattr(sched, "optimizer", opt), torch.optim.Optimizer) and sched.optimizer is not opt:
        raise ValueError("lr_from_torch: the factory's scheduler drives another optimizer than the one it is given "
                         "(build it on the factory's argument: lambda opt: SomeLR(opt, ...))")
    timm_like = callable(getattr(sched, "step_update", None)) and hasattr(sched, "t_in_epochs")
    if timm_like and sched.t_in_epochs and updates_per_epoch is None:
        raise ValueError(f"lr_from_torch: this {type(sched).__name__} counts epochs (t_in_epochs=True, timm's "
                         f"default): pass updates_per_epoch=N (the updates in one epoch), or build it with "
                         f"t_in_epochs=False to step it per update")
    group = opt.param_groups[0]
    out = np.empty(int(steps), dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()" etc.
        for i in range(int(steps)):
            out[i] = group["lr"]
            n = i + 1  # updates done
            epoch_end = updates_per_epoch is not None and n % updates_per_epoch == 0
            if timm_like:  # timm's train.py: step_update(num_updates) every update, step(epoch + 1) after an epoch
                sched.step_update(n)
                if epoch_end:
                    sched.step(n // updates_per_epoch)
            elif updates_per_epoch is None or epoch_end:
                sched.step()
    return out
