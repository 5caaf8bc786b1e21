"""Message contracts: every message on the bus is one of these pydantic models.

>>> from gridpilot.contracts import PreprocessMovieJob, subjects
>>> job = PreprocessMovieJob(session_id="s1", exposure_id="e1", pixel_size_a=1.0,
...                          movie_key="sessions/s1/grids/g1/exposures/e1/movie.mrc",
...                          dose_per_frame_e_per_a2=1.0)
>>> subjects.job_subject(job.kind)
'job.preprocess.movie'
"""

from __future__ import annotations

from . import subjects
from .base import (
    MODEL_REGISTRY_PREFIX,
    Id,
    JobRequest,
    JobResult,
    Message,
    ObjectKey,
    Record,
    new_id,
    utcnow,
)
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
from .pick import (
    MicrographParticlesPicked,
    Particle,
    PickCetJob,
    PickSpaJob,
    TomogramParticle,
    TomogramParticlesPicked,
)
from .preprocess import (
    CTFFit,
    ExposureOptics,
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
from .train import (
    AtlasModelTrained,
    CetModelTrained,
    HolesModelTrained,
    ModelKind,
    ModelTrained,
    SpaModelTrained,
    TrainAtlasJob,
    TrainCetJob,
    TrainHolesJob,
    TrainJob,
    TrainSpaJob,
)
from .zssr import MovieSuperResolved, ZssrMovieJob

#: Job request type → result type, by kind: each kind has its own pair.
JOB_TYPES: dict[str, tuple[type[JobRequest], type[JobResult]]] = {
    subjects.DETECT_ATLAS: (DetectAtlasJob, AtlasDetected),
    subjects.DETECT_HOLES: (DetectHolesJob, HolesDetected),
    subjects.PREPROCESS_MOVIE: (PreprocessMovieJob, MoviePreprocessed),
    subjects.ZSSR_MOVIE: (ZssrMovieJob, MovieSuperResolved),
    subjects.PICK_SPA: (PickSpaJob, MicrographParticlesPicked),
    subjects.PICK_CET: (PickCetJob, TomogramParticlesPicked),
    subjects.TRAIN_ATLAS: (TrainAtlasJob, AtlasModelTrained),
    subjects.TRAIN_HOLES: (TrainHolesJob, HolesModelTrained),
    subjects.TRAIN_SPA: (TrainSpaJob, SpaModelTrained),
    subjects.TRAIN_CET: (TrainCetJob, CetModelTrained),
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
    "MODEL_REGISTRY_PREFIX",
    "SCOPE_VERBS",
    "AcquireParams",
    "AtlasDetected",
    "AtlasModelTrained",
    "CTFFit",
    "CetModelTrained",
    "DetectAtlasJob",
    "DetectHolesJob",
    "ExposureOptics",
    "GridUpdated",
    "HoleDetection",
    "HoleFinderParams",
    "HolesDetected",
    "HolesModelTrained",
    "Id",
    "ImageAcquired",
    "JobFailed",
    "JobRequest",
    "JobResult",
    "LatticeFit",
    "LeaseInfo",
    "LeaseRequest",
    "Message",
    "MicrographParticlesPicked",
    "ModelKind",
    "ModelTrained",
    "MotionSummary",
    "MoviePreprocessed",
    "MovieSuperResolved",
    "ObjectKey",
    "Particle",
    "PickCetJob",
    "PickSpaJob",
    "PreprocessMovieJob",
    "PreprocessParams",
    "Record",
    "ScopeCommand",
    "ScopeReply",
    "ScopeState",
    "SessionUpdated",
    "SpaModelTrained",
    "SquareClass",
    "SquareDetection",
    "StagePosition",
    "TargetUpdated",
    "TomogramParticle",
    "TomogramParticlesPicked",
    "TrainAtlasJob",
    "TrainCetJob",
    "TrainHolesJob",
    "TrainJob",
    "TrainSpaJob",
    "ZssrMovieJob",
    "new_id",
    "subjects",
    "utcnow",
]
