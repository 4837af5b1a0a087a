"""Optuna plugins: a pruner and a sampler that know each trial's LR schedule.

* :class:`ScheduleAwarePruner` prunes a trial whose forecast final loss, under its own
  schedule, cannot beat the best trial;
* :class:`ScheduleSampler` proposes the peak LR and schedule a law fitted on the
  completed trials predicts best (TPE for every other parameter);
* :func:`suggest_schedule` / :class:`ScheduleSpace` sample a schedule and
  :func:`record_schedule` records one built by hand (user attribute ``"lr_schedule"``);
* a trial the pruner prunes gets the user attribute ``"lrtune_pruned"`` (:data:`PRUNED_ATTR`):
  why it was pruned.
"""

from lrtune.integrations.optuna._pruner import PRUNED_ATTR, ScheduleAwarePruner
from lrtune.integrations.optuna._sampler import ScheduleSampler
from lrtune.integrations.optuna._schedule import (
    SCHEDULE_ATTR,
    ScheduleSpace,
    record_schedule,
    suggest_schedule,
    trial_schedule,
)

__all__ = [
    "PRUNED_ATTR",
    "SCHEDULE_ATTR",
    "ScheduleAwarePruner",
    "ScheduleSampler",
    "ScheduleSpace",
    "record_schedule",
    "suggest_schedule",
    "trial_schedule",
]
