"""Drug recommendation on the real MIMIC-III demo (100 patients): a short training run end to end."""

from __future__ import annotations

import pytest

from medai.bundle import load_bundle
from medai.tasks import drug_recommendation as task

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def demo_bundle(tmp_path_factory):
    from medai.settings import data_dir

    folder = data_dir()
    if folder is None or not (folder / "mimic3_demo").is_dir() or not (folder / "drugrec_ddi_atc").is_dir():
        pytest.skip("real data absent: set MEDAI_DATA_DIR to the folder holding mimic3_demo and drugrec_ddi_atc")
    out = tmp_path_factory.mktemp("demo") / "bundle"
    return folder / "mimic3_demo", task.train(folder / "mimic3_demo", out, epochs=5, ensemble=1, progress=False)


def test_short_run_on_the_demo_gives_sane_metrics(demo_bundle):
    data, bundle = demo_bundle
    test = bundle.metrics["test"]
    assert 0.25 < test["jaccard"] < 0.8 and 0.0 <= test["ddi_rate"] < 0.2
    assert 0.0 < test["ddi_rate_ground_truth"] < 0.2 and test["n_patients"] == 20
    again = task.evaluate(load_bundle(bundle.path), data, "test", bootstrap=0)
    assert again["jaccard"] == pytest.approx(test["jaccard"])


def test_recommend_for_a_demo_like_patient(demo_bundle):
    _, bundle = demo_bundle
    patient = {"visits": [{"diagnoses": ["4280", "42731", "5849"], "procedures": ["3893"]}]}
    result = task.recommend(bundle, patient)
    assert result["recommended"] and all(r["name"] for r in result["recommended"][:5])
    for pair in result["interactions"]:
        assert len(pair["classes"]) == 2 and all(pair["names"])
    assert not task.recommend(bundle, patient, interaction_free=True)["interactions"]
