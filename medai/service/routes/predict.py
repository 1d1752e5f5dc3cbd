"""Predictions and explanations for every task, from an uploaded file or JSON records.

``POST /api/models/{name}/predict/file`` and ``.../explain/file`` take a multipart ``file``; ``.../predict/records``
and ``.../explain/records`` take ``{"records": [{field: value, ...}]}``. ``?version=N`` picks a version (default:
the production version); ``?target=CLASS`` picks the class to explain. Every call, whatever its outcome, leaves
one audit entry with the SHA-256 of the input (never the input itself).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from medai.service import audit
from medai.service.audit import canonical_json
from medai.service.deps import MAX_ID, Predictor, ServicesDep, SessionDep, client_address
from medai.service.errors import ServiceError
from medai.service.inference import Scratch, check_content, input_spec, sha256_hex, upload_suffix, write_records
from medai.service.models import ModelVersion
from medai.service.registry import get_version
from medai.service.schemas import ExplanationResponse, ModelRef, PredictionResponse, RecordsInput

router = APIRouter(prefix="/api/models", tags=["predict"])
VersionQuery = Annotated[int | None, Query(ge=1, le=MAX_ID, description="Version to use; default: the production version.")]
TargetQuery = Annotated[str | None, Query(max_length=200, description="Class to explain; default: the predicted one.")]
Writer = Callable[[Path, dict, dict], Awaitable[tuple[Path, str, str]]]  # (scratch, spec, config) -> (path, sha, name)


def file_writer(upload: UploadFile) -> Writer:
    async def write(scratch: Path, spec: dict, config: dict) -> tuple[Path, str, str]:
        suffix = upload_suffix(upload.filename, spec)
        data = await upload.read()
        check_content(data, suffix)
        path = scratch / f"input{suffix}"
        path.write_bytes(data)
        return path, sha256_hex(data), f"upload{suffix}"

    return write


def records_writer(body: RecordsInput) -> Writer:
    async def write(scratch: Path, spec: dict, config: dict) -> tuple[Path, str, str]:
        digest = sha256_hex(canonical_json(body.records).encode("utf-8"))
        return write_records(body.records, spec, config, scratch / "input.csv"), digest, "record"

    return write


def model_ref(version: ModelVersion) -> ModelRef:
    return ModelRef(name=version.model.name, version=version.version, checksum=version.checksum, task=version.task,
                    stage=version.stage)


async def run(action: str, request: Request, name: str, number: int | None, user, session, services,
              write: Writer, target: str | None = None) -> dict:
    """Resolve the version, write the input, run the task, audit the outcome; return the response body."""
    version, digest = None, None
    entry = {"actor": user, "client": client_address(request)}
    try:
        version = await run_in_threadpool(get_version, session, name, number, usable=True)
        config = await services.inference.config(version)
        with Scratch(services.settings.scratch_dir) as scratch:
            source, digest, display = await write(scratch, input_spec(config), config)
            if action == "predict":
                body = {"predictions": await services.inference.predict(version, source, display)}
            else:
                body = await services.inference.explain(version, source, display, target)
    except ServiceError as error:
        await run_in_threadpool(audit.append, session, action, "rejected", version=version, model_name=name,
                                input_sha256=digest, detail={"status": error.status_code}, **entry)
        raise
    except Exception as error:
        await run_in_threadpool(audit.append, session, action, "error", version=version, model_name=name,
                                input_sha256=digest, detail={"error": type(error).__name__}, **entry)
        raise
    records = len(body["predictions"]) if action == "predict" else 1
    await run_in_threadpool(audit.append, session, action, "ok", version=version, input_sha256=digest,
                            detail={"records": records}, **entry)
    return {"model": model_ref(version), "input_sha256": digest, **body}


@router.post("/{name}/predict/file", response_model=PredictionResponse)
async def predict_file(name: str, request: Request, user: Predictor, session: SessionDep, services: ServicesDep,
                       file: Annotated[UploadFile, File(description="An image (PNG, JPEG, DICOM) or record file.")],
                       version: VersionQuery = None) -> dict:
    """Calibrated probabilities (and the out-of-distribution flag) for an uploaded file."""
    return await run("predict", request, name, version, user, session, services, file_writer(file))


@router.post("/{name}/predict/records", response_model=PredictionResponse)
async def predict_records(name: str, body: RecordsInput, request: Request, user: Predictor, session: SessionDep,
                          services: ServicesDep, version: VersionQuery = None) -> dict:
    """Calibrated probabilities for JSON records (lab values, SMILES ...), one result per record."""
    return await run("predict", request, name, version, user, session, services, records_writer(body))


@router.post("/{name}/explain/file", response_model=ExplanationResponse)
async def explain_file(name: str, request: Request, user: Predictor, session: SessionDep, services: ServicesDep,
                       file: Annotated[UploadFile, File(description="An image (PNG, JPEG, DICOM) or record file.")],
                       version: VersionQuery = None, target: TargetQuery = None) -> dict:
    """The prediction with its explanation (Grad-CAM heat map overlay for images) for an uploaded file."""
    return await run("explain", request, name, version, user, session, services, file_writer(file), target)


@router.post("/{name}/explain/records", response_model=ExplanationResponse)
async def explain_records(name: str, body: RecordsInput, request: Request, user: Predictor, session: SessionDep,
                          services: ServicesDep, version: VersionQuery = None, target: TargetQuery = None) -> dict:
    """The prediction with its explanation (per-feature contributions for lab values) for the first record."""
    return await run("explain", request, name, version, user, session, services, records_writer(body), target)
