"""The audit log for administrators: query, export (JSON lines or CSV) and verify the hash chain."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from medai.service import audit
from medai.service.audit import HASHED_FIELDS, to_public
from medai.service.deps import MAX_ID, AuditReader, ServicesDep, SessionDep, client_address
from medai.service.schemas import AuditEntryPublic, ChainStatus

router = APIRouter(prefix="/api/audit", tags=["audit"])
Filter = Annotated[str | None, Query(max_length=64)]


@router.get("", response_model=list[AuditEntryPublic])
def query_audit(request: Request, user: AuditReader, session: SessionDep, action: Filter = None, actor: Filter = None,
                model_name: Filter = None, outcome: Filter = None, since: datetime | None = None,
                until: datetime | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                after_id: Annotated[int, Query(ge=0, le=MAX_ID)] = 0) -> list[dict]:
    """Entries matching the filters, newest first (``after_id`` pages forward from an id)."""
    filters = {"action": action, "actor": actor, "model_name": model_name, "outcome": outcome}
    entries = audit.search(session, **filters, since=since, until=until, after_id=after_id, limit=limit)
    result = [to_public(e) for e in entries]
    audit.append(session, "audit.read", "ok", actor=user, client=client_address(request),
                 detail={"filters": {k: v for k, v in filters.items() if v is not None}, "returned": len(result)})
    return result


@router.get("/verify", response_model=ChainStatus)
def verify(request: Request, user: AuditReader, session: SessionDep) -> dict:
    """Recompute the hash chain; ``valid`` is false when an entry was edited, inserted or deleted."""
    report = audit.verify_chain(session).to_dict()
    audit.append(session, "audit.verify", "ok" if report["valid"] else "broken", actor=user,
                 client=client_address(request), detail={"first_bad_id": report["first_bad_id"]})
    return report


@router.get("/export")
def export(request: Request, user: AuditReader, session: SessionDep, services: ServicesDep,
           format: Literal["jsonl", "csv"] = "jsonl") -> StreamingResponse:
    """The whole log, oldest first, as a download: JSON lines (``jsonl``) or CSV."""
    audit.append(session, "audit.export", "ok", actor=user, client=client_address(request), detail={"format": format})
    lines = _jsonl(services) if format == "jsonl" else _csv(services)
    media = "application/x-ndjson" if format == "jsonl" else "text/csv"
    return StreamingResponse(lines, media_type=media,
                             headers={"Content-Disposition": f'attachment; filename="medai-audit.{format}"'})


def _all_entries(services) -> Iterator[dict]:
    with services.database.session() as session:
        after = 0
        while batch := audit.search(session, after_id=after, limit=1000, newest_first=False):
            yield from (to_public(e) for e in batch)
            after = batch[-1].id


def _jsonl(services) -> Iterator[str]:
    for entry in _all_entries(services):
        yield json.dumps(entry, sort_keys=True) + "\n"


def _csv(services) -> Iterator[str]:
    columns = [*HASHED_FIELDS, "prev_hash", "hash"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for entry in _all_entries(services):
        writer.writerow([_cell(audit.canonical_json(entry[c]) if c == "detail" else entry[c]) for c in columns])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _cell(value):
    """Text starting like a spreadsheet formula is prefixed with ' (failed sign-ins record any user name typed)."""
    return f"'{value}" if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
