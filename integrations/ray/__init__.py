"""Ray Tune plugin: a trial scheduler that knows each trial's LR schedule.

:class:`ScheduleAwareScheduler` stops a trial whose forecast final loss, under the
schedule in its config, cannot beat the best trial.  The Optuna sampler
:class:`lrtune.integrations.optuna.ScheduleSampler` also works inside Ray Tune through
``ray.tune.search.optuna.OptunaSearch(sampler=...)``.
"""

try:
    from lrtune.integrations.ray._scheduler import ScheduleAwareScheduler
except ModuleNotFoundError as e:  # only a missing Ray itself: a broken install keeps its own error
    if e.name is None or e.name.split(".")[0] != "ray":
        raise
    raise ModuleNotFoundError("lrtune.integrations.ray needs Ray Tune: pip install 'lrtune[ray]'",
                              name=e.name) from e

__all__ = ["ScheduleAwareScheduler"]
