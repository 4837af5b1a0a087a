"""Loss-curve laws: fit on observed curves, predict any other LR schedule.

* :class:`MomentumLaw` (Tissue et al.), :mod:`lrtune.laws.momentum`;
* :class:`MultiPowerLaw` (Luo et al.), :mod:`lrtune.laws.multipower`.

All follow the protocol of :class:`Law` (``fit`` / ``predict`` / ``predict_interval`` /
``to_dict``); :func:`load_law` reads any of them back.
"""

from __future__ import annotations

import json
import os
from typing import Any

from lrtune.laws._base import FitWarning, Law, NotFittedError, Prediction
from lrtune.laws.momentum import MomentumLaw

LAWS: dict[str, type[Law]] = {MomentumLaw.name: MomentumLaw}
try:  # the multi-power law lives in its own module
    from lrtune.laws.multipower import MultiPowerLaw

    LAWS[MultiPowerLaw.name] = MultiPowerLaw
except ImportError:  # pragma: no cover
    pass


def make_law(name: str, **config: Any) -> Law:
    """A fresh, unfitted law by name (``"momentum"`` or ``"multipower"``)."""
    if name not in LAWS:
        raise ValueError(f"unknown law {name!r}; known: {', '.join(LAWS)}")
    return LAWS[name](**config)


def load_law(source: str | os.PathLike | dict) -> Law:
    """A fitted law from a dict, a JSON string or a JSON file written by ``to_json``."""
    if isinstance(source, dict):
        data = source
    else:
        text = str(source)
        if not text.lstrip().startswith("{"):
            if not os.path.exists(text):
                raise ValueError(f"{text}: no such fit file")
            with open(text) as f:
                text = f.read()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not a fit file (invalid JSON: {e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict) or "law" not in data:
        raise ValueError("not a fit file: expected a JSON object with a 'law' key")
    if not isinstance(data["law"], str) or data["law"] not in LAWS:
        raise ValueError(f"fit file names unknown law {data['law']!r}; known: {', '.join(LAWS)}")
    return LAWS[data["law"]].from_dict(data)


__all__ = ["LAWS", "FitWarning", "Law", "MomentumLaw", "NotFittedError", "Prediction", "load_law", "make_law"]
if "multipower" in LAWS:
    __all__.append("MultiPowerLaw")
