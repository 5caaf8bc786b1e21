"""The exclusive lease on one microscope: one session at a time, with a time-to-live.

A session takes the lease, renews it before it expires, and releases it when done; if it
disappears, the lease expires and the microscope is free again. Every command except ``state``
must come from the holder (thesis 3.2.1: the connection to the microscope is locked so two
workflows never overlap).

>>> now = [0.0]
>>> book = LeaseBook("krios-1", clock=lambda: now[0])
>>> book.take("s1", ttl_s=30).holder
's1'
>>> now[0] = 31.0
>>> book.current().holder is None
True
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from gridpilot.contracts import LeaseInfo, utcnow
from gridpilot.errors import Conflict, LeaseHeld

__all__ = ["LeaseBook"]


@dataclass
class _Lease:
    holder: str
    ttl_s: float
    expires_mono_s: float


class LeaseBook:
    """Who holds one microscope's lease, and until when (in memory, one per gateway).

    Args:
        scope_id: the microscope's id, named in every :class:`LeaseInfo`.
        clock: monotonic seconds; injectable so that tests can move time.
    """

    def __init__(self, scope_id: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.scope_id = scope_id
        self._clock = clock
        self._lease: _Lease | None = None

    # ---- reading ----------------------------------------------------------------------------
    def _active(self) -> _Lease | None:
        """The lease unless its time is up (an expired lease stays until ``expire_if_due``)."""
        lease = self._lease
        if lease is not None and self._clock() >= lease.expires_mono_s:
            return None
        return lease

    def current(self) -> LeaseInfo:
        """The lease as it stands now (an expired lease reads as free)."""
        return self._info()

    @property
    def holder(self) -> str | None:
        lease = self._active()
        return lease.holder if lease else None

    def seconds_left(self) -> float | None:
        """Seconds until the lease expires (0 when it expired unannounced); None when free."""
        if self._lease is None:
            return None
        return max(self._lease.expires_mono_s - self._clock(), 0.0)

    def check(self, session_id: str) -> None:
        """Raise unless ``session_id`` holds the lease.

        Raises:
            LeaseHeld: another session holds it (the message names the holder and expiry).
            Conflict: nobody holds it; the session must take it first.
        """
        lease = self._active()
        if lease is None:
            raise Conflict(f"session {session_id} does not hold the lease of {self.scope_id}; "
                           "take it first (POST /v1/lease)", scope_id=self.scope_id)
        if lease.holder != session_id:
            raise self._held_error(session_id)

    # ---- changing ---------------------------------------------------------------------------
    def take(self, session_id: str, *, ttl_s: float) -> LeaseInfo:
        """Take a free lease, or renew it when ``session_id`` already holds it.

        Raises:
            LeaseHeld: another session holds it.
        """
        lease = self._active()
        if lease is not None and lease.holder != session_id:
            raise self._held_error(session_id)
        self._lease = _Lease(session_id, ttl_s, self._clock() + ttl_s)
        return self._info()

    def renew(self, session_id: str, *, ttl_s: float) -> LeaseInfo:
        """Extend the holder's lease by ``ttl_s`` from now.

        Raises:
            LeaseHeld: another session holds it.
            Conflict: nobody holds it (it expired); take it again.
        """
        self.check(session_id)
        return self.take(session_id, ttl_s=ttl_s)

    def release(self, session_id: str) -> LeaseInfo:
        """Give the lease back; releasing a lease nobody holds is a no-op.

        Raises:
            LeaseHeld: another session holds it.
        """
        lease = self._active()
        if lease is not None and lease.holder != session_id:
            raise self._held_error(session_id)
        self._lease = None
        return self._info()

    def expire_if_due(self) -> bool:
        """Drop the lease if its time is up; True when it was dropped just now."""
        if self._lease is not None and self._clock() >= self._lease.expires_mono_s:
            self._lease = None
            return True
        return False

    # ---- helpers ----------------------------------------------------------------------------
    def _info(self) -> LeaseInfo:
        lease = self._active()
        if lease is None:
            return LeaseInfo(scope_id=self.scope_id, holder=None, expires_at=None)
        left = max(lease.expires_mono_s - self._clock(), 0.0)
        return LeaseInfo(scope_id=self.scope_id, holder=lease.holder,
                         expires_at=utcnow() + timedelta(seconds=left), ttl_s=lease.ttl_s)

    def _held_error(self, session_id: str) -> LeaseHeld:
        info = self._info()
        expires = info.expires_at.isoformat(timespec="seconds") if info.expires_at else "never"
        return LeaseHeld(
            f"microscope {self.scope_id} is leased to session {info.holder} until {expires}; "
            f"session {session_id} must wait", scope_id=self.scope_id, holder=info.holder,
            expires_at=expires,
        )
