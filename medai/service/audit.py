"""The audit log: append-only and hash-chained, so that an edited, inserted or deleted entry is detected.

Each entry records who (user name and role), when, what (the action), which model version (name, version,
weights' checksum), the SHA-256 of the input (never the input), the outcome and a small JSON ``detail`` that
never holds patient data. Its ``hash`` is ``sha256(prev_hash + canonical JSON of the entry)``, where the entry is
every column except the two hashes and ``prev_hash`` is the previous entry's hash (64 zeros for the first).
Ids run consecutively from 1; the ``audit_anchor`` row holds the last id and hash, so a deleted tail shows too.
The database refuses UPDATE and DELETE on the table (triggers created by the migration).

Examples:
    >>> entry_hash(GENESIS, {"id": 1, "action": "auth.login"})[:16]
    '9ebd2d72fdb24d30'
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from medai.service.models import AuditAnchor, AuditEntry, ModelVersion, User

GENESIS = "0" * 64
HASHED_FIELDS = ("id", "at", "actor", "role", "action", "model_name", "model_version", "model_checksum",
                 "input_sha256", "outcome", "detail", "client")
MAX_DETAIL_CHARACTERS = 2000
_append_lock = threading.Lock()  # one writer at a time in this process; the anchor row lock covers other processes


def canonical_json(document) -> str:
    """Key-sorted, compact, UTF-8 JSON: the same document always gives the same text."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(prev_hash: str, fields: dict) -> str:
    """``sha256(prev_hash + canonical_json(fields))`` as hex."""
    return hashlib.sha256((prev_hash + canonical_json(fields)).encode("utf-8")).hexdigest()


def timestamp(moment: datetime | None = None) -> str:
    """UTC time as hashed and stored: ``2026-01-31T12:00:00.000000Z``."""
    moment = moment or datetime.now(timezone.utc)
    if moment.tzinfo is None:  # a naive time is taken as UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def append(
    session: Session,
    action: str,
    outcome: str,
    *,
    actor: User | str | None = None,
    version: ModelVersion | None = None,
    model_name: str | None = None,
    input_sha256: str | None = None,
    detail: dict | None = None,
    client: str | None = None,
) -> dict:
    """Append one entry and commit the session (with whatever else it holds, so a change and its entry land together).

    Args:
        action: what happened, e.g. ``"predict"``, ``"model.register"``, ``"auth.login"``.
        outcome: ``"ok"``, ``"denied"``, ``"invalid"``, ``"error"`` ...
        actor: the user (anything with ``username`` and ``role``), or a user name for failed sign-ins.
        version: the model version concerned (name, version and checksum are recorded); a ModelVersion or
            anything with ``model_name``, ``version`` and ``checksum``.
        model_name: the model concerned when no version is.
        input_sha256: SHA-256 of the request's input.
        detail: small JSON-ready facts (counts, error types); never patient data.
        client: the client's address.
    """
    event = Event(action, outcome, actor=actor, version=version, model_name=model_name, input_sha256=input_sha256,
                  detail=detail, client=client)
    return append_many(session, [event])[0]


@dataclass
class Event:
    """One entry to append (the arguments of :func:`append`)."""

    action: str
    outcome: str
    actor: object = None
    version: object = None
    model_name: str | None = None
    input_sha256: str | None = None
    detail: dict | None = None
    client: str | None = None

    def fields(self, entry_id: int) -> dict:
        text = canonical_json(self.detail or {})
        if len(text) > MAX_DETAIL_CHARACTERS:
            text = canonical_json({"truncated": True})
        if self.actor is None or isinstance(self.actor, str):
            name, role = (self.actor[:64] if self.actor else None), None
        else:
            name, role = self.actor.username, self.actor.role
        version = self.version
        return {
            "id": entry_id,
            "at": timestamp(),
            "actor": name,
            "role": role,
            "action": self.action,
            "model_name": version.model_name if version is not None else (self.model_name[:64] if self.model_name else None),
            "model_version": version.version if version is not None else None,
            "model_checksum": version.checksum if version is not None else None,
            "input_sha256": self.input_sha256,
            "outcome": self.outcome,
            "detail": text,
            "client": self.client[:64] if self.client else None,
        }


# Core statements on the tables, built once: no ORM unit of work, and SQLAlchemy's compiled cache is hit at once
_READ_ANCHOR = select(AuditAnchor.__table__.c.last_id, AuditAnchor.__table__.c.last_hash).where(
    AuditAnchor.__table__.c.id == 1).with_for_update()
_INSERT_ENTRIES = insert(AuditEntry.__table__)
_MOVE_ANCHOR = update(AuditAnchor.__table__).where(AuditAnchor.__table__.c.id == 1).values(
    last_id=bindparam("new_last_id"), last_hash=bindparam("new_last_hash"))


