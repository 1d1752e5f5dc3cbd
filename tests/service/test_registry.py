"""The model registry: register from a path or a zip, versions, stages, retirement, cards, integrity."""

from __future__ import annotations

import io
import shutil
import zipfile

import pytest

from tests.service.conftest import make_service


@pytest.fixture(scope="module")
def registry(tmp_path_factory, bundles):
    """A service of its own, so that staging and retiring do not disturb the shared one."""
    return make_service(tmp_path_factory.mktemp("registry"), [bundles["root"]])


def _register(svc, name, path, **extra):
    return svc.client.post("/api/models", json={"name": name, "path": str(path), **extra}, headers=svc.auth("rhea"))


def _zip(folder, prefix="bundle/") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + str(path.relative_to(folder)))
    return buffer.getvalue()


def test_versions_stages_and_retirement(registry, bundles):
    assert _register(registry, "labs", bundles["labs"]).json()["stage"] == "staging"
    second = _register(registry, "labs", bundles["labs"], stage="production").json()
    assert second["version"] == 2
    clinician = registry.auth("cleo")
    request = {"records": [{"glucose": 120}]}
    assert registry.client.post("/api/models/labs/predict/records", json=request,
                                headers=clinician).json()["model"]["version"] == 2
    researcher = registry.auth("rhea")
    assert registry.client.patch("/api/models/labs/versions/1", json={"stage": "production"},
                                 headers=researcher).status_code == 200
    model = registry.client.get("/api/models/labs", headers=clinician).json()
    assert model["production_version"] == 1 and [v["stage"] for v in model["versions"]] == ["production", "staging"]
    assert registry.client.post("/api/models/labs/versions/1/retire", headers=researcher).status_code == 200
    response = registry.client.post("/api/models/labs/predict/records", json=request, headers=clinician)
    assert response.status_code == 409 and "no production version" in response.json()["detail"]
    response = registry.client.post("/api/models/labs/predict/records?version=1", json=request, headers=clinician)
    assert response.status_code == 409 and "retired" in response.json()["detail"]
    assert registry.client.post("/api/models/labs/predict/records?version=2", json=request,
                                headers=clinician).status_code == 200  # staging versions can be used explicitly
    actions = [e["action"] for e in registry.client.get("/api/audit", headers=registry.auth("ada")).json()]
    assert {"model.register", "model.stage", "model.retire"} <= set(actions)


def test_version_detail_has_card_metrics_and_form_fields(registry, bundles):
    _register(registry, "labs-card", bundles["labs"])
    detail = registry.client.get("/api/models/labs-card/versions/1", headers=registry.auth("cleo")).json()
    assert detail["card_markdown"].startswith("# Model card")
    assert detail["metrics"]["split"] == "test" and "auroc" in detail["metrics"]
    fields = {f["name"]: f for f in detail["inputs"]["fields"]}
    assert detail["inputs"]["kind"] == "record" and fields["smoker"]["categories"] == ["no", "yes"]
    assert fields["glucose"]["type"] == "number" and "50" in fields["glucose"]["percentiles"]
    plot = registry.client.get("/api/models/labs-card/versions/1/files/plots/roc.png", headers=registry.auth("cleo"))
    assert plot.status_code == 200 and plot.content[:4] == b"\x89PNG"
    for name in ("..%2Fconfig.json", "..png", "x.json"):
        assert registry.client.get(f"/api/models/labs-card/versions/1/files/plots/{name}",
                                   headers=registry.auth("cleo")).status_code in (404, 422)


def test_register_outside_the_allowed_folders_is_refused(registry, tmp_path, bundles):
    outside = tmp_path / "elsewhere"
    shutil.copytree(bundles["labs"], outside)
    response = _register(registry, "sneaky", outside)
    assert response.status_code == 422 and "MEDAI_REGISTER_ROOTS" in response.json()["detail"]
    response = _register(registry, "sneaky", f"{bundles['root']}/../../../etc")
    assert response.status_code == 422


@pytest.mark.parametrize("name", ["Bad Name", "../x", "a" * 65, "-lead", "x;drop"])
def test_bad_model_names_are_refused(registry, bundles, name):
    response = _register(registry, name, bundles["labs"])
    assert response.status_code == 422 and "model name" in response.json()["detail"]


def test_not_a_bundle_is_refused(registry, bundles):
    response = _register(registry, "empty", bundles["root"])
    assert response.status_code == 422 and "not a complete medai bundle" in response.json()["detail"]


def test_changed_weights_are_refused_at_registration(registry, bundles, tmp_path):
    broken = bundles["root"] / "broken"
    shutil.copytree(bundles["labs"], broken)
    weights = broken / "model.skops"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    response = _register(registry, "broken", broken)
    assert response.status_code == 422 and "checksum" in response.json()["detail"]
    shutil.rmtree(broken)


def test_weights_changed_after_registration_make_the_model_unavailable(registry, bundles):
    version = _register(registry, "tampered", bundles["labs"]).json()
    registry.services.cache.evict(_version_id(registry, "tampered", version["version"]))
    stored = registry.home / "bundles" / "tampered" / "v1" / "model.skops"
    stored.write_bytes(stored.read_bytes() + b"\x00")
    response = registry.client.post("/api/models/tampered/predict/records?version=1", headers=registry.auth("cleo"),
                                    json={"records": [{"glucose": 100}]})
    assert response.status_code == 503 and "checksum" in response.json()["detail"]


def test_zipped_bundle_upload(registry, bundles):
    response = registry.client.post("/api/models/upload", headers=registry.auth("rhea"),
                                    data={"name": "breast-zip", "stage": "production"},
                                    files={"file": ("bundle.zip", _zip(bundles["image"]), "application/zip")})
    assert response.status_code == 201, response.text
    assert response.json()["task"] == "image-classification" and response.json()["inputs"]["kind"] == "image"
    predicted = registry.client.post("/api/models/breast-zip/predict/file", headers=registry.auth("cleo"),
                                     files={"file": ("a.png", bundles["png"].read_bytes(), "image/png")})
    assert predicted.status_code == 200


def test_zip_with_traversal_or_garbage_is_refused(registry, bundles):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../evil.txt", "x")
    for payload in (buffer.getvalue(), b"not a zip"):
        response = registry.client.post("/api/models/upload", headers=registry.auth("rhea"), data={"name": "evil"},
                                        files={"file": ("bundle.zip", payload, "application/zip")})
        assert response.status_code == 422, response.text
    assert not (registry.home.parent / "evil.txt").exists()


def test_bundles_are_cached_after_first_load(registry, bundles):
    version = _register(registry, "cached", bundles["labs"]).json()
    assert _version_id(registry, "cached", version["version"]) in registry.services.cache


def _version_id(svc, name, number):
    from medai.service.registry import get_version

    with svc.services.database.session() as session:
        return get_version(session, name, number).id
