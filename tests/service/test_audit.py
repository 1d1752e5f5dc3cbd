"""The audit log: hash chain, append-only triggers, tamper detection, query and export."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from medai.service import audit
from tests.service.conftest import WRONG_PASSWORD


def _drop_triggers(session):
    """What an intruder with write access to the database file could do."""
    session.execute(text("DROP TRIGGER audit_entries_no_update"))
    session.execute(text("DROP TRIGGER audit_entries_no_delete"))
    session.commit()


@pytest.fixture
def logged(fresh):
    for user in ("ada", "rhea", "cleo"):
        fresh.auth(user)
    fresh.login("cleo", WRONG_PASSWORD)
    return fresh


def test_chain_of_a_busy_log_is_valid(logged):
    with logged.services.database.session() as session:
        report = audit.verify_chain(session)
    assert report.valid and report.entries == 4


def test_database_refuses_updates_and_deletes(logged):
    with logged.services.database.session() as session:
        with pytest.raises(DatabaseError, match="append-only"):
            session.execute(text("UPDATE audit_entries SET outcome = 'ok' WHERE id = 4"))
        session.rollback()
        with pytest.raises(DatabaseError, match="append-only"):
            session.execute(text("DELETE FROM audit_entries WHERE id = 1"))


@pytest.mark.parametrize("column, value", [("outcome", "'forged'"), ("actor", "'ada'"), ("input_sha256", "'ab'"),
                                           ("detail", "'[]'"), ("at", "'2020-01-01T00:00:00.000000Z'")])
def test_editing_any_column_breaks_the_chain_at_that_entry(logged, column, value):
    with logged.services.database.session() as session:
        _drop_triggers(session)
        session.execute(text(f"UPDATE audit_entries SET {column} = {value} WHERE id = 2"))
        session.commit()
        report = audit.verify_chain(session)
    assert not report.valid and report.first_bad_id == 2 and "changed" in report.reason


def test_rewriting_an_entry_with_its_hash_breaks_the_next_link(logged):
    with logged.services.database.session() as session:
        _drop_triggers(session)
        entry = session.get(audit.AuditEntry, 2)
        fields = {**audit.fields_of(entry), "outcome": "forged"}
        session.execute(text("UPDATE audit_entries SET outcome = 'forged', hash = :h WHERE id = 2"),
                        {"h": audit.entry_hash(entry.prev_hash, fields)})
        session.commit()
        report = audit.verify_chain(session)
    assert not report.valid and report.first_bad_id == 3


def test_deleting_a_middle_entry_or_the_tail_is_detected(logged):
    with logged.services.database.session() as session:
        _drop_triggers(session)
        session.execute(text("DELETE FROM audit_entries WHERE id = 4"))
        session.commit()
        tail = audit.verify_chain(session)
        session.execute(text("DELETE FROM audit_entries WHERE id = 2"))
        session.commit()
        middle = audit.verify_chain(session)
    assert not tail.valid and "deleted" in tail.reason
    assert not middle.valid and middle.first_bad_id == 2 and "missing" in middle.reason


def test_verify_route_reports_tampering_to_admins(logged):
    assert logged.client.get("/api/audit/verify", headers=logged.auth("ada")).json()["valid"] is True
    with logged.services.database.session() as session:
        _drop_triggers(session)
        session.execute(text("UPDATE audit_entries SET actor = 'nobody' WHERE id = 1"))
        session.commit()
    report = logged.client.get("/api/audit/verify", headers=logged.auth("ada")).json()
    assert report == {"valid": False, "entries": 1, "first_bad_id": 1, "reason": report["reason"]}


def test_query_filters_and_pages(logged):
    admin = logged.auth("ada")
    denied = logged.client.get("/api/audit", headers=admin, params={"action": "auth.login", "outcome": "denied"}).json()
    assert [(e["actor"], e["outcome"]) for e in denied] == [("cleo", "denied")]
    oldest = logged.client.get("/api/audit", headers=admin, params={"after_id": 0, "limit": 2}).json()
    assert len(oldest) == 2
    reads = logged.client.get("/api/audit", headers=admin, params={"action": "audit.read"}).json()
    assert reads and reads[0]["actor"] == "ada"  # reading the log is itself recorded


def test_export_jsonl_and_csv_hold_every_entry_and_verify(logged):
    admin = logged.auth("ada")
    response = logged.client.get("/api/audit/export", headers=admin, params={"format": "jsonl"})
    assert response.status_code == 200 and "attachment" in response.headers["content-disposition"]
    entries = [json.loads(line) for line in response.text.splitlines()]
    assert [e["id"] for e in entries] == list(range(1, len(entries) + 1))
    previous = audit.GENESIS
    for entry in entries:  # an exported log can be verified elsewhere
        fields = {k: audit.canonical_json(entry[k]) if k == "detail" else entry[k] for k in audit.HASHED_FIELDS}
        assert entry["prev_hash"] == previous and audit.entry_hash(previous, fields) == entry["hash"]
        previous = entry["hash"]
    rows = list(csv.DictReader(io.StringIO(logged.client.get("/api/audit/export", headers=admin,
                                                              params={"format": "csv"}).text)))
    assert len(rows) >= len(entries) and rows[0]["action"] == "auth.login"


def test_formula_like_user_names_are_defused_in_csv(fresh):
    fresh.login("=HYPERLINK(1)", WRONG_PASSWORD)
    exported = fresh.client.get("/api/audit/export", headers=fresh.auth("ada"), params={"format": "csv"}).text
    assert "'=hyperlink(1)" in exported and ",=hyperlink" not in exported
