"""What ``medai serve`` and ``medai users create-admin`` do, kept out of the CLI module."""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from medai.service.settings import ServiceSettings, load_settings


def serve(host: str = "127.0.0.1", port: int = 8000, settings: ServiceSettings | None = None) -> None:
    """Upgrade the database and serve the app with uvicorn until interrupted."""
    import uvicorn

    from medai.service.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings or load_settings()
    app = create_app(settings)
    log = logging.getLogger("medai.service")
    log.info("MEDAI_HOME %s; database %s", settings.home, _safe_url(settings.database_url_resolved))
    if not admin_exists(app.state.services.database):
        log.warning("no administrator yet: create one with `medai users create-admin --username NAME`")
    # uvicorn's own access log would print query strings; the service logs each request itself (ServiceMiddleware).
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="info", server_header=False)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def admin_exists(database) -> bool:
    from medai.service.models import User

    with database.session() as session:
        return bool(session.scalar(select(func.count()).select_from(User).where(User.role == "admin")))


def create_admin(username: str, password: str, full_name: str = "", settings: ServiceSettings | None = None) -> str:
    """Create an administrator account (upgrading the database first); returns the stored user name."""
    from medai.service import audit, migrate
    from medai.service.accounts import create_user
    from medai.service.db import Database
    from medai.service.security import password_hasher

    settings = settings or load_settings()
    settings.prepare()
    url = settings.database_url_resolved
    migrate.upgrade(url)
    database = Database(url)
    try:
        with database.session() as session:
            hasher = password_hasher(settings.argon2_time_cost, settings.argon2_memory_kib)
            user = create_user(session, hasher, username, password, "admin", full_name)
            audit.append(session, "user.create", "ok", actor="command-line", client="localhost",
                         detail={"user": user.username, "role": "admin"})
            return user.username
    finally:
        database.dispose()
