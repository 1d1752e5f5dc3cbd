"""DICOM de-identification, tag by tag against the PS3.15 basic profile, on pydicom's bundled test files."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import shutil

import pytest

pydicom = pytest.importorskip("pydicom")

from pydicom.data import get_testdata_file  # noqa: E402

from medai.errors import InvalidInputError  # noqa: E402
from medai.privacy.deid.dicom import (  # noqa: E402
    DUMMY,
    KEEP,
    DicomDeidentifier,
    _resolve,
    deidentify_dicom_folder,
    profile_actions,
    profile_wildcards,
)
from medai.privacy.pseudonym import Pseudonymizer  # noqa: E402

KEY = secrets.token_bytes(32)  # made per run: no key lives in the source
IDENTIFYING = [b"CompressedSamples", b"JFK IMAGING", b"1CT1", b"CT01_OC0", b"4MR1", b"Secret^Patient", b"555-0199"]


def _ct(uid_suffix: str, burned_in: bool = False):
    dataset = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.9.7.{uid_suffix}"
    block = dataset.private_block(0x0011, "HOSPITAL PRIVATE", create=True)
    block.add_new(0x01, "PN", "Secret^Patient")  # identifying data hidden in a private tag
    block.add_new(0x02, "LO", "phone 555-0199")
    if burned_in:
        dataset.BurnedInAnnotation = "YES"
    return dataset


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("dicom")
    source = root / "in"
    (source / "study" / "series").mkdir(parents=True)
    (source / "other").mkdir()
    (source / "broken").mkdir()
    _ct("1", burned_in=True).save_as(source / "study" / "series" / "a.dcm")
    _ct("2").save_as(source / "study" / "series" / "b.dcm")
    shutil.copy(get_testdata_file("MR_small.dcm"), source / "other" / "mr.dcm")
    shutil.copy(get_testdata_file("rtplan.dcm"), source / "other" / "rtplan.dcm")
    whole = (source / "study" / "series" / "b.dcm").read_bytes()
    (source / "broken" / "truncated.dcm").write_bytes(whole[:900])
    (source / "broken" / "random.dcm").write_bytes(bytes(range(256)) * 4)
    (source / "notes.txt").write_text("not an image")
    report = deidentify_dicom_folder(source, root / "out", key=KEY, report=root / "report.json")
    return source, root / "out", report, root / "report.json"


def _pairs(folders, name):
    source, out, _, _ = folders
    return pydicom.dcmread(source / name), pydicom.dcmread(out / name)


def _check_against_profile(before, after, offset):
    """Every attribute of the profile's table present in ``before`` got its action in ``after``."""
    checked = 0
    for tag, action in profile_actions().items():
        if tag not in before or (tag >> 16) == 0x0002:
            continue
        element, keyword, chosen = before[tag], before[tag].keyword, _resolve(action)
        checked += 1
        if chosen == "X":
            assert tag not in after, keyword
        elif keyword in ("PatientID", "PatientName") and not element.is_empty:
            assert str(after[tag].value) == Pseudonymizer(KEY).pseudonym(str(before.PatientID), namespace="patient")
        elif element.VR in ("DA", "DT") and element.is_empty:
            assert after[tag].is_empty, keyword
        elif element.VR in ("DA", "DT") and keyword != "PatientBirthDate":
            moved = dt.datetime.strptime(str(element.value)[:8], "%Y%m%d") + dt.timedelta(days=offset)
            assert str(after[tag].value)[:8] == moved.strftime("%Y%m%d"), keyword
        elif element.VR == "TM":
            assert after[tag].value == element.value, keyword  # times kept with shifted dates
        elif chosen == "U" and element.VR == "UI":
            assert after[tag].value != element.value and str(after[tag].value).startswith("2.25."), keyword
        elif chosen == "Z" or (chosen == "D" and element.VR == "SQ"):
            assert after[tag].is_empty, keyword
        elif chosen == "D":
            assert after[tag].value == DUMMY.get(element.VR, "ANONYMIZED"), keyword
    return checked


def test_ct_tag_by_tag_against_the_profile(folders):
    before, after = _pairs(folders, "study/series/a.dcm")
    offset = Pseudonymizer(KEY).date_offset_days("1CT1")
    assert _check_against_profile(before, after, offset) >= 20
    assert after.PatientIdentityRemoved == "YES" and after.LongitudinalTemporalInformationModified == "MODIFIED"
    assert after.DeidentificationMethod[0].startswith("DICOM PS3.15")
    assert [item.CodeValue for item in after.DeidentificationMethodCodeSequence] == ["113100", "113107"]
    assert after["PatientBirthDate"].is_empty and "OtherPatientIDsSequence" not in after
    assert after.InstitutionName == "ANONYMIZED" and "StudyDescription" not in after and "ImageComments" not in after


