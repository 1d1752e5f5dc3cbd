"""User accounts: creation with the password policy, and the first administrator (``medai users create-admin``)."""

from __future__ import annotations

from datetime import datetime, timezone

from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medai.service.errors import Conflict, Unprocessable
from medai.service.models import ROLES, User
from medai.service.security import password_problem


def normalise_username(username: str) -> str:
    """User names compare case-insensitively: stored and looked up in lower case, without surrounding spaces."""
    return username.strip().lower()


def create_user(session: Session, hasher: PasswordHasher, username: str, password: str, role: str,
                full_name: str = "") -> User:
    """Add a user (not committed); refuses a taken name, an unknown role or a weak password."""
    username = normalise_username(username)
    if role not in ROLES:
        raise Unprocessable(f"The role must be one of {', '.join(ROLES)}; got {role!r}.")
    problem = password_problem(password, username)
    if problem:
        raise Unprocessable(problem)
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise Conflict(f"The user name {username!r} is taken.")
    user = User(username=username, full_name=full_name, role=role, password_hash=hasher.hash(password))
    session.add(user)
    session.flush()
    return user


def set_password(user: User, hasher: PasswordHasher, password: str) -> None:
    """Replace a password (policy checked) and invalidate the user's access tokens."""
    problem = password_problem(password, user.username)
    if problem:
        raise Unprocessable(problem)
    user.password_hash = hasher.hash(password)
    user.password_changed_at = datetime.now(timezone.utc)
    user.token_generation += 1


def active_admins(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User).where(User.role == "admin", User.is_active)) or 0
