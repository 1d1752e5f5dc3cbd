"""MIMIC-III EHR ingestion: drug-code routes, malformed rows counted, de-identification, synthetic round trips."""

from __future__ import annotations

import csv
import gzip
import io
import json
import secrets
import zipfile
from dataclasses import asdict
from pathlib import Path

import pytest

from medai.ehr.drugcodes import DrugMapper, name_keys
from medai.ehr.mimic import load_cohort, load_patient_json
from medai.ehr.records import Cohort, Patient, Visit
from medai.ehr.synthetic import generate_cohort, write_malformed_tables, write_mimic_tables
from medai.errors import DataNotFoundError, InvalidInputError

KEY = secrets.token_hex(32)  # made per run: no key lives in the source
VOCABULARY = ["A06A", "A10B", "A12C", "B01A", "C09A", "N02B"]
WHO = [("A06A", "DRUGS FOR CONSTIPATION"), ("A06AD04", "magnesium sulfate"), ("A10B", "BLOOD GLUCOSE LOWERING"),
       ("A10BA02", "metformin"), ("A12C", "OTHER MINERAL SUPPLEMENTS"), ("A12CC02", "magnesium sulfate"),
       ("B01A", "ANTITHROMBOTIC AGENTS"), ("B01AA03", "warfarin"), ("C09A", "ACE INHIBITORS PLAIN"),
       ("C09AA02", "enalapril"), ("N02B", "OTHER ANALGESICS AND ANTIPYRETICS"), ("N02BE01", "paracetamol"),
       ("V06D", "OTHER NUTRIENTS"), ("V06DC01", "glucose")]


def stage_drug_codes(root: Path) -> Path:
    """Tiny files in the layout of drug_codes/ and drugrec_ddi_atc/ (see their PROVENANCE.md)."""
    codes, gamenet, safedrug = root / "drug_codes", root / "drugrec_ddi_atc/gamenet", root / "drugrec_ddi_atc/safedrug"
    for folder in (codes, gamenet, safedrug):
        folder.mkdir(parents=True, exist_ok=True)
    (gamenet / "ndc2rxnorm_mapping.txt").write_text("{'11111111111': u'100', '22222222222': u'200'}")
    voc = {"diag_voc": {"idx2word": []}, "pro_voc": {"idx2word": []}}
    (gamenet / "voc_final.json").write_text(json.dumps({**voc, "med_voc": {"idx2word": ["seperator", "decoder_point",
                                                                                          *VOCABULARY]}}))
    (safedrug / "voc_final.json").write_text(json.dumps({**voc, "med_voc": {"idx2word": VOCABULARY[:4]}}))
    with gzip.open(codes / "rxcui_to_atc_from_fda_ndc_2020.csv.gz", "wt") as handle:
        handle.write("rxcui,atc4,atc5,in_rxcui,in_tty,in_name\n100,C09AA,C09AA02,3827,IN,enalapril\n"
                     "200,N02BE,N02BE01,161,IN,acetaminophen\n")
    (codes / "safedrug_mimic3_ndc_to_atc3.csv").write_text("ndc,atc3\n33333333333,A10B\n")
    (codes / "who_atc_ddd_2021-12-03.csv").write_text(
        "atc_code,atc_name,ddd,uom,adm_r,note\n" + "".join(f"{c},{n},NA,NA,NA,NA\n" for c, n in WHO))
    fda = io.StringIO()
    csv.writer(fda).writerows([["ndc", "rxcui", "atc4", "atc5"], ["0444-4444-44", "300", "B01AA", "B01AA03"],
                               ["0555-5555-55", "NA", "NA", "NA"]])
    with zipfile.ZipFile(codes / "fda_ndc_directory_2020-06-17_atc5_atc4_ingredients.zip", "w") as archive:
        archive.writestr("ndc_map.csv", fda.getvalue())
    return root


@pytest.fixture(scope="module")
def mapper(tmp_path_factory) -> DrugMapper:
    mapper = DrugMapper(folder=stage_drug_codes(tmp_path_factory.mktemp("codes")))
    assert mapper.vocabulary == VOCABULARY  # loads the tables once, with this module's cache folder
    return mapper


# ------------------------------------------------------------------------------------------------ drug codes


