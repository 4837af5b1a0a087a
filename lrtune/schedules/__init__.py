"""Learning-rate schedules as numpy arrays, text specs and torch schedulers.

>>> from lrtune.schedules import parse_schedule
>>> s = parse_schedule("wsd:steps=1000,peak=1e-3,warmup=100,cooldown=0.2,shape=1-sqrt")
>>> s.lr().shape
(1000,)
>>> parse_schedule(s.spec()) == s
True
"""

from lrtune.schedules._families import (
    FAMILIES,
    WSD,
    WSDS,
    Constant,
    Cosine,
    Cyclic,
    Linear,
    OneCycle,
    Rewarm,
    Schedule,
    Step,
    TwoStage,
)
from lrtune.schedules._pieces import DECAY_SHAPES
from lrtune.schedules._spec import format_spec, parse_schedule
from lrtune.schedules._torch import lr_from_torch, to_lambda_lr

__all__ = [
    "DECAY_SHAPES",
    "FAMILIES",
    "Constant",
    "Cosine",
    "Cyclic",
    "Linear",
    "OneCycle",
    "Rewarm",
    "Schedule",
    "Step",
    "TwoStage",
    "WSD",
    "WSDS",
    "format_spec",
    "lr_from_torch",
    "parse_schedule",
    "to_lambda_lr",
]
