"""The orchestrator's state: SQLAlchemy 2.x models of everything a session knows.

The orchestrator is the only service with a database. Its schema is created and changed by
Alembic (:mod:`orchestrator.db`); these classes are the ORM view of it.

::

    Microscope ─┐
    Detector  ──┴─ Session ─ Grid ─ Atlas
                     │        └──── Square ─ Hole ─ Exposure
                     ├─ Step (the flow's journal: one row per command sent or job submitted)
                     └─ ChangeLog (every human edit)

Positions are stage µm, defocus µm (negative = underfocus), intensities are the detector's
mean values. Every row that belongs to a session carries ``session_id``; the session carries
its ``owner`` and ``group`` so that access control can be added without changing the model.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from gridpilot.films import hole_pattern

__all__ = [
    "Atlas",
    "Base",
    "ChangeLog",
    "Detector",
    "Exposure",
    "Grid",
    "Hole",
    "Microscope",
    "Session",
    "Square",
    "Step",
]


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class Microscope(Base):
    __tablename__ = "microscope"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    voltage_kv: Mapped[float] = mapped_column(Float, default=300.0)
    cs_mm: Mapped[float] = mapped_column(Float, default=2.7)


class Detector(Base):
    __tablename__ = "detector"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    microscope_id: Mapped[str] = mapped_column(ForeignKey("microscope.id"))
    name: Mapped[str] = mapped_column(String(200), default="")
    pixel_size_a: Mapped[float | None] = mapped_column(Float, nullable=True)


class Session(Base):
    __tablename__ = "session"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    group: Mapped[str] = mapped_column(String(100), default="")
    owner: Mapped[str] = mapped_column(String(100), default="")
    microscope_id: Mapped[str] = mapped_column(ForeignKey("microscope.id"))
    detector_id: Mapped[str | None] = mapped_column(ForeignKey("detector.id"), nullable=True)
    #: created, running, paused, completed, failed, aborted (contracts.events.SessionState).
    state: Mapped[str] = mapped_column(String(20), default="created")
    #: What the user asked for and the flow has not yet honoured: pause, stop, abort.
    request: Mapped[str | None] = mapped_column(String(20), nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    protocol: Mapped[dict[str, Any]] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)
    grids: Mapped[list[Grid]] = relationship(back_populates="session", order_by="Grid.position")


class Grid(Base):
    __tablename__ = "grid"
    __table_args__ = (UniqueConstraint("session_id", "position"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("session.id"), index=True)
    #: Autoloader cassette slot.
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    hole_type: Mapped[str] = mapped_column(String(50), default="")
    hole_diameter_um: Mapped[float | None] = mapped_column(Float, nullable=True)
    mesh_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    mesh_material: Mapped[str] = mapped_column(String(50), default="")
    #: carbon or gold film: decides the offset-targeting fraction.
    film_material: Mapped[str] = mapped_column(String(50), default="carbon")
    #: queued, loading, atlas, screening, completed, skipped, failed (contracts GridState).
    status: Mapped[str] = mapped_column(String(20), default="queued")
    #: Whether this grid is to be screened after an atlas-only pass.
    selected: Mapped[bool] = mapped_column(Boolean, default=True)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    session: Mapped[Session] = relationship(back_populates="grids")

    @property
    def hole_geometry(self) -> tuple[float | None, float | None]:
        """Nominal hole diameter and lattice pitch, µm: the diameter as given, else the hole
        type's (R1.2/1.3 → 1.2), and the hole type's pitch (→ 2.5); ``None`` where unknown."""
        pattern = hole_pattern(self.hole_type or "")
        diameter = self.hole_diameter_um or (pattern.diameter_um if pattern else None)
        return diameter, pattern.pitch_um if pattern else None


class Atlas(Base):
    __tablename__ = "atlas"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("session.id"), index=True)
    grid_id: Mapped[str] = mapped_column(ForeignKey("grid.id"), unique=True)
    key: Mapped[str] = mapped_column(String(500))
    pixel_size_a: Mapped[float] = mapped_column(Float)
    shape: Mapped[dict[str, Any]] = mapped_column(JSON)
    image_to_stage: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The detection job, and the model that answered it.
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    acquired_at: Mapped[datetime] = mapped_column(default=_now)


class Square(Base):
    __tablename__ = "square"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("session.id"), index=True)
    grid_id: Mapped[str] = mapped_column(ForeignKey("grid.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    box_px: Mapped[dict[str, Any]] = mapped_column(JSON)
    label: Mapped[str] = mapped_column(String(30))
    score: Mapped[float] = mapped_column(Float)
    stage_x_um: Mapped[float] = mapped_column(Float)
    stage_y_um: Mapped[float] = mapped_column(Float)
    area_um2: Mapped[float] = mapped_column(Float)
    #: The stratum it was drawn from, when selected.
    stratum: Mapped[str | None] = mapped_column(String(100), nullable=True)
    selected: Mapped[bool] = mapped_column(Boolean, default=False)
    #: detected, queued, acquiring, acquired, processed, skipped, failed.
    status: Mapped[str] = mapped_column(String(20), default="detected")
    image_key: Mapped[str | None] = mapped_column(String(500), nullable=True)
    image_meta: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")


class Hole(Base):
    __tablename__ = "hole"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("session.id"), index=True)
    grid_id: Mapped[str] = mapped_column(ForeignKey("grid.id"), index=True)
    square_id: Mapped[str] = mapped_column(ForeignKey("square.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    x_px: Mapped[float] = mapped_column(Float)
    y_px: Mapped[float] = mapped_column(Float)
    radius_px: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    label: Mapped[str] = mapped_column(String(30), default="hole")
    mean_intensity: Mapped[float] = mapped_column(Float)
    #: Intensity bin (0 = rejected as darkest, 1..n brighter), from the hole policy.
    intensity_bin: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stage_x_um: Mapped[float] = mapped_column(Float)
    stage_y_um: Mapped[float] = mapped_column(Float)
    selected: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Human verdict: a hole marked bad is excluded from BIS grouping and collection.
    bad: Mapped[bool] = mapped_column(Boolean, default=False)
    #: BIS group id (the hole at its centre), and whether this hole is that centre.
    bis_group: Mapped[str | None] = mapped_column(String(64), nullable=True)
    bis_center: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="detected")
    view_key: Mapped[str | None] = mapped_column(String(500), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")


class Exposure(Base):
    __tablename__ = "exposure"
    __table_args__ = (UniqueConstraint("hole_id", "shot"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("session.id"), index=True)
    grid_id: Mapped[str] = mapped_column(ForeignKey("grid.id"), index=True)
    square_id: Mapped[str] = mapped_column(ForeignKey("square.id"), index=True)
    hole_id: Mapped[str] = mapped_column(ForeignKey("hole.id"), index=True)
    #: Index of the shot inside its hole (several shots per hole).
    shot: Mapped[int] = mapped_column(Integer, default=0)
    image_id: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    movie_key: Mapped[str | None] = mapped_column(String(500), nullable=True)
    pixel_size_a: Mapped[float | None] = mapped_column(Float, nullable=True)
    image_shift_x_um: Mapped[float] = mapped_column(Float, default=0.0)
    image_shift_y_um: Mapped[float] = mapped_column(Float, default=0.0)
    offset_x_um: Mapped[float] = mapped_column(Float, default=0.0)
    offset_y_um: Mapped[float] = mapped_column(Float, default=0.0)
    stage_x_um: Mapped[float] = mapped_column(Float, default=0.0)
    stage_y_um: Mapped[float] = mapped_column(Float, default=0.0)
    tilt_deg: Mapped[float] = mapped_column(Float, default=0.0)
    defocus_target_um: Mapped[float] = mapped_column(Float)
    defocus_measured_um: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: acquiring, acquired, processed, failed.
    status: Mapped[str] = mapped_column(String(20), default="acquiring")
    preprocess_job_id: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    ctf_defocus_um: Mapped[float | None] = mapped_column(Float, nullable=True)
    ctf_astig_a: Mapped[float | None] = mapped_column(Float, nullable=True)
    ctf_fit_resolution_a: Mapped[float | None] = mapped_column(Float, nullable=True)
    ctf_confident: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    motion_total_drift_a: Mapped[float | None] = mapped_column(Float, nullable=True)
    ice_thickness_nm: Mapped[float | None] = mapped_column(Float, nullable=True)
    aligned_key: Mapped[str | None] = mapped_column(String(500), nullable=True)
    diagnostic_key: Mapped[str | None] = mapped_column(String(500), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    acquired_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Step(Base):
    """The flow's journal: one row per scope command or job, written before it is sent.

    ``key`` is deterministic (``<grid>/<square>/<hole>/<shot>/<verb>``), so after a restart
    the flow finds what it already did and re-sends an unfinished command with the *same*
    ``command_id`` — the gateway answers a repeat from memory and nothing moves twice.
    """

    __tablename__ = "step"
    __table_args__ = (UniqueConstraint("session_id", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("session.id"), index=True)
    key: Mapped[str] = mapped_column(String(300))
    verb: Mapped[str] = mapped_column(String(50))
    command_id: Mapped[str] = mapped_column(String(64), unique=True)
    #: sent, done, failed.
    state: Mapped[str] = mapped_column(String(20), default="sent")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    sent_at: Mapped[datetime] = mapped_column(default=_now)
    done_at: Mapped[datetime | None] = mapped_column(nullable=True)


class ChangeLog(Base):
    """Every human edit: who changed what, from which value to which."""

    __tablename__ = "change_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("session.id"), index=True)
    user: Mapped[str] = mapped_column(String(100), default="")
    entity: Mapped[str] = mapped_column(String(30))
    entity_id: Mapped[str] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(64))
    old_value: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    new_value: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    at: Mapped[datetime] = mapped_column(default=_now)
