"""Alembic migrations of the teleconsult schema."""