def test_each_route_maps_to_the_vocabulary(mapper):
    assert mapper.map_drug("11111111111", "Vasotec", None).routes["i-a"] == ("C09A",)
    assert mapper.map_drug("33333333333", "Glucophage", None).routes["i-b"] == ("A10B",)
    assert mapper.map_drug("00444444444", "Coumadin", None).routes["i-c"] == ("B01A",)
    assert mapper.map_drug("0", "Warfarin 5 mg Tab", None).routes["ii-a"] == ("B01A",)
    by_rxnorm_name = mapper.map_drug(None, "Tylenol", "Acetaminophen (Liquid) 325 mg")
    assert by_rxnorm_name.routes["ii-b"] == ("N02B",) and by_rxnorm_name.classes == ("N02B",)
    assert mapper.map_drug("", "Metformin", "").classes == ("A10B",)  # empty generic name: the drug name is used
    assert mapper.map_drug("0", "D5W", None).classes == ()
    assert mapper.map_drug("0", "Glucose", None).classes == ()  # V06D is outside the vocabulary


def test_several_classes_resolved_to_one_or_kept(mapper, tmp_path):
    assert mapper.map_drug("0", "Magnesium Sulfate", None).routes["ii"] == ("A06A", "A12C")
    assert mapper.map_drug("0", "Magnesium Sulfate", None).classes == ("A06A",)
    every = DrugMapper(folder=mapper.folder, resolve="all")
    assert every.map_drug("0", "Magnesium Sulfate", None).classes == ("A06A", "A12C")
    assert "V06D" in DrugMapper("all", folder=mapper.folder).vocabulary
    assert DrugMapper("safedrug", folder=mapper.folder).vocabulary == sorted(VOCABULARY[:4])


def test_coverage_counts_rows_and_distinct_drugs(mapper):
    pl = pytest.importorskip("polars")
    rows = pl.DataFrame({"ndc": ["11111111111", "11111111111", "0", "0"], "drug": ["Vasotec", "Vasotec", "NS", "Sw"],
                         "drug_name_generic": [None, None, None, None]})
    coverage = mapper.coverage(rows)
    assert coverage["rows"] == 4 and coverage["drugs"] == 3
    assert coverage["routes"]["i-a"] == {"rows": 2, "drugs": 1, "rows_pct": 50.0, "drugs_pct": 33.3}
    assert coverage["unmapped"] == {"rows": 2, "drugs": 2}


def test_name_keys_clean_strengths_forms_and_salts():
    assert name_keys("Heparin Sodium 5000 Units/mL Vial") == ["heparin sodium", "heparin"]
    assert name_keys("Hydrocodone-Acetaminophen (5mg-500mg)") == ["hydrocodone acetaminophen", "hydrocodone"]
    assert name_keys(None) == [] and name_keys("") == []


def test_bad_vocabulary_and_missing_files_are_named(tmp_path, mapper):
    with pytest.raises(InvalidInputError, match="vocabulary"):
        DrugMapper("gamenett")
    with pytest.raises(InvalidInputError, match="ATC level-3"):
        _ = DrugMapper(["A02B", "not-a-code"], folder=mapper.folder).vocabulary
    with pytest.raises(DataNotFoundError, match="ndc2rxnorm_mapping.txt"):
        _ = DrugMapper(folder=tmp_path).vocabulary


# ------------------------------------------------------------------------------------------------ ingestion


@pytest.mark.parametrize("compressed", [False, True])
def test_every_malformed_case_is_counted_not_raised(tmp_path, mapper, compressed):
    expected = write_malformed_tables(tmp_path, mapper=mapper, gzip=compressed)
    assert all(p.name.endswith(".csv.gz") == compressed for p in tmp_path.iterdir())
    cohort = load_cohort(tmp_path, key=KEY, mapper=mapper)
    for section, counts in expected.items():
        assert {k: cohort.report[section][k] for k in counts} == counts, section
    assert len(cohort.patients) == 3 and cohort.n_visits == 4
    first = cohort.patients[0]  # subject 100000: two visits in time order, diagnoses in SEQ_NUM order
    assert [v.diagnoses for v in first.visits] == [("4019", "25000", "XYZ99"), ("4019",)]
    assert first.visits[0].medications == ("A10B", "C09A")
    assert cohort.descriptions["diagnoses"]["4019"] == "Hypertension NOS"
    assert cohort.descriptions["medications"]["C09A"] == "ACE INHIBITORS PLAIN"


