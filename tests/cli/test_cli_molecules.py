"""The molecular-property task through the CLI on tiny synthetic molecule tables made in the test."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from medai.cli.main import app
from tests.molecules import write_molecules

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mol")
    data = write_molecules(folder / "train.csv", n=60)
    result = runner.invoke(app, ["train", "--task", "molecular-property", "--data", str(data), "--smiles-column",
                                 "smiles", "--target", "has_nitrogen", "--target", "size", "--out",
                                 str(folder / "bundle"), "--model", "dmpnn", "--epochs", "3", "--ensemble", "2", "--quiet",
                                 "--json"])
    assert result.exit_code == 0, result.output
    return folder, data, folder / "bundle", json.loads(result.stdout)


def test_train_writes_a_bundle_with_both_tasks(trained):
    _, _, bundle, summary = trained
    assert {"auroc", "rmse"} <= set(summary["test"]) and len(summary["best_epochs"]) == 2
    for name in ("model.safetensors", "config.json", "metrics.json", "splits.json", "card.md", "plots/test.png"):
        assert (bundle / name).is_file(), name
    assert (bundle / "card.md").read_text().startswith("# Model card: deep ensemble of 2 `dmpnn`")


def test_external_validation_on_another_file(trained, tmp_path):
    _, _, bundle, _ = trained
    other = write_molecules(tmp_path / "other.csv", n=30, seed=4)
    result = runner.invoke(app, ["evaluate", str(bundle), "--data", str(other), "--split", "all", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["n_samples"] >= 25 and "auroc_has_nitrogen" in metrics and "rmse_size" in metrics
    result = runner.invoke(app, ["evaluate", str(bundle), "--data", str(other), "--split", "test"])
    assert result.exit_code == 2 and "--split all" in result.output


def test_predict_a_file_with_bad_rows_and_smiles_arguments(trained, tmp_path):
    _, _, bundle, _ = trained
    bad = [{"smiles": "not a molecule"}, {"smiles": ""}, {"smiles": "CC(=O)[O-].[Na+]"}]
    new = write_molecules(tmp_path / "new.csv", n=4, with_labels=False, extra_rows=bad)
    result = runner.invoke(app, ["predict", str(bundle), "--data", str(new), "--smiles", "CCN", "--json"])
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.stdout)
    assert len(predictions) == 8
    assert [p.get("error") for p in predictions[4:6]] == ["invalid", "empty"]
    assert predictions[6]["smiles"] == "CC(=O)O" and predictions[7]["input"] == "CCN"
    ok = [p for p in predictions if "tasks" in p]
    assert all({"probability", "uncertainty"} <= set(p["tasks"]["has_nitrogen"]) for p in ok)
    assert all("in_domain" in p["domain"] for p in ok)
    text = runner.invoke(app, ["predict", str(bundle), "--smiles", "CCO", "--smiles", "C1CC"])
    assert text.exit_code == 0 and "size=" in text.output and "invalid" in text.output


def test_explain_writes_a_picture_and_contributions(trained, tmp_path):
    _, _, bundle, _ = trained
    out = tmp_path / "atoms.png"
    result = runner.invoke(app, ["explain", str(bundle), "--smiles", "Nc1ccccc1", "--target", "has_nitrogen",
                                 "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    explanation = json.loads(result.stdout)
    assert len(explanation["atoms"]) == 7 and out.read_bytes()[:4] == b"\x89PNG"
    assert json.loads(out.with_suffix(".json").read_text())["smiles"] == "Nc1ccccc1"


def test_bad_input_gets_clear_messages(trained, tmp_path):
    _, data, bundle, _ = trained
    base = ["train", "--task", "molecular-property", "--data", str(data), "--quiet", "--epochs", "1"]
    result = runner.invoke(app, [*base, "--target", "sise", "--out", str(tmp_path / "a")])
    assert result.exit_code == 2 and "Did you mean 'size'" in result.output
    result = runner.invoke(app, [*base, "--split", "scafold", "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "Did you mean 'scaffold'" in result.output
    (tmp_path / "text.csv").write_text("smiles,active\nCCO,yes\nCCN,1\n")
    result = runner.invoke(app, ["train", "--task", "molecular-property", "--data", str(tmp_path / "text.csv"),
                                 "--target", "active", "--out", str(tmp_path / "c")])
    assert result.exit_code == 2 and "holds text" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["predict", str(bundle), "--data", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2 and "missing.csv" in result.output
    result = runner.invoke(app, ["explain", str(bundle), "--smiles", "C1CC", "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "invalid" in result.output


def test_tabular_tasks_still_take_one_target(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,y\n1,2,0\n2,3,1\n")
    result = runner.invoke(app, ["train", "--task", "tabular-classification", "--data", str(tmp_path / "t.csv"),
                                 "--target", "y", "--target", "b", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "give --target once" in result.output
