"""examples/tune_lm.py end to end: the Optuna and Ray Tune runs in their --tiny setting."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "examples", "tune_lm.py")
UNTRAINED = math.log(256)  # nats per byte of a uniform byte model

pytest.importorskip("torch")


def _run(mode: str, out: str) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", RAY_AUTH_MODE="disabled")
    proc = subprocess.run([sys.executable, SCRIPT, mode, "--tiny", "--out", out], capture_output=True, text=True,
                          timeout=180, env=env, cwd=out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "best trial:" in proc.stdout and "optimizer steps:" in proc.stdout
    with open(os.path.join(out, f"{mode}_summary.json")) as f:
        return json.load(f)


def test_optuna_tiny(tmp_path):
    optuna = pytest.importorskip("optuna")
    result = _run("optuna", str(tmp_path))
    assert math.isfinite(result["best_loss"]) and result["best_loss"] < UNTRAINED - 1.0
    study = optuna.load_study(study_name="tune_lm", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len(study.trials) == 6 == result["trials"]
    S = optuna.trial.TrialState
    finished = [t for t in study.trials if t.state in (S.COMPLETE, S.PRUNED)]
    assert len(finished) == 6
    for t in finished:
        assert t.user_attrs["lr_schedule"].split(":")[0] in ("wsd", "cosine")
        assert t.intermediate_values and all(math.isfinite(v) for v in t.intermediate_values.values())
    complete = [t for t in finished if t.state == S.COMPLETE]
    assert complete and max(complete[0].intermediate_values) == 60
    assert result["best_loss"] == pytest.approx(study.best_value)
    assert result["stopped"] == sum(t.state == S.PRUNED for t in finished)
    # every pruned trial says why (the pruner's "lrtune_pruned" user attribute)
    assert sum(result["why"].values()) == result["stopped"] and "other" not in result["why"]
    assert result["steps_used"] <= result["steps_all"] == 6 * 60


def test_ray_tiny(tmp_path):
    pytest.importorskip("ray.tune")
    result = _run("ray", str(tmp_path))
    assert result["trials"] == 6 and result["completed"] + result["stopped"] == 6
    assert math.isfinite(result["best_loss"]) and result["best_loss"] < UNTRAINED - 1.0
    assert result["best_spec"].split(":")[0] in ("wsd", "cosine")
    assert result["steps_used"] <= result["steps_all"] == 6 * 60
    assert sum(result["why"].values()) == result["stopped"]  # the scheduler's stop_reasons, one per stopped trial


@pytest.mark.parametrize("argv, message", [(["--trials", "0"], "--trials and --eval-every must be >= 1"),
                                           (["--steps", "30"], "does not fit after a warmup"),
                                           (["--peak-lr", "1e-3"], "expected LOW,HIGH with 0 < LOW < HIGH")])
def test_bad_arguments_are_usage_errors(tmp_path, argv, message):
    proc = subprocess.run([sys.executable, SCRIPT, "optuna", "--tiny", "--out", str(tmp_path), *argv],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
