"""Short runs of the time-series tasks on the real PhysioNet 2012, MIMIC-III demo, UCR and WFDB data."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from medai import api
from medai.cli.main import app

pytestmark = pytest.mark.realdata
runner = CliRunner()
SHORT = {"epochs": 1, "progress": False}


def test_physionet_mortality_validated_externally_on_mimic(real_data_dir, tmp_path):
    bundle = api.train("mortality", real_data_dir / "physionet2012_mortality", tmp_path / "p12", ensemble=1,
                       summary_members=1, **SHORT)
    assert bundle.metrics["test"]["n_samples"] == 800 and bundle.metrics["test"]["auroc"] > 0.7
    assert bundle.metrics["data_counts"]["values_out_of_range"] > 0  # the set holds implausible values, counted
    result = runner.invoke(app, ["evaluate", str(tmp_path / "p12"), "--data", str(real_data_dir / "mimic3_demo"),
                                 "--split", "all", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["n_samples"] > 100 and metrics["data"]["variables_added_empty"] == ["MechVent"]
    assert "SpO2" in metrics["data"]["variables_ignored"]
    record = next((real_data_dir / "physionet2012_mortality" / "set-a").glob("*.txt"))
    result = runner.invoke(app, ["explain", str(tmp_path / "p12"), str(record), "--out", str(tmp_path / "why.png"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["top_variables"]


def test_physionet_forecasting_beside_locf(real_data_dir, tmp_path):
    bundle = api.train("forecasting", real_data_dir / "physionet2012_mortality", tmp_path / "vitals", stride=6, **SHORT)
    test = bundle.metrics["test"]["per_variable"]
    assert set(test) == {"HR", "MAP", "RespRate", "Temp"}
    assert test["HR"]["n"] > 1000 and test["HR"]["locf_mae"] > 0


def test_ecg200_and_a_wfdb_record(real_data_dir, tmp_path):
    folder = real_data_dir / "ucr_ecg"
    api.train("ecg-classification", folder / "ECG200_TRAIN.txt", tmp_path / "ecg200", ensemble=2, epochs=20,
              progress=False)
    metrics = api.evaluate(tmp_path / "ecg200", folder / "ECG200_TEST.txt", split="all")
    assert metrics["n_samples"] == 100 and metrics["accuracy"] > 0.7
    record = real_data_dir / "ecg_wfdb_physionet_samples" / "100"
    bundle = api.train("ecg-classification", record, tmp_path / "beats", ensemble=1, grouping="binary", **SHORT)
    assert bundle.metrics["test"]["n_samples"] > 400 and bundle.config["source"]["format"] == "wfdb"
