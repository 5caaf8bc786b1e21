"""The schema is made by the Alembic migrations, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from orchestrator.db import migrate, open_engine, session_scope
from orchestrator.models import ChangeLog, Exposure, Grid, Hole, Microscope, Session, Square

_TABLES = {"microscope", "detector", "session", "grid", "atlas", "square", "hole", "exposure",
           "step", "change_log"}


def _fill(engine: sa.Engine) -> None:
    with session_scope(engine) as db:
        # Parents first: these models declare foreign keys without ORM relationships.
        db.add(Microscope(id="krios-1", name="Krios"))
        db.flush()
        db.add(Session(id="s1", name="screen", group="lab", owner="ana", microscope_id="krios-1",
                       params={"squares_num": 2}, protocol={"name": "SPA"}))
        db.flush()
        db.add(Grid(id="s1_g1", session_id="s1", position=1, name="apoferritin"))
        db.flush()
        db.add(Square(id="s1_g1_s1", session_id="s1", grid_id="s1_g1", number=1,
                      box_px={"v": [0, 0, 1, 1]}, label="good", score=0.9, stage_x_um=1.0,
                      stage_y_um=2.0, area_um2=900.0))
        db.flush()
        db.add(Hole(id="h1", session_id="s1", grid_id="s1_g1", square_id="s1_g1_s1", number=1,
                    x_px=1, y_px=1, radius_px=3, score=1, mean_intensity=0.5,
                    stage_x_um=1, stage_y_um=2))
        db.flush()
        db.add(Exposure(id="x1", session_id="s1", grid_id="s1_g1", square_id="s1_g1_s1",
                        hole_id="h1", shot=0, defocus_target_um=-2.0))
        db.flush()
        db.add(ChangeLog(session_id="s1", user="ana", entity="square", entity_id="s1_g1_s1",
                         field="selected", old_value={"value": False}, new_value={"value": True}))


def _check(engine: sa.Engine) -> None:
    migrate(engine)
    assert _TABLES <= set(sa.inspect(engine).get_table_names())
    _fill(engine)
    with session_scope(engine) as db:
        session = db.get(Session, "s1")
        assert session is not None and (session.owner, session.group) == ("ana", "lab")
        assert [g.name for g in session.grids] == ["apoferritin"]
    with pytest.raises(IntegrityError), session_scope(engine) as db:  # one shot index per hole
        db.add(Exposure(id="x2", session_id="s1", grid_id="s1_g1", square_id="s1_g1_s1",
                        hole_id="h1", shot=0, defocus_target_um=-2.0))
    migrate(engine)  # running it again is a no-op


def test_migrations_build_the_schema_on_sqlite(tmp_path: Path) -> None:
    _check(open_engine(f"sqlite:///{tmp_path / 'o.db'}"))


@pytest.mark.postgres
def test_migrations_build_the_schema_on_postgresql(postgres_url: str) -> None:
    admin = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS orch_test"))
        conn.execute(sa.text("CREATE DATABASE orch_test"))
    admin.dispose()
    url = postgres_url.replace("postgresql://", "postgresql+psycopg://", 1).rsplit("/", 1)[0]
    engine = open_engine(f"{url}/orch_test")
    try:
        _check(engine)
    finally:
        engine.dispose()
