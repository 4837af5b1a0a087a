"""The run store: real curves and fits survive a database exactly, names are guarded,
other schema versions are refused untouched, concurrent importers lose nothing, and the
``lrtune runs`` command drives it.  Each store test runs on an SQLite file and, when the
server binaries and psycopg are installed, on a throwaway PostgreSQL server."""

import glob
import itertools
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import sqlalchemy as sa

from lrtune.cli import main
from lrtune.curves import read_curves, write_curve_csv
from lrtune.datasets import load_mpl
from lrtune.laws import load_law
from lrtune.store import SCHEMA_VERSION, Store, StoreNotFoundError, default_url, resolve_curves

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: the momentum law as fitted on the 25M model's wsdcon_9 curve (95 points, R^2 0.997)
WSDCON_9_FIT = {
    "law": "momentum", "config": {"decay": 0.999, "huber_delta": 0.001},
    "params": {"L0": 3.353430011616348, "A": 0.43254921587813044, "alpha": 1.1317436791413538,
               "C": 0.4217580985277183},
    "r2": 0.9971036967498594, "mean_rel_error": 0.0012417857710155435,
    "residual_scale": 0.002499744590016114, "n_points": 95, "fitted_on": ["wsdcon_9"],
}


@pytest.fixture(scope="module")
def mpl():
    return load_mpl("25M")


