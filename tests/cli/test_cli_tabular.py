"""The tabular task through the CLI on small synthetic tables made in the test."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medai.bundle import load_bundle
from medai.cli.main import app

runner = CliRunner()


def write_table(path, n=160, seed=0, sites=("a",), with_target=True, extra_category=None):
    """Risk rises with glucose and with smoker == 'yes'; some values are missing ('?')."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        glucose = rng.normal(100, 20)
        age = rng.normal(50, 10)
        smoker = rng.choice(["yes", "no"] if extra_category is None else ["yes", "no", extra_category])
        logit = 0.08 * (glucose - 100) + (1.5 if smoker == "yes" else -0.5) + rng.normal(0, 0.5)
        row = {"id": f"p{i}", "glucose": f"{glucose:.1f}" if rng.random() > 0.05 else "?", "age": f"{age:.0f}",
               "smoker": smoker, "site": sites[i % len(sites)]}  # fmt: skip
        if with_target:
            row["outcome"] = "sick" if logit > 0 else "well"
        rows.append(row)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def train(data, out, *extra):
    return runner.invoke(app, ["train", "--task", "tabular-classification", "--data", str(data), "--target", "outcome",
                               "--out", str(out), "--epochs", "15", "--ensemble", "2", "--id-column", "id", "--site-column", "site",
                               "--quiet", "--json", *extra])  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tab")
    data = write_table(folder / "train.csv")
    result = train(data, folder / "bundle")
    assert result.exit_code == 0, result.output
    return folder, data, folder / "bundle"


def test_train_learns_and_writes_a_bundle(trained):
    _folder, _data, bundle = trained
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert metrics["test"]["auroc"] > 0.8
    assert (bundle / "card.md").read_text().startswith("# Model card")
    assert (bundle / "plots" / "roc.png").exists()


def test_external_validation_on_another_file(trained, tmp_path):
    _, _, bundle = trained
    other = write_table(tmp_path / "other.csv", n=80, seed=5)
    result = runner.invoke(app, ["evaluate", str(bundle), "--data", str(other), "--split", "all", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_samples"] == 80
    result = runner.invoke(app, ["evaluate", str(bundle), "--data", str(other), "--split", "test"])
    assert result.exit_code == 2 and "--split all" in result.output


def test_predict_without_target_column_and_unseen_category(trained, tmp_path):
    _, _, bundle = trained
    new = write_table(tmp_path / "new.csv", n=12, seed=7, with_target=False, extra_category="former")
    result = runner.invoke(app, ["predict", str(bundle), "--data", str(new), "--json"])
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.stdout)
    assert (len(predictions) == 12 and predictions[0]["input"] == "row-1") or predictions[0]["input"].startswith("p")
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-6 for p in predictions)


