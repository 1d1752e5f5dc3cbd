"""Predictions and explanations through the API, their audit entries, and hostile or malformed inputs."""

from __future__ import annotations

import base64
import hashlib
import io

import pytest

from tests.service.conftest import png_upload


def _last_entry(service, action):
    from medai.service import audit

    with service.services.database.session() as session:
        return audit.search(session, action=action, limit=1)[0]


def test_image_prediction_has_probabilities_model_and_checksum(service, bundles):
    data = bundles["png"].read_bytes()
    response = service.client.post("/api/models/breast/predict/file", files=png_upload(data, "jane-doe.png"),
                                   headers=service.auth("cleo"))
    assert response.status_code == 200, response.text
    body = response.json()
    config_checksum = __import__("json").loads((bundles["image"] / "config.json").read_text())["weights_sha256"]
    assert body["model"] == {"name": "breast", "version": 1, "checksum": config_checksum,
                             "task": "image-classification", "stage": "production"}
    [prediction] = body["predictions"]
    assert set(prediction["probabilities"]) == {"class_0", "class_1"}
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0)
    assert prediction["input"] == "upload.png"  # the client's file name (it may name a patient) is not echoed
    assert body["input_sha256"] == hashlib.sha256(data).hexdigest()


def test_prediction_matches_the_library(service, bundles):
    import medai

    expected = medai.predict(bundles["image"], [bundles["png"]])[0]["probabilities"]
    body = service.client.post("/api/models/breast/predict/file", files=png_upload(bundles["png"].read_bytes()),
                               headers=service.auth("cleo")).json()
    assert body["predictions"][0]["probabilities"] == pytest.approx(expected)


