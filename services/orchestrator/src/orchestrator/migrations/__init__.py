"""Alembic migrations of the orchestrator database (run by :func:`orchestrator.db.migrate`)."""
