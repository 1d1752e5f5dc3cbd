"""Passwords, tokens, login throttling and the role permission table.

- Passwords are hashed with argon2id (argon2-cffi); hashes made with older parameters are upgraded on sign-in.
- Browsers get short-lived signed JWT access tokens (HS256). Each carries the user's ``token_generation``; bumping
  it (password change, deactivation, role change) invalidates every token issued before.
- Scripts use API tokens ``medai_<random>``: only their SHA-256 is stored; they expire and can be revoked.
- Sign-in is throttled per user name and per client address from the ``login_failures`` table.

Examples:
    >>> hasher, chosen = password_hasher(time_cost=1, memory_kib=8), secrets.token_urlsafe(12)
    >>> verify_password(hasher, hasher.hash(chosen), chosen), verify_password(hasher, hasher.hash(chosen), chosen + "x")
    (True, False)
    >>> allowed("clinician", "predict"), allowed("clinician", "models:write")
    (True, False)
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import datetime, timedelta, timezone

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from medai.service.models import LoginFailure, User

API_TOKEN_PREFIX = "medai_"
JWT_ALGORITHM = "HS256"
JWT_ISSUER = "medai"
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256

# Which roles may do what. Every route names one permission; admins manage people and read the audit log,
# researchers manage models, clinicians (and researchers validating a model) predict and explain.
PERMISSIONS: dict[str, frozenset[str]] = {
    "users:manage": frozenset({"admin"}),
    "audit:read": frozenset({"admin"}),
    "models:read": frozenset({"admin", "researcher", "clinician"}),
    "models:write": frozenset({"researcher"}),
    "predict": frozenset({"clinician", "researcher"}),
}
PERMISSION_NAMES = {
    "users:manage": "manage user accounts",
    "audit:read": "read the audit log",
    "models:read": "list models",
    "models:write": "register, stage or retire models",
    "predict": "run predictions and explanations",
}


def allowed(role: str, permission: str) -> bool:
    """True when ``role`` holds ``permission`` (a key of PERMISSIONS)."""
    return role in PERMISSIONS[permission]


def denial_message(role: str, permission: str) -> str:
    needed = " or ".join(sorted(PERMISSIONS[permission]))
    return f"Your role '{role}' may not {PERMISSION_NAMES[permission]}; this needs the {needed} role."


# -- passwords ---------------------------------------------------------------------------------------------------


def password_hasher(time_cost: int = 3, memory_kib: int = 64 * 1024) -> PasswordHasher:
    """An argon2id hasher with the given cost."""
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)


def verify_password(hasher: PasswordHasher, stored_hash: str, password: str) -> bool:
    """True when ``password`` matches ``stored_hash``; False for a mismatch or an unreadable hash."""
    try:
        return hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_problem(password: str, username: str = "") -> str | None:
    """Why ``password`` is not acceptable, or None when it is."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"The password must have at least {MIN_PASSWORD_LENGTH} characters; it has {len(password)}."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"The password must have at most {MAX_PASSWORD_LENGTH} characters."
    if username and username.lower() in password.lower():
        return "The password must not contain the user name."
    if len(set(password)) < 4:
        return "The password must use at least 4 different characters."
    return None


# -- access tokens (browser) -------------------------------------------------------------------------------------


class TokenError(Exception):
    """An access token that is expired, tampered with, or otherwise unusable; the message says which."""


def create_access_token(user: User, key: str, minutes: int, now: datetime | None = None) -> str:
    """A signed JWT for ``user``, valid for ``minutes``."""
    now = now or datetime.now(timezone.utc)
    claims = {"sub": str(user.id), "gen": user.token_generation, "iss": JWT_ISSUER, "typ": "access",
              "iat": now, "exp": now + timedelta(minutes=minutes), "jti": secrets.token_hex(8)}
    return jwt.encode(claims, key, algorithm=JWT_ALGORITHM)


def decode_access_token(token: str, key: str) -> tuple[int, int]:
    """``(user id, token generation)`` of a valid access token; raises TokenError otherwise."""
    user_id, generation, _ = read_access_token(token, key)
    return user_id, generation


def read_access_token(token: str, key: str) -> tuple[int, int, float]:
    """``(user id, token generation, seconds until it expires)`` of a valid access token; raises TokenError
    otherwise."""
    try:
        claims = jwt.decode(token, key, algorithms=[JWT_ALGORITHM], issuer=JWT_ISSUER,
                            options={"require": ["exp", "iat", "sub", "iss"]})
    except jwt.ExpiredSignatureError:
        raise TokenError("The access token has expired; sign in again.") from None
    except jwt.PyJWTError:
        raise TokenError("The access token is not valid (malformed, tampered with, or signed by another key).") from None
    if claims.get("typ") != "access" or not str(claims["sub"]).isdigit() or not isinstance(claims.get("gen"), int):
        raise TokenError("The access token is not valid (unexpected claims).")
    return int(claims["sub"]), claims["gen"], float(claims["exp"]) - time.time()


# -- API tokens (scripts) ----------------------------------------------------------------------------------------


def new_api_token() -> tuple[str, str, str]:
    """A fresh API token: ``(token, sha256 hex digest to store, display prefix)``."""
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hash_api_token(token), token[: len(API_TOKEN_PREFIX) + 6]


def hash_api_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_api_token(token: str) -> bool:
    return token.startswith(API_TOKEN_PREFIX)


# -- login throttling --------------------------------------------------------------------------------------------


def throttled_for(session: Session, username: str, client: str, *, max_failures: int, max_client_failures: int,
                  window_seconds: int, now: datetime | None = None) -> int:
    """Seconds until ``username`` may try again from ``client`` (0: allowed now).

    A user name with ``max_failures`` failures, or a client with ``max_client_failures``, within the last
    ``window_seconds`` is locked until its oldest counted failure leaves the window.
    """
    now = now or datetime.now(timezone.utc)
    since = now - timedelta(seconds=window_seconds)
    waits = []
    for column, value, limit in ((LoginFailure.username, username, max_failures),
                                 (LoginFailure.client, client, max_client_failures)):
        times = session.scalars(select(LoginFailure.at).where(column == value, LoginFailure.at > since)
                                .order_by(LoginFailure.at.desc()).limit(limit)).all()
        if len(times) >= limit:
            waits.append(int((times[-1] - since).total_seconds()) + 1)
    return max(waits, default=0)


def record_login_failure(session: Session, username: str, client: str, window_seconds: int) -> None:
    """Count one failed sign-in; failures older than the window are pruned now and then."""
    now = datetime.now(timezone.utc)
    session.add(LoginFailure(username=username, client=client, at=now))
    if secrets.randbelow(20) == 0:
        session.execute(delete(LoginFailure).where(LoginFailure.at < now - timedelta(seconds=window_seconds)))
    session.commit()


def clear_login_failures(session: Session, username: str) -> None:
    """Forget a user name's failures after a successful sign-in (the client's stay counted)."""
    session.execute(delete(LoginFailure).where(LoginFailure.username == username))
    session.commit()

