"""Message contracts: every message on the bus is one of these pydantic models.

>>> from gridpilot.contracts import PreprocessMovieJob, subjects
>>> job = PreprocessMovieJob(exposure_id="e1", movie_key="k.mrc", pixel_size_a=1.0,
...                          dose_per_frame_e_per_a2=1.0)
>>> subjects.job_subject(job.kind)
'job.preprocess.movie'
"""

from __future__ import annotations

from . import subjects
from .base import Id, JobRequest, JobResult, Message, Record, new_id, utcnow
from .detect import (
    AtlasDetected,
    DetectAtlasJob,
    DetectHolesJob,
    HoleDetection,
    HoleFinderParams,
    HolesDetected,
    LatticeFit,
    SquareClass,
    SquareDetection,
)
from .events import GridUpdated, JobFailed, SessionUpdated, TargetUpdated
from .pick import Particle, ParticlesPicked, PickCetJob, PickSpaJob
from .preprocess import (
    CTFFit,
    MotionSummary,
    MoviePreprocessed,
    PreprocessMovieJob,
    PreprocessParams,
)
from .scope import (
    SCOPE_VERBS,
    AcquireParams,
    ImageAcquired,
    LeaseInfo,
    LeaseRequest,
    ScopeCommand,
    ScopeReply,
    ScopeState,
    StagePosition,
)
from .train import ModelTrained, TrainJob
from .zssr import ZssrMovieJob, ZssrResult

#: Job request type → result type, by kind.
JOB_TYPES: dict[str, tuple[type[JobRequest], type[JobResult]]] = {
    subjects.DETECT_ATLAS: (DetectAtlasJob, AtlasDetected),
    subjects.DETECT_HOLES: (DetectHolesJob, HolesDetected),
    subjects.PREPROCESS_MOVIE: (PreprocessMovieJob, MoviePreprocessed),
    subjects.ZSSR_MOVIE: (ZssrMovieJob, ZssrResult),
    subjects.PICK_SPA: (PickSpaJob, ParticlesPicked),
    subjects.PICK_CET: (PickCetJob, ParticlesPicked),
    subjects.TRAIN_ATLAS: (TrainJob, ModelTrained),
    subjects.TRAIN_HOLES: (TrainJob, ModelTrained),
    subjects.TRAIN_SPA: (TrainJob, ModelTrained),
    subjects.TRAIN_CET: (TrainJob, ModelTrained),
}

#: Event subject → message type (results are listed through JOB_TYPES).
EVENT_TYPES: dict[str, type[Message]] = {
    subjects.EVT_JOB_FAILED: JobFailed,
    subjects.EVT_IMAGE_ACQUIRED: ImageAcquired,
    subjects.EVT_SESSION_UPDATED: SessionUpdated,
    subjects.EVT_GRID_UPDATED: GridUpdated,
    subjects.EVT_TARGET_UPDATED: TargetUpdated,
    subjects.EVT_LEASE_CHANGED: LeaseInfo,
}

__all__ = [
    "EVENT_TYPES",
    "JOB_TYPES",
    "SCOPE_VERBS",
    "AcquireParams",
    "AtlasDetected",
    "CTFFit",
    "DetectAtlasJob",
    "DetectHolesJob",
    "GridUpdated",
    "HoleDetection",
    "HoleFinderParams",
    "HolesDetected",
    "Id",
    "ImageAcquired",
    "JobFailed",
    "JobRequest",
    "JobResult",
    "LatticeFit",
    "LeaseInfo",
    "LeaseRequest",
    "Message",
    "ModelTrained",
    "MotionSummary",
    "MoviePreprocessed",
    "Particle",
    "ParticlesPicked",
    "PickCetJob",
    "PickSpaJob",
    "PreprocessMovieJob",
    "PreprocessParams",
    "Record",
    "ScopeCommand",
    "ScopeReply",
    "ScopeState",
    "SessionUpdated",
    "SquareClass",
    "SquareDetection",
    "StagePosition",
    "TargetUpdated",
    "TrainJob",
    "ZssrMovieJob",
    "ZssrResult",
    "new_id",
    "subjects",
    "utcnow",
]
