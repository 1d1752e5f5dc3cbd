"""MIMIC-III stays: item mapping, unit conversion, GCS sums, hourly bins, labels, pseudonyms, streaming in blocks."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from medai.data.sources import _mimic3_events, mimic3
from medai.data.sources.dicom import pseudonymize
from medai.data.sources.physionet2012 import VARIABLES as PHYSIONET_VARIABLES
from medai.data.sources.timeseries import STATIC_NAMES
from medai.errors import DataNotFoundError, InvalidInputError

pytest.importorskip("polars")  # the loader imports it lazily

CHART_HEADER = "row_id,subject_id,hadm_id,icustay_id,itemid,charttime,storetime,cgid,value,valuenum,valueuom,warning," \
               "error,resultstatus,stopped"


def chart(stay, item, when, value, error="0"):
    text = "" if value is None else str(value)
    return f"1,0,0,{stay},{item},{when},,1,{text or 'see note'},{text},,,{error},,"


CHART_ROWS = [
    chart(1000, 220045, "2100-01-01 00:30:00", 80), chart(1000, 220045, "2100-01-01 00:45:00", 90),
    chart(1000, 211, "2100-01-01 01:10:00", 500),  # HR out of range
    chart(1000, 220045, "2100-01-01 01:20:00", 70, error="1"),  # flagged as an error
    chart(1000, 220045, "2100-01-01 01:30:00", None),  # text only, no number
    chart(1000, 223761, "2100-01-01 02:00:00", 98.6),  # Fahrenheit
    chart(1000, 220739, "2100-01-01 03:00:00", 4), chart(1000, 223900, "2100-01-01 03:00:00", 5),
    chart(1000, 223901, "2100-01-01 03:00:00", 6),  # complete MetaVision GCS -> 15
    chart(1000, 223900, "2100-01-01 03:00:00", 5),  # a repeated component is averaged, not added
    chart(1000, 220739, "2100-01-01 04:00:00", 3),  # incomplete GCS set
    chart(1000, 220045, "2099-12-31 23:00:00", 60), chart(1000, 220045, "2100-01-03 01:00:00", 61),  # outside
    chart(1000, 226531, "2100-01-01 00:10:00", 200), chart(1000, 920, "2100-01-01 00:10:00", 70),  # lb, inch
    chart(1000, 223835, "2100-01-01 05:00:00", 50), chart(1000, 1, "2100-01-01 05:00:00", 7),  # FiO2 %, unmapped
    chart(1001, 211, "2100-06-01 12:30:00", 100), chart(1002, 211, "2150-01-01 01:00:00", 100),
]
MIMIC_VARIABLES = [v for v in PHYSIONET_VARIABLES if v != "MechVent"] + ["SpO2"]  # no MechVent item is mapped
HR, TEMP, GCS, FIO2, CREATININE = (MIMIC_VARIABLES.index(v) for v in ("HR", "Temp", "GCS", "FiO2", "Creatinine"))


@pytest.fixture
def mimic(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDAI_PSEUDONYM_KEY", "test-key-0123456789")
    (tmp_path / "ICUSTAYS.csv").write_text(
        "ROW_ID,SUBJECT_ID,HADM_ID,ICUSTAY_ID,DBSOURCE,FIRST_CAREUNIT,LAST_CAREUNIT,FIRST_WARDID,LAST_WARDID,INTIME,"
        "OUTTIME,LOS\n"
        "1,1,100,1000,metavision,MICU,MICU,1,1,2100-01-01 00:00:00,2100-01-04 00:00:00,3\n"
        "2,1,101,1001,carevue,TSICU,TSICU,1,1,2100-06-01 12:00:00,2100-06-01 20:00:00,0.33\n"
        "3,2,102,1002,carevue,CCU,CCU,1,1,2150-01-01 00:00:00,2150-01-03 00:00:00,2\n"
        "4,3,103,1003,carevue,CSRU,CSRU,1,1,,,\n")
    (tmp_path / "ADMISSIONS.csv").write_text("ROW_ID,SUBJECT_ID,HADM_ID,ADMITTIME,HOSPITAL_EXPIRE_FLAG\n"
                                             "1,1,100,x,0\n2,1,101,x,1\n3,3,103,x,0\n")
    (tmp_path / "PATIENTS.csv").write_text("ROW_ID,SUBJECT_ID,GENDER,DOB\n1,1,M,1800-01-01 00:00:00\n"
                                           "2,2,F,2100-01-01 00:00:00\n3,3,F,2050-01-01 00:00:00\n")
    with gzip.open(tmp_path / "CHARTEVENTS_reexported.csv.gz", "wt") as handle:
        handle.write("\n".join([CHART_HEADER, *CHART_ROWS]) + "\n")
    (tmp_path / "LABEVENTS.csv").write_text(
        "ROW_ID,SUBJECT_ID,HADM_ID,ITEMID,CHARTTIME,VALUE,VALUENUM,VALUEUOM,FLAG\n"
        "1,1,,50912,2100-01-01 06:15:00,1.2,1.2,mg/dL,\n1,1,101,50912,2100-06-01 13:00:00,2.0,2.0,mg/dL,\n"
        "1,1,,50912,2100-03-01 00:00:00,9.9,9.9,mg/dL,\n")
    return tmp_path


def test_stays_values_static_labels_and_report(mimic):
    series = mimic3.load_stays(mimic)
    assert series.ids.tolist() == ["1000", "1001"] and series.labels.tolist() == [0, 1]
    assert series.values.shape == (2, 48, 37) and series.values.dtype == np.float32
    assert list(series.variables) == MIMIC_VARIABLES and "Height" not in series.variables
    values = series.values[0]
    assert values[0, HR] == 85.0 and np.isnan(values[1, HR])  # 500 out of range, 70 flagged, text-only dropped
    assert values[2, TEMP] == pytest.approx(37.0, abs=1e-4) and values[3, GCS] == 15.0
    assert np.isnan(values[4, GCS]) and values[5, FIO2] == pytest.approx(0.5)
    assert values[6, CREATININE] == pytest.approx(1.2) and series.values[1, 1, CREATININE] == pytest.approx(2.0)
    assert series.values[1, 0, HR] == 100.0 and np.isnan(values[47]).all()  # the 49th hour is outside
    assert list(series.static_names) == list(STATIC_NAMES)
    np.testing.assert_allclose(series.static[0], [90, 1, 177.8, 90.718474, 0, 0, 1, 0], rtol=1e-5)
    np.testing.assert_array_equal(series.static[1, 4:], [0, 0, 0, 1])  # TSICU counts as SICU
    assert np.isnan(series.static[1, 2:4]).all()
    assert series.groups.tolist() == [pseudonymize("1")] * 2
    report = series.report
    assert report["stays_found"] == 4 and report["stays_skipped"] == {"missing_outcome": 1, "no_intime": 1}
    assert report["out_of_range"]["HR"] == 1 and report["events_flagged_error"] == 1
    assert report["events_without_value"] == 1 and report["gcs_incomplete"] == 1
    assert report["ages_over_89_set_to_90"] == 2 and report["label_counts"] == {"survived": 1, "died": 1}
    assert any("OUTPUTEVENTS" in note for note in report["notes"])
    json.dumps(report)


def test_last_aggregate_window_and_filters(mimic):
    series = mimic3.load_stays(mimic, hours=2, aggregate="last", stay_ids=[1000, 1001], min_stay_hours=24)
    assert series.ids.tolist() == ["1000"] and series.values.shape == (1, 2, 37)
    assert series.values[0, 0, HR] == 90.0 and series.report["stays_skipped"]["short_stay"] == 1


def test_gzip_blocks_and_partial_merges_give_the_same_cells(mimic, monkeypatch):
    whole = mimic3.load_stays(mimic)
    monkeypatch.setattr(_mimic3_events, "CHUNK_BYTES", 200)  # many blocks, GCS components split across them
    monkeypatch.setattr(_mimic3_events, "COMBINE_ROWS", 3)
    pieces = mimic3.load_stays(mimic)
    np.testing.assert_array_equal(whole.values, pieces.values)
    assert pieces.report["gcs_incomplete"] == 1 and pieces.report["out_of_range"] == whole.report["out_of_range"]


def test_plain_and_gzip_tables_agree(mimic):
    text = gzip.decompress((mimic / "CHARTEVENTS_reexported.csv.gz").read_bytes())
    gz = mimic3.load_stays(mimic)
    (mimic / "CHARTEVENTS_reexported.csv.gz").unlink()
    (mimic / "chartevents.csv").write_bytes(text)
    plain = mimic3.load_stays(mimic)
    np.testing.assert_array_equal(gz.values, plain.values)
    assert plain.report["tables"]["chartevents"] == "chartevents.csv"


def test_missing_tables_columns_and_corrupt_files(mimic):
    (mimic / "PATIENTS.csv").rename(mimic / "elsewhere.csv")
    with pytest.raises(DataNotFoundError, match="PATIENTS"):
        mimic3.load_stays(mimic)
    (mimic / "elsewhere.csv").rename(mimic / "PATIENTS.csv")
    (mimic / "LABEVENTS.csv").write_text("ROW_ID,SUBJECT_ID,ITEMID,CHARTTIME\n1,1,50912,2100-01-01 06:15:00\n")
    with pytest.raises(InvalidInputError, match="lacks the column"):
        mimic3.load_stays(mimic)
    (mimic / "LABEVENTS.csv").unlink()
    chart_file = mimic / "CHARTEVENTS_reexported.csv.gz"
    chart_file.write_bytes(chart_file.read_bytes()[:60])
    with pytest.raises(InvalidInputError, match="complete"):
        mimic3.load_stays(mimic)
    with pytest.raises(DataNotFoundError):
        mimic3.load_stays(mimic / "absent")


def test_no_usable_stay_and_bad_parameters(mimic):
    with pytest.raises(InvalidInputError, match="No usable ICU stay"):
        mimic3.load_stays(mimic, stay_ids=[1002])
    with pytest.raises(InvalidInputError, match="hours"):
        mimic3.load_stays(mimic, hours=0)
    with pytest.raises(InvalidInputError, match="aggregate"):
        mimic3.load_stays(mimic, aggregate="first")


def test_item_map(tmp_path):
    items = mimic3.read_item_map()
    assert len({row["itemid"] for row in items}) == len(items)
    assert {row["variable"] for row in items} <= set(PHYSIONET_VARIABLES) | {"SpO2", "Height"}
    assert {row["conversion"] for row in items if row["itemid"] in (678, 223761)} == {"f_to_c"}
    bad = tmp_path / "items.csv"
    bad.write_text("itemid,table,variable,unit,conversion,label\n211,chartevents,HR,bpm,f_to_k,Heart Rate\n")
    with pytest.raises(InvalidInputError, match="Did you mean 'f_to_c'"):
        mimic3.read_item_map(bad)
    bad.write_text("itemid,table,variable,unit,conversion,label\n211,chartevents,HeartRate,bpm,,Heart Rate\n")
    with pytest.raises(InvalidInputError, match="variable"):
        mimic3.read_item_map(bad)


@pytest.mark.realdata
def test_mimic3_demo(real_data_dir):
    folder = real_data_dir / "mimic3_demo"
    if not folder.is_dir():
        pytest.skip("mimic3_demo is absent from the data folder")
    series = mimic3.load_stays(folder)
    assert series.values.shape == (136, 48, 37) and len(set(series.groups)) == 100
    assert series.report["label_counts"] == {"survived": 90, "died": 46}
    assert series.report["events_used"]["chartevents"] > 40_000
    hr, temp = series.values[:, :, HR], series.values[:, :, TEMP]
    assert 70 < np.nanmean(hr) < 100 and 36 < np.nanmean(temp) < 38
