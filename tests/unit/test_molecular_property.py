"""Molecular property task: masked multi-task loss, ensembles, domain, splits, bundles of every model, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from medai.bundle import load_bundle
from medai.chem import molecule_table, murcko_scaffolds
from medai.chem.domain import ApplicabilityDomain
from medai.chem.featurise import MorganFingerprint, featurise
from medai.errors import InvalidInputError
from medai.models.molecule import MoleculeEnsemble, MoleculeModel
from medai.tasks import molecular_property as task
from tests.molecules import write_molecules

NAN = float("nan")


class Fixed(torch.nn.Module):
    """A 'network' returning given raw outputs (and one parameter, so gradients can be checked)."""

    def __init__(self, raw):
        super().__init__()
        self.n_outputs = raw.shape[1]
        self.raw = torch.nn.Parameter(raw.clone())

    def forward(self, batch):
        return self.raw


def test_multitask_loss_is_masked_on_missing_labels():
    raw = torch.tensor([[0.5, 1.0], [-1.0, 0.0], [2.0, -0.5]])
    model = MoleculeModel(Fixed(raw), ["classification", "regression"], [0.0, 10.0], [1.0, 2.0])
    labels = torch.tensor([[1.0, 12.0], [NAN, 8.0], [0.0, NAN]])
    loss = model({"label": labels})["loss"]
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = torch.stack([bce(raw[0, 0], torch.tensor(1.0)), (raw[0, 1] - 1.0) ** 2, (raw[1, 1] + 1.0) ** 2,
                            bce(raw[2, 0], torch.tensor(0.0))]).mean()
    assert torch.allclose(loss, expected)
    loss.backward()
    assert torch.isfinite(model.network.raw.grad).all() and model.network.raw.grad[1, 0] == 0
    empty = model({"label": torch.full((3, 2), NAN)})["loss"]
    assert empty.item() == 0.0 and empty.requires_grad
    logits = model({})["logits"]  # regression column in original units
    assert torch.allclose(logits[:, 1], raw[:, 1] * 2.0 + 10.0) and torch.equal(logits[:, 0], raw[:, 0])


def test_ensemble_averages_members_and_reports_their_spread():
    members = [MoleculeModel(Fixed(torch.tensor([[0.0, v]])), ["classification", "regression"]) for v in (1.0, 3.0)]
    output = MoleculeEnsemble(members)({})
    assert torch.allclose(output["logits"], torch.tensor([[0.0, 2.0]]), atol=1e-6)
    assert torch.allclose(output["spread"], torch.tensor([[0.0, 1.0]]))
    single = MoleculeEnsemble(members[:1])({})
    assert torch.equal(single["spread"], torch.zeros(1, 2))


def test_domain_flags_molecules_unlike_the_training_set():
    train = ["c1ccccc1O", "c1ccccc1N", "c1ccccc1C", "c1ccccc1CC", "c1ccccc1Cl", "c1ccccc1CO"]
    morgan = MorganFingerprint(counts=True)
    bits = lambda smiles: featurise(smiles, morgan, use_cache=False).values  # noqa: E731
    domain = ApplicabilityDomain().fit(bits(train), bits(["c1ccccc1CCC", "c1ccccc1OC"]))
    scores, flags = domain.flag(bits(["c1ccccc1O", "CCCCCCCCCCCCC(=O)OCC"]))
    assert scores[0] == 1.0 and not flags[0]
    assert flags[1] and scores[1] < domain.threshold_


def test_scaffold_split_never_shares_a_scaffold():
    from tests.molecules import synthetic_smiles

    table = molecule_table(synthetic_smiles(60))
    parts = task.split_table(table, "scaffold", seed=1)
    scaffolds = murcko_scaffolds(table)
    sides = [{scaffolds[i] for i in parts[name]} for name in ("train", "val", "test")]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert sum(len(p) for p in parts.values()) == len(table)


@pytest.fixture(autouse=True)
def _small_forests(monkeypatch):
    monkeypatch.setattr("medai.tasks.molecule_fit.FOREST_TREES", 40)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return write_molecules(tmp_path_factory.mktemp("mol") / "molecules.csv", n=60)


@pytest.mark.parametrize("model", ["dmpnn", "fingerprint_mlp", "random_forest"])
def test_every_model_round_trips_through_its_bundle(model, data_file, tmp_path):
    bundle = task.train(data_file, tmp_path / model, model=model, epochs=3, ensemble=2, progress=False,
                        num_threads=1, features="rdkit_2d" if model == "dmpnn" else "none")
    assert (tmp_path / model / "model.safetensors").is_file() and (tmp_path / model / "domain.safetensors").is_file()
    assert not (tmp_path / model / "model.skops").exists()  # forests too are arrays in safetensors
    config = json.loads((tmp_path / model / "config.json").read_text())
    assert config["task_types"] == ["classification", "regression"] and config["task_names"] == ["has_nitrogen", "size"]
    splits = json.loads((tmp_path / model / "splits.json").read_text())
    assert sorted(splits["train"] + splits["val"] + splits["test"]) == list(range(config["source"]["load_report"]["rows_kept"]))
    loaded = load_bundle(tmp_path / model)
    assert task.evaluate(loaded, data_file, "test")["auroc"] == bundle.metrics["test"]["auroc"]
    assert task.evaluate(loaded, data_file, "test")["rmse"] == bundle.metrics["test"]["rmse"]
    first = task.predict(bundle, ["CCc1ccncc1"])[0]
    again = task.predict(loaded, ["CCc1ccncc1"])[0]
    assert first == again and set(first["tasks"]) == {"has_nitrogen", "size"}
    assert 0.0 <= first["tasks"]["has_nitrogen"]["probability"] <= 1.0


def test_auto_keeps_the_candidate_better_on_validation(data_file, tmp_path):
    bundle = task.train(data_file, tmp_path / "auto", epochs=2, ensemble=1, progress=False, features="none",
                        num_threads=1)
    config, selection = bundle.config, bundle.config["selection"]
    scores = selection["validation_scores"]
    assert config["settings"]["model"] == "auto" and set(scores) == set(task.AUTO_CANDIDATES)
    assert config["network"] == selection["chosen"] == max(task.AUTO_CANDIDATES, key=lambda n: (scores[n], n == "dmpnn"))
    assert set(bundle.metrics["fit"]["candidates"]) == set(task.AUTO_CANDIDATES)
    # the kept model's recorded score is the one its saved bundle reproduces on the validation split
    val = task.evaluate(load_bundle(tmp_path / "auto"), data_file, "val")
    std = config["target_std"][1]
    assert scores[selection["chosen"]] == pytest.approx((val["auroc_has_nitrogen"] - val["rmse_size"] / std) / 2)
    assert f"chosen on the validation split: `{selection['chosen']}`" in (tmp_path / "auto" / "card.md").read_text()


@pytest.mark.parametrize(("forest_score", "chosen"), [(0.7, "dmpnn"), (0.7001, "random_forest")])
def test_auto_keeps_the_dmpnn_unless_the_forest_scores_higher(forest_score, chosen, data_file, tmp_path, monkeypatch):
    scores = {"dmpnn": 0.7, "random_forest": forest_score}
    monkeypatch.setattr(task, "validation_score", lambda model, config, *rest: scores[config["network"]])
    bundle = task.train(data_file, tmp_path / "b", epochs=1, ensemble=1, progress=False, features="none")
    assert bundle.config["network"] == chosen and bundle.config["selection"]["validation_scores"] == scores
    assert (load_bundle(tmp_path / "b").config["network"]) == chosen


def test_predict_reports_bad_rows_and_predicts_the_rest(data_file, tmp_path):
    bundle = task.train(data_file, tmp_path / "b", model="fingerprint_mlp", epochs=2, ensemble=3, progress=False,
                        features="none")
    rows = [{"smiles": "C1CC"}, {"smiles": ""}, {"smiles": "[Na+].[O-]C(=O)c1ccccc1"}, {"smiles": "CCO"}]
    new = write_molecules(tmp_path / "new.csv", n=5, with_labels=False, extra_rows=rows)
    results = task.predict(bundle, [new], smiles=["c1ccccc1N"])
    assert len(results) == 10
    errors = {r["row"]: r["error"] for r in results if "error" in r}
    assert errors == {6: "invalid", 7: "empty"}
    salt = results[7]
    assert salt["smiles"] == "O=C(O)c1ccccc1" and "salt_stripped" in salt["standardised"]
    assert results[-1]["source"] == "<smiles>" and results[-1]["tasks"]["size"]["uncertainty"] > 0
    assert all(r["domain"]["threshold"] > 0 for r in results if "domain" in r)


def test_bad_training_input_gets_clear_messages(data_file, tmp_path):
    with pytest.raises(InvalidInputError, match="Did you mean 'size'"):
        task.train(data_file, tmp_path / "x", targets=["sise"], progress=False)
    with pytest.raises(InvalidInputError, match="Did you mean 'dmpnn'"):
        task.train(data_file, tmp_path / "x", model="dmpn", progress=False)
    text = tmp_path / "text.csv"
    text.write_text("smiles,active\nCCO,yes\nCCN,no\n")
    with pytest.raises(InvalidInputError, match="'active'.*holds text"):
        task.train(text, tmp_path / "x", targets=["active"], progress=False)
    rows = [f"{'C' * k}O,1" for k in range(1, 15)]
    (tmp_path / "one.csv").write_text("smiles,active\n" + "\n".join(rows) + "\n")
    with pytest.raises(InvalidInputError, match="single class"):
        task.train(tmp_path / "one.csv", tmp_path / "x", progress=False)


def test_explain_integrated_gradients_add_up(data_file, tmp_path):
    bundle = task.train(data_file, tmp_path / "b", model="dmpnn", epochs=2, ensemble=1, progress=False,
                        features="none")
    result = task.explain(bundle, "CCc1ccncc1", tmp_path / "atoms.png", target="size")
    assert len(result["atoms"]) == 8 and result["explained_class"] == "size"
    gap = result["prediction"] - result["reference_prediction"]
    assert abs(result["sum_of_contributions"] - gap) < 0.02 * max(1.0, abs(gap))
    assert (tmp_path / "atoms.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "atoms.json").is_file()


def test_explain_occlusion_for_fingerprint_models(data_file, tmp_path):
    bundle = task.train(data_file, tmp_path / "rf", model="random_forest", progress=False)
    result = task.explain(bundle, "Nc1ccccc1", tmp_path / "rf.png", target="has_nitrogen")
    assert "occlusion" in result["method"] and any(a["contribution"] != 0 for a in result["atoms"])
    with pytest.raises(InvalidInputError, match="invalid"):
        task.explain(bundle, "C1CC", tmp_path / "bad.png")


@pytest.mark.realdata
def test_short_run_on_freesolv(real_data_dir, tmp_path):
    bundle = task.train("freesolv", tmp_path / "fs", model="dmpnn", epochs=4, ensemble=1, features="none",
                        progress=False, num_threads=1)
    assert bundle.metrics["test"]["rmse"] < 3.5  # the targets' sd is about 3.8 kcal/mol
    assert bundle.metrics["fit"]["molecules_per_second"] > 0


@pytest.mark.realdata
def test_short_scaffold_run_on_bbbp(real_data_dir, tmp_path):
    bundle = task.train("bbbp", tmp_path / "bbbp", split="scaffold", epochs=1, ensemble=1, features="none",
                        progress=False, num_threads=1)
    assert bundle.metrics["test"]["auroc"] > 0.6
    selection = bundle.config["selection"]  # the default, auto: D-MPNN and forest compared on validation
    assert bundle.config["network"] == selection["chosen"] and set(selection["validation_scores"]) == {"dmpnn", "random_forest"}
    splits = json.loads((tmp_path / "bbbp" / "splits.json").read_text())
    table = task.load("bbbp")
    scaffolds = murcko_scaffolds(table)
    train, test = ({scaffolds[i] for i in splits[name]} for name in ("train", "test"))
    assert not train & test


def test_default_epochs_give_small_regression_sets_more_steps():
    from medai.tasks.molecular_property import MIN_STEPS, auto_epochs

    assert auto_epochs(894, 50, ["regression"]) == 84  # ESOL's training split: 18 batches per epoch
    assert auto_epochs(894, 50, ["classification"]) == 40  # classification keeps 40
    assert auto_epochs(894, 50, ["regression", "classification"]) == 40
    assert auto_epochs(5000, 50, ["regression"]) == 40  # large sets already make MIN_STEPS in 40 epochs
    assert auto_epochs(10, 50, ["regression"]) == 200  # capped
    assert auto_epochs(894, 50, ["regression"]) * 18 >= MIN_STEPS
    settings = task.MolecularSettings(epochs=7)
    assert settings.trainer_config(894, ["regression"]).max_epochs == 7  # an explicit value wins


@pytest.mark.parametrize("epochs", [0, -3, 2.5])
def test_epochs_must_be_a_positive_int(epochs):
    with pytest.raises(InvalidInputError, match="'epochs'"):
        task.MolecularSettings(epochs=epochs).validate()
