"""The database: an engine, sessions, and the Alembic migrations that make its schema.

SQLite (a file under the state folder) is the embedded default; PostgreSQL is a URL away.
The schema is never created with ``create_all``: :func:`migrate` runs Alembic's ``upgrade
head`` from the migrations shipped inside this package, so every database — a fresh SQLite
file or a facility's PostgreSQL — has the same history::

    engine = open_engine("sqlite:///.state/orchestrator.db")
    migrate(engine)
    with session_scope(engine) as db:
        db.add(Microscope(id="krios-1"))
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session

from gridpilot.errors import NotFound

__all__ = ["alembic_config", "get_row", "migrate", "open_engine", "session_scope"]

logger = logging.getLogger(__name__)

_Row = TypeVar("_Row")

_MIGRATIONS = Path(__file__).parent / "migrations"


def open_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys and a WAL journal (readers never block)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # A ping before every checkout guards against a server that dropped the connection; a
    # SQLite file has no server, and the ping would be one more statement per transaction.
    engine = create_engine(url, future=True, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL survives a killed process (what the journal must survive); only a
            # power loss can drop the last commits.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()
    return engine


def alembic_config(engine: Engine) -> Config:
    """Alembic's configuration pointing at the packaged migrations and at ``engine``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (``head``: the newest)."""
    command.upgrade(alembic_config(engine), revision)
    logger.info("database at %s migrated to %s", engine.url.render_as_string(hide_password=True),
                revision)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back when it raises."""
    with Session(engine, expire_on_commit=False) as db, db.begin():
        yield db


def get_row(db: Session, model: type[_Row], row_id: Any) -> _Row:
    """The ``model`` row with primary key ``row_id``.

    Raises:
        NotFound: there is none (a 404 on HTTP), naming the table and the id.
    """
    row = db.get(model, row_id)
    if row is None:
        raise NotFound(f"no {getattr(model, '__tablename__', model.__name__)} {row_id!r}")
    return row
