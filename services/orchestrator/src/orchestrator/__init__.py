"""gridpilot's orchestrator: unattended screening and data-collection sessions, end to end.

The SmartScope workflow of thesis chapter 3 as a persistent, event-driven state machine over
the bus: grids in autoloader order, atlas → squares → holes → exposures, every decision taken
by the detectors (through their jobs) and the policies (:mod:`orchestrator.policies`), every
transition journalled before the next command (:mod:`orchestrator.journal`), a REST API and a
report per grid.
"""

from __future__ import annotations

__all__: list[str] = []
