"""Accounts and API tokens: your own (``/api/users/me``, ``/api/tokens``) and, for admins, everyone's."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fastapi import APIRouter, Request
from sqlalchemy import select

from medai.service import audit
from medai.service.accounts import active_admins, create_user, set_password
from medai.service.deps import Admin, CurrentUser, IdPath, ServicesDep, SessionDep, client_address
from medai.service.errors import Conflict, NotFound, Unprocessable
from medai.service.models import ApiToken, User
from medai.service.schemas import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenPublic,
    Message,
    PasswordChange,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from medai.service.security import allowed, new_api_token, verify_password

router = APIRouter(prefix="/api", tags=["users"])


@router.get("/users/me", response_model=UserPublic)
def read_me(user: CurrentUser) -> User:
    """The signed-in user."""
    return user


@router.post("/users/me/password", response_model=Message)
def change_my_password(body: PasswordChange, request: Request, user: CurrentUser, session: SessionDep,
                       services: ServicesDep) -> Message:
    """Change your password; every access token issued before stops working."""
    if not verify_password(services.hasher, user.password_hash, body.current_password):
        audit.append(session, "user.password_change", "denied", actor=user, client=client_address(request))
        raise Unprocessable("The current password is wrong.")
    set_password(user, services.hasher, body.new_password)
    audit.append(session, "user.password_change", "ok", actor=user, client=client_address(request))
    services.identities.clear()  # the old tokens stop working at once
    return Message(detail="Password changed; sign in again.")


@router.get("/users", response_model=list[UserPublic])
def list_users(admin: Admin, session: SessionDep) -> list[User]:
    """Every account (admins only)."""
    return list(session.scalars(select(User).order_by(User.username)))


@router.post("/users", response_model=UserPublic, status_code=201)
def add_user(body: UserCreate, request: Request, admin: Admin, session: SessionDep, services: ServicesDep) -> User:
    """Create an account (admins only)."""
    user = create_user(session, services.hasher, body.username, body.password, body.role, body.full_name)
    audit.append(session, "user.create", "ok", actor=admin, client=client_address(request),
                 detail={"user": user.username, "role": user.role})
    return user


@router.patch("/users/{user_id}", response_model=UserPublic)
def update_user(user_id: IdPath, body: UserUpdate, request: Request, admin: Admin, session: SessionDep,
                services: ServicesDep) -> User:
    """Change an account's role, activity, name or password (admins only); the last active admin stays one."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id}.")
    demoted = (body.role is not None and body.role != "admin") or body.is_active is False
    if user.role == "admin" and user.is_active and demoted and active_admins(session) <= 1:
        raise Conflict("This is the last active administrator; make another administrator first.")
    changed = []
    if body.role is not None and body.role != user.role:
        user.role = body.role
        changed.append("role")
    if body.is_active is not None and body.is_active != user.is_active:
        user.is_active = body.is_active
        changed.append("is_active")
    if body.full_name is not None:
        user.full_name = body.full_name
        changed.append("full_name")
    if body.password is not None:
        set_password(user, services.hasher, body.password)
        changed.append("password")
    if {"role", "is_active"} & set(changed):
        user.token_generation += 1
    audit.append(session, "user.update", "ok", actor=admin, client=client_address(request),
                 detail={"user": user.username, "changed": changed, "role": user.role, "active": user.is_active})
    services.identities.clear()
    return user


@router.get("/tokens", response_model=list[ApiTokenPublic])
def list_tokens(user: CurrentUser, session: SessionDep) -> list[ApiToken]:
    """Your API tokens (the tokens themselves are never shown again)."""
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)))


@router.post("/tokens", response_model=ApiTokenCreated, status_code=201)
def create_token(body: ApiTokenCreate, request: Request, user: CurrentUser, session: SessionDep,
                 services: ServicesDep) -> ApiTokenCreated:
    """Create an API token for scripts; it acts with your role until it expires or is revoked."""
    token, digest, prefix = new_api_token()
    days = body.expires_in_days or services.settings.api_token_days
    record = ApiToken(user_id=user.id, name=body.name, prefix=prefix, token_hash=digest,
                      expires_at=datetime.now(timezone.utc) + timedelta(days=days))
    session.add(record)
    session.flush()
    audit.append(session, "token.create", "ok", actor=user, client=client_address(request),
                 detail={"token_id": record.id, "days": days})
    return ApiTokenCreated(**ApiTokenPublic.model_validate(record).model_dump(), token=token)


@router.delete("/tokens/{token_id}", response_model=Message)
def revoke_token(token_id: IdPath, request: Request, user: CurrentUser, session: SessionDep,
                 services: ServicesDep) -> Message:
    """Revoke one of your API tokens (admins may revoke anyone's)."""
    record = session.get(ApiToken, token_id)
    if record is None or (record.user_id != user.id and not allowed(user.role, "users:manage")):
        raise NotFound(f"No API token {token_id} of yours.")
    if record.revoked_at is None:
        record.revoked_at = datetime.now(timezone.utc)
    audit.append(session, "token.revoke", "ok", actor=user, client=client_address(request),
                 detail={"token_id": token_id, "owner": record.user.username})
    services.identities.clear()
    return Message(detail=f"API token {token_id} revoked.")
