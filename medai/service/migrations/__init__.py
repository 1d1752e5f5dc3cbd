"""Alembic migrations of the service database; run them with :mod:`medai.service.migrate` or ``medai serve``."""
