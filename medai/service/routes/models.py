"""The registry: list models and read their cards (every role); register, stage and retire (researchers)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse
from sqlalchemy import select

from medai.bundle import read_config
from medai.errors import MedaiError
from medai.service import audit
from medai.service.deps import IdPath, ModelManager, ModelReader, ServicesDep, SessionDep, client_address
from medai.service.errors import NotFound, Unprocessable, UnsupportedMediaType
from medai.service.inference import Scratch, input_spec
from medai.service.models import ModelVersion, RegisteredModel
from medai.service.registry import (
    check_name,
    check_register_path,
    get_model,
    get_version,
    register,
    retire,
    set_stage,
    unpack_bundle_zip,
)
from medai.service.schemas import ModelPublic, ModelRegister, ModelVersionDetail, ModelVersionPublic, StageUpdate

router = APIRouter(prefix="/api/models", tags=["models"])
PLOT_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}\.png$")
HEADLINE = ("auroc", "auprc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1", "brier", "ece",
            "rmse", "mae", "r2", "ci", "n_samples")


def model_public(model: RegisteredModel) -> ModelPublic:
    production = [v.version for v in model.versions if v.stage == "production" and not v.retired]
    return ModelPublic(name=model.name, description=model.description, created_at=model.created_at,
                       production_version=production[0] if production else None,
                       versions=[ModelVersionPublic.model_validate(v) for v in model.versions])


def version_detail(version: ModelVersion) -> ModelVersionDetail:
    folder = Path(version.storage_path)
    try:
        config = read_config(folder)
    except MedaiError:
        config = {}
    metrics = _read_json(folder / "metrics.json")
    split = next((name for name in ("test", "val") if isinstance(metrics.get(name), dict)), None)
    headline = {k: v for k, v in metrics.get(split, {}).items() if k in HEADLINE and isinstance(v, (int, float))}
    card = (folder / "card.md").read_text(errors="replace") if (folder / "card.md").is_file() else ""
    return ModelVersionDetail(**ModelVersionPublic.model_validate(version).model_dump(), name=version.model.name,
                              card_markdown=card, metrics={"split": split, **headline}, inputs=input_spec(config))


def _read_json(path: Path) -> dict:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


@router.get("", response_model=list[ModelPublic])
def list_models(user: ModelReader, session: SessionDep) -> list[ModelPublic]:
    """Every registered model with its versions."""
    return [model_public(m) for m in session.scalars(select(RegisteredModel).order_by(RegisteredModel.name))]


@router.get("/{name}", response_model=ModelPublic)
def read_model(name: str, user: ModelReader, session: SessionDep) -> ModelPublic:
    return model_public(get_model(session, name))


@router.get("/{name}/versions/{version}", response_model=ModelVersionDetail)
def read_version(name: str, version: IdPath, user: ModelReader, session: SessionDep) -> ModelVersionDetail:
    """One version: its model card (Markdown), headline metrics and what it accepts as input."""
    return version_detail(get_version(session, name, version))


@router.get("/{name}/versions/{version}/files/plots/{filename}", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}}}})
def read_plot(name: str, version: IdPath, filename: str, user: ModelReader, session: SessionDep) -> FileResponse:
    """A plot of the bundle (ROC, calibration ...) referenced by its model card."""
    found = get_version(session, name, version)
    if not PLOT_NAME.fullmatch(filename):
        raise NotFound("Plots are PNG files named with letters, digits, '_', '.' and '-'.")
    path = Path(found.storage_path) / "plots" / filename
    if not path.is_file():
        raise NotFound(f"This bundle has no plot named {filename!r}.")
    return FileResponse(path, media_type="image/png")


@router.post("", response_model=ModelVersionDetail, status_code=201)
def register_from_path(body: ModelRegister, request: Request, user: ModelManager, session: SessionDep,
                       services: ServicesDep) -> ModelVersionDetail:
    """Register the bundle folder at ``path`` on the server (inside MEDAI_REGISTER_ROOTS) as a new version."""
    check_name(body.name)
    folder = check_register_path(body.path, services.settings.register_roots_resolved)
    return _register(session, services, request, user, body.name, folder, body.description, body.stage,
                     source=str(folder))


@router.post("/upload", response_model=ModelVersionDetail, status_code=201)
def register_upload(request: Request, user: ModelManager, session: SessionDep, services: ServicesDep,
                    name: Annotated[str, Form(max_length=200)], file: Annotated[UploadFile, File()],
                    description: Annotated[str, Form(max_length=2000)] = "",
                    stage: Annotated[str, Form(pattern="^(staging|production)$")] = "staging") -> ModelVersionDetail:
    """Register a zipped bundle folder (config.json and weights inside) as a new version of ``name``."""
    check_name(name)
    if not (file.filename or "").lower().endswith(".zip"):
        raise UnsupportedMediaType("Upload the bundle folder as a .zip file.")
    with Scratch(services.settings.scratch_dir) as scratch:
        archive = scratch / "bundle.zip"
        with open(archive, "wb") as handle:
            shutil.copyfileobj(file.file, handle, length=1024 * 1024)
        folder = unpack_bundle_zip(archive, scratch / "unpacked", services.settings.max_bundle_upload_bytes)
        return _register(session, services, request, user, name, folder, description, stage, source="upload")


def _register(session, services, request, user, name, folder, description, stage, source) -> ModelVersionDetail:
    try:
        version, bundle = register(session, services.settings.bundles_dir, name, folder, actor=user.username,
                                   description=description, stage=stage, source=source)
    except Unprocessable as error:
        session.rollback()
        audit.append(session, "model.register", "invalid", actor=user, model_name=name,
                     client=client_address(request), detail={"reason": str(error)[:300]})
        raise
    audit.append(session, "model.register", "ok", actor=user, version=version, client=client_address(request),
                 detail={"task": version.task, "stage": version.stage, "source": "upload" if source == "upload" else "path"})
    services.cache.put(version.id, bundle)
    services.versions.clear()  # a new production version serves at once
    return version_detail(version)


@router.patch("/{name}/versions/{version}", response_model=ModelVersionDetail)
def update_stage(name: str, version: IdPath, body: StageUpdate, request: Request, user: ModelManager,
                 session: SessionDep, services: ServicesDep) -> ModelVersionDetail:
    """Set a version's stage; making one production demotes the previous production version to staging."""
    found = get_version(session, name, version)
    set_stage(session, found, body.stage)
    audit.append(session, "model.stage", "ok", actor=user, version=found, client=client_address(request),
                 detail={"stage": body.stage})
    services.versions.clear()
    return version_detail(found)


@router.post("/{name}/versions/{version}/retire", response_model=ModelVersionDetail)
def retire_version(name: str, version: IdPath, request: Request, user: ModelManager, session: SessionDep,
                   services: ServicesDep) -> ModelVersionDetail:
    """Retire a version: no more predictions with it (its files and audit entries stay)."""
    found = get_version(session, name, version)
    retire(session, found)
    audit.append(session, "model.retire", "ok", actor=user, version=found, client=client_address(request))
    services.cache.evict(found.id)
    services.versions.clear()
    return version_detail(found)
