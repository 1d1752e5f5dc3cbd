"""The clinical decision-support service: an authenticated REST API and web UI over registered model bundles.

Start it with ``medai serve`` (``pip install 'medai[serve]'``). Its state lives under ``MEDAI_HOME`` (default
``~/.medai``): the database (SQLite by default, PostgreSQL with ``MEDAI_DATABASE_URL``), the registered bundles,
the secret key and temporary upload folders.

Modules:
    settings    ServiceSettings, read from ``MEDAI_*`` environment variables
    db          SQLAlchemy engine and sessions
    models      the tables: users, API tokens, login failures, registered models and versions, audit entries
    migrate     Alembic upgrade/downgrade (``migrations/`` holds the revisions)
    security    argon2 password hashing, JWT access tokens, API tokens, login throttling, role permissions
    accounts    user creation and password changes (password policy)
    deps        typed FastAPI dependencies: SessionDep, CurrentUser, role checks (Admin, ModelManager, Predictor ...)
    audit       the append-only, hash-chained audit log, ``verify_chain``, the group-committing AuditWriter
    registry    registering, staging and retiring bundles; the in-memory bundle cache and version directory
    inference   turning uploads and JSON records into task inputs; calling ``medai.api.predict/explain``;
                micro-batched image predictions, in a separate inference process
    expiring    ExpiringCache: checked tokens and resolved versions kept a few seconds
    middleware  request size limits, security headers, request logging, internal-error containment
    schemas     request and response models; errors: HTTP errors with clear messages
    app         ``create_app(settings)``; routes/ holds one module per resource, static/ the web UI
    runner      what ``medai serve`` and ``medai users create-admin`` do

Nothing here is imported by ``import medai``: FastAPI and SQLAlchemy load only when the service is used.
"""
