"""Events: a job failed, and session / grid / target state changes."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .base import Id, Message, new_id

__all__ = ["GridUpdated", "JobFailed", "SessionUpdated", "TargetUpdated"]


class JobFailed(Message):
    """A job was given up: terminated on bad input, or out of deliveries after transient errors."""

    summary: ClassVar[str] = "A job was terminated or exhausted its retries; nothing is dropped silently."
    event_id: Id = Field(default_factory=lambda: new_id("evt_"))
    job_id: str
    subject: str
    service: str
    error: str
    reason: str
    retriable: bool
    #: 0 for a job no worker ever claimed (``error: "unclaimed"``).
    deliveries: int = Field(ge=0)
    session_id: Id | None = None


SessionState = Literal["created", "running", "paused", "completed", "failed", "aborted"]
GridState = Literal["queued", "loading", "atlas", "screening", "completed", "skipped", "failed"]
TargetState = Literal["detected", "queued", "acquiring", "acquired", "processed", "skipped", "failed"]


class SessionUpdated(Message):
    summary: ClassVar[str] = "A session changed state."
    session_id: Id
    state: SessionState
    message: str = ""


class GridUpdated(Message):
    summary: ClassVar[str] = "A grid in a session changed state."
    session_id: Id
    grid_id: Id
    state: GridState
    message: str = ""


class TargetUpdated(Message):
    summary: ClassVar[str] = "A square or hole target changed state."
    session_id: Id
    grid_id: Id
    target_id: Id
    target_kind: Literal["square", "hole", "exposure"]
    state: TargetState
    label: str | None = None
    message: str = ""
