"""lrtune: predict the loss curve of a training run from its learning-rate schedule.

Fit a scaling law (the momentum law or the multi-power law) on a few observed curves,
predict the loss of any other schedule with an error band, transfer the optimal peak LR
across horizons and schedule shapes, and prune hyperparameter trials by their predicted
final loss.

>>> from lrtune import mpl_split, make_law, parse_schedule
>>> train, test = mpl_split("25M")
>>> law = make_law("momentum").fit(train)
>>> wsd = parse_schedule("wsd:steps=24000,peak=3e-4,warmup=2160,cooldown=0.2,min=0.1")
>>> band = law.predict_interval(wsd.lr(), [12000, 24000])
"""

__version__ = "0.1.0"

from lrtune.curves import Curve, DivergedRunError, read_curves, write_curve_csv
from lrtune.datasets import load_mpl, mpl_split
from lrtune.laws import LAWS, Law, Prediction, load_law, make_law
from lrtune.schedules import Schedule, parse_schedule

__all__ = [
    "Curve",
    "DivergedRunError",
    "LAWS",
    "Law",
    "Prediction",
    "Schedule",
    "__version__",
    "load_law",
    "load_mpl",
    "make_law",
    "mpl_split",
    "parse_schedule",
    "read_curves",
    "write_curve_csv",
]
