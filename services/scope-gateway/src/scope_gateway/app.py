"""The scope-gateway service: ``create_app(settings)`` wires the driver, gateway, bus and API.

Run it with ``gridpilot serve scope-gateway`` (settings from ``GRIDPILOT_SCOPE_*``), or build
it in a test with an injected SerialEM module::

    app = create_app(GatewaySettings(driver="serialem"), serialem_module=fake)
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI

from gridpilot.contracts import Message
from gridpilot.service import ServiceDeps, create_service_app
from gridpilot_sim.instrument.imperfections import ImperfectionProfile
from gridpilot_sim.instrument.microscope import TwinMicroscope
from gridpilot_sim.instrument.presets import TwinOptics
from gridpilot_sim.instrument.timing import TimingModel

from . import __version__, api
from .command_log import CommandLog
from .config import GatewaySettings
from .consumer import serve_gateway
from .driver import Microscope
from .gateway import Gateway
from .safety import StageLimits
from .serialem_driver import SerialEMDriver, SerialEMOptions
from .twin_driver import TwinDriver

__all__ = ["build_driver", "create_app"]

logger = logging.getLogger(__name__)


def build_twin(settings: GatewaySettings) -> TwinMicroscope:
    """The twin microscope the settings describe."""
    return TwinMicroscope(
        seed=settings.seed, timing=TimingModel(speedup=settings.speedup),
        imperfections=ImperfectionProfile.named(settings.imperfections),
        optics=TwinOptics.sized(atlas_tile_px=settings.atlas_tile_px,
                                search_px=settings.search_px, view_px=settings.view_px,
                                record_px=settings.record_px,
                                record_pixel_size_a=settings.record_pixel_size_a),
    )


def build_driver(settings: GatewaySettings, *, serialem_module: Any = None) -> Microscope:
    """The driver the settings ask for (the twin, or SerialEM through ``serialem_module``)."""
    if settings.driver == "twin":
        return TwinDriver(build_twin(settings))
    options = SerialEMOptions(
        host=settings.serialem_host, port=settings.serialem_port,
        directory=settings.serialem_directory, frames_folder=settings.serialem_frames_folder,
        frames_local=settings.serialem_frames_local, save_copies=settings.serialem_save_copies,
        mode=settings.serialem_mode, autoloader=settings.serialem_autoloader,
        camera=settings.serialem_camera,
        atlas_imaging_state=settings.serialem_atlas_imaging_state,
        refine_zlp_interval_min=settings.serialem_refine_zlp_interval_min,
    )
    return SerialEMDriver(options, module=serialem_module)


def create_app(settings: GatewaySettings | None = None, *, serialem_module: Any = None,
               driver: Microscope | None = None) -> FastAPI:
    """The scope-gateway FastAPI app (entry point ``gridpilot.services: scope-gateway``).

    Args:
        settings: the gateway's settings; read from the environment when None.
        serialem_module: the ``serialem`` module to drive (tests pass the fake); imported
            when None and the driver is ``serialem``.
        driver: a ready-made driver (a twin with its own timing, in tests and benchmarks);
            built from the settings when None.
    """
    settings = settings or GatewaySettings()
    holder: dict[str, Microscope] = {}

    async def start(deps: ServiceDeps) -> Any:
        microscope = driver or build_driver(settings, serialem_module=serialem_module)
        await microscope.connect()
        holder["driver"] = microscope
        bus = deps.bus

        async def publish(subject: str, msg: Message, msg_id: str) -> None:
            if bus is not None:
                await bus.publish_event(subject, msg, msg_id=msg_id)

        gateway = Gateway(
            scope_id=settings.scope_id, driver=microscope, store=deps.store, publish=publish,
            limits=StageLimits(radius_um=settings.stage_radius_um,
                               z_limit_um=settings.z_limit_um,
                               tilt_limit_deg=settings.tilt_limit_deg),
            lease_ttl_s=settings.lease_ttl_s,
            commands=CommandLog(max_entries=settings.command_memory,
                                ttl_s=settings.command_memory_ttl_s),
        )
        await gateway.start()
        responders = await serve_gateway(bus, gateway) if bus is not None else []
        deps.extras["gateway"] = gateway
        logger.info("scope-gateway %s serving the %s driver", settings.scope_id, microscope.name)

        async def stop() -> None:
            deps.extras.pop("gateway", None)
            for responder in responders:
                await responder.stop()
            await gateway.stop()
            await microscope.close()

        return stop

    def microscope_ready() -> bool:
        connected = holder.get("driver")
        return connected is not None and connected.connected()

    app = create_service_app(
        settings, title="scope-gateway", version=__version__,
        description="One safe, exclusive, idempotent command set over SerialEM and the twin.",
        routers=[api.router], on_startup=[start], readiness={"microscope": microscope_ready},
    )
    app.state.settings = settings
    return app
