"""The patient-history page (drug recommendation) and the SMILES page (molecular properties): the JSON endpoints
behind them, their 4xx messages, and both pages driven in a real browser (Playwright with Debian's Chromium).

The bundles are tiny ones trained on synthetic data (``history_smiles_service`` in conftest.py).
"""

from __future__ import annotations

import base64
import shutil

import pytest

from tests.drugrec_cohorts import INTERACTING
from tests.service.conftest import PASSWORD, served

VISITS = [{"diagnoses": "428.0, 4019", "procedures": "", "medications": "C03C"},  # dots are dropped: 4280
          {"diagnoses": "41401 25000 486", "procedures": "38.93"}]  # fmt: skip
PNG = b"\x89PNG\r\n\x1a\n"
QUINONE = "O=C1C=CC(=O)C=C1CCN"  # a PAINS / Brenk quinone


@pytest.fixture(scope="module")
def svc(history_smiles_service):
    return history_smiles_service


def post(svc, path: str, records: list[dict], user: str = "cleo"):
    return svc.client.post(path, json={"records": records}, headers=svc.auth(user))


# -- what the pages are built from ---------------------------------------------------------------------------------


def test_model_detail_describes_a_visit_history_and_a_smiles_field(svc):
    detail = svc.client.get("/api/models/drugrec/versions/1", headers=svc.auth("cleo")).json()["inputs"]
    assert detail["kind"] == "history" and detail["suffixes"] == [".json"]
    fields = {f["name"]: f for f in detail["fields"]}
    assert list(fields) == ["diagnoses", "procedures", "medications"] and fields["diagnoses"]["required"]
    assert (
        "25000" in fields["diagnoses"]["codes"] and fields["diagnoses"]["descriptions"]["25000"] == "Diabetes mellitus"
    )
    assert (
        fields["medications"]["earlier_visits_only"]
        and fields["medications"]["descriptions"]["B01A"] == "ANTITHROMBOTIC AGENTS"
    )
    assert not any(key.endswith("_from") for f in fields.values() for key in f)
    molecule = svc.client.get("/api/models/molprops/versions/1", headers=svc.auth("cleo")).json()["inputs"]
    assert molecule["kind"] == "record" and molecule["fields"] == [{"name": "smiles", "type": "smiles"}]
    assert molecule["outputs"] == [
        {"name": "has_nitrogen", "type": "classification"},
        {"name": "size", "type": "regression"},
    ]


def test_bundles_saved_before_declaring_their_input_get_the_tasks_declaration():
    from medai.service.inference import input_spec

    config = {"task": "drug-recommendation", "encoder": {"diagnoses": ["4019"], "procedures": [], "medications": ["A10A"]},
              "descriptions": {"diagnoses": {"4019": "Hypertension"}}, "class_names": {"A10A": ""}}  # fmt: skip
    spec = input_spec(config)
    assert spec["kind"] == "history"
    fields = {f["name"]: f for f in spec["fields"]}
    assert fields["diagnoses"]["codes"] == ["4019"] and fields["diagnoses"]["descriptions"] == {"4019": "Hypertension"}
    assert fields["medications"]["descriptions"] == {}  # empty names are left out
    assert input_spec({"task": "tabular-classification"})["kind"] == "file"


# -- drug recommendation -------------------------------------------------------------------------------------------


def test_history_predict_ranks_classes_names_them_and_warns_of_interactions(svc):
    response = post(svc, "/api/models/drugrec/predict/records", VISITS)
    assert response.status_code == 200, response.text
    body = response.json()
    result = body["predictions"][0]
    assert result["visits"] == 2 and result["unknown_codes"] == {"diagnoses": 0, "procedures": 0, "medications": 0}
    assert "request-" not in str(body) and "input.json" not in str(body)  # no scratch path or name
    ranked = [r["probability"] for r in result["ranked"]]
    assert ranked == sorted(ranked, reverse=True) and all(0 <= p <= 1 for p in ranked)
    assert all(r["name"] for r in result["ranked"])  # every class has its ATC name
    chosen = {r["class"] for r in result["recommended"]}
    assert chosen == {r["class"] for r in result["ranked"] if r["probability"] >= result["threshold"]}
    expected = {frozenset(p) for p in INTERACTING if set(p) <= chosen}
    assert {frozenset(i["classes"]) for i in result["interactions"]} == expected
    assert all(all(i["names"]) for i in result["interactions"])
    assert "A10A" in chosen  # 25000 (diabetes) -> insulins, planted in the synthetic cohort
    entries = svc.client.get("/api/audit?action=predict&model_name=drugrec", headers=svc.auth("ada")).json()
    assert entries[0]["input_sha256"] == body["input_sha256"] and "41401" not in str(entries[0])


