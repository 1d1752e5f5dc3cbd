"""Alembic environment: the URL (or an open connection) comes from :mod:`medai.service.migrate`, not an ini file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from medai.service.models import Base

target_metadata = Base.metadata


def run_offline() -> None:
    context.configure(url=context.config.attributes["url"], target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(context.config.attributes["url"], poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


try:
    offline = context.is_offline_mode()
except NameError:  # imported outside Alembic (e.g. by pytest's doctest collection): nothing to migrate
    offline = None
if offline is True:
    run_offline()
elif offline is False:
    run_online()
