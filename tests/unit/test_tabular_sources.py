"""Tabular sources: CSV/TSV/Parquet/ARFF reading, column typing, missing values, bad input, the real-data catalog."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medai.data.sources.tabular import (
    KNOWN_TABLES,
    Table,
    as_categories,
    load_table,
    read_frame,
    write_frame,
)
from medai.errors import DataNotFoundError, InvalidInputError

# distinctive "patient values": none of them may appear in an error message
PATIENT_VALUE = "987.654"


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def labs_csv(tmp_path, name="labs.csv"):
    return write(tmp_path, name, "glucose,sex,bmi,outcome\n148,F,33.6,1\n?,M,,0\n85,F,26.6,0\n183,NA,23.3,1\n")


# ----------------------------------------------------------------------------------------------- reading files


def test_header_csv_types_columns_and_counts_missing(tmp_path):
    table = load_table(labs_csv(tmp_path), target="outcome")
    assert table.numeric == ["glucose", "bmi"] and table.categorical == ["sex"]
    assert table.feature_names == ["glucose", "bmi", "sex"]
    assert table.columns["glucose"].dtype == np.float64 and np.isnan(table.columns["glucose"][1])
    assert table.columns["sex"].tolist() == ["F", "M", "F", None]
    assert table.labels.tolist() == [1, 0, 0, 1] and table.label_names == ("0", "1") and table.classes == ("0", "1")
    assert table.ids.tolist() == ["row-1", "row-2", "row-3", "row-4"]
    assert table.report["missing_per_column"] == {"glucose": 1, "bmi": 1, "sex": 1}
    assert table.report["label_counts"] == {"0": 2, "1": 2}
    json.dumps(table.report)


def test_headerless_csv_gets_numbered_or_given_names(tmp_path):
    path = write(tmp_path, "raw.data", "6,148,1\n1,85,0\n8,?,1\n")
    assert list(read_frame(path)) == ["column_1", "column_2", "column_3"]
    frame = read_frame(path, column_names=["pregnancies", "glucose", "outcome"])
    assert frame["glucose"].tolist() == ["148", "85", None]
    table = load_table(path, target="column_3")
    assert len(table) == 3 and table.numeric == ["column_1", "column_2"]
    with pytest.raises(InvalidInputError, match="3 columns but column_names gives 2"):
        read_frame(path, column_names=["a", "b"])


def test_tsv_strips_whitespace_and_custom_missing_markers(tmp_path):
    path = write(tmp_path, "labs.tsv", "crp\tward\ty\n 12 \t  a\t1\n-999\tb \t0\n7\t.\t1\n")
    table = load_table(path, target="y", missing=("-999", "."))
    assert np.isnan(table.columns["crp"][1]) and table.columns["ward"].tolist() == ["a", "b", None]


def test_parquet_round_trip_keeps_values_exactly(tmp_path):
    values = np.random.default_rng(0).normal(size=20)
    values[3] = np.nan
    groups = np.array(["a", None, "b", "a"] * 5, dtype=object)
    path = write_frame({"x": values, "group": groups, "y": np.arange(20) % 2}, tmp_path / "out" / "t.parquet")
    table = load_table(path, target="y")
    np.testing.assert_array_equal(table.columns["x"], values)
    assert table.columns["group"].tolist() == groups.tolist()
    assert table.labels.tolist() == (np.arange(20) % 2).tolist()
    csv_path = write_frame({"x": values, "group": groups, "y": np.arange(20) % 2}, tmp_path / "t.csv")
    from_csv = load_table(csv_path, target="y")
    np.testing.assert_array_equal(from_csv.columns["x"], values)
    assert from_csv.columns["group"].tolist() == groups.tolist()


ARFF = (
    "% comment line\r\n"
    "@relation 'kidney test'\r\n"
    "\r\n"
    "@attribute 'age' numeric\r\n"
    "@attribute 'blood pressure'  real\r\n"
    "@attribute sg {1.005,1.010,1.020}\r\n"
    "@attribute 'htn' {yes,no} \r\n"
    "@attribute note string\r\n"
    "@attribute 'class' {ckd,notckd}\r\n"
    "@data\r\n"
    "48,80,1.020,yes,'a, b',ckd\r\n"
    "% a comment between rows\r\n"
    "7, 50,1.010,\tno,?,ckd\t\r\n"
    "?,?,?,?,?,notckd\r\n"
    "62,80,1.005,no,x,notckd,\r\n"
)


def test_arff_with_quirks(tmp_path):
    table = load_table(write(tmp_path, "kidney.arff", ARFF), target="class")
    assert table.numeric == ["age", "blood pressure"] and table.categorical == ["sg", "htn", "note"]
    assert table.columns["htn"].tolist() == ["yes", "no", "no"]  # "\tno" stripped; the all-missing row dropped
    assert table.columns["sg"].tolist() == ["1.02", "1.01", "1.005"]  # numbers as categories, written alike
    assert table.columns["note"].tolist() == ["a, b", None, "x"]
    assert table.label_names == ("ckd", "notckd") and table.labels.tolist() == [0, 0, 1]  # "ckd\t" stripped
    assert table.report["rows_dropped"]["all features missing"] == 1
    assert any("trailing" in note for note in table.report["notes"])


def test_arff_declared_numeric_rejects_text_and_miscounted_rows(tmp_path):
    text = ARFF.replace("48,80", "48,high")
    with pytest.raises(InvalidInputError, match=r"'blood pressure'.*declared numeric.*data row 1"):
        load_table(write(tmp_path, "a.arff", text), target="class")
    with pytest.raises(InvalidInputError, match="line 11 has 5 values; the header declares 6"):
        read_frame(write(tmp_path, "b.arff", ARFF.replace("48,80,1.020", "48,1.020")))
    with pytest.raises(InvalidInputError, match="not an ARFF file"):
        read_frame(write(tmp_path, "c.arff", "a,b\n1,2\n"))


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(InvalidInputError, match="fmt="):
        read_frame(write(tmp_path, "labs.xlsx", "a"))
    with pytest.raises(DataNotFoundError, match="No table file"):
        load_table(tmp_path / "absent.csv", target="y")
    with pytest.raises(DataNotFoundError, match="Did you mean 'pima'"):
        load_table("pimaa")


# ------------------------------------------------------------------------------------------------ bad input


def test_unknown_target_names_nearest_and_lists_columns(tmp_path):
    with pytest.raises(InvalidInputError, match=r"'outcom'.*Did you mean 'outcome'\?.*Columns: glucose, sex, bmi"):
        load_table(labs_csv(tmp_path), target="outcom")
    with pytest.raises(InvalidInputError, match="'numeric' parameter names column"):
        load_table(labs_csv(tmp_path), target="outcome", numeric=["glucos"])
    with pytest.raises(InvalidInputError, match="'target' parameter is needed"):
        load_table(labs_csv(tmp_path))


def test_single_class_target_is_an_error_unless_classes_are_given(tmp_path):
    path = write(tmp_path, "one.csv", "crp,y\n1,pos\n2,pos\n3,\n")
    with pytest.raises(InvalidInputError, match="1 class.*at least 2"):
        load_table(path, target="y")
    table = load_table(path, target="y", classes=["neg", "pos"])  # an evaluation file, mapped like training
    assert table.labels.tolist() == [1, 1] and table.label_names == ("neg", "pos")
    with pytest.raises(InvalidInputError, match="outside the expected classes"):
        load_table(path, target="y", classes=["a", "b"])


def test_text_in_declared_numeric_column_names_column_and_row_not_values(tmp_path):
    path = write(tmp_path, "t.csv", f"crp,sex,y\n{PATIENT_VALUE},F,1\nhigh,M,0\n{PATIENT_VALUE}x,F,1\n")
    with pytest.raises(InvalidInputError) as caught:
        load_table(path, target="y", numeric=["crp"])
    message = str(caught.value)
    assert "'crp'" in message and "data row 2" in message and "2 row(s)" in message and "number" in message
    assert PATIENT_VALUE not in message
    inferred = load_table(path, target="y")  # not declared: read as categorical
    assert "crp" in inferred.categorical


def test_infinity_is_an_error_naming_column_and_count(tmp_path):
    path = write(tmp_path, "t.csv", f"crp,sex,y\ninf,F,1\n{PATIENT_VALUE},M,0\n-Infinity,F,1\n")
    with pytest.raises(InvalidInputError, match=r"'crp'.*2 infinite value\(s\).*row 1") as caught:
        load_table(path, target="y")
    assert PATIENT_VALUE not in str(caught.value)


def test_nan_text_is_missing(tmp_path):
    path = write(tmp_path, "t.csv", "crp,sex,y\nnan,F,1\n2,M,0\n")
    table = load_table(path, target="y", missing=("?",))
    assert np.isnan(table.columns["crp"][0]) and table.report["missing_per_column"]["crp"] == 1


def test_rows_without_target_or_features_are_dropped_and_reported(tmp_path):
    path = write(tmp_path, "t.csv", "id,crp,sex,y\na,1,F,1\nb,?,?,0\nc,3,M,\nd,4,M,0\ne,,,1\n")
    table = load_table(path, target="y", id_column="id")
    assert table.ids.tolist() == ["a", "d"]
    assert table.report["rows_dropped"] == {"missing target": 1, "all features missing": 2}
    assert table.report["rows_read"] == 5 and table.report["rows_kept"] == 2


def test_prediction_file_without_target_column(tmp_path):
    path = write(tmp_path, "t.csv", "crp,sex\n1,F\n2,M\n")
    table = load_table(path, target="y", require_target=False)
    assert table.labels is None and table.target is None and len(table) == 2
    assert load_table(path, require_target=False).feature_names == ["crp", "sex"]


def test_impossible_zeros_become_missing_and_are_counted(tmp_path):
    path = write(tmp_path, "p.csv", "6,148,72,0,1\n1,0,66,0,0\n8,183,0,23.3,1\n")
    table = load_table(path, target="column_5", zero_is_missing=["column_2", "column_3"])
    assert table.report["impossible_zeros"] == {"column_2": 1, "column_3": 1}
    assert table.columns["column_4"].tolist()[:2] == [0.0, 0.0]  # not listed: zeros kept
    assert table.report["missing_per_column"]["column_2"] == 1


def test_pima_by_name_from_the_data_folder(tmp_path, monkeypatch):
    folder = tmp_path / "pima_diabetes"
    folder.mkdir()
    (folder / "pima-indians-diabetes.csv").write_text(
        "6,148,72,35,0,33.6,0.627,50,1\n1,85,66,29,0,26.6,0.351,31,0\n8,0,0,0,0,0,0.672,32,1\n")
    monkeypatch.setenv("MEDAI_DATA_DIR", str(tmp_path))
    table = load_table("pima")
    assert table.label_names == ("no diabetes", "diabetes") and table.labels.tolist() == [1, 0, 1]
    assert table.report["impossible_zeros"] == {"Glucose": 1, "BloodPressure": 1, "SkinThickness": 1,
                                                "Insulin": 3, "BMI": 1}
    assert table.columns["Pregnancies"].tolist() == [6.0, 1.0, 8.0]  # zero pregnancies stay zero
    with pytest.raises(DataNotFoundError, match=r"'heart' table needs.*MEDAI_DATA_DIR"):
        load_table("heart")


def test_sites_and_numeric_categories_written_alike(tmp_path):
    path = write(tmp_path, "t.csv", "hospital,cp,age,y\nA,1.0,50,1\nB,1,60,0\n,4.0,70,1\n")
    table = load_table(path, target="y", site_column="hospital", categorical=["cp"])
    assert table.columns["cp"].tolist() == ["1", "1", "4"]
    assert table.sites.tolist() == ["A", "B", "unknown"] and table.report["site_counts"]["unknown"] == 1
    assert as_categories(np.array([1.0, np.nan, 2.5])).tolist() == ["1", None, "2.5"]


def test_subset_and_mostly_numeric_note(tmp_path):
    rows = "".join(f"{i},{i % 2}\n" for i in range(30))
    table = load_table(write(tmp_path, "t.csv", "crp,y\n" + rows + "pending,1\n"), target="y")
    assert any("'crp' read as categorical" in note for note in table.report["notes"])
    part = table.subset([0, 2])
    assert isinstance(part, Table) and len(part) == 2 and part.ids.tolist() == ["row-1", "row-3"]
    assert part.labels.tolist() == [0, 0] and part.report["subset_rows"] == 2


def test_duplicate_and_clashing_columns(tmp_path):
    with pytest.raises(InvalidInputError, match="more than once"):
        read_frame(write(tmp_path, "d.csv", "a,a,y\n1,2,0\n"))
    with pytest.raises(InvalidInputError, match="declared twice"):
        load_table(labs_csv(tmp_path), target="outcome", numeric=["bmi"], categorical=["bmi"])


# ------------------------------------------------------------------------------------------------ real data


@pytest.mark.realdata
@pytest.mark.parametrize("name, rows, counts", [
    ("pima", 768, [500, 268]), ("ckd", 400, [150, 250]), ("ilpd", 583, [167, 416]),
    ("heart-cleveland", 303, [164, 139]), ("breast_cancer", 569, [357, 212])])
def test_known_tables_load_with_documented_counts(real_data_dir, name, rows, counts):
    table = load_table(name)
    assert len(table) == rows and np.bincount(table.labels).tolist() == counts
    assert table.report["rows_dropped"] == {"missing target": 0, "all features missing": 0}
    json.dumps(table.report)


@pytest.mark.realdata
def test_real_pima_zeros_and_heart_sites(real_data_dir):
    pima = load_table("pima")
    assert pima.report["impossible_zeros"] == {"Glucose": 5, "BloodPressure": 35, "SkinThickness": 227,
                                               "Insulin": 374, "BMI": 11}
    heart = load_table("heart")
    assert len(heart) == 920 and "num" not in heart.feature_names
    assert heart.report["site_counts"] == {"cleveland": 303, "hungarian": 294, "switzerland": 123, "va": 200}
    assert heart.categorical == ["cp", "restecg", "slope", "thal"]
    assert sorted(set(heart.columns["cp"])) == ["1", "2", "3", "4"]  # "1.0" (Cleveland) and "1" merged
    ckd = load_table("ckd")
    assert "sg" in ckd.categorical and "hemo" in ckd.numeric and set(ckd.columns["htn"]) <= {"yes", "no", None}
    assert set(KNOWN_TABLES) >= {"pima", "heart", "heart-va", "ckd", "ilpd", "breast_cancer"}