def test_history_explain_names_the_codes_behind_a_class(svc):
    response = post(svc, "/api/models/drugrec/explain/records?target=A10A", VISITS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["explanation"]["explained_class"] == "A10A"
    evidence = next(r for r in body["explanation"]["recommended"] if r["class"] == "A10A")["evidence"]
    assert evidence[0] == {
        **evidence[0],
        "kind": "diagnosis",
        "code": "25000",
        "description": "Diabetes mellitus",
        "visit": 0,
    }
    assert base64.b64decode(body["image_png_base64"]).startswith(PNG)


@pytest.mark.parametrize(("records", "words"), [
    ([{}], "The visit history is empty"),
    ([{"diagnoses": "", "procedures": "", "medications": ""}], "The visit history is empty"),
    ([{"diagnoses": "4019, 99999"}], "code 2 is not one this model knows"),
    ([{"procedures": "3893"}, {"diagnoses": "4019"}], "Visit 1 has no diagnoses"),
    ([{"diagnoses": "4019", "medications": "A10A"}], "Leave medications given empty for the current visit"),
    ([{"diagnoses": "4019", "procedures": "38-93"}], "code 1 is not a code"),
    ([{"diagnoses": 4019.5}], "must be codes written as text"),
    ([{"diagnose": "4019"}], "Did you mean 'diagnoses'?"),
])  # fmt: skip
def test_bad_histories_get_a_clear_422_without_the_codes(svc, records, words):
    refused_clearly(svc, "drugrec", records, words, hidden=("99999", "38-93", "/tmp"))


def refused_clearly(svc, model: str, records: list[dict], words: str, hidden: tuple[str, ...]) -> None:
    """Both predict and explain answer 422 with ``words`` in the message and none of ``hidden`` (inputs, paths)."""
    for action in ("predict", "explain"):
        response = post(svc, f"/api/models/{model}/{action}/records", records)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert words in detail and not any(text in detail for text in hidden), detail


def test_explaining_a_class_that_was_not_recommended_is_refused(svc):
    result = post(svc, "/api/models/drugrec/predict/records", VISITS).json()["predictions"][0]
    other = next(r["class"] for r in result["ranked"] if r["probability"] < result["threshold"])
    assert post(svc, f"/api/models/drugrec/explain/records?target={other}", VISITS).status_code == 422


# -- molecular properties ------------------------------------------------------------------------------------------


def test_smiles_explain_gives_every_property_with_uncertainty_domain_alerts_and_atoms(svc):
    response = post(svc, "/api/models/molprops/explain/records?target=size", [{"smiles": QUINONE}])
    assert response.status_code == 200, response.text
    body = response.json()
    prediction = body["prediction"]
    assert set(prediction["tasks"]) == {"has_nitrogen", "size"}
    assert 0 <= prediction["tasks"]["has_nitrogen"]["probability"] <= 1
    assert all(t["uncertainty"] >= 0 for t in prediction["tasks"].values()) and "value" in prediction["tasks"]["size"]
    assert set(prediction["domain"]) == {"score", "threshold", "in_domain"}
    assert {a["catalog"] for a in prediction["alerts"]} >= {"PAINS_A", "BRENK"}
    assert body["explanation"]["explained_class"] == "size" and len(body["explanation"]["atoms"]) == 11
    assert "image" not in body["explanation"] and base64.b64decode(body["image_png_base64"]).startswith(PNG)


def test_smiles_predict_takes_several_molecules(svc):
    response = post(
        svc, "/api/models/molprops/predict/records", [{"smiles": "CCO"}, {"smiles": "[Na+].[O-]C(=O)c1ccccc1"}]
    )
    assert response.status_code == 200, response.text
    first, salt = response.json()["predictions"]
    assert first["alerts"] == [] and first["smiles"] == "CCO"
    assert salt["smiles"] == "O=C(O)c1ccccc1" and "salt_stripped" in salt["standardised"]


@pytest.mark.parametrize(("records", "words"), [
    ([{"smiles": "C1CC(N"}], "The molecule: the SMILES is not a valid molecule"),
    ([{"smiles": "  "}], "The molecule has no SMILES"),
    ([{}], "The record is empty"),
    ([{"smiles": "CCO"}, {"smiles": "C1CC(N"}], "Record 2: the SMILES is not a valid molecule"),
    ([{"smile": "CCO"}], "Did you mean 'smiles'?"),
])  # fmt: skip
def test_bad_smiles_get_a_clear_422_without_the_smiles(svc, records, words):
    refused_clearly(svc, "molprops", records, words, hidden=("C1CC(N",))


# -- in a browser --------------------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def live_url(svc):
    pytest.importorskip("uvicorn")
    with served(svc.app) as url:
        yield url


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
def test_clinician_uses_the_history_and_smiles_pages_in_a_browser(svc, live_url):
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    expected = post(svc, "/api/models/drugrec/predict/records", VISITS).json()["predictions"][0]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})  # a laptop screen
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{live_url}/ui/")
            page.fill("input[name=username]", "cleo")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_selector(".card")

            # patient history: one earlier visit, then the current one
            page.goto(f"{live_url}/ui/#/model/drugrec/1")
            page.wait_for_selector("fieldset.visit.current")
            assert page.locator("fieldset.current input[name=medications]").is_hidden()
            page.click("text=Add an earlier visit")
            earlier = page.locator("fieldset.visit").nth(0)
            sync_api.expect(earlier.locator("legend")).to_contain_text("Earlier visit 1")
            earlier.locator("input[name=diagnoses]").fill(VISITS[0]["diagnoses"])
            earlier.locator("input[name=medications]").fill(VISITS[0]["medications"])
            current = page.locator("fieldset.visit.current")
            current.locator("input[name=diagnoses]").fill("41401 25000 486 99999")
            sync_api.expect(current.locator(".code.unknown")).to_have_text("99999: not known to this model")
            sync_api.expect(current.locator(".code").first).to_have_text("41401: Coronary atherosclerosis")
            page.click("button[type=submit]")
            sync_api.expect(page.locator("p.error")).to_contain_text("not known to this model")
            current.locator("input[name=diagnoses]").fill(VISITS[1]["diagnoses"])
            current.locator("input[name=procedures]").fill(VISITS[1]["procedures"])
            page.click("button[type=submit]")
            page.wait_for_selector("ul.recommended li")
            text = page.inner_text("main")
            assert f"Recommended drug classes ({len(expected['recommended'])})" in text
            assert "A10A – Insulins and analogues" in text and "%" in text
            assert page.locator("p.warning", has_text="Drug interaction warning").count() == len(
                expected["interactions"]
            )
            assert page.locator(".prob.ranked").count() == len(expected["ranked"])
            row = page.locator("ul.recommended li", has_text="A10A")
            row.locator("text=Why?").click()
            sync_api.expect(row.locator(".why")).to_contain_text("25000 (Diabetes mellitus), current visit")
            assert row.locator(".why img").get_attribute("src").startswith("data:image/png;base64,")
            page.screenshot(path=str(svc.home / "history.png"), full_page=True)

            # SMILES page
            page.goto(f"{live_url}/ui/#/model/molprops/1")
            page.fill("input[name=smiles]", "C1CC(N")
            page.click("button[type=submit]")
            sync_api.expect(page.locator("p.error")).to_contain_text("not a valid molecule")
            page.fill("input[name=smiles]", QUINONE)
            page.select_option("select[name=target]", "size")
            page.click("button[type=submit]")
            image = page.wait_for_selector("img.explanation.molecule", timeout=60_000)
            assert image.get_attribute("src").startswith("data:image/png;base64,")
            text = page.inner_text("main")
            assert "has_nitrogen" in text and "probability" in text and "percentage points" in text
            assert "applicability domain" in text and "Atoms behind size" in text
            sync_api.expect(page.locator("ul.alerts li").first).to_contain_text("PAINS A")
            page.screenshot(path=str(svc.home / "smiles.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()
