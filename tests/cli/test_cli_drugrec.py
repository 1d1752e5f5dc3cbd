"""Drug recommendation through the CLI: train, evaluate and recommend on a small synthetic MIMIC-III folder.

The folder is written by ``medai.ehr.synthetic.write_mimic_tables`` from a cohort with planted rules; reading it back
maps the prescriptions with the staged drug-code files, so these tests need the real data folder (skipped otherwise).
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from medai.cli.main import app
from tests.drugrec_cohorts import make_cohort, patient_json

runner = CliRunner()
KEYS = {"jaccard", "f1", "prauc", "ddi_rate", "ddi_rate_ground_truth", "avg_drugs"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from medai.settings import data_dir

    if data_dir() is None or not (data_dir() / "drug_codes").is_dir():
        pytest.skip("the drug-code mapping files are absent: set MEDAI_DATA_DIR to ../shared/data")
    from medai.ehr.synthetic import write_mimic_tables

    folder = tmp_path_factory.mktemp("mimic")
    write_mimic_tables(make_cohort(80, seed=1), folder / "mimic")
    result = runner.invoke(app, ["train", "--task", "drug-recommendation", "--data", str(folder / "mimic"),
                                 "--out", str(folder / "bundle"), "--epochs", "10", "--ensemble", "1", "--quiet", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return folder, json.loads(result.output)


def test_train_reports_the_recommendation_headline(trained):
    folder, summary = trained
    assert KEYS <= set(summary["test"]) and summary["test"]["jaccard"] > 0.3
    assert (folder / "bundle" / "card.md").exists() and (folder / "bundle" / "splits.json").exists()


def test_evaluate_test_split_returns_the_keys_with_intervals(trained):
    folder, summary = trained
    result = runner.invoke(app, ["evaluate", str(folder / "bundle"), "--data", str(folder / "mimic"), "--split", "test", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert KEYS <= set(metrics) and all(f"{k}_ci" in metrics for k in KEYS)
    assert metrics["jaccard"] == pytest.approx(summary["test"]["jaccard"])


def test_recommend_prints_classes_evidence_and_warnings(trained):
    folder, _ = trained
    patient = folder / "patient.json"
    patient.write_text(json.dumps(patient_json([{"diagnoses": ["41401", "486"], "procedures": ["3893"]}])))
    result = runner.invoke(app, ["recommend", str(folder / "bundle"), "--patient", str(patient), "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["recommended"] and {"class", "name", "probability", "evidence"} <= set(found["recommended"][0])
    assert all(set(pair) == {"classes", "names"} for pair in found["interactions"])
    free = runner.invoke(app, ["recommend", str(folder / "bundle"), "--patient", str(patient), "--interaction-free", "--json"])
    assert free.exit_code == 0 and json.loads(free.output)["interactions"] == []
    text = runner.invoke(app, ["recommend", str(folder / "bundle"), "--patient", str(patient)])
    assert text.exit_code == 0 and "p=" in text.output and "WARNING: " not in text.output.split("WARNING interaction")[0]
    patient.write_text(json.dumps(patient_json([{"diagnoses": ["ZZZ99"], "procedures": []}])))
    text = runner.invoke(app, ["recommend", str(folder / "bundle"), "--patient", str(patient)])
    assert text.output.startswith("WARNING: 1 code(s) unknown to the model were ignored (diagnoses 1).\n"
                                  "WARNING: No code of this patient is known to the model")
    text = runner.invoke(app, ["predict", str(folder / "bundle"), str(patient)])  # predict prints the same
    assert text.exit_code == 0 and text.output.startswith(f"{patient}:\n  WARNING: 1 code(s) unknown")


def test_recommend_names_a_wrong_patient_field(trained):
    folder, _ = trained
    bad = folder / "bad.json"
    bad.write_text(json.dumps({"visits": [{"diagnoses": ["4019"], "procedure": []}]}))
    result = runner.invoke(app, ["recommend", str(folder / "bundle"), "--patient", str(bad)])
    assert result.exit_code != 0 and "visits[0]" in result.output
