"""Sign-in: ``POST /api/auth/token`` (OAuth2 password form) returns a short-lived access token.

Failed attempts are counted per user name and per client address; beyond the limits the answer is 429 with
``Retry-After`` until the window passes, even for the right password. Every attempt is audited.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select

from medai.service import audit
from medai.service.accounts import normalise_username
from medai.service.deps import ServicesDep, SessionDep, client_address
from medai.service.errors import TooManyRequests, Unauthorized
from medai.service.models import User
from medai.service.schemas import AccessToken
from medai.service.security import (
    clear_login_failures,
    create_access_token,
    record_login_failure,
    throttled_for,
    verify_password,
)

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/token", response_model=AccessToken)
def sign_in(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep,
            services: ServicesDep) -> AccessToken:
    """Exchange a user name and password for an access token (``Authorization: Bearer <token>``)."""
    settings = services.settings
    username, client = normalise_username(form.username)[:64], client_address(request)
    wait = throttled_for(session, username, client, max_failures=settings.login_max_failures,
                         max_client_failures=settings.login_ip_max_failures,
                         window_seconds=settings.login_window_seconds)
    if wait:
        audit.append(session, "auth.login", "throttled", actor=username, client=client)
        raise TooManyRequests(f"Too many failed sign-ins; try again in {wait} seconds.", retry_after=wait)
    user = session.scalar(select(User).where(User.username == username))
    stored = user.password_hash if user is not None else services.dummy_hash  # same work for unknown names
    if not verify_password(services.hasher, stored, form.password) or user is None or not user.is_active:
        record_login_failure(session, username, client, settings.login_window_seconds)
        audit.append(session, "auth.login", "denied", actor=username, client=client)
        raise Unauthorized("Wrong user name or password (or the account is deactivated).")
    if services.hasher.check_needs_rehash(user.password_hash):
        user.password_hash = services.hasher.hash(form.password)
    clear_login_failures(session, username)
    audit.append(session, "auth.login", "ok", actor=user, client=client)
    token = create_access_token(user, services.signing_key, settings.access_token_minutes)
    return AccessToken(access_token=token, expires_in=settings.access_token_minutes * 60)