def test_mr_and_rtplan_against_the_profile(folders):
    for name, patient in (("other/mr.dcm", "4MR1"), ("other/rtplan.dcm", "id00001")):
        before, after = _pairs(folders, name)
        assert _check_against_profile(before, after, Pseudonymizer(KEY).date_offset_days(patient)) >= 10, name
        names = {str(e.value) for e in after.iterall() if e.VR == "PN" and not e.is_empty}
        assert names <= {"ANONYMIZED", str(after.PatientName)}, name


def test_private_tags_are_gone_and_no_identifier_survives_in_the_bytes(folders):
    source, out, _, _ = folders
    for path in out.rglob("*.dcm"):
        assert not any(e.tag.is_private for e in pydicom.dcmread(path).iterall()), path.name
        data = path.read_bytes()
        for text in IDENTIFYING:
            assert text not in data, (path.name, text)
    before = pydicom.dcmread(source / "study" / "series" / "a.dcm")
    assert sum(e.tag.is_private for e in before.iterall()) > 100


def test_uids_are_consistent_within_a_study_and_differ_from_the_originals(folders):
    (a0, a1), (_, b1) = _pairs(folders, "study/series/a.dcm"), _pairs(folders, "study/series/b.dcm")
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert a1[keyword].value == b1[keyword].value != a0[keyword].value
        assert len(a1[keyword].value) <= 64
    assert a1.SOPInstanceUID != b1.SOPInstanceUID and a1.SOPInstanceUID == a1.file_meta.MediaStorageSOPInstanceUID
    assert a1.SOPClassUID == a0.SOPClassUID
    again, other = DicomDeidentifier(key=KEY), DicomDeidentifier(key=secrets.token_bytes(32))
    assert again.new_uid(a0.StudyInstanceUID) == a1.StudyInstanceUID != other.new_uid(a0.StudyInstanceUID)
    import uuid

    assert uuid.UUID(int=int(a1.StudyInstanceUID[5:])).version == 8


def test_what_a_model_needs_is_kept(folders):
    before, after = _pairs(folders, "study/series/a.dcm")
    for keyword in sorted(KEEP):
        if keyword in before and keyword != "BurnedInAnnotation":
            assert after[keyword].value == before[keyword].value, keyword
    assert after.pixel_array.tolist() == before.pixel_array.tolist()
    assert after.Modality == "CT" and after.PixelSpacing == before.PixelSpacing


def test_report_counts_warnings_and_skipped_files(folders):
    _, out, report, path = folders
    assert json.loads(path.read_text()) == report
    assert (report["files"], report["deidentified"], report["skipped"]) == (7, 4, 3)
    entries = {entry["input"]: entry for entry in report["per_file"]}
    assert "BurnedInAnnotation is YES" in entries["study/series/a.dcm"]["warnings"][0]
    assert entries["study/series/b.dcm"]["warnings"] == []
    assert entries["study/series/a.dcm"]["counts"]["private_removed"] >= 2
    assert entries["broken/random.dcm"]["reason"].startswith("not a DICOM")
    assert entries["broken/truncated.dcm"]["status"] == "skipped" and entries["notes.txt"]["status"] == "skipped"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        ["other/mr.dcm", "other/rtplan.dcm", "study/series/a.dcm", "study/series/b.dcm"]
    text = path.read_text()
    assert not any(value.decode() in text for value in IDENTIFYING)


def test_dates_removed_and_patient_characteristics_option():
    dataset = _ct("3")
    DicomDeidentifier(key=KEY, dates="remove", retain_patient_characteristics=True).deidentify(dataset)
    assert dataset["StudyDate"].is_empty and dataset.ContentDate == "19000101" and "AcquisitionDate" in dataset
    assert dataset.LongitudinalTemporalInformationModified == "REMOVED"
    assert dataset.PatientSex == "O" and dataset.PatientAge == "000Y"
    assert [i.CodeValue for i in dataset.DeidentificationMethodCodeSequence] == ["113100", "113108"]
    old = _ct("4")
    old.PatientAge = "093Y"
    DicomDeidentifier(key=KEY, retain_patient_characteristics=True).deidentify(old)
    assert old.PatientAge == "090Y"


