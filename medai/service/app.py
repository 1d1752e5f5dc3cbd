"""``create_app(settings)``: the FastAPI application with its database, bundle cache and web UI.

Run it with ``medai serve``, or ``uvicorn --factory medai.service.app:create_app``. The database is upgraded to
the newest migration when the app is created. The OpenAPI schema is at ``/openapi.json``; the interactive
docs pages are off because they load scripts from a CDN.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError

from medai.errors import MedaiError
from medai.service import migrate
from medai.service.audit import AuditWriter
from medai.service.db import Database
from medai.service.deps import Services
from medai.service.errors import ServiceError
from medai.service.expiring import ExpiringCache
from medai.service.heap import freeze_long_lived
from medai.service.inference import Inference
from medai.service.middleware import SafeJSONResponse, ServiceMiddleware
from medai.service.registry import BundleCache, VersionDirectory
from medai.service.routes import audit, auth, health, models, predict, ui, users
from medai.service.security import password_hasher
from medai.service.settings import ServiceSettings

DESCRIPTION = """Clinical decision support over medai model bundles.

Sign in with `POST /api/auth/token` (form fields `username`, `password`) and send the token as
`Authorization: Bearer <token>`; scripts use API tokens from `POST /api/tokens`. Every route except
`GET /health` needs a token. Every prediction, explanation, registry change, sign-in and audit read is recorded
in a hash-chained audit log."""
ROUTERS = (health.router, auth.router, users.router, models.router, predict.router, audit.router, ui.router)  # as documented


def create_app(settings: ServiceSettings | None = None, *, upgrade_database: bool = True) -> FastAPI:
    """Build the service.

    Args:
        settings: defaults to ``ServiceSettings()`` (read from the ``MEDAI_*`` environment).
        upgrade_database: run the Alembic migrations up to the newest revision first.
    """
    from medai import __version__

    settings = settings or ServiceSettings()
    settings.prepare()
    url = settings.database_url_resolved
    if upgrade_database:
        migrate.upgrade(url)
    _owner_only(url)
    hasher = password_hasher(settings.argon2_time_cost, settings.argon2_memory_kib)
    cache = BundleCache(settings.bundle_cache_size, freeze=settings.freeze_heap)
    database = Database(url)
    services = Services(settings=settings, database=database, hasher=hasher, cache=cache,
                        inference=Inference(cache, settings.inference_threads, settings.max_batch,
                                            settings.inference_chunk, settings.inference_processes),
                        signing_key=settings.signing_key(), dummy_hash=hasher.hash(os.urandom(16).hex()),
                        identities=ExpiringCache(settings.auth_cache_seconds),
                        versions=VersionDirectory(database, settings.auth_cache_seconds),
                        audit_writer=AuditWriter(database))

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        if settings.freeze_heap:
            freeze_long_lived()  # the app and its imports live as long as the process: no full GC pass walks them
        try:
            yield
        finally:
            services.inference.close()

    app = FastAPI(title="medai", version=__version__, description=DESCRIPTION, docs_url=None, redoc_url=None,
                  swagger_ui_oauth2_redirect_url=None, default_response_class=SafeJSONResponse, lifespan=lifespan)
    app.state.services = services
    for router in (predict.router, *(router for router in ROUTERS if router is not predict.router)):
        app.include_router(router)  # the prediction routes first: routes are tried in order on every request
    _document_in_order(app, ROUTERS)
    ui.mount_static(app)
    _add_error_handlers(app)
    app.add_middleware(ServiceMiddleware, default=settings.max_upload_bytes,
                       overrides={"/api/models/upload": settings.max_bundle_upload_bytes})
    return app


def _document_in_order(app: FastAPI, routers) -> None:
    """List the OpenAPI paths in the order of ``routers``, whatever order the app tries its routes in."""
    generate = app.openapi
    paths = [route.path for router in routers for route in router.routes]
    rank = {path: index for index, path in reversed(list(enumerate(paths)))}

    def openapi() -> dict:
        schema = generate()  # cached by FastAPI
        schema["paths"] = dict(sorted(schema["paths"].items(), key=lambda item: rank.get(item[0], len(rank))))
        return schema

    app.openapi = openapi


def _owner_only(url: str) -> None:
    """Make a SQLite database file readable by the service's user only (its -wal/-shm files inherit the mode)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        if path.exists():
            os.chmod(path, 0o600)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_request: Request, error: ServiceError) -> SafeJSONResponse:
        return SafeJSONResponse({"detail": str(error)}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> SafeJSONResponse:
        # The submitted values ('input') are left out: they may be patient data or passwords.
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                    for e in error.errors()]
        summary = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in problems[:5])
        return SafeJSONResponse({"detail": f"Invalid request: {summary}", "errors": problems}, status_code=422)

    @app.exception_handler(MedaiError)
    async def medai_error(_request: Request, error: MedaiError) -> SafeJSONResponse:
        return SafeJSONResponse({"detail": str(error)}, status_code=422)
