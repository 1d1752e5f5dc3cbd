"""The service's tables (SQLAlchemy 2 declarative mapping). Schema changes go through an Alembic migration.

- ``users``: accounts with one role each (admin, researcher, clinician) and an argon2 password hash.
- ``api_tokens``: revocable tokens for scripts, stored as SHA-256 digests (the token itself is shown once).
- ``login_failures``: recent failed sign-ins, for throttling per user name and per client address.
- ``registered_models`` / ``model_versions``: the registry; each version is a bundle folder copied under
  ``MEDAI_HOME/bundles`` with the weights' checksum recorded at registration.
- ``audit_entries`` / ``audit_anchor``: the append-only, hash-chained audit log (see :mod:`medai.service.audit`).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, TypeDecorator, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ROLES = ("admin", "researcher", "clinician")
STAGES = ("staging", "production")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite stores them naive; they come back as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(timezone.utc)")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    token_generation: Mapped[int] = mapped_column(Integer, default=0)  # bumped to invalidate issued access tokens
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    api_tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(20))  # the token's first characters, to recognise it in a list
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)  # sha256 hex of the token
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[User] = relationship(back_populates="api_tokens")


class LoginFailure(Base):
    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    client: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class RegisteredModel(Base):
    __tablename__ = "registered_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))

    versions: Mapped[list[ModelVersion]] = relationship(back_populates="model", order_by="ModelVersion.version")


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    task: Mapped[str] = mapped_column(String(64))
    checksum: Mapped[str] = mapped_column(String(64))  # sha256 of the weights file, as verified at registration
    storage_path: Mapped[str] = mapped_column(Text)  # the bundle folder under MEDAI_HOME/bundles
    source: Mapped[str] = mapped_column(Text, default="")  # where it was registered from (path or upload name)
    stage: Mapped[str] = mapped_column(String(20), default="staging")
    label_names: Mapped[list] = mapped_column(JSON, default=list)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    registered_by: Mapped[str] = mapped_column(String(64))
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    model: Mapped[RegisteredModel] = relationship(back_populates="versions")

    @property
    def retired(self) -> bool:
        return self.retired_at is not None

    @property
    def model_name(self) -> str:
        return self.model.name


class AuditEntry(Base):
    """One audited event. ``hash`` = sha256(prev_hash + canonical JSON of every other column); never updated."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # consecutive from 1
    at: Mapped[str] = mapped_column(String(32), index=True)  # ISO 8601 UTC with microseconds, as hashed
    actor: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    role: Mapped[str | None] = mapped_column(String(20), nullable=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    model_name: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model_checksum: Mapped[str | None] = mapped_column(String(64), nullable=True)
    input_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="{}")  # canonical JSON; never patient data
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditAnchor(Base):
    """A single row holding the last entry's id and hash: detects a deleted tail, and serialises appends."""

    __tablename__ = "audit_anchor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
