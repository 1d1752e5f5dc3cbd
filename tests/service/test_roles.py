"""Role rules: researchers register, clinicians (and researchers) predict, admins manage users and read the audit log."""

from __future__ import annotations

import secrets

import pytest

from medai.service.security import PERMISSIONS
from tests.service.conftest import png_upload

NEW_PASSWORD = secrets.token_urlsafe(16)  # made per run: no credential lives in the source


@pytest.mark.parametrize(
    "user, method, path, body, needed",
    [
        ("cleo", "POST", "/api/models", {"name": "x", "path": "/tmp"}, "researcher"),
        ("ada", "POST", "/api/models", {"name": "x", "path": "/tmp"}, "researcher"),
        ("cleo", "PATCH", "/api/models/labs/versions/1", {"stage": "staging"}, "researcher"),
        ("cleo", "POST", "/api/models/labs/versions/1/retire", None, "researcher"),
        ("rhea", "GET", "/api/audit", None, "admin"),
        ("cleo", "GET", "/api/audit/verify", None, "admin"),
        ("rhea", "GET", "/api/audit/export", None, "admin"),
        ("cleo", "GET", "/api/users", None, "admin"),
        ("rhea", "POST", "/api/users", {"username": "eve", "password": NEW_PASSWORD, "role": "admin"}, "admin"),
        ("ada", "POST", "/api/models/labs/predict/records", {"records": [{"glucose": 100}]}, "clinician"),
        ("ada", "POST", "/api/models/labs/explain/records", {"records": [{"glucose": 100}]}, "clinician"),
    ],
)
def test_wrong_role_gets_403_naming_the_role_needed(service, user, method, path, body, needed):
    response = service.client.request(method, path, json=body, headers=service.auth(user))
    assert response.status_code == 403, response.text
    detail = response.json()["detail"]
    assert f"Your role '{service.client.get('/api/users/me', headers=service.auth(user)).json()['role']}'" in detail
    assert needed in detail


def test_admin_cannot_upload_for_prediction(service, bundles):
    response = service.client.post("/api/models/breast/predict/file", files=png_upload(bundles["png"].read_bytes()),
                                   headers=service.auth("ada"))
    assert response.status_code == 403


def test_denials_are_audited(service):
    service.client.get("/api/audit", headers=service.auth("rhea"))
    from medai.service import audit

    with service.services.database.session() as session:
        denied = audit.search(session, action="access.denied", actor="rhea", limit=5)
    assert denied and denied[0].outcome == "denied" and '"permission":"audit:read"' in denied[0].detail


def test_every_role_can_list_models(service):
    for user in ("ada", "rhea", "cleo"):
        names = [m["name"] for m in service.client.get("/api/models", headers=service.auth(user)).json()]
        assert {"breast", "labs"} <= set(names)


def test_permission_table_matches_the_issue():
    assert PERMISSIONS["models:write"] == {"researcher"}
    assert PERMISSIONS["audit:read"] == {"admin"} and PERMISSIONS["users:manage"] == {"admin"}
    assert "clinician" in PERMISSIONS["predict"] and "admin" not in PERMISSIONS["predict"]


def test_admin_creates_a_clinician_who_can_sign_in(fresh):
    response = fresh.client.post("/api/users", headers=fresh.auth("ada"),
                                 json={"username": "Dr.Who", "password": NEW_PASSWORD, "role": "clinician"})
    assert response.status_code == 201 and response.json()["username"] == "dr.who"
    assert fresh.login("DR.WHO", NEW_PASSWORD).status_code == 200
    again = fresh.client.post("/api/users", headers=fresh.auth("ada"),
                              json={"username": "dr.who", "password": NEW_PASSWORD, "role": "clinician"})
    assert again.status_code == 409