# -- a throwaway PostgreSQL server -----------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """URL of a PostgreSQL server started for this test session in a temp dir."""
    initdb = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None)
    if initdb is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    pytest.importorskip("psycopg", reason="psycopg is needed for PostgreSQL: pip install 'psycopg[binary]'")
    bindir = os.path.dirname(os.path.realpath(initdb))
    as_user: list[str] = []
    root = tempfile.mkdtemp(prefix="lrtune-pg-")
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            pg = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(root, pg.pw_uid, pg.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(root, "data"), _free_port()
    pg_ctl = [*as_user, os.path.join(bindir, "pg_ctl"), "-D", data]
    try:
        subprocess.run([*as_user, os.path.join(bindir, "initdb"), "-D", data, "-U", "lrtune", "--auth=trust",
                        "-E", "UTF8", "--no-sync"], check=True, capture_output=True, timeout=120)
        subprocess.run([*pg_ctl, "-l", os.path.join(root, "log"), "-w", "-t", "60", "-o",
                        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                       check=True, capture_output=True, timeout=90)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"the PostgreSQL server did not start: {(getattr(e, 'stderr', b'') or b'').decode()[-300:]}")
    try:
        yield f"postgresql://lrtune@127.0.0.1:{port}"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


_db_numbers = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    """An empty database: an SQLite file, or a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'runs.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = f"lrtune_test_{os.getpid()}_{next(_db_numbers)}"
    admin = sa.create_engine(f"{server}/postgres".replace("postgresql://", "postgresql+psycopg://"),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    yield f"{server}/{name}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
    admin.dispose()


def _same(a, b):
    return (a.name == b.name and np.array_equal(a.steps, b.steps) and np.array_equal(a.loss, b.loss)
            and np.array_equal(a.lr, b.lr) and a.lr.dtype == b.lr.dtype == np.float64)


# -- the store -------------------------------------------------------------------------

def test_real_mpl_curves_come_back_bit_for_bit(url, mpl):
    with Store(url) as store:
        assert store.add_curves(mpl) == [c.name for c in mpl]
        back = store.get_curves([c.name for c in reversed(mpl)])
        runs = {r.name: r for r in store.list_runs()}
    assert [c.name for c in back] == [c.name for c in reversed(mpl)]
    for original, stored in zip(reversed(mpl), back):
        assert _same(original, stored), original.name
        assert stored.meta == original.meta  # model_size, spec, model
    assert sorted(runs) == sorted(c.name for c in mpl)
    cos = runs["cosine_72000"]
    assert (cos.points, cos.horizon) == (546, 72000)
    assert cos.peak_lr == pytest.approx(3e-4, rel=1e-6)
    assert cos.schedule == "cosine:steps=72000,peak=0.0003,warmup=2160,min=0.1"  # taken from meta["spec"]
    assert runs["wsdcon_9"].points == 95 and runs["wsdcon_9"].horizon == 16000


def test_fit_saved_and_loaded_predicts_the_same_loss(url, mpl):
    law = load_law(WSDCON_9_FIT)
    wsd = next(c for c in mpl if c.name == "wsd_20000_24000")
    with Store(url) as store:
        store.save_fit("wsdcon9-momentum", law)
        back = store.load_fit("wsdcon9-momentum")
        (info,) = store.list_fits()
        with pytest.raises(ValueError, match="fit 'wsdcon9-momentum' already stored"):
            store.save_fit("wsdcon9-momentum", law)
        store.save_fit("wsdcon9-momentum", law, fitted_on=["a", "b"], replace=True)
        assert store.list_fits()[0].fitted_on == ["a", "b"]
        with pytest.raises(ValueError, match="no stored fit named 'other'"):
            store.load_fit("other")
    assert (info.name, info.law, info.fitted_on) == ("wsdcon9-momentum", "momentum", ["wsdcon_9"])
    assert back.to_dict() == law.to_dict()
    pred = back.predict(wsd.lr, wsd.steps)
    assert np.array_equal(pred, law.predict(wsd.lr, wsd.steps))
    assert np.mean(np.abs(pred - wsd.loss) / wsd.loss) < 0.02  # a real fit, on a held-out schedule


def test_a_taken_name_is_refused_and_nothing_of_the_batch_is_stored(url, mpl):
    cosine, constant, wsdcon = mpl[2], mpl[0], mpl[7]
    with Store(url) as store:
        store.add_curves([cosine])
        with pytest.raises(ValueError, match=r"already stored: cosine_24000; give the new run another name .* pass replace=True"):
            store.add_curves([constant, cosine])
        assert [r.name for r in store.list_runs()] == ["cosine_24000"]
        with pytest.raises(ValueError, match="appear more than once"):
            store.add_curves([wsdcon, wsdcon])
        assert len(store.list_runs()) == 1


def test_replace_swaps_the_run_in_one_transaction(url, mpl):
    full = mpl[7]  # wsdcon_9
    with Store(url) as store:
        store.add_curves([full.truncated(8000)])
        assert store.list_runs()[0].points < full.steps.size
        store.add_curves([full], replace=True)
        (again,) = store.get_curves("wsdcon_9")
        assert _same(again, full) and store.list_runs()[0].points == 95


def test_a_schedule_that_does_not_give_the_runs_lr_is_refused(url, mpl):
    cosine = mpl[2]
    with Store(url) as store:
        with pytest.raises(ValueError, match="does not give the LR of run cosine_24000"):
            store.add_curves([cosine], schedule="cosine:steps=24000,peak=0.001,warmup=2160,min=0.1")
        # a near miss names the first step that differs (both sides have 24000 steps at peak 3e-4)
        with pytest.raises(ValueError, match=r"at step \d+ the run's LR is [0-9.e-]+ and the schedule's"):
            store.add_curves([cosine], schedule="cosine:steps=24000,peak=3e-4,warmup=2160,min=0.11")
        assert store.list_runs() == []
        store.add_curves([cosine], schedule="cosine:steps=24000,peak=3e-4,warmup=2160,min=0.1", meta={"seed": 3})
        (info,) = store.list_runs()
    assert info.schedule == "cosine:steps=24000,peak=0.0003,warmup=2160,min=0.1"
    assert info.meta["seed"] == 3 and info.meta["model"] == "25M"


def test_delete_is_all_or_nothing(url, mpl):
    with Store(url) as store:
        store.add_curves(mpl[:3])
        with pytest.raises(ValueError, match="no stored run named 'nope'"):
            store.delete_run(["constant_24000", "nope"])
        assert len(store.list_runs()) == 3
        store.delete_run(["constant_24000", "cosine_24000"])
        assert [r.name for r in store.list_runs()] == ["constant_72000"]
        with pytest.raises(ValueError, match="no stored run named 'cosine_24000'"):
            store.get_curves(["cosine_24000"])


def test_a_database_of_another_schema_version_is_refused_and_left_unchanged(url, mpl):
    with Store(url) as store:
        store.add_curves(mpl[6:7])
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE lrtune_schema SET version = {SCHEMA_VERSION + 1}")
    engine.dispose()
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite") else None
    before = open(path, "rb").read() if path else None
    with pytest.raises(ValueError, match=rf"schema version {SCHEMA_VERSION + 1}; this lrtune reads "
                                         rf"version {SCHEMA_VERSION} only"):
        Store(url)
    if path:
        assert open(path, "rb").read() == before
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version FROM lrtune_schema").scalars().all() == [SCHEMA_VERSION + 1]
        assert conn.exec_driver_sql("SELECT count(*) FROM lrtune_points").scalar() == 95
    engine.dispose()


def test_a_file_that_is_not_a_database_is_an_error(tmp_path):
    path = tmp_path / "curves.csv"
    path.write_text("step,lr,loss\n1,0.1,3.0\n")
    with pytest.raises(ValueError, match="cannot read the database"):
        Store(str(path))
    assert path.read_text() == "step,lr,loss\n1,0.1,3.0\n"


def test_a_store_in_a_folder_that_cannot_be_written_is_read_but_never_changed(tmp_path, monkeypatch, mpl):
    path = tmp_path / "runs.db"
    with Store(str(path)) as store:
        store.add_curves(mpl[:2])
        store.save_fit("small", load_law(WSDCON_9_FIT))
    before = path.read_bytes()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if mode == os.W_OK and os.path.abspath(p) == str(tmp_path)
                        else real_access(p, mode, **kw))
    with Store(str(path)) as store:  # SQLite could not make its WAL shared-memory file here
        assert store.read_only
        assert [r.name for r in store.list_runs()] == sorted(c.name for c in mpl[:2])
        back = store.get_curves([mpl[0].name])[0]
        assert np.array_equal(back.loss, mpl[0].loss) and np.array_equal(back.lr, mpl[0].lr)
        params = store.load_fit("small").to_dict()["params"]
        assert {k: params[k] for k in WSDCON_9_FIT["params"]} == WSDCON_9_FIT["params"]
        with pytest.raises(ValueError, match="read-only .its folder cannot be written"):
            store.add_curves(mpl[2:3])
        with pytest.raises(ValueError, match="read-only"):
            store.delete_run([mpl[0].name])
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["runs.db"]
    (tmp_path / "runs.db-wal").write_bytes(b"x" * 32)  # changes a writer left in the log
    with pytest.raises(ValueError, match="runs.db-wal holds changes not yet merged"):
        Store(str(path))
    # a new store there cannot be made, and the message says why
    with pytest.raises(ValueError, match=f"cannot create the store: the folder {tmp_path} cannot be written"):
        Store(str(tmp_path / "new.db"))
    assert not (tmp_path / "new.db").exists()


_WORKER = """
import dataclasses, os, sys, time
from lrtune.datasets import load_mpl
from lrtune.store import Store
url, i, sync = sys.argv[1], sys.argv[2], sys.argv[3]
curves = load_mpl("25M")
open(os.path.join(sync, "ready" + i), "w").close()
while not os.path.exists(os.path.join(sync, "go")):
    time.sleep(0.01)
store = Store(url)               # on a fresh database the four race to create the tables
mine = [dataclasses.replace(c, name=f"p{i}_{c.name}") for c in curves]
for c in mine:                   # one transaction per run, then each run replaced: 18 writes
    store.add_curves([c], meta={"process": -1})
for c in mine:
    store.add_curves([c], meta={"process": int(i)}, replace=True)
store.close()
"""


def test_an_sqlite_store_opened_while_another_process_reads_it_waits_then_works_without_wal(tmp_path, mpl):
    # the switch to WAL needs the file to itself: while another connection holds a read
    # transaction it cannot happen, and the store opens anyway, after its timeout, in the
    # file's own mode; the next open, once the reader is gone, switches the file
    import sqlite3

    path = tmp_path / "runs.db"
    Store(f"sqlite:///{path}").close()
    reader = sqlite3.connect(path, isolation_level=None)
    assert reader.execute("PRAGMA journal_mode = DELETE").fetchall() == [("delete",)]
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM sqlite_master").fetchall()  # its read lock, held
    t0 = time.monotonic()
    with Store(f"sqlite:///{path}", timeout=0.5) as store:
        assert time.monotonic() - t0 >= 0.5
        assert store.list_runs() == []
    assert reader.execute("PRAGMA journal_mode").fetchall() == [("delete",)]
    reader.execute("COMMIT")
    reader.close()
    with Store(f"sqlite:///{path}") as store:
        store.add_curves(mpl[:1])
        assert [r.name for r in store.list_runs()] == [mpl[0].name]
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchall() == [("wal",)]


def test_four_processes_importing_at_once_lose_nothing(url, mpl, tmp_path):
    sync = tmp_path / "sync"
    sync.mkdir()
    env = {**os.environ, "PYTHONPATH": REPO}
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, url, str(i), str(sync)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(4)]
    try:
        deadline = time.monotonic() + 120
        while len(list(sync.glob("ready*"))) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        (sync / "go").touch()
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err.decode()[-2000:]
    with Store(url) as store:
        runs = store.list_runs()
        assert len(runs) == 4 * len(mpl)
        assert sum(r.points for r in runs) == 4 * sum(c.steps.size for c in mpl)
        for i in range(4):
            back = store.get_curves([f"p{i}_{c.name}" for c in mpl])
            assert all(np.array_equal(b.loss, c.loss) and np.array_equal(b.lr, c.lr) for b, c in zip(back, mpl))
            assert {b.meta["process"] for b in back} == {i}


# -- locations and lookup --------------------------------------------------------------

def test_default_location_is_the_user_data_dir_unless_lrtune_db_says_otherwise(monkeypatch, tmp_path):
    monkeypatch.delenv("LRTUNE_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_url() == f"sqlite:///{tmp_path}/data/lrtune/lrtune.db"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_url() == f"sqlite:///{tmp_path}/home/.local/share/lrtune/lrtune.db"
    monkeypatch.setenv("LRTUNE_DB", "postgresql://me@db.example/runs")
    assert default_url() == "postgresql://me@db.example/runs"
    monkeypatch.setenv("LRTUNE_DB", str(tmp_path / "plain.db"))  # a path is an SQLite file
    with Store() as store:
        assert str(store) == f"sqlite:///{tmp_path}/plain.db"
    assert (tmp_path / "plain.db").exists()


def test_resolve_curves_reads_files_and_stored_runs_in_order(tmp_path, mpl):
    db = str(tmp_path / "runs.db")
    csv = tmp_path / "wsdcon_3.csv"
    write_curve_csv(mpl[6], csv)
    with pytest.raises(ValueError, match="no such file or stored run: cosine_24000"):
        resolve_curves([str(csv), "cosine_24000"], db=db)
    assert not os.path.exists(db)  # looking up never creates a store
    assert [c.name for c in resolve_curves([str(csv)], db=db)] == ["wsdcon_3"]
    with Store(db) as store:
        store.add_curves(mpl[2:4])
    got = resolve_curves(["cosine_72000", str(csv), "cosine_24000"], db=db)
    assert [c.name for c in got] == ["cosine_72000", "wsdcon_3", "cosine_24000"]
    assert all(_same(a, b) for a, b in zip(got, [mpl[3], mpl[6], mpl[2]]))
    with pytest.raises(ValueError, match="no such file or stored run: missing.csv"):
        resolve_curves(["missing.csv"], db=db)


def test_store_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="timeout must be > 0 seconds, got 0"):
        Store(str(tmp_path / "a.db"), timeout=0)
    with pytest.raises(StoreNotFoundError, match="no run store here"):
        Store(str(tmp_path / "b.db"), create=False)
    assert not (tmp_path / "b.db").exists()
    with pytest.raises(ValueError, match="no database driver for nosuchdriver"):
        Store("nosuchdriver://x")
    with pytest.raises(ValueError, match="db must be an SQLAlchemy URL"):
        Store("://nothing")


# -- the command line ------------------------------------------------------------------

def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_import_list_export_round_trip(tmp_path, capsys, mpl):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    multi, single = tmp_path / "three.csv", tmp_path / "one.csv"
    write_curve_csv(mpl[:3], multi)
    write_curve_csv(mpl[7], single)
    code, out, _ = _cli(capsys, "runs", "import", str(multi), str(single), "--db", db)
    assert code == 0 and out.startswith("stored 4 run(s)")
    code, out, err = _cli(capsys, "runs", "import", str(single), "--name", "w9", "--db", db, "--schedule",
                          "twostage:steps=16000,peak=0.0003,warmup=2160,switch=8000,factor=0.3")
    assert code == 0, err
    code, out, err = _cli(capsys, "runs", "import", str(single), "--db", db)
    assert code == 2
    assert err == ("lrtune: error: run(s) already stored: wsdcon_9; give the new run another name (--name NAME; "
                   "Curve.name in Python), or pass replace=True (--replace) to overwrite the stored one\n")
    code, out, _ = _cli(capsys, "runs", "list", "--format", "json", "--db", db)
    listed = {r["name"]: r for r in json.loads(out)}
    assert sorted(listed) == ["constant_24000", "constant_72000", "cosine_24000", "w9", "wsdcon_9"]
    assert (listed["constant_72000"]["points"], listed["constant_72000"]["horizon"]) == (546, 72000)
    assert listed["w9"]["schedule"].startswith("twostage:") and listed["wsdcon_9"]["schedule"] is None
    code, out, _ = _cli(capsys, "runs", "list", "--db", db)
    lines = out.splitlines()
    assert lines[0].split() == ["name", "points", "horizon", "peak_lr", "schedule"] and len(lines) == 6
    assert lines[2].split()[:4] == ["constant_72000", "546", "72000", "0.0003"]
    exported = tmp_path / "out.csv"
    code, _, _ = _cli(capsys, "runs", "export", "constant_72000", "w9", "-o", str(exported), "--db", db)
    assert code == 0
    back = read_curves(exported)
    assert _same(back[0], mpl[1]) and np.array_equal(back[1].loss, mpl[7].loss)
    code, out, _ = _cli(capsys, "runs", "export", "cosine_24000", "--db", db)
    (tmp_path / "stdout.csv").write_text(out)
    assert _same(read_curves(tmp_path / "stdout.csv")[0], mpl[2])
    code, out, _ = _cli(capsys, "runs", "delete", "w9", "--db", db)
    assert code == 0 and len(json.loads(_cli(capsys, "runs", "list", "--format", "json", "--db", db)[1])) == 4


@pytest.mark.parametrize("content, message", [
    ("", "the file is empty"),
    ("step,loss\n1,3.0\n2,2.9\n", "missing column(s) lr"),
    ("step,lr,loss\n1,0.1,\n", "has a loss"),
])
def test_cli_bad_input_is_one_error_line_and_stores_nothing(tmp_path, capsys, content, message):
    db = tmp_path / "cli.db"
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    code, out, err = _cli(capsys, "runs", "import", str(bad), "--db", str(db))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("lrtune: error: ") and message in err
    assert not db.exists()


def test_cli_list_of_a_missing_store_is_empty_and_creates_nothing(tmp_path, capsys):
    db = tmp_path / "none.db"
    code, out, _ = _cli(capsys, "runs", "list", "--format", "json", "--db", str(db))
    assert (code, json.loads(out)) == (0, []) and not db.exists()
    code, _, err = _cli(capsys, "runs", "export", "x", "--db", str(db))
    assert code == 2 and "no run store here" in err


def test_other_commands_take_stored_run_names(tmp_path, capsys, mpl):
    """``resolve_curves`` is what ``lrtune fit`` and friends read their curves with."""
    db = str(tmp_path / "cli.db")
    with Store(db) as store:
        store.add_curves(mpl[7:8])
    code, out, err = _cli(capsys, "fit", "wsdcon_9", "nope", "--db", db)
    assert code == 2 and err.startswith("lrtune: error: no such file or stored run: nope")


def test_predict_takes_a_stored_run_for_its_lr_and_checks_model_size(tmp_path, capsys, mpl):
    db, fit = str(tmp_path / "cli.db"), str(tmp_path / "fit.json")
    with Store(db) as store:
        store.add_curves(mpl)
    code, out, err = _cli(capsys, "fit", "cosine_24000", "constant_24000", "--db", db, "-o", fit)
    assert code == 0, err
    code, out, err = _cli(capsys, "predict", fit, "--lr-csv", "cosine_72000", "--db", db, "--format", "json")
    assert code == 0, err
    held = next(c for c in mpl if c.name == "cosine_72000")
    pred = json.loads(out)
    assert pred["steps"] == held.steps.tolist()  # the stored run's logged steps
    assert np.allclose(pred["loss"], load_law(fit).predict(held.lr, held.steps), rtol=1e-12)
    code, out, err = _cli(capsys, "predict", fit, "--lr-csv", "nope", "--db", db)
    assert code == 2 and "no such file or stored run: nope" in err
    code, out, err = _cli(capsys, "predict", fit, "--lr-csv", "cosine_72000", "--db", db, "--model-size", "25e6")
    assert code == 2 and "--model-size" in err and "has no model-size term" in err
    sized = str(tmp_path / "sized.json")
    from lrtune.laws import make_law
    law = make_law("momentum", model_size=True).fit(load_mpl("25M", ["cosine_24000", "constant_24000"])
                                                   + load_mpl("400M", ["cosine_24000", "constant_24000"]))
    law.to_json(sized)
    code, out, err = _cli(capsys, "predict", sized, "--lr-csv", "cosine_72000", "--db", db)
    assert code == 2 and "fitted across model sizes: give the model's number of parameters with --model-size N" in err
    code, out, err = _cli(capsys, "predict", sized, "--lr-csv", "cosine_72000", "--db", db, "--model-size", "1e8")
    assert code == 0, err


def test_runs_export_of_a_name_given_twice_writes_the_run_once(tmp_path, capsys, mpl):
    db, out = str(tmp_path / "cli.db"), tmp_path / "x.csv"
    with Store(db) as store:
        store.add_curves(mpl[7:8])
    code, _, err = _cli(capsys, "runs", "export", "wsdcon_9", "wsdcon_9", "-o", str(out), "--db", db)
    assert code == 0, err
    (back,) = read_curves(out)
    assert back.name == "wsdcon_9" and np.array_equal(back.loss, mpl[7].loss)


def test_a_stored_run_named_like_a_folder_is_read_from_the_store(tmp_path, capsys, monkeypatch, mpl):
    db = str(tmp_path / "cli.db")
    with Store(db) as store:
        store.add_curves(mpl)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cosine_24000").mkdir()  # the run's output folder, say
    code, out, err = _cli(capsys, "fit", "cosine_24000", "constant_24000", "--db", db, "-o", "/dev/null")
    assert code == 0, err  # and an existing writable file such as /dev/null is a fine output
    (tmp_path / "plots").mkdir()
    code, out, err = _cli(capsys, "fit", "plots", "--db", db)
    assert code == 2 and "plots is a folder, not a CSV file" in err


def test_a_damaged_store_gives_one_line_errors_and_is_not_taken_for_a_missing_run(tmp_path, capsys):
    curves = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "data",
                          "generated", "curves")
    runs = sorted(glob.glob(os.path.join(curves, "*_h800_*.csv")))
    db = str(tmp_path / "s.db")
    assert main(["runs", "import", "--db", db, *runs]) == 0
    size = os.path.getsize(db)
    with open(db, "r+b") as f:  # damage every page after the first two, the header left whole
        for offset in range(8192, size, 4096):
            f.seek(offset + 100)
            f.write(b"\xde\xad\xbe\xef" * 8)
    name = os.path.splitext(os.path.basename(runs[0]))[0]
    more = sorted(glob.glob(os.path.join(curves, "*_h400_*.csv")))
    for argv in (["runs", "delete", name], ["runs", "import", *more], ["fit", name]):
        capsys.readouterr()
        assert main(argv + ["--db", db]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("lrtune: error: ") and err.count("\n") == 1 and "no such file or stored run" not in err


def test_the_cli_refuses_to_store_into_an_sqlite_database_in_memory(tmp_path, capsys, monkeypatch):
    curves = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "data",
                          "generated", "curves")
    run = os.path.join(curves, "cosine_h200_p0.001.csv")
    monkeypatch.setenv("LRTUNE_DB", "sqlite:///")  # LRTUNE_DB=sqlite:///${DIR} with DIR unset
    for argv in (["runs", "import", run], ["runs", "import", run, "--db", "sqlite://"], ["runs", "delete", "x"]):
        capsys.readouterr()
        assert main(argv) == 2
        assert "is an SQLite database in memory: what a command stores there is gone" in capsys.readouterr().err
    # export writes whole files: nothing is left beside them
    db = str(tmp_path / "s.db")
    assert main(["runs", "import", run, "--db", db]) == 0
    out = tmp_path / "out.csv"
    assert main(["runs", "export", "cosine_h200_p0.001", "--db", db, "-o", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "out.runs.json", "s.db"]
    (back,) = read_curves(str(out))
    assert back.steps[-1] == 200


def test_runs_export_to_a_pipe_writes_the_csv_and_no_schedules_file_beside_it(tmp_path, capsys):
    import threading

    curves = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "data",
                          "generated", "curves")
    db = str(tmp_path / "s.db")
    assert main(["runs", "import", os.path.join(curves, "cosine_h200_p0.001.csv"), "--db", db]) == 0
    pipe = tmp_path / "pipe.csv"
    os.mkfifo(pipe)
    got = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_text()))
    reader.start()
    capsys.readouterr()
    assert main(["runs", "export", "cosine_h200_p0.001", "--db", db, "-o", str(pipe)]) == 0
    reader.join(10)
    assert "not a file: their schedules and meta are not written" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.csv", "s.db"]  # no pipe.runs.json
    out = tmp_path / "back.csv"
    out.write_text(got[0])
    (back,) = read_curves(str(out))
    assert back.steps[-1] == 200 and back.name == "cosine_h200_p0.001"