def test_missing_column_and_missing_table_name_the_file(tmp_path, mapper):
    write_malformed_tables(tmp_path, mapper=mapper)
    path = tmp_path / "DIAGNOSES_ICD.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0].replace("ICD9_CODE", "CODE"), *lines[1:]]) + "\n")
    with pytest.raises(InvalidInputError, match=r"DIAGNOSES_ICD\.csv.*ICD9_CODE"):
        load_cohort(tmp_path, key=KEY, mapper=mapper)
    path.unlink()
    with pytest.raises(DataNotFoundError, match="DIAGNOSES_ICD"):
        load_cohort(tmp_path, key=KEY, mapper=mapper)
    with pytest.raises(DataNotFoundError, match="No MIMIC-III folder"):
        load_cohort(tmp_path / "absent", key=KEY, mapper=mapper)


def test_lower_case_names_and_columns_are_read(tmp_path, mapper):
    write_malformed_tables(tmp_path / "upper", mapper=mapper)
    (tmp_path / "lower").mkdir()
    for path in (tmp_path / "upper").iterdir():
        lines = path.read_text().splitlines(keepends=True)
        (tmp_path / "lower" / path.name.lower()).write_text(lines[0].lower() + "".join(lines[1:]))
    upper = load_cohort(tmp_path / "upper", key=KEY, mapper=mapper)
    lower = load_cohort(tmp_path / "lower", key=KEY, mapper=mapper)
    assert lower.patients == upper.patients


# ------------------------------------------------------------------------------------------- de-identification


def test_no_original_id_or_date_survives(tmp_path, mapper):
    write_malformed_tables(tmp_path, mapper=mapper)
    cohort = load_cohort(tmp_path, key=KEY, mapper=mapper)
    originals = load_cohort(tmp_path, deidentify=False, mapper=mapper)
    text = json.dumps(asdict(cohort), default=str)
    secrets = {p.patient for p in originals.patients} | {v.admission for p in originals.patients for v in p.visits}
    for table in ("ADMISSIONS", "DIAGNOSES_ICD", "PRESCRIPTIONS"):
        with open(tmp_path / f"{table}.csv") as handle:
            secrets |= {row[c] for row in csv.DictReader(handle) for c in ("SUBJECT_ID", "HADM_ID") if row[c]}
    assert not [s for s in secrets if s in text]
    for original, shifted in zip(originals.patients, cohort.patients, strict=True):  # same order, as loaded
        # each patient's own dates: another patient's shifted date may land on one of them by chance (random key)
        for before, after in zip(original.visits, shifted.visits, strict=True):
            assert str(before.admitted)[:10] != str(after.admitted)[:10]  # every visit's own date moved
        stamps = {str(v.admitted) for v in original.visits}
        moved = [str(v.admitted) for v in shifted.visits]
        own = json.dumps(asdict(shifted), default=str)
        # an original date may show only where the shift carried another visit of the same patient onto it (the
        # offset equal to the days between the two visits: a chance of about 1 in 365 per pair, random key)
        assert not [s for s in stamps | {s[:10] for s in stamps} if s in own and not any(t.startswith(s) for t in moved)]
    assert cohort.report["key"] == "given" and cohort.report["deidentified"] is True


def test_intervals_kept_and_pseudonyms_follow_the_key(tmp_path, mapper, monkeypatch):
    write_malformed_tables(tmp_path, mapper=mapper)
    plain = load_cohort(tmp_path, deidentify=False, mapper=mapper)
    first, again = (load_cohort(tmp_path, key=KEY, mapper=mapper) for _ in range(2))
    other = load_cohort(tmp_path, key="z" * 32, mapper=mapper)
    assert first.patients == again.patients
    ids = {p.patient for p in first.patients}
    assert ids.isdisjoint(p.patient for p in other.patients)
    for original, shifted in zip(plain.patients, first.patients):
        gaps = [b.admitted - a.admitted for a, b in zip(original.visits, original.visits[1:])]
        assert gaps == [b.admitted - a.admitted for a, b in zip(shifted.visits, shifted.visits[1:])]
        assert all(a.admitted != b.admitted for a, b in zip(original.visits, shifted.visits))
    monkeypatch.delenv("MEDAI_DEID_KEY", raising=False)
    monkeypatch.delenv("MEDAI_DEID_KEY_FILE", raising=False)
    ephemeral = load_cohort(tmp_path, mapper=mapper)
    assert ephemeral.report["key"] == "ephemeral" and {p.patient for p in ephemeral.patients}.isdisjoint(ids)
    monkeypatch.setenv("MEDAI_DEID_KEY", KEY)
    assert load_cohort(tmp_path, mapper=mapper).patients == first.patients


