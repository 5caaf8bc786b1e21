"""Remember recent commands so that a repeated ``command_id`` never runs twice.

The orchestrator retries a command when a reply is lost; the gateway must then answer with the
first answer and move nothing (ARCHITECTURE.md, "Commands to a microscope"). The log is keyed by
(session, command id), bounded (least recently used entries go first) and forgets entries after
a time-to-live counted from its last use. A repeat that arrives while the first is still running waits for the first's
answer.

Outcomes that are final are remembered: a success, and a failure that retrying cannot fix (the
instrument refused the step, the command was unsafe). A transient failure (the connection was
lost, the lease was not held) is forgotten, so that a retry with the same id runs again —
nothing moved the first time.

>>> log = CommandLog(max_entries=2, ttl_s=60.0)
>>> len(log)
0
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gridpilot.contracts import ScopeReply
from gridpilot.errors import Conflict, GridpilotError, InvalidInput, LeaseHeld, TransientError

__all__ = ["CommandLog"]


@dataclass
class _Outcome:
    reply: ScopeReply | None = None
    error: GridpilotError | None = None


@dataclass
class _Entry:
    fingerprint: str
    verb: str
    used_s: float
    done: asyncio.Future[_Outcome]


def _fingerprint(verb: str, params: dict[str, Any]) -> str:
    text = json.dumps({"verb": verb, "params": params}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _is_final(error: GridpilotError) -> bool:
    """Whether a repeat of a command that failed this way must get the same answer."""
    if isinstance(error, TransientError | LeaseHeld):
        return False
    # "You do not hold the lease" is a Conflict that a retry after taking the lease can fix.
    return type(error) is not Conflict


def _repeat_error(error: GridpilotError) -> GridpilotError:
    return type(error)(error.message, **{**error.details, "repeated": True})


class CommandLog:
    """Bounded, time-limited memory of command outcomes, keyed by (session, command id).

    Args:
        max_entries: how many commands are remembered at most.
        ttl_s: how long a finished command is remembered after its last use.
        clock: monotonic seconds; injectable for tests.
    """

    def __init__(self, *, max_entries: int = 4096, ttl_s: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1 or ttl_s <= 0:
            raise ValueError(f"need max_entries >= 1 and ttl_s > 0, got {max_entries}, {ttl_s}")
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def run(self, session_id: str, command_id: str, verb: str, params: dict[str, Any],
                  execute: Callable[[], Awaitable[ScopeReply]]) -> ScopeReply:
        """Run ``execute`` once per (session, command id); repeats get the first outcome.

        Raises:
            InvalidInput: the command id was used before for a different verb or parameters.
            GridpilotError: whatever ``execute`` raised (repeats of a final failure re-raise it
                with ``repeated=True`` in its details).
        """
        key = (session_id, command_id)
        fingerprint = _fingerprint(verb, params)
        self._forget_expired()
        entry = self._entries.get(key)
        if entry is not None:
            if entry.fingerprint != fingerprint:
                raise InvalidInput(
                    f"command_id {command_id} was already used by session {session_id} for "
                    f"{entry.verb!r} with other parameters; use a new command_id",
                    command_id=command_id)
            self._entries.move_to_end(key)
            entry.used_s = self._clock()
            outcome = await asyncio.shield(entry.done)
            if outcome.error is not None:
                raise _repeat_error(outcome.error)
            assert outcome.reply is not None
            return outcome.reply.model_copy(update={"repeated": True})

        done: asyncio.Future[_Outcome] = asyncio.get_running_loop().create_future()
        entry = self._entries[key] = _Entry(fingerprint, verb, self._clock(), done)
        self._trim()
        try:
            reply = await execute()
        except GridpilotError as exc:
            entry.used_s = self._clock()
            done.set_result(_Outcome(error=exc))
            if not _is_final(exc):
                self._entries.pop(key, None)
            raise
        except BaseException as exc:
            # An unexpected failure (a bug, a cancelled task) is not remembered: waiters get a
            # generic error and a retry runs again.
            done.set_result(_Outcome(error=GridpilotError(f"{verb} failed unexpectedly: {exc!r}")))
            self._entries.pop(key, None)
            raise
        entry.used_s = self._clock()
        done.set_result(_Outcome(reply=reply))
        return reply

    def _forget_expired(self) -> None:
        # Entries are in least-recently-used order, so the expired ones are at the front:
        # stop at the first that is still fresh (constant time per command).
        now = self._clock()
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if not entry.done.done() or now - entry.used_s <= self._ttl_s:
                return
            del self._entries[key]

    def _trim(self) -> None:
        while len(self._entries) > self._max_entries:
            key, entry = next(iter(self._entries.items()))
            if not entry.done.done():
                # Never forget a command that is still running; it will be trimmed later.
                self._entries.move_to_end(key)
                if all(not e.done.done() for e in self._entries.values()):
                    return
                continue
            del self._entries[key]
