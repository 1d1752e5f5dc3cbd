"""Drug recommendation: DDI graph and rate, metrics, models, bundles, recommendations, patient JSON errors.

A tiny DDI graph (tests/drugrec_cohorts.py) is staged under a temporary MEDAI_DATA_DIR, so nothing here needs the
real data; the cohort has planted diagnosis -> medication rules.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from medai.bundle import load_bundle
from medai.ehr.ddi import DDIGraph, ddi_rate, interacting_pairs, load_ddi, make_interaction_free
from medai.ehr.metrics import recommendation_metrics, visit_scores
from medai.errors import DataNotFoundError, InvalidInputError
from medai.models.drugrec import DrugRecommender, expected_interactions, margin_targets
from medai.tasks import drug_recommendation as task
from medai.tasks.drugrec_data import CodeEncoder, VisitSamples, split_patients, subset
from tests.drugrec_cohorts import CLASSES, make_cohort, patient_json, stage_ddi


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    root = stage_ddi(tmp_path_factory.mktemp("ddi"))
    previous = os.environ.get("MEDAI_DATA_DIR")
    os.environ["MEDAI_DATA_DIR"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("MEDAI_DATA_DIR", None)
    else:
        os.environ["MEDAI_DATA_DIR"] = previous


@pytest.fixture(scope="module")
def trained(staged, tmp_path_factory):
    torch.set_num_threads(1)
    cohort = make_cohort(150)
    folder = tmp_path_factory.mktemp("drugrec")
    bundles = {}
    for model, extra in (("drug_recommender", {"epochs": 15, "ensemble": 1, "learning_rate": 2e-3}), ("most_frequent", {}), ("logistic_regression", {}),
                         ("nearest_neighbour", {})):  # fmt: skip
        bundles[model] = task.train(cohort, folder / model, model=model, progress=False, **extra)
    return cohort, bundles


# -- DDI graph -------------------------------------------------------------------------------------------------


GRAPH = DDIGraph(["A", "B", "C", "D"], [[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]])


def test_ddi_rate_pools_pairs_over_sets_as_gamenet_does():
    # {A,B,C}: pairs AB*, AC, BC* -> 2 of 3; {A,D}: 0 of 1; {C}: no pair; total 2 of 4.
    assert ddi_rate([{"A", "B", "C"}, {"A", "D"}, {"C"}], GRAPH) == pytest.approx(0.5)
    assert ddi_rate([["A", "D"], ["B"]], GRAPH) == 0.0
    assert ddi_rate([], GRAPH) == 0.0
    assert interacting_pairs(["C", "B", "A", "Z"], GRAPH) == [("C", "B"), ("B", "A")]


def test_interaction_free_output_has_no_pairs_and_keeps_the_most_probable():
    rng = np.random.default_rng(0)
    graph = DDIGraph([f"X{i:02d}" for i in range(12)], (rng.random((12, 12)) < 0.3).astype(int))
    for _ in range(20):
        chosen = list(rng.choice(graph.classes, size=6, replace=False))
        probabilities = rng.random(6)
        kept = make_interaction_free(chosen, probabilities, graph)
        assert not graph.interacting_pairs(kept)
        assert kept[0] == chosen[int(np.argmax(probabilities))]
    assert make_interaction_free(["A", "B", "C"], [0.6, 0.9, 0.5], GRAPH) == ["B"]


def test_load_ddi_drops_special_tokens_and_reports_a_missing_folder(staged, tmp_path):
    graph = load_ddi("gamenet")
    assert graph.classes == CLASSES and graph.matrix.shape == (8, 8)
    assert graph.interacts("B01A", "C07A") and not graph.interacts("B01A", "A06A")
    assert graph.aligned(["C07A", "ZZZZ", "B01A"]).tolist() == [[0, 0, 1], [0, 0, 0], [1, 0, 0]]
    with pytest.raises(DataNotFoundError, match="drugrec_ddi_atc"):
        load_ddi("gamenet", folder=tmp_path)


# -- metrics ----------------------------------------------------------------------------------------------------


def test_visit_metrics_match_hand_computed_values():
    truth = np.array([[1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 0]])
    chosen = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    probabilities = np.array([[0.9, 0.2, 0.6, 0.1], [0.3, 0.1, 0.4, 0.2], [0.5, 0.7, 0.6, 0.9]])
    scores = visit_scores(truth, chosen, probabilities)
    assert scores["jaccard"] == pytest.approx([1 / 3, 0.0, 1 / 4])
    assert scores["f1"] == pytest.approx([0.5, 0.0, 2 * 0.25 * 1 / 1.25])
    expected_ap = [average_precision_score(t, p) for t, p in zip(truth, probabilities)]
    assert scores["prauc"] == pytest.approx(expected_ap)
    # Patient averaging: p1 has visits 0 and 1, p2 visit 2; DDI pairs pooled over visits.
    ddi = np.zeros((4, 4))
    ddi[0, 2] = ddi[2, 0] = 1
    m = recommendation_metrics(truth, chosen, probabilities, ["p1", "p1", "p2"], ddi_matrix=ddi, bootstrap=0)
    assert m["jaccard"] == pytest.approx(((1 / 3 + 0) / 2 + 1 / 4) / 2)
    assert m["avg_drugs"] == pytest.approx(6 / 3)
    assert m["ddi_rate"] == pytest.approx(2 / 7)  # {0,2}: 1 of 1 pair; {0,1,2,3}: 1 of 6
    assert m["ddi_rate_ground_truth"] == 0.0
    assert (m["n_patients"], m["n_visits"]) == (2, 3)


def test_bootstrap_intervals_bracket_the_estimate():
    rng = np.random.default_rng(1)
    truth = rng.random((60, 6)) < 0.4
    probabilities = np.clip(truth * 0.5 + rng.random((60, 6)) * 0.6, 0, 1)
    m = recommendation_metrics(truth, probabilities > 0.5, probabilities, [f"p{i // 2}" for i in range(60)], bootstrap=200)
    for key in ("jaccard", "f1", "prauc", "avg_drugs"):
        low, high = m[f"{key}_ci"]
        assert low <= m[key] <= high and high - low < (0.3 if key != "avg_drugs" else 1.5)


# -- models -----------------------------------------------------------------------------------------------------


def _batch(classes: int = 5):
    generator = torch.Generator().manual_seed(0)
    codes = lambda n, width: torch.randint(0, n + 1, (4, 3, width), generator=generator)  # noqa: E731
    label = (torch.rand(4, classes, generator=generator) < 0.4).float()
    label[0] = 0.0
    return {"diagnoses": codes(9, 4), "procedures": codes(6, 2), "medications": codes(classes, 3),
            "lengths": torch.tensor([1, 3, 2, 3]), "label": label}  # fmt: skip


def test_recommender_honours_the_model_contract(tmp_path):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    model = DrugRecommender(9, 6, 5, embedding=8, hidden=8, ddi_target=0.0)
    model.ddi.copy_(torch.tensor(GRAPH.aligned(["A", "B", "C", "D", "E"])))
    batch = _batch()
    output = model(batch)
    assert output["logits"].shape == (4, 5) and output["loss"].dim() == 0 and torch.isfinite(output["loss"])
    output["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    features = {k: v for k, v in batch.items() if k != "label"}
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    rebuilt = DrugRecommender(9, 6, 5, embedding=8, hidden=8)
    rebuilt.load_state_dict(load_file(str(tmp_path / "w.safetensors")))
    assert torch.equal(rebuilt.eval()(features)["logits"], model(features)["logits"])
    # Causal: padding a history with later visits does not change its output.
    short = {k: v[:1, :1] if k != "lengths" else v[:1] for k, v in features.items()}
    assert torch.allclose(model(short)["logits"], model(features)["logits"][:1], atol=1e-6)


def test_margin_targets_and_expected_interactions():
    label = torch.tensor([[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    assert margin_targets(label).tolist() == [[1, 3, -1, -1], [-1, -1, -1, -1]]
    ddi = torch.tensor(GRAPH.matrix, dtype=torch.float32)
    assert expected_interactions(torch.tensor([[1.0, 1.0, 1.0, 0.0], [0.5, 0.5, 0.0, 1.0]]), ddi).tolist() == [2.0, 0.25]


def test_encoder_and_samples_follow_the_gamenet_protocol(staged):
    cohort = make_cohort(10, seed=3)
    encoder = CodeEncoder().fit(cohort)
    samples = VisitSamples(cohort, encoder)
    assert len(samples) == sum(bool(v.medications) for p in cohort.patients for v in p.visits)
    batch = samples.collate(np.arange(len(samples)))
    first = next(i for i, h in enumerate(samples.histories) if len(h) >= 2)
    # The medications row of step t is the previous visit's classes; step 0 holds none.
    assert batch["medications"][first, 0].sum() == 0
    assert set(batch["medications"][first, 1].tolist()) - {0} == set(samples.histories[first][0].medications.tolist())
    assert encoder.to_dict() == CodeEncoder.from_dict(encoder.to_dict()).to_dict()
    parts = split_patients(50, 0.2, 0.15, 0)
    assert sorted(i for part in parts.values() for i in part) == list(range(50)) and len(parts["test"]) == 10
    assert parts == split_patients(50, 0.2, 0.15, 0) and parts != split_patients(50, 0.2, 0.15, 1)


# -- task -------------------------------------------------------------------------------------------------------


def test_deep_recommender_learns_the_planted_rules_and_beats_most_frequent(trained):
    _, bundles = trained
    deep, frequent = bundles["drug_recommender"].metrics["test"], bundles["most_frequent"].metrics["test"]
    assert deep["jaccard"] > frequent["jaccard"] + 0.2 and deep["prauc"] > frequent["prauc"]
    assert set(deep) >= {"jaccard", "f1", "prauc", "ddi_rate", "ddi_rate_ground_truth", "avg_drugs", "jaccard_ci"}
    for name in ("logistic_regression", "nearest_neighbour"):
        assert bundles[name].metrics["test"]["jaccard"] > frequent["jaccard"]


@pytest.mark.parametrize("model", ["drug_recommender", "logistic_regression", "nearest_neighbour", "most_frequent"])
def test_bundle_round_trip_gives_the_same_evaluation(trained, model):
    cohort, bundles = trained
    loaded = load_bundle(bundles[model].path)
    assert (loaded.path / ("model.skops" if model == "logistic_regression" else "model.safetensors")).exists()
    again = task.evaluate(loaded, cohort, "test", bootstrap=0)
    assert again["jaccard"] == pytest.approx(bundles[model].metrics["test"]["jaccard"])
    assert "Model card" in (loaded.path / "card.md").read_text()


def test_recommend_gives_evidence_warnings_and_interaction_free_sets(trained):
    _, bundles = trained
    bundle = load_bundle(bundles["drug_recommender"].path)
    patient = patient_json([{"diagnoses": ["4019", "25000"], "procedures": [], "medications": ["A10A"]},
                            {"diagnoses": ["41401", "2724"], "procedures": ["3893"]}])  # fmt: skip
    result = task.recommend(bundle, patient)
    recommended = {r["class"]: r for r in result["recommended"]}
    assert {"B01A", "C07A"} <= set(recommended)
    assert recommended["B01A"]["evidence"][0]["code"] == "41401"
    assert recommended["B01A"]["evidence"][0]["description"] == "Coronary atherosclerosis"
    assert recommended["B01A"]["evidence"][0]["visit"] == 0 and recommended["B01A"]["evidence"][0]["kind"] == "diagnosis"
    assert {"classes": ["B01A", "C07A"], "names": ["", ""]} in result["interactions"] or \
        {"classes": ["C07A", "B01A"], "names": ["", ""]} in result["interactions"]
    ranked = [r["probability"] for r in result["ranked"]]
    assert ranked == sorted(ranked, reverse=True)
    free = task.recommend(bundle, patient, interaction_free=True)
    assert not free["interactions"] and free["removed_for_interactions"]
    assert result["warnings"] == []  # every code known
    partly = task.recommend(bundle, patient_json([{"diagnoses": ["41401", "ZZZ99"], "procedures": ["0000"]}]))
    assert partly["warnings"] == ["2 code(s) unknown to the model were ignored (diagnoses 1, procedures 1)."]
    unknown = task.recommend(bundle, patient_json([{"diagnoses": ["ZZZ99"], "procedures": []}]))
    assert unknown["warnings"][-1].startswith("No code of this patient is known to the model")


def test_explain_writes_the_evidence_chart(trained, tmp_path):
    _, bundles = trained
    patient = patient_json([{"diagnoses": ["4280", "3051"], "procedures": ["9604"]}])
    result = task.explain(bundles["drug_recommender"], patient, tmp_path / "why.png", target="C03C")
    assert result["explained_class"] == "C03C" and (tmp_path / "why.png").stat().st_size > 1000
    with pytest.raises(InvalidInputError, match="target"):
        task.explain(bundles["drug_recommender"], patient, tmp_path / "x.png", target="Z99Z")


def test_patient_json_errors_name_the_field(trained):
    _, bundles = trained
    with pytest.raises(InvalidInputError, match=r"visits\[0\].*unknown field"):
        task.recommend(bundles["drug_recommender"], {"visits": [{"diagnosis": ["4019"], "procedures": []}]})
    with pytest.raises(InvalidInputError, match="visits"):
        task.recommend(bundles["drug_recommender"], {"visit": []})


def test_evaluate_refuses_a_split_of_other_data_and_settings_suggest_names(trained):
    _, bundles = trained
    with pytest.raises(InvalidInputError, match="--split all"):
        task.evaluate(bundles["most_frequent"], make_cohort(40, seed=9), "test")
    other = task.evaluate(bundles["most_frequent"], make_cohort(40, seed=9), "all", bootstrap=0)
    assert other["n_patients"] == 40
    with pytest.raises(InvalidInputError, match="Did you mean 'most_frequent'"):
        task.Settings(model="most-frequent").validate()


def test_subset_and_splits_keep_patients_whole(staged):
    cohort = make_cohort(30)
    parts = split_patients(30, 0.2, 0.15, 0)
    seen = [p.patient for name in parts for p in subset(cohort, parts[name]).patients]
    assert sorted(seen) == sorted(p.patient for p in cohort.patients)


def test_residual_recommender_starts_as_the_logistic_regression_and_keeps_it_frozen(staged):
    from medai.tasks import drugrec_fit

    cohort = make_cohort(60)
    parts = split_patients(60, 0.0, 0.2, 0)
    train, val = subset(cohort, parts["train"]), subset(cohort, parts["val"])
    encoder = CodeEncoder().fit(train)
    train_set, val_set = VisitSamples(train, encoder), VisitSamples(val, encoder)
    settings = task.Settings(residual=True, epochs=2, ensemble=1, progress=False)
    config = {"label_names": encoder.medications_}
    member = DrugRecommender(encoder.size("diagnoses"), encoder.size("procedures"), encoder.size("medications"))
    drugrec_fit.start_from_logistic(member, *drugrec_fit._logistic_weights(train_set, encoder, settings), encoder)
    logistic = drugrec_fit._fit_logistic(train_set, encoder, settings)
    expected = drugrec_fit.probabilities(logistic, config, val_set.histories, encoder)
    constant = train_set.labels.all(0)  # scikit-learn predicts exactly 1 for a class given at every visit
    got = drugrec_fit.probabilities(member, config, val_set.histories, encoder)
    np.testing.assert_allclose(got[:, ~constant], expected[:, ~constant], atol=1e-5)
    model, _, summary = task.fit(train, val, settings)
    np.testing.assert_array_equal(model.wide["diagnoses"].weight.detach().numpy(), member.wide["diagnoses"].weight.numpy())
    assert len(summary["best_epochs"]) == 1


def test_monitor_last_keeps_the_final_epoch(staged):
    cohort = make_cohort(40)
    parts = split_patients(40, 0.0, 0.2, 0)
    settings = task.Settings(monitor="last", epochs=3, ensemble=2, progress=False)
    _, _, summary = task.fit(subset(cohort, parts["train"]), subset(cohort, parts["val"]), settings)
    assert summary["best_epochs"] == [2, 2]
