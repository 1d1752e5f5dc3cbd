"""Predictions and explanations for every task, from an uploaded file or JSON records.

``POST /api/models/{name}/predict/file`` and ``.../explain/file`` take a multipart ``file``; ``.../predict/records``
and ``.../explain/records`` take ``{"records": [{field: value, ...}]}``. ``?version=N`` picks a version (default:
the production version); ``?target=CLASS`` picks the class to explain. Every call, whatever its outcome, leaves
one audit entry with the SHA-256 of the input (never the input itself).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from medai.service.audit import Event, canonical_json
from medai.service.deps import MAX_ID, Identity, Predictor, client_address
from medai.service.errors import ServiceError
from medai.service.inference import (
    IMAGE_SUFFIXES,
    Scratch,
    ScratchFile,
    check_content,
    sha256_hex,
    upload_suffix,
    write_records,
)
from medai.service.registry import VersionRef
from medai.service.schemas import ExplanationResponse, ModelRef, PredictionResponse, RecordsInput

router = APIRouter(prefix="/api/models", tags=["predict"])
VersionQuery = Annotated[int | None, Query(ge=1, le=MAX_ID, description="Version to use; default: the production version.")]
TargetQuery = Annotated[str | None, Query(max_length=200, description="Class to explain; default: the predicted one.")]
Place = Callable[[str, bytes], Path]  # (suffix, content) -> a private scratch file holding the request's input
Writer = Callable[[Place, dict, dict], Awaitable[tuple[Path, str, str]]]  # (place, spec, config) -> (path, sha, name)


def file_writer(upload: UploadFile) -> Writer:
    async def write(place: Place, spec: dict, config: dict) -> tuple[Path, str, str]:
        suffix = upload_suffix(upload.filename, spec)
        data = await upload.read()
        check_content(data, suffix)
        return place(suffix, data), sha256_hex(data), f"upload{suffix}"

    return write


def records_writer(body: RecordsInput) -> Writer:
    async def write(place: Place, spec: dict, config: dict) -> tuple[Path, str, str]:
        digest = sha256_hex(canonical_json(body.records).encode("utf-8"))
        return write_records(body.records, spec, config, place(".csv", b"")), digest, "record"

    return write


def _written(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def model_ref(version: VersionRef) -> ModelRef:
    return ModelRef(name=version.model_name, version=version.version, checksum=version.checksum, task=version.task,
                    stage=version.stage)


async def run(action: str, request: Request, name: str, number: int | None, user: Identity, write: Writer,
              target: str | None = None) -> dict:
    """Resolve the version, write the input, run the task, audit the outcome; return the response body.

    Nothing here waits on the database while the version and the user's identity are in memory; the audit
    entry is group-committed with those of concurrent requests before the response is sent.
    """
    services = request.app.state.services
    version, digest = None, None
    entry = {"actor": user, "client": client_address(request)}
    try:
        version = services.versions.cached(name, number)
        if version is None:
            version = await run_in_threadpool(services.versions.resolve, name, number)
        config, spec = await services.inference.config(version)
        with contextlib.ExitStack() as scratch:
            root = services.settings.scratch_dir
            if action == "predict" and spec["kind"] == "image":  # one file, no folder: the cheap path under load
                place = lambda suffix, content: scratch.enter_context(ScratchFile(root, suffix, content))  # noqa: E731
            else:
                folder = scratch.enter_context(Scratch(root))
                place = lambda suffix, content: _written(folder / f"input{suffix}", content)  # noqa: E731
            source, digest, display = await write(place, spec, config)
            if action == "predict":
                batchable = spec["kind"] == "image" and source.suffix in IMAGE_SUFFIXES  # one file, one result
                body = {"predictions": await services.inference.predict(version, source, display, batchable=batchable)}
            else:
                body = await services.inference.explain(version, source, display, target)
    except ServiceError as error:
        await services.audit_writer.append(Event(action, "rejected", version=version, model_name=name,
                                                 input_sha256=digest, detail={"status": error.status_code}, **entry))
        raise
    except Exception as error:
        await services.audit_writer.append(Event(action, "error", version=version, model_name=name,
                                                 input_sha256=digest, detail={"error": type(error).__name__}, **entry))
        raise
    records = len(body["predictions"]) if action == "predict" else 1
    await services.audit_writer.append(Event(action, "ok", version=version, input_sha256=digest,
                                             detail={"records": records}, **entry))
    return {"model": model_ref(version), "input_sha256": digest, **body}


@router.post("/{name}/predict/file", response_model=PredictionResponse)
async def predict_file(name: str, request: Request, user: Predictor,
                       file: Annotated[UploadFile, File(description="An image (PNG, JPEG, DICOM) or record file.")],
                       version: VersionQuery = None) -> dict:
    """Calibrated probabilities (and the out-of-distribution flag) for an uploaded file."""
    return await run("predict", request, name, version, user, file_writer(file))


@router.post("/{name}/predict/records", response_model=PredictionResponse)
async def predict_records(name: str, body: RecordsInput, request: Request, user: Predictor,
                          version: VersionQuery = None) -> dict:
    """Calibrated probabilities for JSON records (lab values, SMILES ...), one result per record."""
    return await run("predict", request, name, version, user, records_writer(body))


@router.post("/{name}/explain/file", response_model=ExplanationResponse)
async def explain_file(name: str, request: Request, user: Predictor,
                       file: Annotated[UploadFile, File(description="An image (PNG, JPEG, DICOM) or record file.")],
                       version: VersionQuery = None, target: TargetQuery = None) -> dict:
    """The prediction with its explanation (Grad-CAM heat map overlay for images) for an uploaded file."""
    return await run("explain", request, name, version, user, file_writer(file), target)


@router.post("/{name}/explain/records", response_model=ExplanationResponse)
async def explain_records(name: str, body: RecordsInput, request: Request, user: Predictor,
                          version: VersionQuery = None, target: TargetQuery = None) -> dict:
    """The prediction with its explanation (per-feature contributions for lab values) for the first record."""
    return await run("explain", request, name, version, user, records_writer(body), target)
