"""The CLI contract: fit / predict / plot on real curves, and one clean error line for bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from lrtune.cli import main
from lrtune.curves import write_curve_csv
from lrtune.datasets import load_mpl


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    train = load_mpl("25M", ["cosine_24000", "constant_24000", "wsdcon_9"])
    paths = []
    for c in train:
        p = d / f"{c.name}.csv"
        write_curve_csv(c, p)
        paths.append(str(p))
    (held,) = load_mpl("25M", ["wsdld_20000_24000"])
    held_path = d / "held.csv"
    write_curve_csv(held, held_path)
    fit = d / "fit.json"
    assert main(["fit", "--law", "momentum", *paths, "-o", str(fit)]) == 0
    return {"dir": d, "train": paths, "held": str(held_path), "held_curve": held, "fit": str(fit)}


def run_json(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_fit_prints_parameters_r2_and_mean_relative_error(files, capsys):
    assert main(["fit", "--law", "momentum", *files["train"]]) == 0
    out = capsys.readouterr().out
    assert "R^2: 0.99" in out
    err = float(out.split("mean relative error:")[1].split("%")[0])
    assert 0 < err < 0.5
    data = json.loads(open(files["fit"]).read())
    assert data["law"] == "momentum" and set(data["fitted_on"]) == {"cosine_24000", "constant_24000", "wsdcon_9"}


def test_predict_from_lr_csv_predicts_at_its_loss_steps_within_one_percent(files, capsys):
    out = run_json(capsys, ["predict", files["fit"], "--lr-csv", files["held"], "--format", "json"])
    held = files["held_curve"]
    assert set(out) == {"steps", "loss", "lower", "upper"}
    assert out["steps"] == held.steps.tolist()
    loss, lo, hi = (np.array(out[k]) for k in ("loss", "lower", "upper"))
    assert len(loss) == len(lo) == len(hi) == held.steps.size
    assert np.all(lo < loss) and np.all(loss < hi)
    # the held-out WSD cooldown is predicted from constant, cosine and two-stage curves
    assert np.mean(np.abs(loss - held.loss) / held.loss) < 0.005


def test_predict_from_schedule_defaults_to_100_steps_ending_at_the_last(files, capsys):
    spec = "wsd:steps=24000,peak=3e-4,warmup=2160,cooldown=0.2,shape=1-sqrt,min=0.1"
    out = run_json(capsys, ["predict", files["fit"], "--schedule", spec, "--format", "json"])
    assert len(out["steps"]) == 100 and out["steps"][-1] == 24000
    assert out["loss"][-1] < out["loss"][79]  # the cooldown lowers the loss
    out = run_json(capsys, ["predict", files["fit"], "--schedule", spec, "--steps", "100,12000,24000", "--format", "json"])
    assert out["steps"] == [100, 12000, 24000]


def test_plot_writes_a_png(files, capsys):
    png = files["dir"] / "plot.png"
    assert main(["plot", files["fit"], files["held"], "--predict", "cosine:steps=24000,peak=3e-4,warmup=2160", "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def _bad(files, name, text):
    p = files["dir"] / name
    p.write_text(text)
    return str(p)


def _held_lines(files):
    return open(files["held"]).read().splitlines()


@pytest.mark.parametrize("case", ["nan-loss", "inf-loss", "zero-loss", "negative-lr", "lr-missing", "unsorted",
                                  "duplicate", "empty", "missing-column", "no-such-file"])
def test_bad_curve_files_exit_2_with_one_error_line(files, capsys, case):
    lines = _held_lines(files)
    loss_rows = [i for i, l in enumerate(lines) if i and l.split(",")[3]]

    def set_field(i, j, v):
        parts = lines[i].split(",")
        parts[j] = v
        lines[i] = ",".join(parts)

    if case in ("nan-loss", "inf-loss", "zero-loss"):
        set_field(loss_rows[4], 3, {"nan-loss": "nan", "inf-loss": "inf", "zero-loss": "0"}[case])
    elif case == "negative-lr":
        set_field(7, 2, "-3e-4")
    elif case == "lr-missing":
        set_field(9, 2, "")
    elif case == "unsorted":
        lines[3], lines[4] = lines[4], lines[3]
    elif case == "duplicate":
        lines.insert(3, lines[3])
    elif case == "empty":
        lines = []
    elif case == "missing-column":
        lines[0] = lines[0].replace("loss", "value")
    path = _bad(files, f"{case}.csv", "\n".join(lines)) if case != "no-such-file" else str(files["dir"] / "nope.csv")
    capsys.readouterr()
    assert main(["fit", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lrtune: error: ") and err.count("\n") == 1
    expected = {"nan-loss": "finite and > 0", "inf-loss": "finite and > 0", "zero-loss": "finite and > 0",
                "negative-lr": "lr must be >= 0", "lr-missing": "LR is unknown", "unsorted": "sorted",
                "duplicate": "duplicate step", "empty": "empty", "missing-column": "missing column",
                "no-such-file": "no such file"}[case]
    assert expected in err


def test_predict_bad_arguments_exit_2(files, capsys):
    for argv, expected in [
        (["predict", files["fit"], "--schedule", "wsd:steps=100,peak=1e-3,bogus=1"], "unknown key 'bogus'"),
        (["predict", files["fit"], "--schedule", "cosine:steps=100,peak=1e-3", "--steps", "10,5"], "sorted"),
        (["predict", files["fit"], "--schedule", "cosine:steps=100,peak=1e-3", "--steps", "50,200"], "LR is known only for steps 1..100"),
        (["predict", files["fit"], "--schedule", "cosine:steps=100,peak=1e-3", "--steps", "a,b"], "--steps must be integers"),
        (["predict", files["held"], "--schedule", "cosine:steps=100,peak=1e-3"], "not a fit file"),
        (["predict", files["fit"]], "one of the arguments --lr-csv --schedule is required"),
        (["fit", "--law", "nonsense", files["held"]], "invalid choice"),
    ]:
        capsys.readouterr()
        assert exit_code(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("lrtune: error: ") and expected in err, (argv, err)


def exit_code(argv):
    """main()'s return value, or the status of the SystemExit argparse raises on usage errors."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_console_script_error_has_no_traceback(files):
    proc = subprocess.run([sys.executable, "-m", "lrtune.cli", "fit", str(files["dir"] / "missing.csv")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("lrtune: error:") and "Traceback" not in proc.stderr
