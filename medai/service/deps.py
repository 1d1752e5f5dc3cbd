"""Typed FastAPI dependencies: the database session, the signed-in user, and role checks.

Routes declare what they need in their signature::

    @router.post("/models/{name}/predict/file")
    async def predict_file(name: str, user: Predictor, session: SessionDep): ...

A missing, expired, tampered or revoked token answers 401; a valid user whose role lacks the route's permission
answers 403 (and the denial is audited).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Annotated

from argon2 import PasswordHasher
from fastapi import Depends, Path, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from medai.service import audit
from medai.service.audit import AuditWriter
from medai.service.db import Database
from medai.service.errors import Forbidden, Unauthorized
from medai.service.inference import Inference
from medai.service.models import ApiToken, User
from medai.service.registry import BundleCache, VersionDirectory
from medai.service.security import (
    TokenError,
    allowed,
    decode_access_token,
    denial_message,
    hash_api_token,
    is_api_token,
)
from medai.service.settings import ServiceSettings

TOKEN_URL = "/api/auth/token"
LAST_USED_RESOLUTION = timedelta(minutes=1)  # how often an API token's last_used_at is written
MAX_ID = 2**63 - 1  # the largest id or version the database can hold; a larger number cannot even be looked up
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]  # an id or version number in a URL (422, not 500, when out of range)


@dataclass(frozen=True)
class Identity:
    """Who a valid token belongs to, detached from any database session (what a prediction needs)."""

    id: int
    username: str
    role: str


class IdentityCache:
    """Identities of recently checked tokens, each kept ``seconds`` (at most until the token expires).

    Lets the prediction routes authenticate without a database round trip. A password, role or activation
    change and a token revocation made through this process clear it at once (``clear``); other processes
    serving the same database honour them within ``seconds``. ``seconds=0`` turns it off.
    """

    def __init__(self, seconds: float = 5.0):
        self.seconds = seconds
        self._known: dict[tuple, tuple[Identity, float]] = {}

    def get(self, key: tuple) -> Identity | None:
        found = self._known.get(key)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def put(self, key: tuple, identity: Identity, expires_at: datetime | None = None) -> None:
        if self.seconds <= 0:
            return
        until = time.monotonic() + self.seconds
        if expires_at is not None:
            until = min(until, time.monotonic() + (expires_at - datetime.now(timezone.utc)).total_seconds())
        if len(self._known) > 10_000:  # many distinct tokens: start afresh rather than grow
            self._known.clear()
        self._known[key] = (identity, until)

    def clear(self) -> None:
        self._known.clear()


@dataclass
class Services:
    """Everything a request may need, created once by ``create_app`` and kept on ``app.state.services``."""

    settings: ServiceSettings
    database: Database
    hasher: PasswordHasher
    cache: BundleCache
    inference: Inference
    signing_key: str
    dummy_hash: str  # verified against for unknown user names, so that they take as long as known ones
    identities: IdentityCache = field(default_factory=IdentityCache)
    versions: VersionDirectory | None = None  # usable model versions kept in memory for predictions
    audit_writer: AuditWriter | None = None  # group-committed audit entries of predictions


async def get_services(request: Request) -> Services:  # async: a sync dependency would cost a thread hop
    return request.app.state.services


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.services.database.session() as session:
        yield session


ServicesDep = Annotated[Services, Depends(get_services)]
SessionDep = Annotated[Session, Depends(get_session)]
bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def get_current_user(request: Request, session: SessionDep, services: ServicesDep,
                     token: Annotated[str | None, Depends(bearer)]) -> User:
    """The user a bearer token (a browser access token or an API token) belongs to."""
    if not token:
        raise Unauthorized("Sign in first: send 'Authorization: Bearer <token>' with a token from POST "
                           f"{TOKEN_URL} or an API token.")
    user = _api_token_user(session, token) if is_api_token(token) else _access_token_user(session, token, services)
    if not user.is_active:
        raise Unauthorized("This account is deactivated; ask an administrator.")
    request.state.user = user.username
    return user


def _access_token_user(session: Session, token: str, services: Services) -> User:
    try:
        user_id, generation = decode_access_token(token, services.signing_key)
    except TokenError as error:
        raise Unauthorized(str(error)) from None
    user = session.get(User, user_id)
    if user is None or user.token_generation != generation:
        raise Unauthorized("The access token is no longer valid (password or role changed, or account removed); "
                           "sign in again.")
    return user


def _api_token_user(session: Session, token: str) -> User:
    return _api_token_record(session, token).user


def _api_token_record(session: Session, token: str) -> ApiToken:
    """The stored, usable API token (its ``last_used_at`` updated); 401 when unknown, revoked or expired."""
    record = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_api_token(token)))
    now = datetime.now(timezone.utc)
    if record is None:
        raise Unauthorized("Unknown API token.")
    if record.revoked_at is not None:
        raise Unauthorized("This API token was revoked; create a new one.")
    if record.expires_at is not None and record.expires_at <= now:
        raise Unauthorized("This API token has expired; create a new one.")
    if record.last_used_at is None or now - record.last_used_at > LAST_USED_RESOLUTION:
        record.last_used_at = now
        session.commit()
    return record


CurrentUser = Annotated[User, Depends(get_current_user)]


def require(permission: str):
    """A dependency giving the current user when their role holds ``permission``; 403 (audited) otherwise."""

    def check(request: Request, user: CurrentUser, session: SessionDep) -> User:
        if not allowed(user.role, permission):
            route = getattr(request.scope.get("route"), "path", request.url.path)
            audit.append(session, "access.denied", "denied", actor=user, client=client_address(request),
                         detail={"permission": permission, "route": route, "method": request.method})
            raise Forbidden(denial_message(user.role, permission))
        return user

    return check


Admin = Annotated[User, Depends(require("users:manage"))]
AuditReader = Annotated[User, Depends(require("audit:read"))]
ModelReader = Annotated[User, Depends(require("models:read"))]
ModelManager = Annotated[User, Depends(require("models:write"))]


# -- the prediction routes' authentication: no database round trip while the identity is cached ------------------


async def current_identity(request: Request, services: ServicesDep,
                           token: Annotated[str | None, Depends(bearer)]) -> Identity:
    """The identity of a bearer token, as ``get_current_user`` checks it, from ``services.identities`` when there."""
    if not token:
        raise Unauthorized("Sign in first: send 'Authorization: Bearer <token>' with a token from POST "
                           f"{TOKEN_URL} or an API token.")
    if is_api_token(token):
        key = ("api", hash_api_token(token))
    else:
        try:
            key = ("access", *decode_access_token(token, services.signing_key))
        except TokenError as error:
            raise Unauthorized(str(error)) from None
    identity = services.identities.get(key)
    if identity is None:
        identity, expires_at = await run_in_threadpool(_look_up_identity, services, token)
        services.identities.put(key, identity, expires_at)
    request.state.user = identity.username
    return identity


def _look_up_identity(services: Services, token: str) -> tuple[Identity, datetime | None]:
    with services.database.session() as session:
        if is_api_token(token):
            record = _api_token_record(session, token)
            user, expires_at = record.user, record.expires_at
        else:
            user, expires_at = _access_token_user(session, token, services), None
        if not user.is_active:
            raise Unauthorized("This account is deactivated; ask an administrator.")
        return Identity(user.id, user.username, user.role), expires_at


def require_identity(permission: str):
    """Like :func:`require`, for routes that need only the identity (no session is opened when it is cached)."""

    async def check(request: Request, identity: Annotated[Identity, Depends(current_identity)],
                    services: ServicesDep) -> Identity:
        if not allowed(identity.role, permission):
            route = getattr(request.scope.get("route"), "path", request.url.path)
            await services.audit_writer.append(audit.Event(
                "access.denied", "denied", actor=identity, client=client_address(request),
                detail={"permission": permission, "route": route, "method": request.method}))
            raise Forbidden(denial_message(identity.role, permission))
        return identity

    return check


Predictor = Annotated[Identity, Depends(require_identity("predict"))]
