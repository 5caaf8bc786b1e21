"""gridpilot: the shared library of the gridpilot services.

Contracts (:mod:`gridpilot.contracts`), the bus (:mod:`gridpilot.bus`), object storage
(:mod:`gridpilot.storage`), the service skeleton (:mod:`gridpilot.service`), shared optics
(:mod:`gridpilot.optics`), real-server test
fixtures (:mod:`gridpilot.testing`) and the embedded stack (:mod:`gridpilot.stack`). The microscope
digital twin is its own distribution, `gridpilot-sim` (:mod:`gridpilot_sim`).
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
