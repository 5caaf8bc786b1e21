"""Subject names and stream names: the only place a subject string is spelled out.

Three kinds of traffic (ARCHITECTURE.md): commands to a microscope on ``scope.<scope_id>.<verb>``
(request/reply, core NATS), jobs on ``job.>`` (JetStream, work-queue retention) and events on
``evt.>`` (JetStream, limits retention).

>>> scope_command("krios-1", "move_stage")
'scope.krios-1.move_stage'
>>> scope_commands("krios-1")
'scope.krios-1.*'
>>> result_subject(PREPROCESS_MOVIE)
'evt.result.preprocess.movie'
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "DETECT_ATLAS",
    "DETECT_HOLES",
    "EVENTS_STREAM",
    "EVT_GRID_UPDATED",
    "EVT_IMAGE_ACQUIRED",
    "EVT_JOB_FAILED",
    "EVT_LEASE_CHANGED",
    "EVT_SESSION_UPDATED",
    "EVT_TARGET_UPDATED",
    "JOBS_STREAM",
    "JOB_KINDS",
    "PICK_CET",
    "PICK_SPA",
    "PREPROCESS_MOVIE",
    "TRAIN_ATLAS",
    "TRAIN_CET",
    "TRAIN_HOLES",
    "TRAIN_SPA",
    "ZSSR_MOVIE",
    "job_subject",
    "result_subject",
    "scope_command",
    "scope_commands",
    "validate_token",
]

EVENTS_STREAM: Final[str] = "EVENTS"
JOBS_STREAM: Final[str] = "JOBS"
EVENTS_SUBJECTS: Final[str] = "evt.>"
JOBS_SUBJECTS: Final[str] = "job.>"

# Job kinds: the job is published on job.<kind>, its result on evt.result.<kind>.
DETECT_ATLAS: Final[str] = "detect.atlas"
DETECT_HOLES: Final[str] = "detect.holes"
PREPROCESS_MOVIE: Final[str] = "preprocess.movie"
ZSSR_MOVIE: Final[str] = "zssr.movie"
PICK_SPA: Final[str] = "pick.spa"
PICK_CET: Final[str] = "pick.cet"
TRAIN_ATLAS: Final[str] = "train.atlas"
TRAIN_HOLES: Final[str] = "train.holes"
TRAIN_SPA: Final[str] = "train.spa"
TRAIN_CET: Final[str] = "train.cet"
JOB_KINDS: Final[tuple[str, ...]] = (
    DETECT_ATLAS, DETECT_HOLES, PREPROCESS_MOVIE, ZSSR_MOVIE, PICK_SPA, PICK_CET,
    TRAIN_ATLAS, TRAIN_HOLES, TRAIN_SPA, TRAIN_CET,
)

EVT_JOB_FAILED: Final[str] = "evt.job.failed"
EVT_IMAGE_ACQUIRED: Final[str] = "evt.image.acquired"
EVT_SESSION_UPDATED: Final[str] = "evt.session.updated"
EVT_GRID_UPDATED: Final[str] = "evt.grid.updated"
EVT_TARGET_UPDATED: Final[str] = "evt.target.updated"
EVT_LEASE_CHANGED: Final[str] = "evt.scope.lease.changed"

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def validate_token(value: str, what: str = "token") -> str:
    """A subject token: letters, digits, ``_`` and ``-`` only (no dots, wildcards or spaces)."""
    if not _TOKEN.match(value):
        raise ValueError(f"{what} {value!r} must be 1-64 characters of [A-Za-z0-9_-]")
    return value


def job_subject(kind: str) -> str:
    """``job.<kind>`` for a known job kind."""
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {kind!r}; known: {', '.join(JOB_KINDS)}")
    return f"job.{kind}"


def result_subject(kind: str) -> str:
    """``evt.result.<kind>``: where the result of a job of that kind is published."""
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {kind!r}; known: {', '.join(JOB_KINDS)}")
    return f"evt.result.{kind}"


def scope_command(scope_id: str, verb: str) -> str:
    """``scope.<scope_id>.<verb>``: request/reply subject of one microscope command."""
    return f"scope.{validate_token(scope_id, 'scope_id')}.{validate_token(verb, 'verb')}"


def scope_commands(scope_id: str) -> str:
    """``scope.<scope_id>.*``: every command subject of one microscope (what its gateway serves)."""
    return f"scope.{validate_token(scope_id, 'scope_id')}.*"