def test_image_explanation_returns_a_heat_map_and_an_audit_entry_without_the_input(service, bundles):
    data = bundles["png"].read_bytes()
    response = service.client.post("/api/models/breast/explain/file", files=png_upload(data),
                                   headers=service.auth("cleo"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["explanation"]["method"] == "grad-cam"
    assert "heatmap" not in body["explanation"]  # the server's temporary path is not sent
    assert base64.b64decode(body["image_png_base64"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert body["prediction"]["label"] in ("class_0", "class_1")
    entry = _last_entry(service, "explain")
    assert (entry.actor, entry.role, entry.outcome) == ("cleo", "clinician", "ok")
    assert (entry.model_name, entry.model_version, entry.model_checksum) == ("breast", 1, body["model"]["checksum"])
    assert entry.input_sha256 == hashlib.sha256(data).hexdigest()
    assert base64.b64encode(data).decode()[:40] not in entry.detail and len(entry.detail) < 100


def test_lab_values_prediction_with_ood_flag(service):
    response = service.client.post("/api/models/labs/predict/records", headers=service.auth("cleo"),
                                   json={"records": [{"glucose": 150, "age": 60, "smoker": "yes"},
                                                     {"glucose": 80, "age": 30, "smoker": "no"}]})
    assert response.status_code == 200, response.text
    first, second = response.json()["predictions"]
    assert first["probabilities"]["sick"] > second["probabilities"]["sick"]
    assert isinstance(first["ood"]["out_of_distribution"], bool)
    entry = _last_entry(service, "predict")
    assert entry.model_name == "labs" and '"records":2' in entry.detail


def test_far_out_lab_values_are_flagged_out_of_distribution(service):
    response = service.client.post("/api/models/labs/predict/records", headers=service.auth("cleo"),
                                   json={"records": [{"glucose": 5000, "age": 900, "smoker": "no"}]})
    assert response.json()["predictions"][0]["ood"]["out_of_distribution"] is True


def test_lab_values_explanation_gives_contributions(service):
    response = service.client.post("/api/models/labs/explain/records", headers=service.auth("cleo"),
                                   json={"records": [{"glucose": 140, "smoker": "yes"}]})
    assert response.status_code == 200, response.text
    explanation = response.json()["explanation"]
    assert explanation["method"] == "shapley-value-sampling"
    assert {f["feature"] for f in explanation["features"]} == {"glucose", "age", "smoker"}
    assert next(f for f in explanation["features"] if f["feature"] == "age")["value"] is None  # missing stays missing
    assert response.json()["prediction"]["ood"] is not None


def test_records_hash_is_of_canonical_json(service):
    from medai.service.audit import canonical_json

    records = [{"smoker": "no", "glucose": 99.5}]
    body = service.client.post("/api/models/labs/predict/records", headers=service.auth("cleo"),
                               json={"records": records}).json()
    assert body["input_sha256"] == hashlib.sha256(canonical_json(records).encode()).hexdigest()


def test_dicom_upload_is_read_and_identifying_tags_never_stored(service, bundles):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    dataset = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    dataset.PatientName, dataset.PatientID = "Doe^Janet", "MRN-0042"
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    response = service.client.post("/api/models/breast/predict/file", headers=service.auth("cleo"),
                                   files={"file": ("study.dcm", buffer.getvalue(), "application/dicom")})
    assert response.status_code == 200, response.text
    assert "Doe" not in response.text and "MRN-0042" not in response.text
    database = (service.home / "medai.db").read_bytes() + b"".join(
        p.read_bytes() for p in service.home.glob("medai.db-*") if p.is_file())
    assert b"Doe^Janet" not in database and b"MRN-0042" not in database
    assert not any((service.home / "tmp").iterdir())  # the upload is gone


@pytest.mark.parametrize("filename", ["../../etc/passwd.png", "..\\..\\x.png", "/abs/path.png", "folder/x.png", ".."])
def test_path_traversal_in_file_names_is_refused(service, bundles, filename):
    response = service.client.post("/api/models/breast/predict/file", headers=service.auth("cleo"),
                                   files=png_upload(bundles["png"].read_bytes(), filename))
    assert response.status_code == 422, response.text
    assert "plain file name" in response.json()["detail"]


def test_oversized_upload_is_refused_with_413(service):
    big = b"\x89PNG\r\n\x1a\n" + bytes(300 * 1024)
    response = service.client.post("/api/models/breast/predict/file", headers=service.auth("cleo"),
                                   files=png_upload(big))
    assert response.status_code == 413
    assert "larger than this service accepts" in response.json()["detail"]


def test_oversized_body_without_content_length_is_refused(service):
    def chunks():
        for _ in range(40):
            yield bytes(8 * 1024)

    response = service.client.post("/api/models/labs/predict/records", headers={**service.auth("cleo"),
                                   "Content-Type": "application/json"}, content=chunks())
    assert response.status_code == 413


@pytest.mark.parametrize(
    "name, data, status, words",
    [
        ("scan.exe", b"MZ...", 415, "accepts .png"),
        ("scan", b"\x89PNG\r\n\x1a\n", 415, "no suffix"),
        ("scan.png", b"GIF89a not a png", 415, "not a PNG image"),
        ("scan.png", b"", 422, "empty"),
        ("scan.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, 422, ""),
        ("scan.jpg", b"\xff\xd8\xff\xe0 truncated jpeg", 422, ""),
        ("scan.dcm", b"not a dicom file at all", 422, "DICOM"),
    ],
)
def test_malformed_uploads_get_4xx_with_a_message(service, name, data, status, words):
    response = service.client.post("/api/models/breast/predict/file", headers=service.auth("cleo"),
                                   files=png_upload(data, name))
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert words in detail and "/tmp" not in detail and str(service.home) not in detail


def test_failed_predictions_are_audited_too(service):
    service.client.post("/api/models/breast/predict/file", headers=service.auth("cleo"),
                        files=png_upload(b"GIF89a", "x.png"))
    entry = _last_entry(service, "predict")
    assert entry.outcome == "rejected" and '"status":415' in entry.detail and entry.model_name == "breast"


def test_unknown_lab_field_is_refused_with_did_you_mean(service):
    response = service.client.post("/api/models/labs/predict/records", headers=service.auth("cleo"),
                                   json={"records": [{"glucoze": 100}]})
    assert response.status_code == 422
    assert "Did you mean 'glucose'" in response.json()["detail"]


@pytest.mark.parametrize("records", [[], [{}], [{"glucose": "high"}], [{"glucose": [1, 2]}], [{"glucose": "1\n2"}]])
def test_bad_records_get_422(service, records):
    response = service.client.post("/api/models/labs/predict/records", headers=service.auth("cleo"),
                                   json={"records": records})
    assert response.status_code == 422, response.text
    assert "high" not in response.text  # submitted values are not echoed back


HOSTILE = ["'; DROP TABLE users; --", "<script>alert(1)</script>", "\" OR 1=1 --", "../../../etc/passwd", "%00"]


@pytest.mark.parametrize("text", HOSTILE)
def test_injection_strings_in_fields_are_harmless(service, text):
    client, clinician = service.client, service.auth("cleo")
    response = client.post("/api/models/labs/predict/records", headers=clinician,
                           json={"records": [{"glucose": 100, "smoker": text}]})
    assert response.status_code == 200  # an unseen category counts as missing
    assert response.headers["content-type"].startswith("application/json")
    for path in (f"/api/models/{text}", f"/api/models/{text}/predict/records"):
        assert client.request("GET" if path.count("/") == 3 else "POST", path, headers=clinician,
                              json={"records": [{"glucose": 1}]}).status_code in (404, 405, 422)
    assert service.login(text, text).status_code == 401
    assert client.get("/api/audit", headers=service.auth("ada"), params={"actor": text}).status_code == 200
    assert client.get("/api/users/me", headers=clinician).status_code == 200  # the users table still exists


def test_unknown_model_and_version_get_404_with_a_hint(service):
    response = service.client.post("/api/models/lab/predict/records", headers=service.auth("cleo"),
                                   json={"records": [{"glucose": 1}]})
    assert response.status_code == 404 and "Did you mean 'labs'" in response.json()["detail"]
    response = service.client.post("/api/models/labs/predict/records?version=7", headers=service.auth("cleo"),
                                   json={"records": [{"glucose": 1}]})
    assert response.status_code == 404 and "no version 7" in response.json()["detail"]


def test_inference_runs_off_the_event_loop(service):
    import asyncio

    from medai.service.routes import predict

    assert asyncio.iscoroutinefunction(predict.predict_file)
    assert service.services.inference.limiter.total_tokens == service.services.settings.inference_threads


def test_table_upload_predicts_every_row_and_keeps_row_ids(service):
    table = b"glucose,age,smoker\n150,60,yes\n80,30,no\n"
    response = service.client.post("/api/models/labs/predict/file", headers=service.auth("cleo"),
                                   files={"file": ("labs.csv", table, "text/csv")})
    assert response.status_code == 200, response.text
    assert [p["input"] for p in response.json()["predictions"]] == ["row-1", "row-2"]
    assert response.json()["input_sha256"] == hashlib.sha256(table).hexdigest()
