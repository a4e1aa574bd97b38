"""Alembic migrations of the review queue (version table ``alembic_version_queue``)."""
