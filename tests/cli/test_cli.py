"""The CLI contract, through typer's CliRunner, on a tiny synthetic MedMNIST-format file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medai.cli.main import app
from tests.conftest import write_npz

runner = CliRunner()
TRAIN = ["train", "--task", "image-classification", "--epochs", "3", "--batch-size", "16", "--quiet", "--device", "cpu"]
SINGLE = [*TRAIN, "--ensemble", "1"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    data = write_npz(folder / "tiny.npz")
    result = invoke(*TRAIN, "--ensemble", "2", "--data", data, "--out", folder / "bundle", "--json")
    assert result.exit_code == 0, result.output
    return folder, data, folder / "bundle", json.loads(result.stdout)


def test_train_writes_a_complete_bundle(trained):
    _, _, bundle, summary = trained
    assert summary["bundle"] == str(bundle)
    for name in ("model.safetensors", "config.json", "metrics.json", "card.md", "splits.json", "plots/roc.png",
                 "plots/pr.png", "plots/calibration.png", "plots/confusion_matrix.png", "plots/training_curves.png"):  # fmt: skip
        assert (bundle / name).is_file(), name
    assert not (bundle.parent / "bundle.checkpoint").exists()
    config = json.loads((bundle / "config.json").read_text())
    assert config["network"] == "ensemble" and config["network_kwargs"]["size"] == 2
    assert len(summary["best_epochs"]) == 2
    card = (bundle / "card.md").read_text()
    assert "AUROC" in card and "Limitations" in card and "Intended use" in card


def test_evaluate_prints_lower_case_metric_keys(trained):
    _, data, bundle, _ = trained
    result = invoke("evaluate", bundle, "--data", data, "--split", "test", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    for key in ("auroc", "auprc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1", "brier", "ece",
                "confusion_matrix", "auroc_ci_low", "auroc_ci_high"):  # fmt: skip
        assert key in metrics, key
    assert metrics["n_samples"] == 16


def test_predict_matches_evaluate_probabilities(trained, tmp_path):
    _folder, data, bundle, _ = trained
    from medai import api
    from medai.bundle import load_bundle
    from medai.tasks.image_classification import _data_for_bundle, _probabilities

    loaded = load_bundle(bundle)
    expected = _probabilities(loaded.model, _data_for_bundle(loaded, data)["test"], loaded.config)
    result = invoke("predict", bundle, data, "--split", "test", "--json")
    assert result.exit_code == 0, result.output
    predicted = json.loads(result.stdout)
    assert len(predicted) == 16
    got = np.array([[p["probabilities"][n] for n in loaded.label_names] for p in predicted])
    assert np.array_equal(got, expected.astype(float))
    image = np.load(data)["test_images"][3]
    Image.fromarray(image).save(tmp_path / "one.png")
    single = api.predict(loaded, [tmp_path / "one.png"])
    assert single[0]["probabilities"] == predicted[3]["probabilities"]
    assert single[0]["label"] in loaded.label_names


def test_explain_writes_a_heat_map(trained, tmp_path):
    _, data, bundle, _ = trained
    out = tmp_path / "cam.png"
    result = invoke("explain", bundle, data, "--index", 2, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(result.stdout)["method"] == "grad-cam"


def test_same_seed_twice_gives_identical_metrics(trained, tmp_path):
    _, data, _, summary = trained
    again = invoke(*TRAIN, "--ensemble", "2", "--data", data, "--out", tmp_path / "again", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["test"] == summary["test"]


def _write(path, content: bytes):
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "make_bad, message",
    [
        (lambda p: p / "missing.npz", "No file at"),
        (lambda p: _write(p / "corrupt.npz", b"PK\x03\x04garbage"), "npz"),
        (lambda p: _write(p / "text.npz", b"hello"), "npz"),
    ],
)
def test_bad_data_gives_one_line_error_and_no_bundle(tmp_path, make_bad, message):
    bad = make_bad(tmp_path)
    result = invoke(*SINGLE, "--data", bad, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.output.strip().startswith("error:") and message in result.output
    assert not (tmp_path / "out").exists()


def test_truncated_npz_is_reported(tmp_path):
    good = write_npz(tmp_path / "good.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(good[: len(good) // 2])
    result = invoke(*SINGLE, "--data", tmp_path / "cut.npz", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "error:" in result.output and "Traceback" not in result.output


def test_unknown_model_and_task_get_did_you_mean(tmp_path, tiny_npz):
    result = invoke(*SINGLE, "--data", tiny_npz, "--out", tmp_path / "o", "--model", "resnet-18")
    assert result.exit_code == 2 and "Did you mean 'resnet18'" in result.output
    result = invoke("train", "--task", "image-clasification", "--data", tiny_npz, "--out", tmp_path / "o")
    assert result.exit_code == 2 and "Did you mean 'image-classification'" in result.output


def test_wrong_channel_count_and_size_are_named(trained, tmp_path):
    _, _, bundle, _ = trained
    rgb = write_npz(tmp_path / "rgb.npz", channels=3)
    result = invoke("evaluate", bundle, "--data", rgb, "--json")
    assert result.exit_code == 2 and "channel" in result.output
    big = write_npz(tmp_path / "big.npz", size=24)
    result = invoke("evaluate", bundle, "--data", big, "--json")
    assert result.exit_code == 2 and "Wrong image size" in result.output


def test_predict_on_a_file_that_is_not_an_image(trained, tmp_path):
    _, _, bundle, _ = trained
    (tmp_path / "notes.png").write_text("not an image")
    result = invoke("predict", bundle, tmp_path / "notes.png", "--json")
    assert result.exit_code == 2 and "notes.png" in result.output and "Traceback" not in result.output


def test_tampered_bundle_is_refused(trained, tmp_path):
    import shutil

    _, data, bundle, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    weights = copy / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-2] ^= 1
    weights.write_bytes(bytes(raw))
    result = invoke("evaluate", copy, "--data", data)
    assert result.exit_code == 2 and "checksum" in result.output


def test_models_and_datasets_listings():
    result = invoke("models", "--json")
    assert result.exit_code == 0
    assert {"classic_cnn", "compact_cnn", "resnet18"} <= {m["name"] for m in json.loads(result.stdout)}
    result = invoke("datasets", "--json")
    assert result.exit_code == 0
    assert {"breastmnist", "pneumoniamnist"} <= {d["name"] for d in json.loads(result.stdout)}


def test_demo_without_data_or_network_says_what_it_could_not_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDAI_DATA_DIR", str(tmp_path / "nodata"))
    result = invoke("demo", "--out", tmp_path / "demo", "--quiet")
    assert result.exit_code == 3
    assert "skipped breastmnist" in result.output and "nothing could be run" in result.output


def test_predict_flags_inputs_unlike_the_training_images(trained, tmp_path):
    _, data, bundle, _ = trained
    assert (bundle / "ood" / "autoencoder.safetensors").is_file()
    normal = json.loads(invoke("predict", bundle, data, "--split", "test", "--json").stdout)
    assert all("ood" in p for p in normal)
    assert sum(p["ood"]["out_of_distribution"] for p in normal) <= 4  # 16 in-distribution test images
    noise = (np.random.default_rng(1).random((16, 16)) * 255).astype(np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    flagged = json.loads(invoke("predict", bundle, tmp_path / "noise.png", "--json").stdout)[0]
    assert flagged["ood"]["out_of_distribution"] and flagged["ood"]["score"] > flagged["ood"]["threshold"]
    assert any("reconstruction error" in reason for reason in flagged["ood"]["reasons"])
    # a blank image is reconstructed well (a low error), yet it is nothing like a scan: its brightness says so
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "blank.png")
    blank = json.loads(invoke("predict", bundle, tmp_path / "blank.png", "--json").stdout)[0]["ood"]
    assert blank["out_of_distribution"]
    assert any(reason.startswith("brightness (mean pixel value) 0 outside the range of the training images") for reason in blank["reasons"])
    assert "no contrast: every pixel has the same value" in blank["reasons"]
    config = json.loads((bundle / "config.json").read_text())["ood"]["intensity"]
    assert 0 <= config["validation_flagged"] <= 1 and config["mean"][0] < config["mean"][1]
    assert "brightness (mean pixel value" in (bundle / "card.md").read_text()


@pytest.mark.parametrize("method", ["autoencoder", "pca"])
def test_reduce_writes_codes_and_a_plot(tiny_npz, tmp_path, method):
    out = tmp_path / "codes.csv"
    result = invoke("reduce", "--data", tiny_npz, "--dim", 3, "--out", out, "--method", method, "--epochs", 3, "--json")
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0] == "id,label,code_1,code_2,code_3" and len(lines) == 1 + 48 + 16 + 16
    assert (tmp_path / "codes.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads(result.stdout)["fitted_on"] == "train split"


def test_reduce_rejects_an_unknown_output_format(tiny_npz, tmp_path):
    result = invoke("reduce", "--data", tiny_npz, "--dim", 2, "--out", tmp_path / "codes.xlsx")
    assert result.exit_code == 2 and ".parquet" in result.output


def test_two_class_decisions_use_the_threshold_fitted_on_validation(trained, tmp_path):
    _, data, default, _ = trained
    assert "decision" not in json.loads((default / "config.json").read_text())  # the most probable class
    bundle = tmp_path / "tuned"
    result = invoke(*SINGLE, "--data", data, "--out", bundle, "--decision-threshold", "val-accuracy")
    assert result.exit_code == 0, result.output
    from medai import api
    from medai.bundle import load_bundle
    from medai.engine.metrics import fit_decision_threshold
    from medai.tasks.image_classification import _data_for_bundle, _probabilities

    loaded = load_bundle(bundle)
    decision = loaded.config["decision"]
    splits = _data_for_bundle(loaded, data)
    val = _probabilities(loaded.model, splits["val"], loaded.config)
    assert decision["fitted_on"] == "val" and decision["positive_class"] == loaded.label_names[1]
    assert decision["threshold"] == fit_decision_threshold(val, splits["val"].labels)
    test = _probabilities(loaded.model, splits["test"], loaded.config)
    labels = np.where(test[:, 1] >= decision["threshold"], 1, 0)
    metrics = json.loads(invoke("evaluate", bundle, "--data", data, "--json").stdout)
    assert metrics["decision_threshold"] == decision["threshold"]
    assert metrics["accuracy"] == pytest.approx(float((labels == splits["test"].labels).mean()))
    predicted = api.predict(loaded, [data], split="test")
    assert [p["label"] for p in predicted] == [loaded.label_names[i] for i in labels]
    assert "maximise accuracy on the validation split" in (bundle / "card.md").read_text()


def test_a_given_decision_threshold_is_kept_and_checked(tiny_npz, tmp_path):
    result = invoke(*SINGLE, "--epochs", 1, "--data", tiny_npz, "--out", tmp_path / "b", "--decision-threshold", 0.5)
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["decision"] == {"threshold": 0.5, "positive_class": config["label_names"][1], "fitted_on": None}
    for wrong in ("1.5", "best"):
        bad = invoke(*SINGLE, "--data", tiny_npz, "--out", tmp_path / "c", "--decision-threshold", wrong)
        assert bad.exit_code != 0 and "decision_threshold" in bad.output and not (tmp_path / "c").exists()


def test_cross_fitted_members_calibrate_and_decide_on_out_of_fold_predictions(tiny_npz, tmp_path):
    bundle = tmp_path / "crossfit"
    result = invoke(*TRAIN, "--ensemble", "2", "--epochs", "2", "--data", tiny_npz, "--out", bundle,
                    "--member-validation", "cross-fit", "--decision-threshold", "val-accuracy")  # fmt: skip
    assert result.exit_code == 0, result.output
    from medai.bundle import load_bundle
    from medai.engine.calibration import softmax
    from medai.engine.metrics import fit_decision_threshold
    from medai.tasks.common import members, out_of_fold_logits
    from medai.tasks.image_classification import OUT_OF_FOLD, _data_for_bundle

    loaded = load_bundle(bundle)
    config, metrics = loaded.config, json.loads((bundle / "metrics.json").read_text())
    splits = _data_for_bundle(loaded, tiny_npz)
    pooled = len(splits["train"]) + len(splits["val"])
    # every training and validation image is scored once, by the member that did not train on it
    assert metrics["fit"]["member_validation"] == "cross-fit" and "val" not in metrics
    assert metrics["out_of_fold"]["n_samples"] == pooled and metrics["test"]["n_samples"] == len(splits["test"])
    assert config["calibration"]["fitted_on"] == config["decision"]["fitted_on"] == OUT_OF_FOLD
    from medai.data.dataset import concatenate
    from medai.tasks.common import cross_fit_folds

    pool = concatenate([splits["train"], splits["val"]])
    folds = cross_fit_folds(pool.labels, len(members(loaded.model)), config["settings"]["seed"])
    oof = softmax(out_of_fold_logits(loaded.model, pool, folds), config["calibration"]["temperature"])
    assert config["decision"]["threshold"] == fit_decision_threshold(oof, pool.labels)
    card = (bundle / "card.md").read_text()
    assert "cross-fitted" in card and "| out_of_fold |" in card and "out-of-fold predictions" in card
    bad = invoke(*TRAIN, "--data", tiny_npz, "--out", tmp_path / "bad", "--member-validation", "pooled")
    assert bad.exit_code != 0 and "member_validation" in bad.output and not (tmp_path / "bad").exists()
