"""Authentication: health is open, everything else needs a valid token; sign-in is throttled; tokens expire/revoke."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta, timezone

import pytest

from medai.service.security import create_access_token
from tests.service.conftest import PASSWORD, WRONG_PASSWORD

OPEN_PATHS = {"/health", "/api/auth/token"}


def test_health_answers_without_a_token(service):
    response = service.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": response.json()["version"], "database": True}


def test_every_api_route_but_health_and_sign_in_needs_a_token(service):
    checked = 0
    for path, operations in service.client.get("/openapi.json").json()["paths"].items():
        if path in OPEN_PATHS:
            continue
        for method in operations:
            response = service.client.request(method.upper(), re.sub(r"\{[^}]+\}", "1", path))
            assert response.status_code == 401, (method, path, response.status_code)
            assert "Sign in first" in response.json()["detail"]
            assert response.headers["www-authenticate"] == "Bearer"
            checked += 1
    assert checked >= 20


def test_openapi_schema_is_served_and_lists_the_routes(service):
    schema = service.client.get("/openapi.json").json()
    assert "/api/models/{name}/predict/file" in schema["paths"]
    assert "/api/audit/verify" in schema["paths"]
    assert service.client.get("/docs").status_code == 404  # the docs page would load scripts from a CDN


def test_prediction_routes_are_tried_first_and_documented_in_router_order(service):
    from medai.service.app import ROUTERS

    app = service.client.app
    tried = [route for route in app.router.routes if hasattr(route, "original_router")]  # the included routers
    assert tried[0].original_router.routes[0].path == "/api/models/{name}/predict/file"
    documented = list(dict.fromkeys(route.path for router in ROUTERS for route in router.routes
                                    if route.include_in_schema))
    assert list(service.client.get("/openapi.json").json()["paths"]) == documented
    assert documented[0] == "/health"


def test_the_prediction_routes_check_the_token_in_one_dependency():
    from medai.service.deps import RoleBearer
    from medai.service.routes import predict

    for route in predict.router.routes:  # FastAPI solves each dependency anew on every request
        (check,) = route.dependant.dependencies
        assert isinstance(check.call, RoleBearer) and check.call.permission == "predict" and not check.dependencies


def test_sign_in_gives_a_token_that_identifies_the_user(service):
    me = service.client.get("/api/users/me", headers=service.auth("cleo")).json()
    assert me["username"] == "cleo" and me["role"] == "clinician"
    assert "password_hash" not in me


def test_wrong_password_and_unknown_user_get_the_same_answer(service):
    wrong, unknown = service.login("cleo", WRONG_PASSWORD), service.login("nobody", WRONG_PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "Bearer", "medai_not-a-real-token"])
def test_malformed_tokens_are_refused(service, token):
    response = service.client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_tampered_token_is_refused(service):
    token = service.auth("cleo")["Authorization"].split()[1]
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    response = service.client.get("/api/users/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401 and "not valid" in response.json()["detail"]


def test_expired_token_is_refused_with_a_clear_message(service):
    from medai.service.models import User

    with service.services.database.session() as session:
        user = session.query(User).filter_by(username="cleo").one()
        token = create_access_token(user, service.services.signing_key, 15,
                                    now=datetime.now(timezone.utc) - timedelta(hours=1))
    response = service.client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and "expired" in response.json()["detail"]


def test_token_signed_with_another_key_is_refused(service):
    from medai.service.models import User

    with service.services.database.session() as session:
        user = session.query(User).filter_by(username="ada").one()
        token = create_access_token(user, "another-key-entirely-another-key", 15)
    assert service.client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_throttling_locks_a_user_name_after_repeated_failures(fresh):
    limit = fresh.services.settings.login_max_failures
    for _ in range(limit):
        assert fresh.login("cleo", WRONG_PASSWORD).status_code == 401
    locked = fresh.login("cleo", PASSWORD)  # even the right password waits out the lock
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0 and "try again in" in locked.json()["detail"]
    assert fresh.login("rhea", PASSWORD).status_code == 200  # other users are not locked out
    outcomes = [e.outcome for e in _entries(fresh, "auth.login")]
    assert outcomes.count("denied") == limit and "throttled" in outcomes


def test_throttling_per_client_address(tmp_path):
    from tests.service.conftest import make_service

    svc = make_service(tmp_path / "home", login_ip_max_failures=3, login_max_failures=100)
    for name in ("a1", "a2", "a3"):
        assert svc.login(name, WRONG_PASSWORD).status_code == 401
    assert svc.login("cleo", PASSWORD).status_code == 429


def test_successful_sign_in_resets_the_user_count(fresh):
    for _ in range(fresh.services.settings.login_max_failures - 1):
        fresh.login("cleo", WRONG_PASSWORD)
    assert fresh.login("cleo", PASSWORD).status_code == 200
    assert fresh.login("cleo", WRONG_PASSWORD).status_code == 401  # counting starts again


def test_password_change_invalidates_earlier_tokens(fresh):
    old, new_password = fresh.auth("cleo"), secrets.token_urlsafe(16)  # made per run, like PASSWORD
    response = fresh.client.post("/api/users/me/password", headers=old,
                                 json={"current_password": PASSWORD, "new_password": new_password})
    assert response.status_code == 200, response.text
    assert fresh.client.get("/api/users/me", headers=old).status_code == 401
    assert fresh.login("cleo", new_password).status_code == 200


def test_weak_new_password_is_refused_with_the_rule(fresh):
    response = fresh.client.post("/api/users/me/password", headers=fresh.auth("cleo"),
                                 json={"current_password": PASSWORD, "new_password": PASSWORD[:5]})  # too short
    assert response.status_code == 422 and "at least 10 characters" in response.json()["detail"]


def test_api_token_works_until_revoked(fresh):
    created = fresh.client.post("/api/tokens", headers=fresh.auth("cleo"), json={"name": "script"})
    assert created.status_code == 201
    token = created.json()["token"]
    script = {"Authorization": f"Bearer {token}"}
    assert fresh.client.get("/api/users/me", headers=script).json()["username"] == "cleo"
    listed = fresh.client.get("/api/tokens", headers=fresh.auth("cleo")).json()
    assert [t["name"] for t in listed] == ["script"] and "token" not in listed[0]
    assert fresh.client.delete(f"/api/tokens/{created.json()['id']}", headers=fresh.auth("cleo")).status_code == 200
    response = fresh.client.get("/api/users/me", headers=script)
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


def test_api_tokens_are_stored_hashed(fresh):
    from medai.service.models import ApiToken

    token = fresh.client.post("/api/tokens", headers=fresh.auth("rhea"), json={"name": "ci"}).json()["token"]
    with fresh.services.database.session() as session:
        stored = session.query(ApiToken).one()
        assert token not in (stored.token_hash, stored.prefix) and len(stored.token_hash) == 64


def test_deactivated_user_loses_access(fresh):
    clinician = fresh.auth("cleo")
    users = fresh.client.get("/api/users", headers=fresh.auth("ada")).json()
    cleo = next(u for u in users if u["username"] == "cleo")
    assert fresh.client.patch(f"/api/users/{cleo['id']}", headers=fresh.auth("ada"),
                              json={"is_active": False}).status_code == 200
    assert fresh.client.get("/api/users/me", headers=clinician).status_code == 401
    assert fresh.login("cleo").status_code == 401


def test_last_admin_cannot_be_demoted(fresh):
    ada = next(u for u in fresh.client.get("/api/users", headers=fresh.auth("ada")).json() if u["username"] == "ada")
    response = fresh.client.patch(f"/api/users/{ada['id']}", headers=fresh.auth("ada"), json={"role": "clinician"})
    assert response.status_code == 409 and "last active administrator" in response.json()["detail"]


def _entries(svc, action):
    from medai.service import audit

    with svc.services.database.session() as session:
        return audit.search(session, action=action, limit=100)


def test_unexpected_errors_answer_500_without_their_message(fresh, caplog):
    def boom():
        raise RuntimeError("patient Janet Doe, MRN 0042")

    fresh.app.add_api_route("/api/boom", boom)
    with caplog.at_level("INFO", logger="medai.service"):
        response = fresh.client.get("/api/boom")
    assert response.status_code == 500 and "RuntimeError" in response.json()["detail"]
    assert "Janet" not in response.text and "Janet" not in caplog.text
    assert "internal error RuntimeError" in caplog.text


def test_every_answer_of_the_middleware_has_security_headers_and_a_log_line(fresh, caplog):
    from medai.service.middleware import SECURITY_HEADERS

    def boom():
        raise RuntimeError("patient Janet Doe")

    fresh.app.add_api_route("/api/boom", boom)
    limit = fresh.services.settings.max_upload_bytes
    with caplog.at_level("INFO", logger="medai.service"):
        answers = {"ok": fresh.client.get("/api/users/me", headers=fresh.auth("cleo")),
                   "declared too large": fresh.client.post("/api/models/labs/predict/records",
                                                           headers={"Content-Length": str(limit + 1)}),
                   "error": fresh.client.get("/api/boom"), "page": fresh.client.get("/ui/")}
    assert [a.status_code for a in answers.values()] == [200, 413, 500, 200]
    for answer in answers.values():
        assert all(answer.headers[name.decode()] == value.decode() for name, value in SECURITY_HEADERS)
    assert [a.headers.get("cache-control") for a in answers.values()] == ["no-store"] * 3 + [None]
    lines = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert any(line.startswith("GET /api/users/me 200 ") and line.endswith("user=cleo") for line in lines)
    assert any(line.startswith("POST /api/models/labs/predict/records 413 ") for line in lines)
    assert any(line.startswith("GET /api/boom 500 ") and line.endswith("user=-") for line in lines)