def append_many(session: Session | Connection, events: list[Event]) -> list[dict]:
    """Append several entries in order, chained, and commit them (and whatever else the session holds) at once.

    Returns the stored rows (column -> value). The rows go in with one executemany INSERT, not one ORM object
    each. ``session`` may also be a Core connection (what :class:`AuditWriter` uses: no session to set up).
    """
    with _append_lock:
        last_id, last_hash = session.execute(_READ_ANCHOR).one()  # locked, where the database locks rows
        rows = []
        for event in events:
            fields = event.fields(last_id + 1)
            row = {**fields, "prev_hash": last_hash, "hash": entry_hash(last_hash, fields)}
            rows.append(row)
            last_id, last_hash = row["id"], row["hash"]
        session.execute(_INSERT_ENTRIES, rows)
        session.execute(_MOVE_ANCHOR, {"new_last_id": last_id, "new_last_hash": last_hash})
        session.commit()
    return rows


class AuditWriter:
    """Appends the entries of concurrent requests together: one transaction (and one disk flush) per group.

    ``await writer.append(Event(...))`` returns once the entry is committed, so a response is never sent before
    its audit entry is stored. While one group is being written, the entries that arrive wait and form the next
    group (group commit), so under load the log costs one commit per group, not per request. Used for the
    prediction and explanation routes; the other routes commit their change and its entry in one transaction
    with :func:`append`.
    """

    def __init__(self, database):
        self.database = database
        self._waiting: list[tuple[Event, asyncio.Future]] = []
        self._writing: asyncio.Task | None = None

    async def append(self, event: Event) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((event, future))
        if self._writing is None:
            self._writing = asyncio.create_task(self._drain())
        await asyncio.shield(future)  # a client going away does not unwrite or skip its entry

    async def _drain(self) -> None:
        import anyio

        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                try:
                    await anyio.to_thread.run_sync(self._write, [event for event, _ in group])
                except Exception as error:
                    for _, future in group:
                        if not future.done():
                            future.set_exception(error)
                else:
                    for _, future in group:
                        if not future.done():
                            future.set_result(None)
        finally:
            self._writing = None

    def _write(self, events: list[Event]) -> None:
        with self.database.engine.connect() as connection:  # rolled back on error when it closes
            append_many(connection, events)


def fields_of(entry: AuditEntry) -> dict:
    """The hashed columns of a stored entry."""
    return {name: getattr(entry, name) for name in HASHED_FIELDS}


@dataclass
class ChainReport:
    """The result of :func:`verify_chain`."""

    valid: bool
    entries: int  # entries checked
    first_bad_id: int | None = None  # the first entry (or missing id) where the chain breaks
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def verify_chain(session: Session, batch: int = 1000) -> ChainReport:
    """Recompute every hash in id order; report the first edited, inserted or deleted entry."""
    previous, expected_id, count = GENESIS, 1, 0
    for entry in _entries_in_order(session, batch):
        count += 1
        if entry.id != expected_id:
            return ChainReport(False, count, expected_id, f"entry {expected_id} is missing (next id is {entry.id})")
        if entry.prev_hash != previous:
            return ChainReport(False, count, entry.id, f"entry {entry.id} does not follow the entry before it")
        if entry_hash(previous, fields_of(entry)) != entry.hash:
            return ChainReport(False, count, entry.id, f"entry {entry.id} was changed after it was written")
        previous, expected_id = entry.hash, expected_id + 1
    anchor = session.get(AuditAnchor, 1, populate_existing=True)
    if anchor is None or anchor.last_id != expected_id - 1 or anchor.last_hash != previous:
        last = None if anchor is None else anchor.last_id
        return ChainReport(False, count, expected_id, f"the log ends at entry {expected_id - 1} but the anchor "
                                                      f"records entry {last}: entries were deleted")
    return ChainReport(True, count)


def _entries_in_order(session: Session, batch: int) -> Iterator[AuditEntry]:
    after = 0
    while True:
        query = select(AuditEntry).where(AuditEntry.id > after).order_by(AuditEntry.id).limit(batch)
        rows = session.scalars(query.execution_options(populate_existing=True)).all()  # what is stored now
        if not rows:
            return
        yield from rows
        after = rows[-1].id
        session.expunge_all()


def search(
    session: Session,
    *,
    action: str | None = None,
    actor: str | None = None,
    model_name: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int = 0,
    limit: int = 100,
    newest_first: bool = True,
) -> list[AuditEntry]:
    """Entries matching every given filter (times compare on the stored UTC timestamp)."""
    query = select(AuditEntry).where(AuditEntry.id > after_id)
    for column, value in ((AuditEntry.action, action), (AuditEntry.actor, actor),
                          (AuditEntry.model_name, model_name), (AuditEntry.outcome, outcome)):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(AuditEntry.at >= timestamp(since))
    if until is not None:
        query = query.where(AuditEntry.at < timestamp(until))
    order = AuditEntry.id.desc() if newest_first else AuditEntry.id
    return list(session.scalars(query.order_by(order).limit(limit)))


def to_public(entry: AuditEntry) -> dict:
    """An entry as JSON-ready data (``detail`` parsed), with its hashes."""
    return {**fields_of(entry), "detail": json.loads(entry.detail or "{}"), "prev_hash": entry.prev_hash,
            "hash": entry.hash}
