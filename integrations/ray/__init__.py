"""Ray Tune plugin: a trial scheduler that knows each trial's LR schedule.

:class:`ScheduleAwareScheduler` stops a trial whose forecast final loss, under the
schedule in its config, cannot beat the best trial.  The Optuna sampler
:class:`lrtune.integrations.optuna.ScheduleSampler` also works inside Ray Tune through
``ray.tune.search.optuna.OptunaSearch(sampler=...)``.
"""

from lrtune.integrations.ray._scheduler import ScheduleAwareScheduler

__all__ = ["ScheduleAwareScheduler"]
