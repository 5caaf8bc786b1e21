"""Settings of the zssr service (environment prefix ``GRIDPILOT_ZSSR_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from gridpilot.service import Port, ServiceSettings

__all__ = ["ZssrSettings"]


class ZssrSettings(ServiceSettings):
    """zssr settings; bus and storage come from ``GRIDPILOT_BUS_*``/``GRIDPILOT_STORAGE_*``."""

    model_config = SettingsConfigDict(env_prefix="GRIDPILOT_ZSSR_")

    service_name: str = "zssr"
    port: Port = 8005
    #: Training a network per movie takes a minute or more; heartbeats extend ack_wait.
    ack_wait_s: float = Field(120.0, gt=0)
    #: "auto": CUDA when the node has a GPU, else the CPU.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: Caps the preset's training iterations (smoke runs and tests; None = the preset's own).
    max_iterations: int | None = Field(None, ge=1)
    #: Torch CPU threads (keep ≤ the container's CPU limit; the CPU is shared with the bus).
    torch_threads: int = Field(2, ge=1, le=64)
