"""DICOM pixels (rescale, windowing, MONOCHROME1, multi-frame), missing pixel data, and patient pseudonyms."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.dataset import Dataset as DicomDataset  # noqa: E402
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

from medai.data.sources import dicom  # noqa: E402
from medai.data.sources.images import load_image_folder, read_image  # noqa: E402
from medai.errors import InvalidInputError  # noqa: E402


def bundled(name: str) -> str:
    """A test file shipped inside the pydicom wheel (never downloaded)."""
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not bundled with this pydicom")
    return path


@pytest.fixture(autouse=True)
def pseudonym_key(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDAI_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("MEDAI_DEID_KEY", raising=False)
    monkeypatch.delenv("MEDAI_DEID_KEY_FILE", raising=False)
    monkeypatch.setenv("MEDAI_CACHE_DIR", str(tmp_path / "cache"))


def write_dicom(path, pixels: np.ndarray | None, photometric: str = "MONOCHROME2", **tags):
    """A minimal secondary-capture DICOM with uint16 pixels (or none) and the given extra tags."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = DicomDataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName, ds.PatientID = "OT", "Doe^Jane", "MRN-0042"
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    if pixels is not None:
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_ct_small_is_rescaled_and_scaled_to_unit_range():
    path = bundled("CT_small.dcm")
    pixels = dicom.read_dicom_pixels(path)
    assert pixels.shape == (1, 128, 128) and pixels.dtype == np.float32
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0 and pixels.std() > 0.1
    raw = pydicom.dcmread(path)
    hounsfield = raw.pixel_array * float(raw.RescaleSlope) + float(raw.RescaleIntercept)
    low, high = np.percentile(hounsfield, [0.5, 99.5])
    np.testing.assert_allclose(pixels[0], np.clip((hounsfield - low) / (high - low), 0, 1), atol=1e-6)


def test_mr_small_uses_its_window():
    path = bundled("MR_small.dcm")
    pixels = dicom.read_dicom_pixels(path)[0]
    raw = pydicom.dcmread(path)
    center, width = float(raw.WindowCenter), float(raw.WindowWidth)
    expected = np.clip((raw.pixel_array - (center - 0.5)) / (width - 1) + 0.5, 0, 1)
    np.testing.assert_allclose(pixels, expected, atol=1e-6)


def test_rescale_slope_and_intercept_change_the_result(tmp_path):
    ramp = np.arange(64).reshape(8, 8)
    plain = dicom.read_dicom_pixels(write_dicom(tmp_path / "plain.dcm", ramp, WindowCenter=40, WindowWidth=40))
    rescaled = dicom.read_dicom_pixels(write_dicom(tmp_path / "rescaled.dcm", ramp, WindowCenter=40,
                                                   WindowWidth=40, RescaleSlope=2, RescaleIntercept=-10))
    assert plain[0, 0, 0] == 0.0 and rescaled[0, 0, 0] == 0.0
    value = 30  # stored 30 -> 50 after rescale: above the window centre only when rescaled
    assert plain.reshape(-1)[value] < 0.5 < rescaled.reshape(-1)[value]


def test_monochrome1_is_inverted(tmp_path):
    ramp = np.arange(64).reshape(8, 8) * 100
    normal = dicom.read_dicom_pixels(write_dicom(tmp_path / "m2.dcm", ramp))
    inverted = dicom.read_dicom_pixels(write_dicom(tmp_path / "m1.dcm", ramp, photometric="MONOCHROME1"))
    np.testing.assert_allclose(inverted, 1.0 - normal, atol=1e-6)
    assert inverted[0, 0, 0] == 1.0 and inverted[0, -1, -1] == 0.0


def test_multiframe_grayscale_and_rgb():
    dose = dicom.read_dicom_pixels(bundled("rtdose.dcm"))
    assert dose.shape == (15, 10, 10) and 0.0 <= dose.min() and dose.max() <= 1.0
    image = read_image(bundled("rtdose.dcm"))
    np.testing.assert_array_equal(image[0], dose[7])  # the image reader takes the middle frame
    rgb = dicom.read_dicom_pixels(bundled("SC_rgb_rle_2frame.dcm"))
    assert rgb.shape == (2, 100, 100, 3) and rgb.max() == 1.0
    assert read_image(bundled("SC_rgb_rle_2frame.dcm")).shape == (3, 100, 100)


def test_dicom_without_pixel_data_is_refused(tmp_path):
    path = write_dicom(tmp_path / "no_pixels.dcm", None)
    with pytest.raises(InvalidInputError, match=r"has no pixel data \(no \(7FE0,0010\) element\)"):
        dicom.read_dicom_pixels(path)
    with pytest.raises(InvalidInputError, match="no pixel data"):
        read_image(bundled("rtplan.dcm"), 1, 8)


def test_extensionless_dicom_is_detected_by_its_marker(tmp_path):
    target = tmp_path / "IM0001"
    shutil.copy(bundled("CT_small.dcm"), target)
    assert dicom.is_dicom_file(target)
    np.testing.assert_array_equal(read_image(target), dicom.read_dicom_pixels(target))


def test_patient_group_is_stable_keyed_and_not_the_raw_id(monkeypatch):
    ds = pydicom.dcmread(bundled("CT_small.dcm"))
    first = dicom.patient_group(ds)
    assert first == dicom.patient_group(ds) and first.startswith("p-")
    assert ds.PatientID not in first
    monkeypatch.setenv("MEDAI_PSEUDONYM_KEY", "another-site-key")
    assert dicom.patient_group(ds) not in (None, first)
    ds.PatientID = ""
    assert dicom.patient_group(ds) is None


def test_the_deid_key_wins_over_the_legacy_pseudonym_key(monkeypatch):
    monkeypatch.setenv("MEDAI_PSEUDONYM_KEY", "legacy-site-key-0123")
    legacy = dicom.pseudonymize("12345")
    monkeypatch.setenv("MEDAI_DEID_KEY", "one-key-for-every-tool-0123456789")
    shared = dicom.pseudonymize("12345")
    assert shared != legacy and shared == dicom.pseudonymize("12345")


def test_pseudonym_key_file_is_private(tmp_path):
    dicom.pseudonymize("x")
    key_file = tmp_path / "cache" / "pseudonym.key"
    assert key_file.stat().st_mode & 0o777 == 0o600 and len(key_file.read_bytes()) == 32
    assert dicom.pseudonymize("x") == dicom.pseudonymize("x")


def test_folder_of_dicom_keeps_no_identifying_text(tmp_path):
    for label, name in (("ct", "CT_small.dcm"), ("mr", "MR_small.dcm")):
        (tmp_path / label).mkdir()
        for index in range(2):
            shutil.copy(bundled(name), tmp_path / label / f"{index}.dcm")
    write_dicom(tmp_path / "ct" / "synthetic.dcm", np.arange(64).reshape(8, 8))
    dataset, report = load_image_folder(tmp_path, image_size=32)
    assert dataset.inputs.shape == (5, 1, 32, 32) and report.skipped == []
    identifying = set()
    for path in tmp_path.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        identifying |= {str(ds.PatientName), str(ds.PatientID), str(ds.get("PatientBirthDate", "")),
                        str(ds.get("InstitutionName", ""))}
    identifying.discard("")
    text = " ".join([*dataset.ids, *dataset.groups, str(dataset.schema.to_dict()), str(report.to_dict())])
    assert not any(value in text for value in identifying)
    assert dataset.groups[0] == dataset.groups[1] != dataset.groups[3]
