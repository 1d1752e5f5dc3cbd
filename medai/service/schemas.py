"""Request and response models, layered as in the FastAPI template: ``UserCreate`` in, ``UserPublic`` out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Role = Literal["admin", "researcher", "clinician"]
Stage = Literal["staging", "production"]
Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{2,63}$")]
Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]
FieldName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
FieldValue = float | int | bool | Annotated[str, StringConstraints(max_length=2000)] | None


class Message(BaseModel):
    detail: str


# -- users and tokens --------------------------------------------------------------------------------------------


class AccessToken(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    full_name: str
    role: Role
    is_active: bool
    created_at: datetime


class UserCreate(BaseModel):
    username: Username
    password: Password
    role: Role
    full_name: Annotated[str, StringConstraints(max_length=200)] = ""


class UserUpdate(BaseModel):
    role: Role | None = None
    is_active: bool | None = None
    password: Password | None = None
    full_name: Annotated[str, StringConstraints(max_length=200)] | None = None


class PasswordChange(BaseModel):
    current_password: Password
    new_password: Password


class ApiTokenCreate(BaseModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    expires_in_days: int | None = Field(None, ge=1, le=3650, description="Default: MEDAI_API_TOKEN_DAYS.")


class ApiTokenPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiTokenCreated(ApiTokenPublic):
    token: str = Field(description="The token itself; shown once, store it now.")


# -- registry ----------------------------------------------------------------------------------------------------


class ModelRegister(BaseModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    path: Annotated[str, StringConstraints(min_length=1, max_length=4096)] = Field(
        description="The bundle folder on the server, inside MEDAI_REGISTER_ROOTS.")
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    stage: Stage = "staging"


class StageUpdate(BaseModel):
    stage: Stage


class ModelVersionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    task: str
    checksum: str = Field(description="SHA-256 of the weights file.")
    stage: Stage
    retired: bool
    retired_at: datetime | None
    registered_at: datetime
    registered_by: str
    label_names: list[str]


class ModelPublic(BaseModel):
    name: str
    description: str
    created_at: datetime
    production_version: int | None
    versions: list[ModelVersionPublic]


class ModelVersionDetail(ModelVersionPublic):
    name: str
    card_markdown: str
    metrics: dict = Field(description="Headline test (or validation) metrics from metrics.json.")
    inputs: dict = Field(description="What the model accepts: kind, file suffixes, form fields.")


# -- predictions -------------------------------------------------------------------------------------------------


class RecordsInput(BaseModel):
    records: list[dict[FieldName, FieldValue]] = Field(min_length=1, max_length=100,
                                                       description="One object per patient record.")


class ModelRef(BaseModel):
    name: str
    version: int
    checksum: str
    task: str
    stage: Stage


class PredictionResponse(BaseModel):
    model: ModelRef
    input_sha256: str
    predictions: list[dict] = Field(description="The task's result per record: label, calibrated probabilities, "
                                                "and 'ood' when the model has an out-of-distribution detector.")


class ExplanationResponse(BaseModel):
    model: ModelRef
    input_sha256: str
    prediction: dict | None
    explanation: dict = Field(description="The task's explanation: contributions per feature, atoms, ...")
    image_png_base64: str | None = Field(description="The explanation picture (heat map overlay, contribution chart).")


# -- audit -------------------------------------------------------------------------------------------------------


class AuditEntryPublic(BaseModel):
    id: int
    at: str
    actor: str | None
    role: str | None
    action: str
    model_name: str | None
    model_version: int | None
    model_checksum: str | None
    input_sha256: str | None
    outcome: str
    detail: dict
    client: str | None
    prev_hash: str
    hash: str


class ChainStatus(BaseModel):
    valid: bool
    entries: int
    first_bad_id: int | None
    reason: str


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    database: bool
