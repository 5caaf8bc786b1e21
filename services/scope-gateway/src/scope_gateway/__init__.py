"""scope-gateway: one safe, exclusive, idempotent command set over SerialEM and the twin.

See :mod:`scope_gateway.gateway` for the checks every command passes, :mod:`scope_gateway.api`
and :mod:`scope_gateway.consumer` for the REST and bus surfaces, and
:mod:`scope_gateway.driver` for the interface both microscope drivers implement.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