def test_profile_table_matches_the_dicom_dictionary():
    import csv

    from pydicom.datadict import keyword_for_tag

    from medai.privacy.deid.dicom import MEDAI_ADDITIONS, PROFILE_TABLE

    tables = [list(csv.DictReader(line for line in open(path) if not line.startswith("#")))
              for path in (PROFILE_TABLE, MEDAI_ADDITIONS)]  # fmt: skip
    assert len(tables[0]) > 300
    for row in tables[0] + tables[1]:
        if row["tag"] not in profile_wildcards():
            assert keyword_for_tag(int(row["tag"], 16)) == row["keyword"], row
        assert row["action"] in {"X", "Z", "D", "U", "K", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"}, row
    standard, additions = ({row["tag"] for row in table} for table in tables)
    assert not standard & additions and len(standard) == len(tables[0])  # no tag twice, none in both files
    assert profile_actions()[0x00100010] == "Z" and profile_actions()[0x0020000D] == "U"


def test_profile_table_is_the_whole_standard_table_with_its_actions():
    """PS3.15 Table E.1-1 (innolitics/dicom-standard @ 0d01bf11): 460 rows, spot-checked actions."""
    actions = profile_actions()
    assert len(actions) - 43 == 456 and len(profile_wildcards()) == 4  # 456 attributes + 43 medai additions
    assert profile_wildcards() == {"50xxxxxx": "X", "60xx3000": "X", "60xx4000": "X", "GGGGEEEE": "X"}
    expected = {0x00100010: "Z", 0x0020000D: "U", 0x00080050: "Z", 0x00080080: "X/Z/D", 0x00100030: "Z",
                0x00080020: "Z", 0x00080022: "X/Z", 0x0008002A: "X/Z/D", 0x0008009C: "Z", 0x00700084: "Z/D",
                0x04000100: "U", 0x0040A730: "D", 0x00081140: "X/Z/U*", 0x00160072: "X", 0x00080018: "U"}  # fmt: skip
    assert {tag: actions[tag] for tag in expected} == expected
    dataset = pydicom.Dataset()
    dataset.InstitutionName, dataset.AccessionNumber, dataset.ConsultingPhysicianName = "JFK IMAGING", "A1", "Dr^X"
    dataset.GPSLatitude, dataset.PatientName = "51.5", "Secret^Patient"
    dataset.add_new(0x60003000, "OB", b"\x00\x01")  # overlay data
    dataset.add_new(0x50000010, "US", 1)  # a curve element (retired group)
    dataset.private_block(0x0011, "HOSPITAL PRIVATE", create=True).add_new(0x01, "LO", "555-0199")
    counts = DicomDeidentifier(key=KEY, pseudonymize_patient_id=False).deidentify(dataset)
    assert dataset.InstitutionName == "ANONYMIZED"  # X/Z/D resolves to D: a dummy value
    assert dataset["AccessionNumber"].is_empty and dataset["ConsultingPhysicianName"].is_empty  # Z
    assert dataset["PatientName"].is_empty and "GPSLatitude" not in dataset  # Z, X
    assert 0x60003000 not in dataset and 0x50000010 not in dataset and not any(e.tag.is_private for e in dataset)
    assert counts["curves_overlays_removed"] == 2 and counts["private_removed"] >= 1


def test_misuse(tmp_path):
    (tmp_path / "in").mkdir()
    with pytest.raises(InvalidInputError, match="outside the input"):
        deidentify_dicom_folder(tmp_path / "in", tmp_path / "in" / "out", key=KEY)
    with pytest.raises(InvalidInputError, match="No folder"):
        deidentify_dicom_folder(tmp_path / "missing", tmp_path / "out", key=KEY)
    with pytest.raises(InvalidInputError, match="'dates' parameter"):
        DicomDeidentifier(key=KEY, dates="keep")


def test_cli_deid_dicom(folders, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from medai.cli.main import app

    source = folders[0]
    monkeypatch.setenv("MEDAI_DEID_KEY", KEY.hex())
    result = CliRunner().invoke(app, ["deid", "dicom", "--input", str(source), "--output", str(tmp_path / "o"),
                                      "--report", str(tmp_path / "r.json")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "de-identified 4 of 7 files" in result.output and "BurnedInAnnotation is YES" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    first = pydicom.dcmread(tmp_path / "o" / "study" / "series" / "a.dcm")
    assert first.StudyInstanceUID == pydicom.dcmread(folders[1] / "study" / "series" / "a.dcm").StudyInstanceUID
    assert report["skipped"] == 3
