"""The run store: observed curves and fitted laws kept in a database (SQLAlchemy 2 Core).

One store is one database, by default the SQLite file ``$XDG_DATA_HOME/lrtune/lrtune.db``
(``~/.local/share/lrtune/lrtune.db`` when ``XDG_DATA_HOME`` is unset); ``LRTUNE_DB`` or the
``url`` argument (``--db`` on the command line) points at any other SQLAlchemy URL, e.g.
``postgresql://user@host/db`` (driver psycopg 3) or a plain file path (an SQLite file).

Tables (all prefixed ``lrtune_`` so a shared PostgreSQL database stays tidy):

* ``lrtune_schema``: one row, the schema version (:data:`SCHEMA_VERSION`).  A database of
  any other version is refused with a ``ValueError`` and never altered.
* ``lrtune_runs``: one row per run; ``name`` (unique), ``schedule`` (spec or null),
  ``meta`` (JSON), ``horizon``, ``peak_lr``, ``created`` (UTC) and ``lr``: the LR of every
  update 1..horizon as a little-endian float64 blob (8 bytes per step), so the LR array
  comes back bit for bit.
* ``lrtune_points``: one row per logged loss: ``run_id``, ``step``, ``lr`` (the LR of that
  step, for queries) and ``loss``.  Steps without a loss are not stored; their LR is in
  the blob.
* ``lrtune_fits``: fitted laws by ``name`` (unique): ``law`` (the JSON of
  ``Law.to_dict()``), ``fitted_on`` (JSON list of run names), ``created``.

Every change is one transaction: a batch of runs is stored whole or not at all, and a
replaced run is swapped atomically.  SQLite files run in WAL mode (switched at the first
open that finds no other process reading, retried like a write) with a busy timeout,
write transactions start with ``BEGIN IMMEDIATE`` and are retried on "database is
locked", so several processes can import into one file at once.  An SQLite file whose
folder cannot be written is opened read-only (:attr:`Store.read_only`): it can be listed,
read and exported, and every change is refused with a ``ValueError``.

>>> from lrtune.datasets import load_mpl
>>> store = Store("sqlite://")            # in memory
>>> store.add_curves(load_mpl("25M", ["wsdcon_9"]))
['wsdcon_9']
>>> [(r.name, r.points, r.horizon) for r in store.list_runs()]
[('wsdcon_9', 95, 16000)]
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import random
import sqlite3
import time
import urllib.parse
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import sqlalchemy as sa
from sqlalchemy import event, exc

from lrtune.curves import Curve, lr_difference, read_curves, with_schedule_lr

__all__ = [
    "SCHEMA_VERSION",
    "FitInfo",
    "RunInfo",
    "Store",
    "RunNotFoundError",
    "StoreNotFoundError",
    "default_url",
    "resolve_curves",
]

#: version of the tables written by this lrtune; other versions are refused
SCHEMA_VERSION = 1

_metadata = sa.MetaData()
_schema = sa.Table("lrtune_schema", _metadata,
                   sa.Column("version", sa.Integer, primary_key=True, autoincrement=False))
_runs = sa.Table(
    "lrtune_runs", _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("schedule", sa.Text, nullable=True),
    sa.Column("meta", sa.JSON, nullable=False),
    sa.Column("horizon", sa.Integer, nullable=False),
    sa.Column("peak_lr", sa.Double, nullable=False),
    sa.Column("lr", sa.LargeBinary, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)
_points = sa.Table(
    "lrtune_points", _metadata,
    sa.Column("run_id", sa.ForeignKey("lrtune_runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("step", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("lr", sa.Double, nullable=False),
    sa.Column("loss", sa.Double, nullable=False),
)
_fits = sa.Table(
    "lrtune_fits", _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("law", sa.JSON, nullable=False),
    sa.Column("fitted_on", sa.JSON, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)
_LR_DTYPE = np.dtype("<f8")
_PG_LOCK_KEY = 0x6C72_7475_6E65  # "lrtune": serialises schema creation on PostgreSQL


class RunNotFoundError(ValueError):
    """No run of that name is stored."""


class StoreNotFoundError(ValueError):
    """The database at ``url`` holds no run store (and ``create=False`` forbade making one)."""

    def __init__(self, url: str) -> None:
        super().__init__(f"{url}: no run store here (store runs with 'lrtune runs import')")
        self.url = url


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """A stored run without its arrays: ``points`` logged losses over ``horizon`` steps."""

    name: str
    points: int
    horizon: int
    peak_lr: float
    schedule: str | None
    meta: dict
    created: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "created": self.created.isoformat()}


@dataclasses.dataclass(frozen=True)
class FitInfo:
    """A stored fit: the law's name and the runs it was fitted on."""

    name: str
    law: str
    fitted_on: list[str]
    created: dt.datetime


