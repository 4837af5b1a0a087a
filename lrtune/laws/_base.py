"""The protocol every law follows (scikit-learn style).

* ``__init__`` takes the law's settings and stores them unchanged;
* ``fit(curves)`` fits the parameters on observed :class:`~lrtune.curves.Curve` objects
  and returns ``self``; what was learned ends with ``_`` (``params_``, ``r2_``,
  ``mean_rel_error_``, ``residual_scale_``, ``fitted_on_``);
* ``predict(lr, steps)`` gives the loss at ``steps`` (ints >= 1, a loss at step ``s``
  depends on ``lr[:s]``) for the per-step LR array ``lr``; it never refits;
* ``predict_interval(lr, steps, level=0.9)`` adds a lower and upper band;
* ``to_dict()`` / ``from_dict()`` (and ``to_json`` / ``from_json``) serialise to plain data.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import math
from typing import Any, ClassVar, Sequence

import numpy as np
from scipy import stats

from lrtune.curves import Curve, check_lr, check_steps

__all__ = ["Law", "Prediction", "NotFittedError"]


class NotFittedError(ValueError):
    """The law has not been fitted yet."""


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Predicted loss at ``steps`` with a ``level`` band ``[lower, upper]``."""

    steps: np.ndarray
    loss: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float

    def to_dict(self) -> dict[str, list]:
        return {
            "steps": self.steps.tolist(),
            "loss": self.loss.tolist(),
            "lower": self.lower.tolist(),
            "upper": self.upper.tolist(),
        }


def _fit_stats(pred: np.ndarray, loss: np.ndarray) -> tuple[float, float]:
    """R^2 and mean relative error of a prediction."""
    ss_res = float(np.sum((loss - pred) ** 2))
    ss_tot = float(np.sum((loss - loss.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    return r2, float(np.mean(np.abs(pred - loss) / loss))


class Law(abc.ABC):
    """Base class of the loss-curve laws."""

    name: ClassVar[str]
    param_names: ClassVar[tuple[str, ...]]

    # -- to implement -----------------------------------------------------------------
    @abc.abstractmethod
    def _fit_params(self, curves: Sequence[Curve]) -> dict[str, float]:
        """Fit and return the parameter dict."""

    @abc.abstractmethod
    def _predict_params(self, params: dict[str, float], lr: np.ndarray, steps: np.ndarray,
                        model_size: float | None) -> np.ndarray:
        """Loss at ``steps`` (validated) for ``lr`` (validated) under ``params``."""

    def get_config(self) -> dict[str, Any]:
        """The settings given to ``__init__`` (JSON-serialisable)."""
        return {}

    # -- protocol ---------------------------------------------------------------------
    def fit(self, curves: Sequence[Curve] | Curve) -> "Law":
        curves = [curves] if isinstance(curves, Curve) else list(curves)
        if not curves:
            raise ValueError("fit needs at least one curve, got none")
        for c in curves:
            if not isinstance(c, Curve):
                raise ValueError(f"fit takes lrtune.curves.Curve objects, got {type(c).__name__}")
        params = self._fit_params(curves)
        self.params_ = {k: float(params[k]) for k in params}
        preds = [self._predict_params(self.params_, c.lr, c.steps, c.meta.get("model_size")) for c in curves]
        pred = np.concatenate(preds)
        loss = np.concatenate([c.loss for c in curves])
        self.r2_, self.mean_rel_error_ = _fit_stats(pred, loss)
        log_res = np.log(loss) - np.log(pred)
        self.residual_scale_ = float(np.sqrt(np.mean(log_res**2)))
        self.n_points_ = int(loss.size)
        self.fitted_on_ = [c.name for c in curves]
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted: call fit(curves) or load a fit first")

    def predict(self, lr: Any, steps: Any = None, *, model_size: float | None = None) -> np.ndarray:
        """Predicted loss at ``steps`` (default: the last step) under the LR array ``lr``."""
        self._check_fitted()
        lr = check_lr(lr)
        steps = check_steps(np.asarray([lr.size]) if steps is None else steps, last=lr.size)
        return self._predict_params(self.params_, lr, steps, model_size)

    def predict_interval(self, lr: Any, steps: Any = None, *, level: float = 0.9,
                         model_size: float | None = None) -> Prediction:
        """Prediction with a two-sided ``level`` band.

        The band is multiplicative: ``loss * exp(+-z * s)`` with ``s`` the fit's RMS log
        residual, inflated for steps beyond the longest fitted curve.
        """
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        lr = check_lr(lr)
        steps = check_steps(np.asarray([lr.size]) if steps is None else steps, last=lr.size)
        loss = self.predict(lr, steps, model_size=model_size)
        z = stats.norm.ppf(0.5 + level / 2)
        s = self._band_scale(lr, steps)
        return Prediction(steps, loss, loss * np.exp(-z * s), loss * np.exp(z * s), level)

    def _band_scale(self, lr: np.ndarray, steps: np.ndarray) -> np.ndarray:
        return np.full(steps.shape, max(self.residual_scale_, 1e-4))

    # -- serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        out = {"law": self.name, "config": self.get_config(), "params": dict(self.params_)}
        for key in ("r2_", "mean_rel_error_", "residual_scale_", "n_points_", "fitted_on_"):
            out[key.rstrip("_")] = getattr(self, key)
        out.update(self._extra_state())
        return out

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, data: dict[str, Any]) -> None:
        pass

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Law":
        if data.get("law") != cls.name:
            raise ValueError(f"this is a fit of law {data.get('law')!r}, not {cls.name!r}")
        law = cls(**data.get("config", {}))
        missing = [p for p in law.param_names_for_load() if p not in data.get("params", {})]
        if missing:
            raise ValueError(f"fit of law {cls.name!r} lacks parameter(s) {', '.join(missing)}")
        law.params_ = {k: float(v) for k, v in data["params"].items()}
        for key in ("r2", "mean_rel_error", "residual_scale", "n_points", "fitted_on"):
            setattr(law, key + "_", data.get(key))
        law._load_extra_state(data)
        return law

    def param_names_for_load(self) -> tuple[str, ...]:
        return self.param_names

    def to_json(self, path: str | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            with open(path, "w") as f:
                f.write(text + "\n")
        return text

    @classmethod
    def from_json(cls, text: str) -> "Law":
        return cls.from_dict(json.loads(text))

    def summary(self) -> str:
        """A few lines: parameters, R^2 and mean relative error on the fitted curves."""
        self._check_fitted()
        ps = ", ".join(f"{k}={v:.6g}" for k, v in self.params_.items())
        return (f"law: {self.name}\nfitted on: {', '.join(self.fitted_on_)} ({self.n_points_} points)\n"
                f"parameters: {ps}\nR^2: {self.r2_:.5f}\nmean relative error: {100 * self.mean_rel_error_:.3f} %")

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({cfg})"


def finite_or_raise(x: float, what: str) -> float:
    if not math.isfinite(x):
        raise ValueError(f"{what} is not finite: {x}")
    return x
