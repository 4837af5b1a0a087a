"""What the pruner and the sampler share: cache keys of finished trials, and warnings
logged once."""

from __future__ import annotations

import logging

import optuna
from optuna.trial import FrozenTrial


__all__ = ["WarnOnce", "study_key", "trial_key"]

_logger = logging.getLogger("lrtune.integrations.optuna")


def study_key(study: optuna.study.Study) -> tuple:
    """The study's storage object and its id in it (see :func:`trial_key`)."""
    return id(study._storage), study._study_id


def trial_key(study: optuna.study.Study, trial: FrozenTrial) -> tuple:
    """A key of ``trial`` that no trial of another study shares in this process, for the
    caches of fits and curves (and the warnings logged once).

    Study and trial ids alone are not enough: every in-memory storage numbers its studies
    from 0 and every SQLite file from 1, and a study deleted and created again reuses its
    ids, so one pruner or sampler serving two studies would judge one with the other's
    curves.  The storage object (two studies alive at once have distinct ones, or distinct
    ids in a shared one) and the trial's start time (a trial that reuses a deleted one's
    id started later) tell them apart; a finished trial never changes, so what is cached
    on its key stays valid.  It costs no read of the trial's data."""
    return study_key(study) + (trial._trial_id, trial.number, trial.datetime_start)


class WarnOnce:
    """``_warn_once(key, message)``: log ``message`` the first time ``key`` is seen (the
    class holds ``_lock`` and the set ``_warned``)."""

    def _warn_once(self, key: tuple, message: str) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        _logger.warning(message)