def default_url() -> str:
    """``$LRTUNE_DB``, else the SQLite file ``lrtune/lrtune.db`` in the user's data dir."""
    env = os.environ.get("LRTUNE_DB", "").strip()
    if env:
        return env
    base = os.environ.get("XDG_DATA_HOME", "")
    if not os.path.isabs(base):  # the XDG spec says to ignore relative paths
        base = os.path.join(os.path.expanduser("~"), ".local", "share")
    return "sqlite:///" + os.path.join(base, "lrtune", "lrtune.db")


def _parse_url(url: str | None) -> sa.URL:
    text = default_url() if url is None else str(url).strip()
    try:
        if "://" not in text:  # a plain path names an SQLite file, whatever characters it has
            return sa.URL.create("sqlite", database=os.path.abspath(os.path.expanduser(text)))
        parsed = sa.make_url(text)
    except exc.ArgumentError:
        raise ValueError(f"db must be an SQLAlchemy URL (sqlite:///runs.db, postgresql://user@host/db) "
                         f"or a file path, got {text!r}") from None
    if parsed.drivername == "postgresql":  # psycopg 3, not SQLAlchemy's default psycopg2
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value).__name__)


def _plain_json(value: Any, what: str) -> Any:
    """``value`` as plain JSON data (numpy scalars and arrays converted)."""
    try:
        return json.loads(json.dumps(value, default=_json_default, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} must be JSON data (numbers, strings, lists, dicts), got {e}") from None


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def _is_locked(error: exc.DBAPIError | sqlite3.Error) -> bool:
    """Whether a database error (SQLAlchemy's, or the sqlite3 driver's own) says another
    process holds the lock."""
    text = str(getattr(error, "orig", error)).lower()
    return "database is locked" in text or "database is busy" in text or "deadlock detected" in text


def _pause(attempt: int) -> None:
    """Wait before retry ``attempt`` of a locked database: growing, capped at 0.5 s, jittered
    so that processes waiting on one lock do not retry in step."""
    time.sleep(min(0.02 * 2**attempt, 0.5) * (0.5 + random.random()))


class Store:
    """Curves and fitted laws kept in one database (see the module docstring for the tables).

    Example::

        store = Store()                                  # $LRTUNE_DB or the user data dir
        store.add_curves(read_curves("runs.csv"))
        curves = store.get_curves(["cosine_24000", "constant_24000"])
        store.save_fit("small", make_law("momentum").fit(curves))
        law = store.load_fit("small")

    Args:
        url: SQLAlchemy URL or path of an SQLite file; ``None`` means :func:`default_url`.
            ``postgresql://`` uses the psycopg 3 driver (``pip install "psycopg[binary]"``).
        create: make the database file and the tables when they do not exist; with
            ``False`` a missing store raises :class:`StoreNotFoundError`.
        timeout: seconds a write waits for another process's lock before it fails.
    """

    def __init__(self, url: str | None = None, *, create: bool = True, timeout: float = 30.0) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self.url = _parse_url(url)
        self.timeout = float(timeout)
        self._sqlite = self.url.get_backend_name() == "sqlite"
        path = self.url.database if self._sqlite else None
        self._file = path if path and path != ":memory:" and not path.startswith("file:") else None
        if self._file and os.path.isdir(self._file):
            raise ValueError(f"{self}: {self._file} is a folder, not a database file")
        if self._file and not os.path.exists(self._file):
            if not create:
                raise StoreNotFoundError(str(self))
            folder = os.path.dirname(os.path.abspath(self._file))
            os.makedirs(folder, exist_ok=True)
            if not os.access(folder, os.W_OK):  # SQLite would say only "unable to open database file"
                raise ValueError(f"{self}: cannot create the store: the folder {folder} cannot be written")
        self.read_only = bool(self._file) and not os.access(os.path.dirname(os.path.abspath(self._file)), os.W_OK)
        try:
            self._engine = sa.create_engine(self._read_only_url() if self.read_only else self.url,
                                            **self._engine_args())
        except (exc.NoSuchModuleError, ImportError) as e:
            hint = (" (PostgreSQL needs psycopg: pip install 'psycopg[binary]')"
                    if self.url.get_backend_name() == "postgresql" else "")
            raise ValueError(f"{self}: no database driver for {self.url.drivername}: {e}{hint}") from None
        if self._sqlite:
            self._setup_sqlite()
        self._writer = self._engine.execution_options(lrtune_write=True)
        try:
            self._open(create)
        except BaseException:
            self._engine.dispose()
            raise

    def __str__(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"Store({str(self)!r})"

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    # -- connections --------------------------------------------------------------------
    def _read_only_url(self) -> sa.URL:
        """The SQLite file opened read-only and immutable: in a folder that cannot be
        written SQLite cannot make the shared-memory file WAL mode needs to read.  Changes
        still in the write-ahead log would then be missed, so such a store is refused."""
        wal = self._file + "-wal"
        if os.path.exists(wal) and os.path.getsize(wal) > 0:
            raise ValueError(f"{self}: its folder cannot be written, and {wal} holds changes not yet merged into "
                             f"the database file; open the store once where its folder can be written (or copy "
                             f"both files to such a folder)")
        path = urllib.parse.quote(os.path.abspath(self._file))
        return sa.URL.create("sqlite", database=f"file:{path}",
                             query={"mode": "ro", "immutable": "1", "uri": "true"})

    def _engine_args(self) -> dict[str, Any]:
        if self._sqlite:
            return {"connect_args": {"timeout": self.timeout}}
        if self.url.get_backend_name() == "postgresql":
            return {"connect_args": {"connect_timeout": max(1, int(self.timeout))}}
        return {}

    def _setup_sqlite(self) -> None:
        busy_ms = int(self.timeout * 1000)

        @event.listens_for(self._engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # transactions are begun below, not by the driver
            dbapi_conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
            dbapi_conn.execute("PRAGMA foreign_keys = ON")

        @event.listens_for(self._engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            # a writer takes the lock up front: no read-then-upgrade deadlock between processes
            write = conn.get_execution_options().get("lrtune_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    def _write(self, work: Any, retry_integrity: bool = False, names: bool = False) -> Any:
        """Run ``work(conn)`` in one write transaction, retried while the database is locked.
        With ``names`` an integrity error (a name a concurrent writer stored first) is raised
        as it is, for the caller to name; any other database error becomes a ValueError
        naming the store (a damaged file: a constraint that cannot hold, a malformed page)."""
        deadline = time.monotonic() + self.timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._writer.begin() as conn:
                    return work(conn)
            except exc.IntegrityError as e:
                if retry_integrity and attempt < 5:
                    pass
                elif names:
                    raise
                else:
                    raise ValueError(f"{self}: cannot write the database: {e.orig} (a damaged store? "
                                     f"export what can still be read with 'lrtune runs export')") from None
            except exc.OperationalError as e:
                if self.read_only:
                    raise ValueError(f"{self}: the store is read-only (its folder cannot be written), so "
                                     f"nothing can be stored or deleted in it") from None
                if not _is_locked(e) or time.monotonic() > deadline:
                    raise ValueError(f"{self}: {e.orig}") from None
            except exc.DatabaseError as e:  # "database disk image is malformed", ...
                raise ValueError(f"{self}: cannot write the database: {e.orig} (a damaged store? "
                                 f"export what can still be read with 'lrtune runs export')") from None
            _pause(attempt)

    @contextlib.contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        """A connection for reading; a database error (a damaged store: a table or column
        missing) becomes a ValueError naming the store."""
        try:
            with self._engine.connect() as conn:
                yield conn
        except exc.DatabaseError as e:
            raise ValueError(f"{self}: cannot read the database: {e.orig}") from None

    # -- schema -------------------------------------------------------------------------
    def _check_version(self, conn: sa.Connection) -> bool:
        """True when the lrtune tables are there at this version; raise on any other version."""
        tables = set(sa.inspect(conn).get_table_names())
        if _schema.name not in tables:
            ours = sorted(t for t in tables if t in _metadata.tables)
            if ours:
                raise ValueError(f"{self}: has table(s) {', '.join(ours)} but no {_schema.name}; not an lrtune "
                                 f"store of a known version (left unchanged)")
            return False
        found = conn.execute(sa.select(_schema.c.version)).scalars().all()
        if found != [SCHEMA_VERSION]:
            got = ", ".join(map(str, found)) or "none"
            raise ValueError(f"{self}: the store has schema version {got}; this lrtune reads version "
                             f"{SCHEMA_VERSION} only, so the database is left unchanged (use the lrtune "
                             f"that wrote it, or another --db)")
        return True

    def _open(self, create: bool) -> None:
        with self._read() as conn:
            ready = self._check_version(conn)
        if not ready:
            if not create:
                raise StoreNotFoundError(str(self))
            self._write(self._create)
        if self._file and not self.read_only:
            self._use_wal()

    def _create(self, conn: sa.Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        if self._check_version(conn):  # another process made it meanwhile
            return
        _metadata.create_all(conn)
        conn.execute(_schema.insert().values(version=SCHEMA_VERSION))

    def _use_wal(self) -> None:
        """Switch the file to WAL mode (once: the mode is kept in the file).  The switch needs
        the file to itself, and SQLite may refuse it at once, without waiting, while other
        processes open the same new store: retried, as a write is, within ``timeout``; after
        that the store works in the default mode until a later open switches it."""
        deadline = time.monotonic() + self.timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._engine.connect() as conn:  # the driver's own connection: no transaction begun
                    raw = conn.connection.driver_connection
                    if raw.execute("PRAGMA journal_mode").fetchall()[0][0].lower() != "wal":
                        raw.execute("PRAGMA journal_mode = WAL").fetchall()
                return
            except sqlite3.OperationalError as e:
                if not _is_locked(e):
                    raise ValueError(f"{self}: {e}") from None
                if time.monotonic() > deadline:
                    return
            _pause(attempt)

    # -- runs ---------------------------------------------------------------------------
    def add_curves(self, curves: Curve | Sequence[Curve], schedule: Any = None, meta: dict | None = None,
                   replace: bool = False, schedules: Sequence[Any] | None = None) -> list[str]:
        """Store curves as runs (by ``Curve.name``) in one transaction; returns the names.

        Args:
            curves: one :class:`~lrtune.curves.Curve` or several (names must differ).
            schedule: spec (or :class:`~lrtune.schedules.Schedule`) of the runs' LR; it must
                reproduce each curve's LR array.  Default: ``curve.meta["spec"]`` if any.
            meta: JSON data merged over each ``curve.meta``.
            replace: overwrite runs of the same name; otherwise an existing name is an
                error and nothing of the batch is stored.
            schedules: one spec (or None) per curve instead of ``schedule`` for all.
        """
        curves = [curves] if isinstance(curves, Curve) else list(curves)
        if not curves:
            raise ValueError("curves is empty: give at least one Curve")
        names = [c.name for c in curves if isinstance(c, Curve)]
        if len(names) != len(curves):
            bad = next(c for c in curves if not isinstance(c, Curve))
            raise ValueError(f"curves must be lrtune.curves.Curve objects, got {type(bad).__name__}")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"run name(s) {', '.join(twice)} appear more than once in one batch")
        if schedules is not None:
            schedules = list(schedules)
            if schedule is not None or len(schedules) != len(curves):
                raise ValueError(f"schedules must give one spec per curve ({len(curves)}), without schedule")
        rows = [self._run_row(c, schedule if schedules is None else schedules[i], meta) for i, c in enumerate(curves)]

        def work(conn: sa.Connection) -> None:
            taken = conn.execute(sa.select(_runs.c.name).where(_runs.c.name.in_(names))).scalars().all()
            if taken and not replace:
                raise ValueError(f"run(s) already stored: {', '.join(sorted(taken))}; give the new run another "
                                 f"name (--name NAME; Curve.name in Python), or pass replace=True (--replace) "
                                 f"to overwrite the stored one")
            if taken:
                self._delete(conn, taken)
            for curve, row in zip(curves, rows):
                run_id = conn.execute(_runs.insert().values(**row)).inserted_primary_key[0]
                steps = curve.steps.tolist()
                conn.execute(_points.insert(), [
                    {"run_id": run_id, "step": s, "lr": lr, "loss": loss}
                    for s, lr, loss in zip(steps, curve.lr[curve.steps - 1].tolist(), curve.loss.tolist())
                ])

        try:
            self._write(work, retry_integrity=replace, names=True)
        except exc.IntegrityError:  # a concurrent writer stored one of the names first
            raise ValueError(f"run(s) already stored: {', '.join(names)}; give the new run another name "
                             f"(--name NAME; Curve.name in Python), or pass replace=True (--replace) to "
                             f"overwrite the stored one") from None
        return names

    def _run_row(self, curve: Curve, schedule: Any, meta: dict | None) -> dict[str, Any]:
        if not curve.name or len(curve.name) > 255:
            raise ValueError(f"run name must be 1 to 255 characters, got {curve.name!r}")
        merged = _plain_json({**curve.meta, **(meta or {})}, f"meta of run {curve.name}")
        spec = schedule if schedule is not None else merged.get("spec")
        if spec is not None:
            from lrtune.schedules import parse_schedule

            sched = parse_schedule(spec)
            lr = sched.lr()
            if lr.size != curve.horizon:
                raise ValueError(f"schedule {sched.spec()} does not give the LR of run {curve.name}: it has "
                                 f"{lr.size} steps, the run's LR {curve.horizon}")
            diff = lr_difference(curve.lr, lr, curve.peak_lr)
            if diff is not None:
                i, n = diff
                raise ValueError(f"schedule {sched.spec()} does not give the LR of run {curve.name}: at step {i + 1} "
                                 f"the run's LR is {curve.lr[i]:.8g} and the schedule's {lr[i]:.8g} "
                                 f"({n} steps differ)")
            spec = sched.spec()
        return {"name": curve.name, "schedule": spec, "meta": merged, "horizon": curve.horizon,
                "peak_lr": curve.peak_lr, "lr": curve.lr.astype(_LR_DTYPE).tobytes(),
                "created": dt.datetime.now(dt.timezone.utc)}

    @staticmethod
    def _delete(conn: sa.Connection, names: Iterable[str]) -> None:
        ids = sa.select(_runs.c.id).where(_runs.c.name.in_(list(names))).scalar_subquery()
        conn.execute(_points.delete().where(_points.c.run_id.in_(ids)))
        conn.execute(_runs.delete().where(_runs.c.name.in_(list(names))))

    def get_curves(self, names: str | Sequence[str]) -> list[Curve]:
        """The stored runs as :class:`~lrtune.curves.Curve` objects, in the order asked."""
        names = [names] if isinstance(names, str) else list(names)
        with self._read() as conn:
            runs = {r.name: r for r in conn.execute(
                sa.select(_runs.c.id, _runs.c.name, _runs.c.meta, _runs.c.lr).where(_runs.c.name.in_(names)))}
            missing = [n for n in names if n not in runs]
            if missing:
                raise RunNotFoundError(f"no stored run named {missing[0]!r} in {self}")
            pts = conn.execute(
                sa.select(_points.c.run_id, _points.c.step, _points.c.loss)
                .where(_points.c.run_id.in_([r.id for r in runs.values()]))
                .order_by(_points.c.run_id, _points.c.step)).all()
        table = np.array(pts, dtype=np.float64).reshape(-1, 3)
        ids = table[:, 0].astype(np.int64)
        out = []
        for name in names:
            run = runs[name]
            mine = table[ids == run.id]
            lr = np.frombuffer(run.lr, dtype=_LR_DTYPE).astype(np.float64)
            out.append(Curve(mine[:, 1].astype(np.int64), mine[:, 2], lr, name=name, meta=dict(run.meta)))
        return out

    def list_runs(self) -> list[RunInfo]:
        """Every stored run (sorted by name) with its number of points, horizon and peak LR."""
        counts = (sa.select(_points.c.run_id, sa.func.count().label("n"))
                  .group_by(_points.c.run_id).subquery())
        query = (sa.select(_runs.c.name, sa.func.coalesce(counts.c.n, 0), _runs.c.horizon, _runs.c.peak_lr,
                           _runs.c.schedule, _runs.c.meta, _runs.c.created)
                 .outerjoin(counts, counts.c.run_id == _runs.c.id).order_by(_runs.c.name))
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [RunInfo(name, int(n), int(h), float(p), s, dict(m), _utc(c)) for name, n, h, p, s, m, c in rows]

    def delete_run(self, names: str | Sequence[str]) -> None:
        """Delete runs (all or none: an unknown name is an error and nothing is deleted)."""
        names = [names] if isinstance(names, str) else list(names)

        def work(conn: sa.Connection) -> None:
            found = set(conn.execute(sa.select(_runs.c.name).where(_runs.c.name.in_(names))).scalars())
            missing = [n for n in names if n not in found]
            if missing:
                raise RunNotFoundError(f"no stored run named {missing[0]!r} in {self}")
            self._delete(conn, names)

        self._write(work)

    # -- fits ---------------------------------------------------------------------------
    def save_fit(self, name: str, law: Any, fitted_on: Sequence[str] | None = None,
                 replace: bool = False) -> None:
        """Store a fitted law under ``name`` (``fitted_on`` defaults to ``law.fitted_on_``)."""
        if not name or len(name) > 255:
            raise ValueError(f"fit name must be 1 to 255 characters, got {name!r}")
        data = _plain_json(law.to_dict(), f"fit {name}")
        runs = list(getattr(law, "fitted_on_", None) or []) if fitted_on is None else list(fitted_on)
        if not all(isinstance(r, str) for r in runs):
            raise ValueError(f"fitted_on must be run names (strings), got {runs!r}")

        def work(conn: sa.Connection) -> None:
            exists = conn.execute(sa.select(_fits.c.id).where(_fits.c.name == name)).first()
            if exists and not replace:
                raise ValueError(f"fit {name!r} already stored; pass replace=True to overwrite")
            conn.execute(_fits.delete().where(_fits.c.name == name))
            conn.execute(_fits.insert().values(name=name, law=data, fitted_on=runs,
                                               created=dt.datetime.now(dt.timezone.utc)))

        try:
            self._write(work, retry_integrity=replace, names=True)
        except exc.IntegrityError:
            raise ValueError(f"fit {name!r} already stored; pass replace=True to overwrite") from None

    def load_fit(self, name: str) -> Any:
        """The fitted law stored under ``name`` (a :class:`~lrtune.laws.Law`)."""
        from lrtune.laws import load_law

        with self._read() as conn:
            data = conn.execute(sa.select(_fits.c.law).where(_fits.c.name == name)).scalar()
        if data is None:
            raise ValueError(f"no stored fit named {name!r} in {self}")
        return load_law(dict(data))

    def list_fits(self) -> list[FitInfo]:
        """Every stored fit, sorted by name."""
        with self._read() as conn:
            rows = conn.execute(sa.select(_fits.c.name, _fits.c.law, _fits.c.fitted_on, _fits.c.created)
                                .order_by(_fits.c.name)).all()
        return [FitInfo(n, str(law.get("law")), list(on), _utc(c)) for n, law, on, c in rows]

    def delete_fit(self, name: str) -> None:
        """Delete a stored fit (an unknown name is an error)."""
        def work(conn: sa.Connection) -> None:
            if conn.execute(_fits.delete().where(_fits.c.name == name)).rowcount == 0:
                raise ValueError(f"no stored fit named {name!r} in {self}")

        self._write(work)


def resolve_curves(items: str | Sequence[str], db: str | None = None, schedule: Any = None,
                   diverged: str = "raise", columns: dict[str, str] | None = None) -> list[Curve]:
    """Curves from CSV files and stored runs: an item that is an existing file is read as
    CSV (``schedule`` gives its LR when the file does not; where both give one they must
    agree, as for a stored run's LRs; ``diverged`` and ``columns`` as for
    :func:`~lrtune.curves.read_curves`),
    anything else is a run name in the store at ``db`` (default :func:`default_url`).  The
    store is opened only when some item is not a file, and never created."""
    items = [items] if isinstance(items, (str, os.PathLike)) else list(items)
    from lrtune.schedules import parse_schedule

    schedule_lr = None  # the LR array of ``schedule``, built for the first stored run (files build their own)
    out: list[Curve] = []
    store: Store | None = None
    where = ""
    try:
        for item in items:
            if os.path.isfile(item):
                out.extend(read_curves(item, schedule=schedule, diverged=diverged, columns=columns))
                continue
            folder = (f"{item} is a folder, not a CSV file (give the files in it, e.g. {item}/*.csv)"
                      if os.path.isdir(item) else None)  # unless a stored run has that name
            if store is None and not where:
                try:
                    store = Store(db, create=False)
                except StoreNotFoundError as e:
                    where = e.url
                except ValueError as e:  # a store that cannot be read: the file may just be misspelt
                    raise ValueError(folder or f"no such file: {item}; nor can it be looked up as a stored run "
                                               f"({e})") from None
            if store is None:
                raise ValueError(folder or f"no such file or stored run: {item} (no run store at {where})")
            try:
                curves = store.get_curves([item])
            except RunNotFoundError:
                raise ValueError(folder or f"no such file or stored run: {item} (runs are looked up in {store})") from None
            except ValueError as e:  # stored but unreadable (a damaged store): say so, not "no such run"
                raise ValueError(f"stored run {item} cannot be read from {store}: {e}") from None
            if schedule is not None:  # a schedule given for a stored run must agree with its LRs, as with a file's
                if schedule_lr is None:
                    schedule_lr = parse_schedule(schedule).lr()
                curves = [with_schedule_lr(c, schedule_lr, f"stored run {c.name}") for c in curves]
            out.extend(curves)
    finally:
        if store is not None:
            store.close()
    return out
