"""Typed FastAPI dependencies: the database session, the signed-in user, and role checks.

Routes declare what they need in their signature::

    @router.post("/models/{name}/predict/file")
    async def predict_file(name: str, user: Predictor, session: SessionDep): ...

A missing, expired, tampered or revoked token answers 401; a valid user whose role lacks the route's permission
answers 403 (and the denial is audited).
"""

from __future__ import annotations

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
from medai.service.expiring import ExpiringCache
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
    read_access_token,
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
    # checked tokens' identities for the prediction routes (MEDAI_AUTH_CACHE_SECONDS): a password, role or activation
    # change and a token revocation made through this process clear it at once; other processes within the seconds
    identities: ExpiringCache = field(default_factory=lambda: ExpiringCache(5.0))
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
    user, _ = _token_user(session, _required(token), services)
    request.state.user = user.username
    return user


def _required(token: str | None) -> str:
    if not token:
        raise Unauthorized("Sign in first: send 'Authorization: Bearer <token>' with a token from POST "
                           f"{TOKEN_URL} or an API token.")
    return token


def _token_user(session: Session, token: str, services: Services) -> tuple[User, datetime | None]:
    """The active user a token belongs to, and when an API token expires (None for an access token, whose expiry
    is checked from the token itself)."""
    if is_api_token(token):
        record = _api_token_record(session, token)
        user, expires_at = record.user, record.expires_at
    else:
        user, expires_at = _access_token_user(session, token, services), None
    if not user.is_active:
        raise Unauthorized("This account is deactivated; ask an administrator.")
    return user, expires_at


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


async def current_identity(request: Request, token: str | None) -> Identity:
    """The identity of a bearer token, as ``get_current_user`` checks it, from ``services.identities`` when there."""
    services = request.app.state.services
    token = _required(token)
    key = ("api", hash_api_token(token)) if is_api_token(token) else ("access", token)
    identity = services.identities.get(key)  # kept no longer than the token is valid
    if identity is None:
        left = None
        if key[0] == "access":
            try:
                left = read_access_token(token, services.signing_key)[2]  # signature and expiry
            except TokenError as error:
                raise Unauthorized(str(error)) from None
        identity, expires_at = await run_in_threadpool(_look_up_identity, services, token)
        if expires_at is not None:
            left = (expires_at - datetime.now(timezone.utc)).total_seconds()
        services.identities.put(key, identity, left)
    request.state.user = identity.username
    return identity


def _look_up_identity(services: Services, token: str) -> tuple[Identity, datetime | None]:
    with services.database.session() as session:
        user, expires_at = _token_user(session, token, services)
        return Identity(user.id, user.username, user.role), expires_at


class RoleBearer(OAuth2PasswordBearer):
    """Like :func:`require`, for routes that need only the identity (no session is opened when it is cached).

    The bearer scheme itself (the same OpenAPI security scheme as ``bearer``) that also checks the token and the
    role: the prediction routes' one dependency, since FastAPI solves each dependency anew on every request.
    """

    def __init__(self, permission: str):
        super().__init__(tokenUrl=TOKEN_URL, auto_error=False, scheme_name=bearer.scheme_name)
        self.permission = permission

    async def __call__(self, request: Request) -> Identity:
        identity = await current_identity(request, await super().__call__(request))
        if not allowed(identity.role, self.permission):
            route = getattr(request.scope.get("route"), "path", request.url.path)
            await request.app.state.services.audit_writer.append(audit.Event(
                "access.denied", "denied", actor=identity, client=client_address(request),
                detail={"permission": self.permission, "route": route, "method": request.method}))
            raise Forbidden(denial_message(identity.role, self.permission))
        return identity


Predictor = Annotated[Identity, Depends(RoleBearer("predict"))]
