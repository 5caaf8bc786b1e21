"""The gateway's settings, from ``GRIDPILOT_SCOPE_*`` environment variables.

The bus and the object store come from ``GRIDPILOT_BUS_*`` and ``GRIDPILOT_STORAGE_*`` as for
every service. Inconsistent settings fail at start-up with a sentence:

>>> GatewaySettings(driver="twin", speedup=0)
Traceback (most recent call last):
...
gridpilot.errors.ConfigError: GRIDPILOT_SCOPE_SPEEDUP must be > 0 (inf for no waiting), got 0.0.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from gridpilot.contracts import subjects
from gridpilot.errors import ConfigError
from gridpilot.service import ServiceSettings

__all__ = ["GatewaySettings"]

_PREFIX = "GRIDPILOT_SCOPE_"


class GatewaySettings(ServiceSettings):
    """Settings of one scope-gateway (one microscope)."""

    model_config = SettingsConfigDict(env_prefix=_PREFIX)

    service_name: str = "scope-gateway"
    #: This microscope's id: the ``<scope_id>`` of ``scope.<scope_id>.<verb>``.
    scope_id: str = "twin-1"
    driver: Literal["twin", "serialem"] = "twin"
    #: Twin: microscope seconds per wall second; ``inf`` never waits.
    speedup: float = math.inf
    #: Twin: what goes wrong ("perfect": nothing; "realistic": stage errors, drift, failures).
    imperfections: Literal["perfect", "realistic"] = "perfect"
    #: Twin: seeds the cassette's grids, the imperfections and the noise.
    seed: int = Field(0, ge=0)
    #: The lease's time-to-live when a request does not give one, seconds.
    lease_ttl_s: float = Field(60.0, gt=0, le=3600)
    #: Commands remembered for answering repeats, and for how long.
    command_memory: int = Field(4096, ge=16)
    command_memory_ttl_s: float = Field(3600.0, gt=0)
    #: Twin image sizes, pixels per side.
    atlas_tile_px: int = Field(512, ge=16, le=8192)
    search_px: int = Field(1024, ge=16, le=8192)
    view_px: int = Field(1024, ge=16, le=8192)
    record_px: int = Field(1024, ge=16, le=8192)
    record_pixel_size_a: float = Field(1.0, gt=0.2, le=20)
    #: Stage limits enforced before anything moves.
    stage_radius_um: float = Field(975.0, gt=0, le=1000)
    z_limit_um: float = Field(200.0, gt=0, le=375)
    tilt_limit_deg: float = Field(70.0, ge=0, le=80)
    #: SerialEM: its external-Python socket (``EnableExternalPython 1``).
    serialem_host: str = "127.0.0.1"
    serialem_port: int = Field(48888, ge=1, le=65535)
    #: SerialEM: its working folder and frames folder (paths on the SerialEM computer).
    serialem_directory: str | None = None
    serialem_frames_folder: str | None = None
    #: SerialEM: where ``serialem_frames_folder`` is mounted on this computer.
    serialem_frames_local: Path | None = None
    serialem_save_copies: bool = False
    #: SerialEM: ``external`` (this process, ``ConnectToSEM``) or ``embedded`` (inside
    #: SerialEM's own Python).
    serialem_mode: Literal["external", "embedded"] = "external"
    #: SerialEM: the autoloader (Thermo/FEI slots, or JEOL's inventory).
    serialem_autoloader: Literal["thermo", "jeol"] = "thermo"
    #: SerialEM: the camera family, which decides how frame saving is switched.
    serialem_camera: Literal["k3", "falcon", "de"] = "k3"
    #: SerialEM: an Imaging State set before the atlas montage.
    serialem_atlas_imaging_state: str | None = None
    #: SerialEM: refine the zero-loss peak before a Record after this many minutes.
    serialem_refine_zlp_interval_min: float | None = Field(None, gt=0, le=1440)

    @model_validator(mode="after")
    def _check(self) -> GatewaySettings:
        try:
            subjects.validate_token(self.scope_id, "scope_id")
        except ValueError as exc:
            raise ConfigError(f"{_PREFIX}SCOPE_ID: {exc}.") from None
        if not self.speedup > 0:
            raise ConfigError(f"{_PREFIX}SPEEDUP must be > 0 (inf for no waiting), "
                              f"got {self.speedup}.")
        if self.record_px % 2:
            raise ConfigError(f"{_PREFIX}RECORD_PX must be even, got {self.record_px}.")
        if self.driver == "serialem" and (self.serialem_frames_folder is None) != (
                self.serialem_frames_local is None):
            raise ConfigError(
                f"{_PREFIX}SERIALEM_FRAMES_FOLDER and {_PREFIX}SERIALEM_FRAMES_LOCAL must be set "
                "together: the gateway reads the frames SerialEM saves through the local mount.")
        return self
