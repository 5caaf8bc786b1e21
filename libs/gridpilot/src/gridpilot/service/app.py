"""The FastAPI app factory every gridpilot service is built with.

A service is settings + routers + job handlers::

    app = create_service_app(
        settings, title="preprocess", version=__version__,
        routers=[api.router],
        jobs=[JobBinding(kind=subjects.PREPROCESS_MOVIE, handler=consumer.handle)],
    )

The lifespan connects the bus (creating the streams), opens the object store, starts the
sweep that fails jobs no worker claims (:mod:`gridpilot.bus.unclaimed`), one
:class:`~gridpilot.bus.Worker` per job binding, runs the service's start-up hooks, and on
shutdown (SIGTERM through uvicorn) stops fetching, lets in-flight jobs finish, and closes
everything. ``/healthz`` says the process is alive; ``/readyz`` that the bus is connected and
every readiness check (a model loaded, a microscope connected) passes; ``/metrics`` is
Prometheus, labelled by route template. Every :class:`~gridpilot.errors.GridpilotError` maps to
its HTTP status here, once; any other error is a JSON 500 with a trace id, and what a failed
request stored is removed (:mod:`gridpilot.service.middleware`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gridpilot.bus import Bus, JobContext, Worker
from gridpilot.bus.unclaimed import UnclaimedJobs
from gridpilot.contracts import JobRequest, JobResult
from gridpilot.errors import GridpilotError
from gridpilot.logs import current_context
from gridpilot.storage import ObjectStore, open_store

from .cleanup import RequestScopedStore
from .metrics import registry
from .middleware import RequestMiddleware
from .settings import ServiceSettings

__all__ = ["DepsDep", "JobBinding", "ServiceDeps", "create_service_app", "get_deps"]

logger = logging.getLogger(__name__)

Shutdown = Callable[[], Awaitable[None]]
StartupHook = Callable[["ServiceDeps"], Awaitable[Shutdown | None]]
JobHandler = Callable[[JobRequest, JobContext, "ServiceDeps"], Awaitable[JobResult]]


@dataclass
class ServiceDeps:
    """What handlers need, built once in the lifespan and passed down (never globals)."""

    settings: ServiceSettings
    store: ObjectStore
    bus: Bus | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    readiness: dict[str, Callable[[], bool]] = field(default_factory=dict)


@dataclass(frozen=True)
class JobBinding:
    """A job kind this service consumes, and the function that handles one job."""

    kind: str
    handler: JobHandler
    concurrency: int | None = None
    heartbeat_s: float | None = None


def get_deps(request: Request) -> ServiceDeps:
    deps: ServiceDeps | None = getattr(request.app.state, "deps", None)
    if deps is None:
        raise RuntimeError("service dependencies are not ready (lifespan not started)")
    return deps


DepsDep = Annotated[ServiceDeps, Depends(get_deps)]


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    version: str,
    description: str = "",
    routers: Sequence[APIRouter] = (),
    jobs: Sequence[JobBinding] = (),
    on_startup: Sequence[StartupHook] = (),
    readiness: Mapping[str, Callable[[], bool]] | None = None,
    connect_bus: bool = True,
) -> FastAPI:
    """Build a service's FastAPI app (see the module docstring)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = RequestScopedStore(open_store(settings.storage))
        deps = ServiceDeps(settings=settings, store=store, readiness=dict(readiness or {}))
        shutdowns: list[Shutdown] = []
        workers: list[Worker] = []
        try:
            # Fail at start-up, with a sentence, on a wrong endpoint or secret.
            await store.ensure_ready()
            if connect_bus:
                deps.bus = await Bus.connect(settings.bus, name=settings.service_name)
                await deps.bus.ensure_streams()
            for hook in on_startup:
                shutdown = await hook(deps)
                if shutdown is not None:
                    shutdowns.append(shutdown)
            if deps.bus is not None and settings.claim_timeout_s > 0:
                sweep = UnclaimedJobs(deps.bus, service=settings.service_name,
                                      claim_timeout_s=settings.claim_timeout_s)
                await sweep.start()
                shutdowns.append(sweep.stop)
            if deps.bus is not None:
                for binding in jobs:
                    worker = Worker(
                        deps.bus, service=settings.service_name, kind=binding.kind,
                        handler=_bind(binding.handler, deps),
                        concurrency=binding.concurrency or settings.concurrency,
                        max_deliver=settings.max_deliver, ack_wait_s=settings.ack_wait_s,
                        heartbeat_s=binding.heartbeat_s,
                    )
                    await worker.start()
                    workers.append(worker)
            app.state.deps = deps
            logger.info("%s ready (bus=%s, store=%s)", settings.service_name,
                        "on" if deps.bus else "off", store.describe())
            yield
        finally:
            app.state.deps = None
            for worker in workers:
                await worker.stop(drain=True)
            for shutdown in reversed(shutdowns):
                await shutdown()
            if deps.bus is not None:
                await deps.bus.close()
            await store.close()
            logger.info("%s stopped", settings.service_name)

    app = FastAPI(title=title, version=version, description=description, lifespan=lifespan)
    app.state.settings = settings
    _install_error_handlers(app)
    app.add_middleware(RequestMiddleware, service=settings.service_name)
    app.include_router(_ops_router(settings.service_name))
    for router in routers:
        app.include_router(router)
    return app


def _bind(handler: JobHandler, deps: ServiceDeps) -> Callable[[JobRequest, JobContext], Awaitable[JobResult]]:
    async def run(job: JobRequest, ctx: JobContext) -> JobResult:
        return await handler(job, ctx, deps)

    return run


def _ops_router(service: str) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok", "service": service}

    @router.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """Ready when the bus is connected and every readiness check passes."""
        deps: ServiceDeps | None = getattr(request.app.state, "deps", None)
        checks: dict[str, bool] = {"started": deps is not None}
        if deps is not None:
            checks["bus"] = deps.bus is None or deps.bus.connected
            for name, check in deps.readiness.items():
                try:
                    checks[name] = bool(check())
                except Exception:  # a failing check means "not ready"
                    checks[name] = False
        ok = all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @router.get("/metrics")
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(registry()), media_type=CONTENT_TYPE_LATEST)

    return router


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GridpilotError)
    async def gridpilot_error(request: Request, exc: GridpilotError) -> JSONResponse:
        body = exc.to_dict()
        if exc.http_status >= 500:
            logger.warning("%s %s failed: %s", request.method, request.url.path, exc.message)
            body.setdefault("trace_id", current_context()["trace_id"])
        return JSONResponse(body, status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        message = f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}"
        return JSONResponse({"error": "invalid_input", "message": message, "errors": errors},
                            status_code=422)
