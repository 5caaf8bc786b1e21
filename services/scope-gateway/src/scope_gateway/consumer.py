"""The bus surface: ``scope.<scope_id>.<verb>`` for every allowed verb, and the lease.

One responder per allowed verb, all in the queue group ``scope-gateway-<scope_id>``, call
:meth:`~scope_gateway.gateway.Gateway.execute` (the function behind the REST API too);
``scope.<scope_id>.lease`` takes a :class:`~gridpilot.contracts.LeaseRequest`. A verb outside
the allow-list has no responder (a request gets "no service answers"); a command whose
``verb`` disagrees with its subject is refused as unsafe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from gridpilot.bus import Bus, Responder
from gridpilot.contracts import SCOPE_VERBS, LeaseRequest, Message, ScopeCommand, subjects
from gridpilot.contracts.scope import LEASE_VERB
from gridpilot.errors import UnsafeCommand

from .gateway import Gateway

__all__ = ["queue_group", "serve_gateway"]

#: Requests answered at once per subject: a repeat waits for the first inside the gateway,
#: and ``abort`` and ``state`` have subjects (and responders) of their own.
_CONCURRENCY: Final[int] = 4

#: Round trips that make sure the subscriptions reached the server (see serve_gateway).
_FLUSHES: Final[int] = 2

Handler = Callable[[bytes, Mapping[str, str]], Awaitable[Message]]


def queue_group(scope_id: str) -> str:
    """The queue group of one microscope's responders."""
    return f"scope-gateway-{scope_id}"


def _command_handler(gateway: Gateway, verb: str) -> Handler:
    async def handle(data: bytes, headers: Mapping[str, str]) -> Message:
        command = ScopeCommand.model_validate_json(data)
        if command.verb != verb:
            raise UnsafeCommand(f"a {command.verb!r} command was sent on the subject of "
                                f"{verb!r}; nothing was done", verb=command.verb)
        return await gateway.execute(command)

    return handle


def _lease_handler(gateway: Gateway) -> Handler:
    async def handle(data: bytes, headers: Mapping[str, str]) -> Message:
        return await gateway.handle_lease(LeaseRequest.model_validate_json(data))

    return handle


async def serve_gateway(bus: Bus, gateway: Gateway) -> list[Responder]:
    """Start the responders of one gateway; stop them with ``await r.stop()``."""
    queue = queue_group(gateway.scope_id)
    responders = [
        await bus.serve(subjects.scope_command(gateway.scope_id, verb),
                        _command_handler(gateway, verb), queue=queue, concurrency=_CONCURRENCY)
        for verb in SCOPE_VERBS
    ]
    responders.append(await bus.serve(subjects.scope_command(gateway.scope_id, LEASE_VERB),
                                      _lease_handler(gateway), queue=queue))
    # The subscriptions exist once the server has processed them. nats-py writes a flush's
    # PING ahead of the SUBs still queued for its flusher task, so the first PONG can come
    # back before they are sent; the second round trip is queued behind them.
    for _ in range(_FLUSHES):
        await bus.nc.flush()
    return responders
