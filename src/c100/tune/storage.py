"""Where a study lives, and the lock that serialises its bookkeeping across workers.

Embedded (the default): Optuna's JournalStorage in ``STUDY/journal.log``, which several processes on
one machine may append to at once (Optuna's own advice for multi-process studies: SQLite serialises
writers and times out under load). ``--storage URL``: an Optuna RDBStorage on PostgreSQL or MySQL
(or an SQLite file), for workers on several machines.

The study lock is held only while a worker counts the trials and starts one (and while dead
trials are failed and queued again), so that K workers never start more than ``--trials`` trials or
queue one dead trial twice. It is an ``flock`` on ``STUDY/study.lock`` for files, a session-level
advisory lock on PostgreSQL, ``GET_LOCK`` on MySQL.
"""
import fcntl
import hashlib
from pathlib import Path

from c100.errors import StorageError

CONNECT_TIMEOUT_S = 10  # an unreachable host fails in seconds, not after the OS's minutes-long TCP timeout
DRIVERS = {"postgresql": ("psycopg", "'psycopg[binary]'"),  # SQLAlchemy 2.1's default postgresql driver
           "mysql": ("pymysql", "pymysql")}


class FileLock:
    def __init__(self, path):
        self.path = Path(path)
        self._f = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a+")
        fcntl.flock(self._f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self._f, fcntl.LOCK_UN)
        self._f.close()
        self._f = None


class SqlLock:
    """PostgreSQL's pg_advisory_lock or MySQL's GET_LOCK on a connection of its own, held in a
    session (not a transaction), released on exit and by the server if the worker dies."""

    def __init__(self, engine, name):
        self.engine, self.dialect = engine, engine.dialect.name
        digest = hashlib.sha256(f"c100-tune:{name}".encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)  # pg: one bigint
        self.mysql_name = "c100-" + digest.hex()[:40]  # MySQL lock names: at most 64 characters
        self._conn = None

    def __enter__(self):
        from sqlalchemy import text

        self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        if self.dialect == "postgresql":
            self._conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
        else:
            self._conn.execute(text("SELECT GET_LOCK(:n, -1)"), {"n": self.mysql_name})
        return self

    def __exit__(self, *exc):
        from sqlalchemy import text

        try:
            if self.dialect == "postgresql":
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            else:
                self._conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": self.mysql_name})
        finally:
            self._conn.close()
            self._conn = None


def redact(url):
    """The URL without its password, for files and messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def parse_url(url):
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
    except ArgumentError as e:
        raise StorageError(f"--storage {url!r} is not a database URL ({e}); give e.g. "
                           f"postgresql://user:password@host:5432/db or mysql+pymysql://user:password@host/db") from e
    backend = u.get_backend_name()
    if backend == "sqlite" and not u.database:
        raise StorageError("--storage sqlite:// needs a file (sqlite:///path/to/study.db): an in-memory "
                           "database would vanish with the process")
    if backend not in ("postgresql", "mysql", "sqlite"):
        raise StorageError(f"--storage: unsupported database {backend!r}; c100 tune takes postgresql://, "
                           f"mysql+pymysql:// or sqlite:/// URLs (or no --storage: a journal file in the study folder)")
    return u


def open_storage(url, study_dir, study_name):
    """(Optuna storage, study lock, description) for ``--storage URL``, or the embedded journal when None."""
    import optuna

    if url is None:
        from optuna.storages.journal import JournalFileBackend

        study_dir = Path(study_dir)
        study_dir.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(study_dir / "journal.log"))
        return optuna.storages.JournalStorage(backend), FileLock(study_dir / "study.lock"), "embedded journal"
    u = parse_url(url)
    backend = u.get_backend_name()
    shown = redact(url)
    connect_args = {}
    if backend == "postgresql":
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_S}
    elif backend == "mysql":
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        from sqlalchemy import create_engine

        engine = create_engine(u, connect_args=connect_args)
        lock = (FileLock(Path(u.database).with_name(Path(u.database).name + ".c100lock"))
                if backend == "sqlite" else SqlLock(engine, study_name))
        # Creating the tables on first use must not race another worker doing the same.
        with lock:
            storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": connect_args})
    except ImportError as e:
        module, package = DRIVERS.get(backend, (e.name, e.name))
        raise StorageError(f"--storage {shown}: the database driver is not installed ({e}); "
                           f"`pip install {package}`") from e
    except Exception as e:  # sqlalchemy's OperationalError and kin: unreachable, refused, bad credentials
        if isinstance(e, StorageError):
            raise
        first = (str(getattr(e, "orig", None) or e).strip().splitlines() or [type(e).__name__])[0]
        raise StorageError(f"--storage {shown}: cannot use this database ({type(e).__name__}: {first})") from e
    return storage, lock, shown
