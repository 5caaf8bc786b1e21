"""The bus surface: one responder on ``scope.<scope_id>.*`` for the commands and the lease.

The responder is in the queue group ``scope-gateway-<scope_id>`` and reads the verb from the
subject: ``scope.<scope_id>.lease`` takes a :class:`~gridpilot.contracts.LeaseRequest`, a verb
of the allow-list a :class:`~gridpilot.contracts.ScopeCommand` for
:meth:`~scope_gateway.gateway.Gateway.execute` (the function behind the REST API too). Any
other verb, and a command whose ``verb`` disagrees with its subject, is refused as
:class:`~gridpilot.errors.UnsafeCommand` before anything is read or moved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Final

from gridpilot.bus import Bus, Responder
from gridpilot.bus.rpc import SubjectHandler
from gridpilot.contracts import SCOPE_VERBS, LeaseRequest, Message, ScopeCommand, subjects
from gridpilot.contracts.scope import LEASE_VERB
from gridpilot.errors import UnsafeCommand

from .client_state import execute_for_client
from .gateway import Gateway

__all__ = ["queue_group", "serve_gateway"]

#: Requests one replica answers at once. Operations queue on the gateway's own lock (one at a
#: time) and a repeat waits for the first inside the gateway, so this only bounds the work in
#: hand; it is large so that ``abort`` and ``state`` are never stuck behind queued commands.
_CONCURRENCY: Final[int] = 64


def queue_group(scope_id: str) -> str:
    """The queue group of one microscope's responder."""
    return f"scope-gateway-{scope_id}"


def _handler(gateway: Gateway) -> SubjectHandler:
    # Lease requests are answered one at a time in arrival order, so that holder changes are
    # announced in the order they happened.
    lease_order = asyncio.Lock()

    async def handle(data: bytes, headers: Mapping[str, str], subject: str) -> Message:
        verb = subject.rsplit(".", 1)[-1]
        if verb == LEASE_VERB:
            request = LeaseRequest.model_validate_json(data)
            async with lease_order:
                return await gateway.handle_lease(request)
        if verb not in SCOPE_VERBS:
            raise UnsafeCommand(
                f"verb {verb!r} is not allowed on {gateway.scope_id}; nothing was done; allowed "
                f"verbs: {', '.join(sorted(SCOPE_VERBS))} (and {LEASE_VERB!r} for the lease)",
                verb=verb, scope_id=gateway.scope_id)
        command = ScopeCommand.model_validate_json(data)
        if command.verb != verb:
            raise UnsafeCommand(f"a {command.verb!r} command was sent on the subject of "
                                f"{verb!r}; nothing was done", verb=command.verb)
        return await execute_for_client(gateway, command)

    return handle


async def serve_gateway(bus: Bus, gateway: Gateway) -> list[Responder]:
    """Start the responder of one gateway; stop it with ``await r.stop()``.

    When this returns the server routes ``scope.<scope_id>.*`` here (``Bus.serve`` waits).
    """
    subject = subjects.scope_commands(gateway.scope_id)
    return [await bus.serve(subject, _handler(gateway), queue=queue_group(gateway.scope_id),
                            concurrency=_CONCURRENCY)]
