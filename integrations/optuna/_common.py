"""What the pruner and the sampler share: cache keys of finished trials, and warnings
logged once."""

from __future__ import annotations

import logging
import os
from typing import Sequence

import optuna
from optuna.trial import FrozenTrial

from lrtune.curves import Curve
from lrtune.integrations._forecast import step_unit_hint


__all__ = ["WarnOnce", "storage_key", "study_key", "trial_key"]

_logger = logging.getLogger("lrtune.integrations.optuna")


def storage_key(storage: object) -> tuple:
    """What identifies a study's storage in this process.  ``load_study`` and
    ``create_study`` wrap an RDB storage in a new cache object each time, and a URL makes
    a new ``RDBStorage`` each time: keyed on that object, a pruner or sampler serving a
    study that is loaded again for every trial would never find what it cached (and would
    cache every trial again).  An RDB storage is its database URL, a journal file its
    path; any other storage (in memory) is the object itself."""
    backend = getattr(storage, "_backend", storage)  # optuna's _CachedStorage wraps the RDB storage
    url = getattr(backend, "url", None)
    if isinstance(url, str):
        return ("rdb", url)
    path = getattr(backend, "_file_path", None)  # JournalStorage(JournalFileBackend(path))._backend
    if isinstance(path, str):
        return ("journal", os.path.abspath(path))
    return ("object", id(backend))


def study_key(study: optuna.study.Study) -> tuple:
    """The study's storage (:func:`storage_key`) and its id in it (see :func:`trial_key`)."""
    return storage_key(study._storage) + (study._study_id,)


def trial_key(study: optuna.study.Study, trial: FrozenTrial) -> tuple:
    """A key of ``trial`` that no trial of another study shares in this process, for the
    caches of fits and curves (and the warnings logged once).

    Study and trial ids alone are not enough: every in-memory storage numbers its studies
    from 0 and every SQLite file from 1, and a study deleted and created again reuses its
    ids, so one pruner or sampler serving two studies would judge one with the other's
    curves.  The storage (two in-memory studies alive at once have distinct objects, or
    distinct ids in a shared one; a database is its URL) and the trial's start time (a trial that reuses a deleted one's
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

    def _warn_ended_early(self, who: str, t: FrozenTrial, key: tuple, reported: Sequence[float], curve: Curve,
                          step_unit: float, early: str, unit: str, per_study: bool = False) -> None:
        """Warn that completed trial ``t`` (cache key ``key``: :func:`trial_key`) reported only up
        to optimizer step ``curve.steps[-1]`` of its schedule's ``curve.horizon``: once for the
        study, ending with ``unit``, when its ``reported`` steps look like evaluation indices
        (:func:`~lrtune.integrations._forecast.step_unit_hint`: then every trial reports so),
        else once for the trial (``per_study``: once for the study), ending with ``early``."""
        hint = step_unit_hint(reported, step_unit, curve.horizon)
        head = (f"{who}: completed trial {t.number} reported up to optimizer step {curve.steps[-1]} of its "
                f"schedule's {curve.horizon}")
        if hint:
            self._warn_once(("step unit", *key[:-3]), f"{head}{hint}; {unit}")  # key[:-3]: the study's key
        else:
            self._warn_once(("stopped early", *(key[:-3] if per_study else key)), f"{head}: {early}")