# ------------------------------------------------------------------------------------------------ synthetic


def reference_cohort() -> Cohort:
    def visit(name, day, diagnoses, procedures, medications):
        from datetime import datetime, timedelta

        return Visit(name, datetime(2120, 1, 1) + timedelta(days=day), diagnoses, procedures, medications)

    patients = [Patient("1", (visit("11", 0, ("4019", "25000"), ("3893",), ("A10B", "C09A")),
                              visit("12", 30, ("4019",), (), ("C09A",)))),
                Patient("2", (visit("21", 5, ("42731",), ("9904",), ("B01A",)),)),
                Patient("3", (visit("31", 9, ("25000", "5990"), (), ("A10B", "N02B")),))]
    descriptions = {"diagnoses": {"4019": "Hypertension NOS", "25000": "DMII", "42731": "Atrial fibrillation",
                                  "5990": "Urin tract infection NOS"},
                    "procedures": {"3893": "Venous cath NEC", "9904": "Packed cell transfusion"}}
    return Cohort(patients, descriptions=descriptions)


def test_synthetic_cohort_follows_the_reference_and_round_trips(tmp_path, mapper):
    reference = reference_cohort()
    cohort = generate_cohort(reference, n_patients=40, seed=3)
    assert generate_cohort(reference, n_patients=40, seed=3).patients == cohort.patients
    assert len(cohort.patients) == 40 and {len(p.visits) for p in cohort.patients} <= {1, 2}
    visits = [v for p in cohort.patients for v in p.visits]
    assert set().union(*(v.diagnoses for v in visits)) <= {"4019", "25000", "42731", "5990"}
    with_af = [("B01A" in v.medications) for v in visits if v.diagnoses == ("42731",) and v.medications]
    others = [("B01A" in v.medications) for v in visits if "42731" not in v.diagnoses and v.medications]
    assert sum(with_af) / len(with_af) > 0.7 > 0.3 > sum(others) / len(others)  # medications follow the diagnoses
    write_mimic_tables(cohort, tmp_path, gzip=True, mapper=mapper)
    loaded = load_cohort(tmp_path, deidentify=False, mapper=mapper)
    assert loaded.patients == cohort.patients
    assert loaded.report["prescriptions"]["unmapped_rows"] > 0 and loaded.report["diagnoses"]["unknown_code_rows"] == 0
    with pytest.raises(InvalidInputError, match="n_patients"):
        generate_cohort(reference, n_patients=0)


# ------------------------------------------------------------------------------------------------ patient JSON


def test_patient_json_reads_visits_and_names_bad_fields(tmp_path):
    document = {"patient": "x", "visits": [{"diagnoses": ["4019"], "procedures": [], "medications": ["C09A"]},
                                           {"diagnoses": ["4019", "25000"], "procedures": ["3893"]}]}
    path = tmp_path / "patient.json"
    path.write_text(json.dumps(document))
    patient = load_patient_json(path)
    assert patient == load_patient_json(document) == load_patient_json(json.dumps(document))
    assert patient.visits[0].medications == ("C09A",) and patient.visits[1].medications == ()
    cases = [({"visit": []}, r"unknown field\(s\) \['visit'\]"),
             ({"visits": []}, "non-empty list"),
             ({"visits": [{"diagnoses": ["4019"], "procedures": [], "drugs": []}]}, r"visits\[0\].*\['drugs'\]"),
             ({"visits": [{"diagnoses": ["1"], "procedures": []}, {"diagnoses": ["2"], "procedures": []}]},
              r"visits\[0\] has missing \['medications'\]"),
             ({"visits": [{"diagnoses": [4019], "procedures": []}]}, r"visits\[0\]\.diagnoses\[0\].*got a int"),
             ({"visits": [{"diagnoses": [], "procedures": []}]}, "at least one"),
             ([1], "must be an object")]
    for document, message in cases:
        with pytest.raises(InvalidInputError, match=message):
            load_patient_json(document)
    with pytest.raises(InvalidInputError, match=r"visits\[0\]\.diagnoses\[0\] is not a known") as error:
        load_patient_json({"visits": [{"diagnoses": ["99999"], "procedures": []}]}, known={"diagnoses": ["4019"]})
    assert "99999" not in str(error.value)  # codes of a patient are not echoed
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        load_patient_json(tmp_path / "bad.json")
    with pytest.raises(DataNotFoundError):
        load_patient_json(tmp_path / "absent.json")