def test_explain_row_gives_contributions_and_a_chart(trained, tmp_path):
    _, data, bundle = trained
    out = tmp_path / "why.png"
    result = runner.invoke(app, ["explain", str(bundle), "--data", str(data), "--row", "3", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    explanation = json.loads(result.stdout)
    assert {f["feature"] for f in explanation["features"]} == {"glucose", "age", "smoker"}
    total = sum(f["contribution"] for f in explanation["features"])
    target = explanation["explained_class"]
    assert abs(total - (explanation["probabilities"][target] - explanation["reference_probability"])) < 0.05
    glucose = next(f for f in explanation["features"] if f["feature"] == "glucose")
    assert "training_distribution" in glucose
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("model", ["logistic_regression", "gradient_boosting"])
def test_baselines_round_trip_through_skops(model, tmp_path):
    data = write_table(tmp_path / "t.csv")
    result = train(data, tmp_path / model, "--model", model)
    assert result.exit_code == 0, result.output
    assert (tmp_path / model / "model.skops").is_file() and not (tmp_path / model / "model.safetensors").exists()
    bundle = load_bundle(tmp_path / model)
    result = runner.invoke(app, ["evaluate", str(tmp_path / model), "--data", str(data), "--split", "test", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["auroc"] == bundle.metrics["test"]["auroc"]


def test_bad_tables_get_clear_errors(tmp_path, trained):
    data = write_table(tmp_path / "t.csv")
    result = train(data, tmp_path / "o1", "--model", "logistic_regresion")
    assert result.exit_code == 2 and "Did you mean 'logistic_regression'" in result.output
    result = runner.invoke(app, ["train", "--task", "tabular-classification", "--data", str(data), "--target", "outcom",
                                 "--out", str(tmp_path / "o2"), "--quiet"])  # fmt: skip
    assert result.exit_code == 2 and "outcome" in result.output
    result = train(data, tmp_path / "o3", "--image-size", "28")
    assert result.exit_code == 2 and "do not apply" in result.output
    _, _, bundle = trained
    (tmp_path / "cols.csv").write_text("id,age,site,outcome\np1,50,a,well\np2,60,a,sick\n")
    result = runner.invoke(app, ["evaluate", str(bundle), "--data", str(tmp_path / "cols.csv"), "--split", "all"])
    assert result.exit_code == 2 and "glucose" in result.output and "Traceback" not in result.output


def test_predict_flags_rows_unlike_the_training_rows(trained, tmp_path):
    _, data, bundle = trained
    normal = json.loads(runner.invoke(app, ["predict", str(bundle), "--data", str(data), "--split", "test", "--json"]).stdout)
    assert all("ood" in p for p in normal)
    assert np.mean([p["ood"]["out_of_distribution"] for p in normal]) < 0.2
    (tmp_path / "odd.csv").write_text("id,glucose,age,smoker,site\nq1,900,5,no,a\nq2,-300,140,yes,a\n")
    odd = json.loads(runner.invoke(app, ["predict", str(bundle), "--data", str(tmp_path / "odd.csv"), "--json"]).stdout)
    assert all(p["ood"]["out_of_distribution"] for p in odd)
    low, high = json.loads((bundle / "config.json").read_text())["ood"]["ranges"]["glucose"]
    assert [r for r in odd[0]["ood"]["reasons"] if r.startswith("glucose")] == [
        f"glucose 900 outside the range of the training data (with a margin) from {low:.4g} to {high:.4g}"]
    assert any(r.startswith("glucose -300 outside") for r in odd[1]["ood"]["reasons"])
    assert any(r.startswith("age 140 outside") for r in odd[1]["ood"]["reasons"])
    text = runner.invoke(app, ["predict", str(bundle), "--data", str(tmp_path / "odd.csv")]).stdout
    assert text.count("OUT OF DISTRIBUTION: ") == 2 and "glucose 900 outside" in text
    (tmp_path / "gaps.csv").write_text("id,glucose,age,smoker,site\nq1,120,50,no,a\nq2,,,,b\nq3,130,55,yes,a\n")
    rows = json.loads(runner.invoke(app, ["predict", str(bundle), "--data", str(tmp_path / "gaps.csv"), "--json"]).stdout)
    assert [r["input"] for r in rows] == ["q1", "q3", "row-2"]  # the empty row is reported, not dropped silently
    assert rows[-1] == {"input": "row-2", "error": "skipped", "reason": "every feature is missing"}
    assert "outside its column's training range" in (bundle / "card.md").read_text()


def test_dropout_setting_reaches_every_member_and_is_checked(tmp_path):
    from medai.errors import InvalidInputError
    from medai.tasks import tabular_classification as task

    bundle = task.train(write_table(tmp_path / "t.csv"), tmp_path / "b", target="outcome", epochs=2, ensemble=2,
                        dropout=0.0, progress=False)
    assert bundle.config["network_kwargs"]["dropout"] == 0.0
    dropouts = [m for m in bundle.model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and all(m.p == 0.0 for m in dropouts)
    with pytest.raises(InvalidInputError, match="'dropout'"):
        task.TabularSettings(dropout=1.0).validate()


def test_monitor_setting_is_checked_and_reaches_the_trainer():
    from medai.errors import InvalidInputError
    from medai.tasks import tabular_classification as task

    assert task.TabularSettings(monitor="loss").validate().trainer_config().monitor == "loss"
    with pytest.raises(InvalidInputError, match="monitor"):
        task.TabularSettings(monitor="accuracy").validate()


def test_wide_setting_adds_a_linear_path_and_is_checked(tmp_path):
    from medai.errors import InvalidInputError
    from medai.models import NETWORKS
    from medai.tasks import tabular_classification as task

    bundle = task.train(write_table(tmp_path / "t.csv"), tmp_path / "b", target="outcome", epochs=2, ensemble=2, progress=False)
    assert bundle.config["network_kwargs"]["wide"] is True
    assert all(member.wide is not None for member in bundle.model.network.members)
    assert "(wide and deep)" in (tmp_path / "b" / "card.md").read_text().splitlines()[0]
    narrow = NETWORKS.create("tabular_mlp", n_numeric=2, cardinalities=(3,), wide=False)
    assert narrow.wide is None  # bundles saved before the setting existed rebuild without it
    wide = NETWORKS.create("tabular_mlp", n_numeric=2, cardinalities=(3,), wide=True).eval()
    rows = torch.tensor([[0.5, -1.0, 0.0, 0.0, 2.0]])
    with torch.no_grad():
        inputs = torch.cat([rows[:, :4], wide.embeddings[0](rows[:, 4].long())], dim=1)
        torch.nn.init.ones_(wide.wide.weight)
        torch.nn.init.zeros_(wide.wide.bias)
        expected = wide.head(wide.body(inputs)) + inputs.sum(1, keepdim=True)  # the MLP's logits plus the linear path
        assert torch.allclose(wide(rows), expected)
    with pytest.raises(InvalidInputError, match="'wide'"):
        task.TabularSettings(wide="yes").validate()


def test_default_ensemble_is_cross_fitted_and_calibrated_out_of_fold(trained):
    _folder, _data, bundle = trained
    config = json.loads((bundle / "config.json").read_text())
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert config["settings"]["member_validation"] == "cross-fit"
    assert config["calibration"]["fitted_on"] == "out-of-fold members (train + val)"
    splits = json.loads((bundle / "splits.json").read_text())
    # every training and validation row is scored once, by the member that did not train on it
    assert metrics["out_of_fold"]["n_samples"] == len(splits["train"]) + len(splits["val"])
    assert metrics["out_of_fold"]["auroc"] > 0.8 and "val" not in metrics


def test_cross_validation_reports_auroc_and_accuracy_per_fold(tmp_path):
    from medai.tasks import tabular_classification as task

    data = write_table(tmp_path / "t.csv", n=120)
    result = task.cross_validate(data, task.TabularSettings(model="logistic_regression", target="outcome"), folds=3)
    assert len(result["auroc_per_fold"]) == len(result["accuracy_per_fold"]) == 3
    assert result["auroc_mean"] > 0.8 and 0.6 < result["accuracy_mean"] <= 1.0
    assert result["accuracy_mean"] == pytest.approx(np.mean(result["accuracy_per_fold"]))


def test_baselines_fit_on_train_and_val_and_calibrate_out_of_fold(tmp_path):
    from sklearn.linear_model import LogisticRegression

    from medai.engine.calibration import fit_temperature
    from medai.tasks import tabular_classification as task

    data = write_table(tmp_path / "t.csv")
    bundle = task.train(data, tmp_path / "lr", target="outcome", model="logistic_regression", progress=False)
    splits = json.loads((tmp_path / "lr" / "splits.json").read_text())
    pooled = len(splits["train"]) + len(splits["val"])
    assert bundle.metrics["fit"]["train_rows"] == pooled and bundle.metrics["out_of_fold"]["n_samples"] == pooled
    assert "val" not in bundle.metrics and "out-of-fold predictions of the same model" in (tmp_path / "lr" / "card.md").read_text()
    # the temperature is the one fitted on the out-of-fold predictions of 5 folds of train + val
    table = task.load(data, task.TabularSettings(target="outcome"))
    rows = np.flatnonzero(np.isin(table.ids, splits["train"] + splits["val"]))
    order = np.argsort([(splits["train"] + splits["val"]).index(i) for i in table.ids[rows]])
    pool = table.subset(rows[order])
    design = task.one_hot(task.features_of(bundle.config, pool), bundle.config["layout"]["n_numeric"], bundle.config["layout"]["cardinalities"])
    oof = np.zeros((len(pool), 2))
    for fit_rows, held_rows in task.cross_fit_folds(pool.labels, task.BASELINE_FOLDS, 0):
        oof[held_rows] = np.log(LogisticRegression(C=1.0, max_iter=5000).fit(design[fit_rows], pool.labels[fit_rows]).predict_proba(design[held_rows]))
    assert bundle.config["calibration"]["temperature"] == pytest.approx(fit_temperature(oof.astype(np.float32), pool.labels), rel=1e-4)
    split = task.train(data, tmp_path / "lr-split", target="outcome", model="logistic_regression", member_validation="split", progress=False)
    assert split.config["calibration"]["fitted_on"] == "val" and split.metrics["fit"]["train_rows"] == len(splits["train"])
