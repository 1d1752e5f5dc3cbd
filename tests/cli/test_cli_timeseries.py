"""The time-series tasks through the CLI on small synthetic PhysioNet 2012 folders and UCR files made in the test."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from medai.cli.main import app
from tests.series_records import OUTCOMES_HEADER, record_text, write_physionet, write_ucr

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("icu")
    return write_physionet(root / "hospital_a", n=60, seed=0), write_physionet(root / "hospital_b", n=24, seed=1,
                                                                               name="y", first_id=200000)


@pytest.fixture(scope="module")
def mortality_bundle(folders, tmp_path_factory):
    bundle = tmp_path_factory.mktemp("runs") / "mortality"
    result = invoke("train", "--task", "mortality", "--data", folders[0], "--out", bundle, "--epochs", "4",
                    "--ensemble", "1", "--quiet", "--json")
    assert result.exit_code == 0, result.output
    return bundle


def test_mortality_trains_a_calibrated_ensemble_bundle(mortality_bundle):
    metrics = json.loads((mortality_bundle / "metrics.json").read_text())
    config = json.loads((mortality_bundle / "config.json").read_text())
    assert metrics["test"]["auroc"] > 0.7 and "auroc_ci_low" in metrics["test"] and "ece" in metrics["test"]
    assert [m["network"] for m in config["network_kwargs"]["members"]] == ["grud"] + ["series_summary"] * 3
    assert config["preprocessing"]["fitted"]["variables_"][0] == "ALP" and config["calibration"]["temperature"] > 0
    assert metrics["data_counts"] == {"records_skipped": 0, "lines_skipped": 0, "values_out_of_range": 0}
    splits = json.loads((mortality_bundle / "splits.json").read_text())
    assert len(splits["test"]) == 12 and not set(splits["test"]) & set(splits["train"])
    assert (mortality_bundle / "plots" / "calibration.png").is_file()
    assert "Load report" in (mortality_bundle / "card.md").read_text()


def test_mortality_bundle_evaluates_another_folder(mortality_bundle, folders):
    result = invoke("evaluate", mortality_bundle, "--data", folders[1], "--split", "all", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["n_samples"] == 24 and metrics["auroc"] > 0.7
    result = invoke("evaluate", mortality_bundle, "--data", folders[1], "--split", "test")
    assert result.exit_code == 2 and "--split all" in result.output


def test_predict_and_explain_one_record_file(mortality_bundle, folders, tmp_path):
    record = folders[1] / "set-y" / "200000.txt"  # a death (every third record)
    result = invoke("predict", mortality_bundle, record, "--json")
    assert result.exit_code == 0, result.output
    [prediction] = json.loads(result.stdout)
    assert prediction["input"] == "200000" and 0 <= prediction["risk"] <= 1 and "ood" in prediction
    out = tmp_path / "why.png"
    result = invoke("explain", mortality_bundle, record, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    explanation = json.loads(result.stdout)
    assert out.read_bytes()[:4] == b"\x89PNG" and explanation["explained_class"] == "died"
    assert {v["variable"] for v in explanation["top_variables"]} <= {"HR", "MAP", "RespRate", "Temp", "Lactate", "Weight"}
    assert explanation["top_windows"][0]["hours"][1] - explanation["top_windows"][0]["hours"][0] == 6
    assert abs(explanation["convergence_delta"]) < 0.05


def test_bad_records_are_reported_and_skipped(mortality_bundle, tmp_path):
    folder = tmp_path / "set-z"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i, record_id in enumerate(range(300000, 300012)):
        text = record_text(record_id, int(i % 3 == 0), rng)
        if i == 1:
            text += "25:00,HR\n26:00,Cholestrol,5\n-01:00,HR,80\n"  # malformed, unknown parameter, negative time
        (folder / f"{record_id}.txt").write_text(text)
    (folder / "300099.txt").write_text("Time,Parameter,Value\n")  # no observations
    outcomes = "".join(f"{r},1,1,5,-1,{int(i % 3 == 0)}\n" for i, r in enumerate(range(300000, 300011)))
    (tmp_path / "Outcomes-z.txt").write_text(OUTCOMES_HEADER + outcomes)  # 300011 has no outcome
    result = invoke("evaluate", mortality_bundle, "--data", folder, "--split", "all", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["n_samples"] == 11
    assert metrics["data_counts"]["lines_skipped"] == 3 and metrics["data_counts"]["records_skipped"] == 2
    problems = [p for p in metrics["data"]["problems"] if p["file"] == "300001.txt"]
    assert {p["reason"] for p in problems} == {"malformed_line", "unknown_parameter", "negative_time"}
    assert all(isinstance(p["line"], int) and p["line"] > 7 for p in problems)
    assert metrics["data"]["records_skipped"] == {"missing_outcome": 1, "no_observations": 1}


def test_unusable_data_gets_a_clear_error(mortality_bundle, tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke("evaluate", mortality_bundle, "--data", tmp_path / "empty", "--split", "all")
    assert result.exit_code == 2 and "Cannot tell the format" in result.output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "1.txt").write_text("Time,Parameter,Value\nxx\n")
    result = invoke("predict", mortality_bundle, broken / "1.txt")
    assert result.exit_code == 2 and "No usable record" in result.output and "Traceback" not in result.output
    result = invoke("evaluate", mortality_bundle, "--data", broken, "--split", "all", "--format", "mimic3")
    assert result.exit_code == 2 and "ICUSTAYS" in result.output


def test_forecasting_reports_each_variable_beside_locf(folders, tmp_path):
    bundle = tmp_path / "vitals"
    result = invoke("train", "--task", "forecasting", "--data", folders[0], "--out", bundle, "--epochs", "2",
                    "--target", "HR", "--target", "MAP", "--target", "SpO2", "--quiet", "--json")
    assert result.exit_code == 0, result.output
    config = json.loads((bundle / "config.json").read_text())
    assert config["targets"] == ["HR", "MAP"] and "SpO2" in config["target_notes"][0]
    result = invoke("evaluate", bundle, "--data", folders[1], "--split", "all", "--json")
    assert result.exit_code == 0, result.output
    heart_rate = json.loads(result.stdout)["per_variable"]["HR"]
    assert heart_rate["n"] > 0 and heart_rate["locf_mae"] > 0 and heart_rate["mae"] > 0
    result = invoke("predict", bundle, folders[1] / "set-y" / "200001.txt", "--json")
    assert result.exit_code == 0, result.output
    [forecast] = json.loads(result.stdout)
    assert forecast["forecast_hour"] == 48 and set(forecast["predictions"]) == {"HR", "MAP"}
    assert {"score", "threshold", "out_of_distribution", "reasons"} <= set(forecast["ood"])
    text = invoke("predict", bundle, folders[1] / "set-y" / "200001.txt")  # the text output has no label to print
    assert text.exit_code == 0 and text.output.startswith("200001: forecast for hour 48: HR=")
    result = invoke("explain", bundle, folders[1] / "set-y" / "200001.txt", "--target", "MAP", "--out", tmp_path / "f.png")
    assert result.exit_code == 0, result.output and (tmp_path / "f.png").is_file()


def test_ecg_classification_on_a_ucr_pair(tmp_path):
    train, test = write_ucr(tmp_path / "toy_TRAIN.txt", n=40), write_ucr(tmp_path / "toy_TEST.txt", n=20, seed=1)
    bundle = tmp_path / "ecg"
    result = invoke("train", "--task", "ecg-classification", "--data", train, "--out", bundle, "--epochs", "8",
                    "--ensemble", "2", "--quiet", "--json")
    assert result.exit_code == 0, result.output
    assert "out_of_fold" in json.loads(result.stdout)
    result = invoke("evaluate", bundle, "--data", test, "--split", "all", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["n_samples"] == 20 and metrics["accuracy"] >= 0.8
    result = invoke("explain", bundle, test, "--index", "3", "--out", tmp_path / "trace.png", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["top_segments"] and (tmp_path / "trace.png").is_file()
    normal = json.loads(invoke("predict", bundle, test, "--json").stdout)
    assert sum(p["ood"]["out_of_distribution"] for p in normal) <= 2  # 20 series like the training ones
    trace = np.loadtxt(test)[0, 1:]
    odd = tmp_path / "odd.txt"  # a flat line, and the first test series at 50 times its amplitude
    odd.write_text("1 " + " ".join(["0.5"] * 48) + "\n1 " + " ".join(f"{50 * v:.4f}" for v in trace) + "\n")
    flat, loud = (p["ood"] for p in json.loads(invoke("predict", bundle, odd, "--json").stdout))
    assert flat["out_of_distribution"] and flat["reasons"][0] == "flat line: no signal"
    assert loud["out_of_distribution"] and any(r.startswith("amplitude (standard deviation)") for r in loud["reasons"])
    assert loud["score"] > loud["threshold"] == 0
    assert "level, amplitude or roughness" in (bundle / "card.md").read_text()
    (tmp_path / "long.txt").write_text("1 " + " ".join(["0.1"] * 60) + "\n-1 " + " ".join(["0.2"] * 60) + "\n")
    result = invoke("evaluate", bundle, "--data", tmp_path / "long.txt", "--split", "all")
    assert result.exit_code == 2 and "shape" in result.output
