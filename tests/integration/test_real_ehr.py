"""The MIMIC-III demo loaded as a cohort: counts, drug-code coverage against drug_codes/PROVENANCE.md, synthetic scale-up."""

from __future__ import annotations

import secrets

import pytest

from medai.ehr.drugcodes import DrugMapper
from medai.ehr.mimic import load_cohort
from medai.ehr.synthetic import generate_cohort, write_mimic_tables

pytestmark = pytest.mark.realdata
KEY = secrets.token_hex(32)  # made per run: no key lives in the source


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from medai import settings

    found = settings.data_dir()
    if found is None or not (found / "mimic3_demo" / "ADMISSIONS.csv").is_file():
        pytest.skip("real data absent: set MEDAI_DATA_DIR to the folder holding mimic3_demo/ and drug_codes/")
    mapper = DrugMapper(folder=found)
    return load_cohort(found / "mimic3_demo", key=KEY, mapper=mapper), mapper, found


def test_demo_patients_visits_and_reported_problems(demo):
    cohort, _, _ = demo
    report = cohort.report
    assert len(cohort.patients) == 100 and cohort.n_visits == 129
    assert report["patients"]["with_2_or_more_visits"] == 14  # PROVENANCE: 11 with 2, 2 with 3, 1 with 15
    assert report["admissions"]["rows"] == 129 and report["prescriptions"]["rows"] == 10_398
    assert report["diagnoses"]["rows"] == 1_761 and report["diagnoses"]["unknown_codes_distinct"] == 20
    assert report["prescriptions"]["without_admission"] == 0
    assert all(a.admitted < b.admitted for p in cohort.patients for a, b in zip(p.visits, p.visits[1:]))
    assert set(cohort.vocabulary("medications")) <= set(cohort.descriptions["medications"])
    assert len(cohort.descriptions["medications"]) == 151


def test_demo_drug_coverage_matches_provenance(demo):
    cohort, _, _ = demo
    routes = cohort.report["prescriptions"]["coverage"]["routes"]
    # NDC routes reproduce drug_codes/PROVENANCE.md exactly; name routes within a point (cleaning details differ).
    assert {r: routes[r]["rows"] for r in ("i-a", "i-b", "i-c", "i")} == {"i-a": 7219, "i-b": 6788, "i-c": 4185,
                                                                          "i": 7368}
    assert routes["i+ii"]["rows_pct"] == pytest.approx(86.2, abs=1.0)
    assert routes["i+ii"]["drugs_pct"] == pytest.approx(87.7, abs=1.0)
    assert routes["ii"]["rows_pct"] == pytest.approx(73.0, abs=1.5)


def test_synthetic_cohort_from_demo_statistics_loads_back(demo, tmp_path):
    cohort, mapper, _ = demo
    synthetic = generate_cohort(cohort, n_patients=300, seed=0)
    write_mimic_tables(synthetic, tmp_path, gzip=True, mapper=mapper)
    loaded = load_cohort(tmp_path, deidentify=False, mapper=mapper)
    assert loaded.patients == synthetic.patients
    coverage = loaded.report["prescriptions"]["coverage"]["routes"]["i+ii"]["rows_pct"]
    assert 80 < coverage < 92  # unmapped IV solutions and containers at the demo's rate
