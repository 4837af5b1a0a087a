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

    if case in ("nan-loss", "inf-loss"):  # a run that diverged: its losses end non-finite
        for i in loss_rows[-3:]:
            set_field(i, 3, {"nan-loss": "nan", "inf-loss": "inf"}[case])
    elif case == "zero-loss":
        set_field(loss_rows[4], 3, "0")
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
        (["predict", files["fit"]], "give the schedule to predict: --schedule SPEC or --lr-csv FILE.csv"),
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


def test_python_dash_m_lrtune_is_the_lrtune_command(files):
    proc = subprocess.run([sys.executable, "-m", "lrtune", "fit", str(files["dir"] / "missing.csv")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("lrtune: error:") and "missing.csv" in proc.stderr


def test_the_ray_integration_without_ray_names_the_extra_to_install():
    code = "import sys; sys.modules['ray'] = None; import lrtune.integrations.ray"  # as if Ray were not installed
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "lrtune.integrations.ray needs Ray Tune: pip install 'lrtune[ray]'" in proc.stderr.splitlines()[-1]


def _error(capsys, argv):
    """Run a command that must fail: its exit status and its one stderr line."""
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lrtune: error:"), err
    return code, err[0]


def test_predict_csv_and_json_print_plain_numbers_and_null_where_no_lr_was_applied(files, capsys):
    spec = "cosine:steps=100,peak=1e-3,warmup=10"  # lr[0] = 0: step 1 has S1 = 0
    out = run_json(capsys, ["predict", files["fit"], "--schedule", spec, "--format", "json", "--steps", "1,50,100"])
    assert out["loss"][0] is None and all(isinstance(v, float) for v in out["loss"][1:])
    capsys.readouterr()
    assert main(["predict", files["fit"], "--schedule", spec, "--format", "csv", "--steps", "50,100"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "step,loss,lower,upper"
    rows = [[float(x) for x in line.split(",")] for line in lines[1:]]  # numbers, not numpy reprs
    assert [r[0] for r in rows] == [50, 100] and all(r[2] < r[1] < r[3] for r in rows)


def test_schedule_that_contradicts_the_files_lr_column_is_refused(files, capsys):
    wrong = "constant:steps=24000,peak=3e-4,warmup=2160"  # the file is a cosine run
    code, msg = _error(capsys, ["runs", "import", files["train"][0], "--schedule", wrong,
                                "--db", str(files["dir"] / "contra.db")])
    assert code == 2 and "schedule gives" in msg and "lr at step" in msg
    code, msg = _error(capsys, ["fit", files["train"][0], "--schedule", wrong])
    assert code == 2 and "schedule gives" in msg
    # the right spec is accepted with the file's LRs
    right = "cosine:steps=24000,peak=3e-4,warmup=2160,min=0.1"
    assert main(["runs", "import", files["train"][0], "--schedule", right, "--db", str(files["dir"] / "ok.db")]) == 0


def test_rows_with_extra_fields_a_byte_order_mark_and_undecodable_bytes(files, capsys):
    d = files["dir"]
    (d / "commas.csv").write_text("step,lr,loss\n1,0,5,3,5\n2,0,5,3,25\n")  # decimal commas
    code, msg = _error(capsys, ["fit", str(d / "commas.csv")])
    assert code == 2 and "line 2: 5 fields, the header has 3" in msg
    held = files["held_curve"]
    text = open(files["held"], encoding="utf-8").read()
    (d / "bom.csv").write_text("\ufeff" + text, encoding="utf-8")  # a spreadsheet's "CSV UTF-8"
    assert main(["fit", str(d / "bom.csv")]) == 0
    assert f"{held.name} ({held.steps.size} points" in capsys.readouterr().out
    (d / "latin1.csv").write_bytes(b"run,step,lr,loss\ncaf\xe9,1,0.1,3.0\n")
    code, msg = _error(capsys, ["fit", str(d / "latin1.csv")])
    assert code == 2 and "latin1.csv: not a UTF-8 text file" in msg


def test_huge_steps_damaged_store_and_hand_edited_fit_give_one_error_line(files, capsys, tmp_path):
    (tmp_path / "big.csv").write_text("step,lr,loss\n100000000000,0.1,3.0\n")
    assert _error(capsys, ["fit", str(tmp_path / "big.csv")])[0] == 2
    assert _error(capsys, ["predict", files["fit"], "--schedule", "cosine:steps=1e12,peak=1e-3"])[0] == 2
    db = str(tmp_path / "dmg.db")
    assert main(["runs", "import", files["train"][0], "--db", db]) == 0
    import sqlite3
    con = sqlite3.connect(db)
    con.execute("drop table lrtune_points")
    con.commit()
    con.close()
    for argv in (["runs", "list", "--db", db], ["runs", "export", "cosine_24000", "--db", db]):
        code, msg = _error(capsys, argv)
        assert code == 2 and "cannot read the database: no such table: lrtune_points" in msg
    data = json.loads(open(files["fit"]).read())
    data["config"]["bogus"] = 1
    (tmp_path / "cfg.json").write_text(json.dumps(data))
    code, msg = _error(capsys, ["predict", str(tmp_path / "cfg.json"), "--schedule", "cosine:steps=100,peak=1e-3"])
    assert "unknown setting(s) bogus" in msg
    data = json.loads(open(files["fit"]).read())
    data["params"]["A"] = None
    (tmp_path / "none.json").write_text(json.dumps(data))
    code, msg = _error(capsys, ["predict", str(tmp_path / "none.json"), "--schedule", "cosine:steps=100,peak=1e-3"])
    assert "parameter A must be a finite number" in msg


def test_export_then_import_keeps_the_schedule_and_meta(tmp_path, capsys):
    from lrtune.store import Store

    (curve,) = load_mpl("25M", ["cosine_24000"])
    db = str(tmp_path / "s.db")
    with Store(db) as store:
        store.add_curves([curve])
        before = {r.name: (r.schedule, r.meta) for r in store.list_runs()}
    out = str(tmp_path / "c.csv")
    assert main(["runs", "export", "cosine_24000", "-o", out, "--db", db]) == 0
    assert main(["runs", "delete", "cosine_24000", "--db", db]) == 0
    assert main(["runs", "import", out, "--db", db]) == 0
    with Store(db) as store:
        after = {r.name: (r.schedule, r.meta) for r in store.list_runs()}
        (back,) = store.get_curves(["cosine_24000"])
    assert before["cosine_24000"][0] is not None and after == before
    assert np.array_equal(back.loss, curve.loss) and np.array_equal(back.lr, curve.lr)


def test_db_path_with_url_characters_is_a_plain_file(files, tmp_path, capsys):
    for name in ("runs?v2.db", "exp%201.db"):
        assert main(["runs", "import", files["train"][0], "--db", str(tmp_path / name)]) == 0
        assert (tmp_path / name).is_file()


def test_transfer_to_a_rewarm_scales_peak2_with_the_peak(capsys):
    from lrtune.schedules import parse_schedule
    from lrtune.transfer import eta_at_horizon

    s = parse_schedule("rewarm:steps=800,peak=1e-3,at=400,rewarm=20,peak2=5e-4,min=0.1")
    moved = s.with_peak(2e-3)
    assert moved.peak2 == pytest.approx(1e-3)
    assert np.allclose(moved.lr() / moved.peak, s.lr() / s.peak)  # the same shape
    assert parse_schedule("cosine:steps=100,peak=1e-3").with_peak(2e-3).peak == 2e-3
    with pytest.raises(ValueError, match="give its peak too"):  # peak2 alone does not set the shape
        eta_at_horizon("rewarm:steps=800,at=400,rewarm=20,peak2=5e-4,min=0.1")


def test_too_few_points_a_misspelt_file_with_an_unreadable_store_and_a_numpy_level(files, tmp_path, capsys,
                                                                                 monkeypatch):
    held = files["held_curve"]
    one = tmp_path / "one.csv"
    one.write_text(f"step,lr,loss\n1,{held.peak_lr!r},{float(held.loss[-1])!r}\n")  # one point of the run
    for law in ("momentum", "multipower"):
        code, msg = _error(capsys, ["fit", "--law", law, str(one)])
        assert code == 2 and "point(s) to fit them" in msg
    bad = tmp_path / "corrupt.db"
    bad.write_bytes(b"not a database" * 100)
    monkeypatch.setenv("LRTUNE_DB", str(bad))
    code, msg = _error(capsys, ["fit", str(tmp_path / "typo.csv")])
    assert "no such file: " in msg and "typo.csv" in msg and "file is not a database" in msg
    from lrtune.laws import load_law

    pred = load_law(files["fit"]).predict_interval(held.lr, held.steps[-3:], level=np.float32(0.9))
    assert np.all(pred.lower < pred.loss) and np.all(pred.loss < pred.upper)


def test_suggest_for_fewer_steps_than_the_observed_warmup_asks_for_warmup(files, capsys):
    # the MPL runs warm up for 2160 steps
    code, msg = _error(capsys, ["suggest", *files["train"], "--steps", "1000", "--peak-lrs", "1e-4,3e-4,1e-3"])
    assert code == 2 and "warm up for 2160 steps" in msg and "--warmup" in msg


def test_plot_a_warmup_from_zero_and_a_name_without_extension(files, capsys):
    # the law has no value at step 1 of a warmup from LR 0: the plot leaves it out
    out = files["dir"] / "short"
    capsys.readouterr()
    assert main(["plot", files["fit"], "--predict", "cosine:steps=3,peak=3e-4,warmup=2", "-o", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"wrote {out}.png"]  # no numpy warning; the file written is named
    assert (files["dir"] / "short.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_schedule_given_for_a_stored_run_must_agree_with_its_lrs(files, capsys):
    db = str(files["dir"] / "agree.db")
    assert main(["runs", "import", files["train"][0], "--name", "cos", "--db", db]) == 0
    for wrong in ("constant:steps=24000,peak=3e-4,warmup=2160", "constant:steps=5,peak=9"):
        code, msg = _error(capsys, ["fit", "cos", "--db", db, "--schedule", wrong])
        assert code == 2 and msg.startswith("lrtune: error: stored run cos:")
    code, msg = _error(capsys, ["fit", "cos", "--db", db, "--schedule", "not a spec"])
    assert code == 2 and "unknown schedule family" in msg
    right = "cosine:steps=24000,peak=3e-4,warmup=2160,min=0.1"
    assert main(["fit", "cos", "--db", db, "--schedule", right]) == 0


def test_an_output_file_in_a_missing_folder_or_a_folder_is_refused_before_any_work(files, capsys):
    missing = str(files["dir"] / "no" / "such" / "fit.json")
    capsys.readouterr()
    assert main(["fit", *files["train"], "-o", missing]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("lrtune: error: -o ") and "there is no folder" in err  # no fit printed
    assert main(["plot", files["fit"], *files["train"], "-o", str(files["dir"])]) == 2
    assert "is a folder; give a file name" in capsys.readouterr().err
    assert main(["suggest", *files["train"], "--steps", "24000", "--peak-lrs", "2e-4,3e-4",
                 "--plot", str(files["dir"] / "no" / "p.png")]) == 2
    assert "--plot" in capsys.readouterr().err
    assert main(["fit", str(files["dir"])]) == 2  # a folder given as a curve file
    assert "is a folder, not a CSV file" in capsys.readouterr().err


def test_columns_named_otherwise_are_read_with_columns(files, tmp_path, capsys):
    # a logger's export: other names, another column order, an extra column, and a 'loss' that is
    # the training loss while the validation loss is wanted
    c = files["held_curve"]
    path = tmp_path / "export.csv"
    logged = dict(zip(c.steps.tolist(), c.loss.tolist()))
    with open(path, "w") as f:
        f.write("Step,val/loss,learning_rate,loss,wall_time\n")
        for s, lr in enumerate(c.lr.tolist(), start=1):
            v = logged.get(s)
            f.write(f"{s},{'' if v is None else repr(v)},{lr!r},{'' if v is None else repr(v + 0.5)},{s * 0.1}\n")
    capsys.readouterr()
    assert main(["fit", str(path)]) == 2
    err = capsys.readouterr().err
    assert "missing column(s) lr" in err and "read with --columns lr=NAME" in err
    cols = "step=Step,lr=learning_rate,loss=val/loss"
    assert main(["fit", str(path), "--columns", cols, "-o", str(tmp_path / "a.json")]) == 0
    assert main(["fit", files["held"], "-o", str(tmp_path / "b.json")]) == 0
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert a["params"] == b["params"]  # the validation loss was read, not the 'loss' column
    # predict reads the same export for its LRs and steps
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "b.json"), "--lr-csv", str(path), "--columns", cols,
                 "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == c.steps.tolist()
    for bad, message in [("step=Step,lr=lr_typo,loss=val/loss", "no column 'lr_typo' to read as 'lr'"),
                         ("steps=Step", "unknown column name(s) 'steps'"), ("step", "NAME=COLUMN pairs")]:
        assert main(["fit", str(path), "--columns", bad]) == 2
        assert message in capsys.readouterr().err


def test_schedule_given_twice_is_refused_naming_the_way_to_give_several(files, capsys):
    for argv in (["fit", files["fit"]], ["plot", files["fit"]], ["runs", "import", files["fit"]]):
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            main(argv + ["--schedule", "cosine:steps=100,peak=1e-3", "--schedule", "constant:steps=100,peak=1e-3"])
        assert e.value.code == 2
        assert "--schedule may be given once: it gives the LRs of every curve file" in capsys.readouterr().err


def test_predict_a_held_out_loggers_file_with_its_schedule(files, capsys, tmp_path):
    # a held-out run exported without an LR for every step: the spec gives the LRs, the file the steps
    held = files["held_curve"]
    path = tmp_path / "export.csv"
    path.write_text("Step,val/loss\n" + "".join(f"{s},{v!r}\n" for s, v in zip(held.steps.tolist(), held.loss.tolist())))
    spec = held.meta["spec"]
    got = run_json(capsys, ["predict", files["fit"], "--lr-csv", str(path), "--schedule", spec,
                            "--columns", "step=Step,loss=val/loss", "--format", "json"])
    ref = run_json(capsys, ["predict", files["fit"], "--lr-csv", files["held"], "--format", "json"])
    assert got["steps"] == held.steps.tolist() == ref["steps"]
    np.testing.assert_allclose(got["loss"], ref["loss"], rtol=1e-6)  # the data's LRs are float32
    err = np.abs(np.array(got["loss"]) / held.loss - 1)
    assert err.mean() < 0.005  # the fit predicts this WSD run it never saw
    # a spec that is not the file's run is caught where the file has LRs
    capsys.readouterr()
    assert main(["predict", files["fit"], "--lr-csv", files["held"], "--schedule", spec.replace("0.0003", "0.0006")]) == 2
    assert "but the schedule gives" in capsys.readouterr().err


def test_predict_small_inputs_get_clear_messages(files, capsys, tmp_path):
    held = files["held_curve"]
    two = tmp_path / "two.csv"
    rows = ["run,step,loss"] + [f"{r},{s},{v!r}" for r in ("a", "b") for s, v in zip(held.steps.tolist(), held.loss.tolist())]
    two.write_text("\n".join(rows))
    capsys.readouterr()
    assert main(["predict", files["fit"], "--lr-csv", str(two), "--schedule", held.meta["spec"]]) == 2
    assert "holds 2 runs (a, b); give one run" in capsys.readouterr().err
    # NaN where a row has no loss (pandas' empty cell): the steps to predict are those with a loss
    marked = tmp_path / "marked.csv"
    loss_at = dict(zip(held.steps.tolist(), held.loss.tolist()))
    marked.write_text("\n".join(["step,lr,loss"] + [f"{s},{float(held.lr[s - 1])!r},{loss_at.get(s, 'nan')}"
                                                   for s in range(1, held.horizon + 1)]))
    got = run_json(capsys, ["predict", files["fit"], "--lr-csv", str(marked), "--format", "json"])
    assert got["steps"] == held.steps.tolist()
