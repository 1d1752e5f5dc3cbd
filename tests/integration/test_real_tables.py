"""Short runs on the real lab tables under MEDAI_DATA_DIR (skipped with a reason where absent)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from medai import api
from medai.cli.main import app

pytestmark = pytest.mark.realdata
runner = CliRunner()


def test_pima_trains_explains_and_beats_chance(real_data_dir, tmp_path):
    bundle = api.train("tabular-classification", "pima", tmp_path / "pima", epochs=20, ensemble=1, progress=False)
    assert bundle.metrics["test"]["auroc"] > 0.75
    assert bundle.config["source"]["load_report"]  # impossible zeros etc. are reported
    result = runner.invoke(app, ["explain", str(tmp_path / "pima"), "--data", "pima", "--split", "test", "--row", "0",
                                 "--out", str(tmp_path / "why.png"), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    features = {f["feature"] for f in json.loads(result.stdout)["features"]}
    assert {"Glucose", "BMI", "Age"} <= features


def test_cleveland_model_validated_externally_on_hungary(real_data_dir, tmp_path):
    api.train("tabular-classification", "heart-cleveland", tmp_path / "cle", model="logistic_regression", progress=False)
    result = runner.invoke(app, ["evaluate", str(tmp_path / "cle"), "--data", "heart-hungarian", "--split", "all", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["n_samples"] == 294 and metrics["auroc"] > 0.75


def test_reduce_breastmnist_to_codes(real_data_dir, tmp_path):
    result = runner.invoke(app, ["reduce", "--data", "breastmnist", "--dim", "8", "--out", str(tmp_path / "codes.parquet"),
                                 "--epochs", "5", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["records"] == 780 and (tmp_path / "codes.png").exists()
