"""The security battery of bench/service_load.py through TestClient: every abuse case answers 4xx with a clear JSON
message (free-text fields may accept the text as data, stored literally), never 5xx, never a script payload echoed
unescaped, never a traceback or server path."""

from __future__ import annotations

import pytest

from tests.service.conftest import PASSWORD, make_service, service_bench

MAX_UPLOAD = 64 * 1024


@pytest.fixture(scope="module")
def battery(tmp_path_factory, bundles) -> dict:
    from medai.service.models import User

    bench = service_bench()
    svc = make_service(tmp_path_factory.mktemp("battery-home"), [bundles["root"]], login_ip_max_failures=1000,
                       max_upload_bytes=MAX_UPLOAD)
    for name, folder in (("breast", bundles["image"]), ("labs", bundles["labs"])):
        response = svc.client.post("/api/models", json={"name": name, "path": str(folder), "stage": "production"},
                                   headers=svc.auth("rhea"))
        assert response.status_code == 201, response.text
    headers = {"admin": svc.auth("ada"), "researcher": svc.auth("rhea"), "clinician": svc.auth("cleo")}
    with svc.services.database.session() as session:
        cleo = session.query(User).filter_by(username="cleo").one()
        admin_id = session.query(User).filter_by(username="ada").one().id
        tokens = bench.forged_tokens(headers["clinician"]["Authorization"].split()[1], svc.services.signing_key, cleo,
                                     admin_id)

    def user_count():
        with svc.services.database.session() as session:
            return session.query(User).count()

    result = bench.security_battery(svc.client, headers, tokens, bundles["png"].read_bytes(), image_model="breast",
                                    labs_model="labs", register_root=bundles["root"], bundle_folder=bundles["image"],
                                    max_upload_bytes=MAX_UPLOAD, user_count=user_count)
    return {"result": result, "service": svc, "tokens": tokens, "headers": headers}


def test_every_case_is_answered_4xx_with_a_clear_message_and_no_leak(battery):
    result = battery["result"]
    assert result["total"] > 150
    assert not result["failed"], "\n".join(f"{c['case']}: {c['status']} {c['problems']} {c['detail']}"
                                           for c in result["failed"])
    assert not result["any_5xx"]
    payloads = result["payloads"]  # case names carry a payload's number, never the payload next to a field name
    assert list(payloads) == [f"payload {i}" for i in range(1, len(payloads) + 1)]
    assert not any(p in c["case"] for c in result["cases"] for p in payloads.values())
    kinds = service_bench().payload_kinds()  # what the bench prints instead of the strings
    assert list(kinds) == list(payloads) and not any(p in k for k in kinds.values() for p in payloads.values())


@pytest.mark.parametrize("kind", ["expired", "tampered_claims", "tampered_signature", "alg_none", "garbage",
                                  "unknown_api_token"])
def test_forged_tokens_are_refused_with_401(battery, kind):
    response = battery["service"].client.get("/api/users/me",
                                             headers={"Authorization": f"Bearer {battery['tokens'][kind]}"})
    assert response.status_code == 401 and response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_injected_text_is_stored_literally_and_served_escaped(battery):
    client, admin = battery["service"].client, battery["headers"]["admin"]
    response = client.post("/api/users", headers=admin, json={"username": "literal-user", "password": PASSWORD,
                                                              "role": "clinician", "full_name": "<b>'; --"})
    assert response.status_code == 201
    assert response.json()["full_name"] == "<b>'; --"  # the same text back, once parsed
    assert b"<b>" not in response.content  # ... but never as raw markup in the body


def test_malformed_images_are_422_not_500(battery):
    cases = {c["case"]: c for c in battery["result"]["cases"]}
    for name in ("truncated PNG", "PNG signature only", "PNG signature + random bytes", "random bytes named .dcm"):
        assert 400 <= cases[name]["status"] < 500, cases[name]
    assert cases["oversized upload"]["status"] == 413
    assert cases["empty file"]["status"] == 422
