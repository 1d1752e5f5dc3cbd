"""Structured-record de-identification: pseudonyms, date shifting, generalisation, k-anonymity on hand-made tables."""

from __future__ import annotations

import json
import secrets
from datetime import date

import pytest

pl = pytest.importorskip("polars")

from medai.errors import InvalidInputError  # noqa: E402
from medai.privacy.deid.table import (  # noqa: E402
    deidentify_table,
    deidentify_table_file,
    generalize_ages,
    generalize_zips,
    k_anonymity,
)
from medai.privacy.pseudonym import Pseudonymizer  # noqa: E402

KEY = secrets.token_bytes(32)  # made per run: no key lives in the source

CSV = """patient,admission,admitted,discharged,age,zip,sex,name,phone
00417,A-1001,2019-02-03,2019-02-10,45,02139,F,Ann Lee,617-555-0101
00417,A-1002,2019-06-01,2019-06-04,45,02139,F,Ann Lee,617-555-0101
00922,A-2001,2020-12-30,2021-01-02,93,03601,M,Bo Chan,603-555-0199
00922,A-2002,2021-03-15,2021-03-15,94,03601,M,Bo Chan,603-555-0199
01876,A-3001,2018-07-04,2018-07-09,67,89012-4411,F,Cy Diaz,702-555-0123
,A-4001,2022-01-01,2022-01-03,30,10001,M,,
"""


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "admissions.csv"
    path.write_text(CSV)
    return path


def run(table, tmp_path, **options):
    options = {"patient_column": "patient", "id_columns": ["admission"], "date_columns": ["admitted", "discharged"],
               "drop_columns": ["name", "phone"], "quasi_identifiers": ["age", "zip", "sex"], "k": 2} | options  # fmt: skip
    report = deidentify_table_file(table, tmp_path / "out.csv", key=KEY, report=tmp_path / "report.json", **options)
    return pl.read_csv(tmp_path / "out.csv", infer_schema_length=0), report


def test_no_original_identifier_or_date_survives(table, tmp_path):
    out, _ = run(table, tmp_path)
    text = (tmp_path / "out.csv").read_text()
    for original in ["00417", "00922", "01876", "A-1001", "A-2002", "Ann Lee", "617-555-0101", "02139", "03601",
                     "2022-01-01", "name", "phone"]:  # fmt: skip
        assert original not in text, original
    # dates cell by cell: with a per-run random key, a shifted date may by chance equal another original date
    # (patient 00417: 7 of the 365 possible offsets), which reveals nothing; a text check failed 4 of 400 random keys
    original = pl.read_csv(table, infer_schema_length=0)
    for column in ("admitted", "discharged"):
        for before, after in zip(original[column], out[column]):
            assert after is None or after != before, column
    assert out.columns == ["patient", "admission", "admitted", "discharged", "age", "zip", "sex"]
    assert out["patient"][0] == out["patient"][1] != out["patient"][2] and out["patient"][5] is None
    assert len(set(out["admission"])) == 6


def test_intervals_between_one_patients_events_are_kept(table, tmp_path):
    out, report = run(table, tmp_path)
    original = pl.read_csv(table, try_parse_dates=True)
    shifted = out.with_columns(pl.col("admitted", "discharged").str.to_date())
    for row in range(5):
        assert (shifted["discharged"][row] - shifted["admitted"][row]) == (original["discharged"][row] - original["admitted"][row])
        offset = (shifted["admitted"][row] - original["admitted"][row]).days
        assert -365 <= offset <= -1
    assert shifted["admitted"][1] - shifted["admitted"][0] == date(2019, 6, 1) - date(2019, 2, 3)
    assert shifted["admitted"][5] is None  # no patient, no offset: the date is removed, not kept
    assert report["dates"]["admitted"] == {"shifted": 5, "removed": 1}


def test_same_key_same_pseudonyms_and_offsets_across_tables(table, tmp_path):
    first, _ = run(table, tmp_path)
    second = deidentify_table(pl.DataFrame({"patient": ["00417"], "seen": [date(2019, 2, 3)]}),
                              Pseudonymizer(KEY), patient_column="patient")[0]  # fmt: skip
    assert second["patient"][0] == first["patient"][0] == Pseudonymizer(KEY).pseudonym("00417", namespace="patient")
    assert str(second["seen"][0]) == first["admitted"][0]
    other = deidentify_table(pl.DataFrame({"patient": ["00417"]}), Pseudonymizer(secrets.token_bytes(32)),
                             patient_column="patient")[0]  # fmt: skip
    assert other["patient"][0] != first["patient"][0]


