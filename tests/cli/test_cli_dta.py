"""The drug-target-affinity task through the CLI on a small synthetic (SMILES, sequence, affinity) table."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from medai.cli.main import app

pytest.importorskip("rdkit")
runner = CliRunner()
DRUGS = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "CN1CCC[C@H]1c1cccnc1", "O=C(O)c1ccccc1OC(C)=O", "CCN(CC)CC",
         "c1ccc2ccccc2c1", "NC(=O)c1cccnc1"]


def write_pairs(path, n_proteins=8, seed=0, rows=None, with_affinity=True):
    """Affinity = drug effect + protein effect (+ noise); proteins are random 40-70 residue sequences."""
    rng = np.random.default_rng(seed)
    proteins = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), rng.integers(40, 70))) for _ in range(n_proteins)]
    drug_effect, protein_effect = rng.normal(0, 1, len(DRUGS)), rng.normal(0, 1, n_proteins)
    records = rows or [(d, p, 6 + drug_effect[i] + protein_effect[j] + rng.normal(0, 0.1))
                       for i, d in enumerate(DRUGS) for j, p in enumerate(proteins)]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["smiles", "sequence", "affinity"] if with_affinity else ["smiles", "sequence"])
        for smiles, sequence, value in records:
            writer.writerow([smiles, sequence, value] if with_affinity else [smiles, sequence])
    return path, proteins


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dta")
    data, proteins = write_pairs(folder / "pairs.csv")
    with open(data, "a", newline="") as handle:  # a row without affinity: reported and skipped
        csv.writer(handle).writerow(["CCO", proteins[0][:30], "nan"])
    result = runner.invoke(app, ["train", "--task", "drug-target-affinity", "--data", str(data), "--out",
                                 str(folder / "bundle"), "--epochs", "2", "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    return folder, data, proteins, folder / "bundle"


def test_train_writes_a_bundle_with_affinity_metrics(trained):
    _, _, _, bundle = trained
    metrics = json.loads((bundle / "metrics.json").read_text())
    for split in ("train", "val", "test"):
        assert {"ci", "mse", "rmse", "rm2", "r2", "mae"} <= set(metrics[split])
    config = json.loads((bundle / "config.json").read_text())
    assert config["source"]["load_report"]["counts"]["missing_affinity"] == 1
    assert config["target_normalisation"]["fitted_on"] == "train"
    assert (bundle / "plots" / "predicted_vs_measured.png").exists() and (bundle / "card.md").exists()
    splits = json.loads((bundle / "splits.json").read_text())
    assert sum(len(v) for v in splits.values()) == len(DRUGS) * 8


def test_evaluate_on_the_test_split_and_on_another_file(trained, tmp_path):
    _, data, _, bundle = trained
    result = runner.invoke(app, ["evaluate", str(bundle), "--data", str(data), "--split", "test", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_samples"] == json.loads((bundle / "metrics.json").read_text())["test"]["n_samples"]
    other, _ = write_pairs(tmp_path / "other.csv", n_proteins=3, seed=4)
    result = runner.invoke(app, ["evaluate", str(bundle), "--data", str(other), "--split", "all", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["n_samples"] == len(DRUGS) * 3
    result = runner.invoke(app, ["evaluate", str(bundle), "--data", str(other), "--split", "test"])
    assert result.exit_code == 2 and "--split all" in result.output


def test_predict_reports_bad_rows_and_predicts_the_rest(trained, tmp_path):
    _, _, proteins, bundle = trained
    rows = [("CCO", proteins[0], None), ("C1CC(", proteins[1], None), ("c1ccccc1O", "MKV1JZ*", None),
            ("CCN(CC)CC", proteins[2].lower(), None)]
    new, _ = write_pairs(tmp_path / "new.csv", rows=rows, with_affinity=False)
    result = runner.invoke(app, ["predict", str(bundle), "--data", str(new), "--json"])
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.stdout)
    assert [p["input"] for p in predictions] == ["row-1", "row-2", "row-3", "row-4"]
    assert "affinity" in predictions[0] and np.isfinite(predictions[3]["affinity"])
    assert predictions[1]["error"] == "invalid SMILES" and predictions[1]["reason"]
    assert predictions[2]["error"] == "invalid sequence" and "'1'" in predictions[2]["reason"]
    text = runner.invoke(app, ["predict", str(bundle), "--data", str(new)])
    assert text.exit_code == 0 and "row-2: invalid SMILES" in text.output and "row-1: affinity " in text.output


def test_explain_writes_a_plot_and_top_windows(trained, tmp_path):
    _, data, _, bundle = trained
    out = tmp_path / "why.png"
    result = runner.invoke(app, ["explain", str(bundle), "--data", str(data), "--row", "3", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    explanation = json.loads(result.stdout)
    assert out.exists() and out.with_suffix(".json").exists()
    assert explanation["top_protein_windows"] and explanation["top_drug_characters"]
    total = explanation["drug_total"] + explanation["protein_total"]
    assert abs(total - (explanation["prediction"] - explanation["baseline_prediction"])) < 0.05


def test_a_single_target_table_trains(tmp_path):
    data, _ = write_pairs(tmp_path / "one.csv", n_proteins=1, seed=2)
    result = runner.invoke(app, ["train", "--task", "drug-target-affinity", "--data", str(data), "--out",
                                 str(tmp_path / "bundle"), "--epochs", "1", "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "bundle" / "metrics.json").read_text())
    assert metrics["test"]["n_samples"] == 1 and metrics["test"]["ci"] is None  # one test pair: CI undefined
