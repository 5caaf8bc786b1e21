"""The service skeleton: settings, the FastAPI app factory, running a service.

See :func:`gridpilot.service.app.create_service_app`.
"""

from __future__ import annotations

from .app import DepsDep, JobBinding, ServiceDeps, create_service_app, get_deps
from .settings import Port, ServiceSettings

__all__ = [
    "DepsDep",
    "JobBinding",
    "Port",
    "ServiceDeps",
    "ServiceSettings",
    "create_service_app",
    "get_deps",
]