def test_ages_over_89_and_zip3_with_restricted_areas(table, tmp_path):
    out, report = run(table, tmp_path)
    assert out["age"].to_list() == ["45", "45", "90+", "90+", "67", "30"]
    assert out["zip"].to_list() == ["021", "021", "000", "000", "000", "100"]
    assert report["ages_over_89"] == {"age": 2}
    assert report["zip_codes"] == {"zip": {"generalized": 6, "restricted_000": 3}}
    assert generalize_ages(pl.Series("a", ["89", "90", "120.0", "90+", "unknown", None])).to_list() == \
        ["89", "90+", "90+", "90+", None, None]
    assert generalize_zips(pl.Series("z", [2139, 89301])).to_list() == ["021", "000"]  # integers: leading 0s back
    assert generalize_zips(pl.Series("z", ["12", "02139-4307", None])).to_list() == [None, "021", None]


def test_k_anonymity_numbers_on_a_hand_made_table(table, tmp_path):
    _, report = run(table, tmp_path)
    # classes over (age, zip, sex): (45,021,F) x2, (90+,000,M) x2, (67,000,F) x1, (30,100,M) x1
    assert report["k_anonymity"] == {"quasi_identifiers": ["age", "zip", "sex"], "k_target": 2, "k": 1, "classes": 4,
                                     "classes_below_k": 2, "records_below_k": 2, "fraction_below_k": round(2 / 6, 6)}
    frame = pl.DataFrame({"a": [1, 1, 1, 2, 2, 3], "b": ["x", "x", "x", "y", "y", None]})
    assert k_anonymity(frame, ["a", "b"], k=3) | {} == {"quasi_identifiers": ["a", "b"], "k_target": 3, "k": 1,
                                                       "classes": 3, "classes_below_k": 2, "records_below_k": 3,
                                                       "fraction_below_k": 0.5}  # fmt: skip
    assert k_anonymity(frame, ["a"], k=2)["k"] == 1 and k_anonymity(frame[:5], ["a"], k=2)["records_below_k"] == 0


def test_report_holds_counts_and_names_never_values(table, tmp_path):
    _, report = run(table, tmp_path)
    text = (tmp_path / "report.json").read_text()
    assert json.loads(text) == json.loads(json.dumps(report))
    for value in ["00417", "A-1001", "Ann", "02139", "2019"]:
        assert value not in text
    assert report["pseudonymized"] == {"patient": {"values": 5, "distinct": 3}, "admission": {"values": 6, "distinct": 6}}


def test_identifier_looking_columns_left_in_are_flagged(table, tmp_path):
    _, report = run(table, tmp_path, drop_columns=["name"])
    assert report["possible_identifiers_kept"] == ["phone"]


def test_misuse_gives_clear_errors(table, tmp_path):
    with pytest.raises(InvalidInputError, match="Did you mean 'patient'"):
        run(table, tmp_path, patient_column="patients")
    with pytest.raises(InvalidInputError, match="needs the patient column"):
        run(table, tmp_path, patient_column=None)
    with pytest.raises(InvalidInputError, match="output is the input"):
        deidentify_table_file(table, table, key=KEY)
    with pytest.raises(InvalidInputError, match="de-identification key"):
        deidentify_table_file(table, tmp_path / "o.csv", key=b"short")


def test_parquet_and_encrypted_input(table, tmp_path, monkeypatch):
    from medai.privacy.crypto import encrypt_file

    sealed = encrypt_file(table, tmp_path / "admissions.csv.enc", keys=bytes(32))
    monkeypatch.setenv("MEDAI_ENCRYPTION_KEY", bytes(32).hex())
    report = deidentify_table_file(sealed, tmp_path / "out.parquet", key=KEY, patient_column="patient",
                                   date_columns=["admitted"], drop_columns=["name", "phone"])  # fmt: skip
    out = pl.read_parquet(tmp_path / "out.parquet")
    assert report["rows"] == 6 and out.schema["admitted"] == pl.Date and out["zip"][0] == "021"
    assert out.schema["discharged"] == pl.Date and report["dates"]["discharged"]["shifted"] == 5  # found as a date


def test_cli_deid_table(table, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from medai.cli.main import app

    monkeypatch.setenv("MEDAI_DEID_KEY", KEY.hex())
    result = CliRunner().invoke(app, [
        "deid", "table", "--input", str(table), "--output", str(tmp_path / "o.csv"), "--patient-column", "patient",
        "--id-column", "admission", "--date-column", "admitted", "--date-column", "discharged", "--drop-column", "name",
        "--quasi-identifier", "age", "--quasi-identifier", "sex", "--k", "2", "--report", str(tmp_path / "r.json")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "k = 1" in result.output and "phone" in result.output  # the phone column kept is flagged
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["k_anonymity"]["records_below_k"] == 2 and "00417" not in (tmp_path / "o.csv").read_text()
    monkeypatch.delenv("MEDAI_DEID_KEY")
    monkeypatch.delenv("MEDAI_DEID_KEY_FILE", raising=False)
    missing = CliRunner().invoke(app, ["deid", "table", "--input", str(table), "--output", str(tmp_path / "p.csv")])
    assert missing.exit_code == 2 and "MEDAI_DEID_KEY" in missing.output and not (tmp_path / "p.csv").exists()
