"""DICOM de-identification: the PS3.15 Annex E Basic Application Level Confidentiality Profile, with pydicom.

Each attribute of the profile's table gets its action: ``X`` removed, ``Z`` emptied, ``D`` replaced by a dummy value
of its VR (emptied where the VR has none, e.g. OB), ``U`` replaced by a keyed UID, ``K`` kept. The table
(``resources/annex_e_basic_profile.csv``) is every row of PS3.15 Table E.1-1 as parsed by innolitics/dicom-standard;
``resources/annex_e_medai_additions.csv`` adds attributes medai also treats that this edition does not list. A compound
action (``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D``, ``X/Z/U*``) takes its last, always-conformant choice: the attribute
stays, with no identifying content. The table's wildcard rows (:func:`profile_wildcards`: curves 50xx, overlay data
and comments 60xx, private attributes) are applied in code, more strictly: every private attribute, curve and overlay
group is removed. Beyond the table (stricter than the profile, counted apart in the report): every other person name
is emptied, every other date is shifted or emptied, and every other UID outside the DICOM root ``1.2.840.10008`` is
remapped. Attributes a model needs (pixels, photometric interpretation, rescale, window, spacing, geometry, modality,
body part...) are never touched.

UIDs map to ``2.25.<128-bit integer>`` (a UUID, version 8) from HMAC-SHA256 of the original under the key: the same
study gets the same new StudyInstanceUID in every file and every run with the same key, and references between
objects still resolve. Dates move by the patient's offset (:class:`~medai.privacy.pseudonym.Pseudonymizer`, the
offset the table de-identifier uses) or are removed; PatientID becomes the keyed pseudonym of the ``patient``
namespace, so images still join de-identified tables. PatientIdentityRemoved, DeidentificationMethod (+ code
sequence) and LongitudinalTemporalInformationModified record what was done. BurnedInAnnotation YES is reported as a
warning: text burned into the pixels is not cleaned here.

Examples:
    >>> import pydicom
    >>> from pydicom.data import get_testdata_file
    >>> dataset = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    >>> counts = DicomDeidentifier(key=b"k" * 32).deidentify(dataset)
    >>> dataset.PatientIdentityRemoved, dataset.StudyInstanceUID.startswith("2.25."), "PatientBirthDate" in dataset
    ('YES', True, True)
    >>> dataset["PatientBirthDate"].is_empty, counts["private_removed"] > 0, counts["uids_remapped"] > 0
    (True, True, True)
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import tempfile
from collections import Counter
from functools import lru_cache
from pathlib import Path

from medai.errors import InvalidInputError, check_choice, require
from medai.privacy.pseudonym import Pseudonymizer, load_key

PROFILE_TABLE = Path(__file__).parent / "resources" / "annex_e_basic_profile.csv"
MEDAI_ADDITIONS = Path(__file__).parent / "resources" / "annex_e_medai_additions.csv"  # not in the cited table
DICOM_ROOT = "1.2.840.10008."
DATE_MODES = ("shift", "remove")
KEEP = frozenset({  # what a model reads: never changed, whatever a rule says
    "PixelData", "FloatPixelData", "DoubleFloatPixelData", "Rows", "Columns", "NumberOfFrames", "SamplesPerPixel",
    "PhotometricInterpretation", "PlanarConfiguration", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
    "RescaleSlope", "RescaleIntercept", "RescaleType", "ModalityLUTSequence", "VOILUTSequence", "VOILUTFunction",
    "WindowCenter", "WindowWidth", "PixelSpacing", "ImagerPixelSpacing", "SliceThickness", "SpacingBetweenSlices",
    "ImagePositionPatient", "ImageOrientationPatient", "SliceLocation", "PatientPosition", "Modality",
    "BodyPartExamined", "Laterality", "ImageLaterality", "ViewPosition", "SOPClassUID", "ReferencedSOPClassUID",
    "TransferSyntaxUID", "MediaStorageSOPClassUID", "ImageType", "LossyImageCompression", "KVP", "ExposureTime",
    "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor", "BurnedInAnnotation",
    "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData", "PixelPaddingValue", "SmallestImagePixelValue", "LargestImagePixelValue",
    "ImplementationClassUID", "FileMetaInformationVersion", "FileMetaInformationGroupLength", "SpecificCharacterSet",
})  # fmt: skip
CHARACTERISTICS = ("PatientSex", "PatientAge", "PatientSize", "PatientWeight")  # Retain Patient Characteristics
DUMMY = {"DA": "19000101", "TM": "000000", "DT": "19000101000000", "AS": "000Y", "IS": "0", "DS": "0",
         "US": 0, "SS": 0, "UL": 0, "SL": 0, "FL": 0.0, "FD": 0.0}  # fmt: skip
TEXT_VRS = frozenset({"PN", "LO", "SH", "LT", "ST", "UT", "UC", "CS", "AE"})
UNCOMPRESSED = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2")  # implicit/explicit VR LE, BE
MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
LIKELY_BURNED_IN = frozenset({"US", "SC", "XC", "OT", "ES", "GM", "SM", "DOC"})


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


@lru_cache(maxsize=1)
def profile_actions() -> dict[int, str]:
    """Tag (as an int) -> action code: every single attribute of the profile's table, then medai's additions."""
    rows = _rows(PROFILE_TABLE) + _rows(MEDAI_ADDITIONS)
    return {int(row["tag"], 16): row["action"] for row in rows if not _is_wildcard(row["tag"])}


@lru_cache(maxsize=1)
def profile_wildcards() -> dict[str, str]:
    """The table's rows that name a set of tags -> action: ``50xxxxxx``, ``60xx3000``, ``60xx4000`` (``x`` any hex
    digit of a repeating group) and ``GGGGEEEE`` (every private attribute). All are ``X``;
    :meth:`DicomDeidentifier._clean` applies them, more strictly for overlays (the whole 60xx group goes)."""
    return {row["tag"]: row["action"] for row in _rows(PROFILE_TABLE) if _is_wildcard(row["tag"])}


def _is_wildcard(tag: str) -> bool:
    return tag == "GGGGEEEE" or "x" in tag


def _resolve(action: str) -> str:
    """The last choice of a compound action (``X/Z/D`` -> ``D``, ``X/Z/U*`` -> ``U``): conformant and not identifying."""
    return action.split("/")[-1].rstrip("*")


class DicomDeidentifier:
    """Applies the basic profile to pydicom Datasets in place.

    Args:
        key: the de-identification key (``MEDAI_DEID_KEY``); the same key gives the same UIDs, pseudonyms and offsets.
        dates: ``shift`` moves every date by the patient's offset (Retain Longitudinal Temporal Information with
            Modified Dates Option); ``remove`` applies the profile's action (empty or dummy) to every date.
        retain_patient_characteristics: keep sex, age (over 89 as 090Y), size and weight (a profile option).
        pseudonymize_patient_id: PatientID and PatientName become the patient's keyed pseudonym instead of empty.
    """

    def __init__(self, key: bytes | str | None = None, *, dates: str = "shift",
                 retain_patient_characteristics: bool = False, pseudonymize_patient_id: bool = True,
                 allow_ephemeral: bool = False):
        self.dates = check_choice("dates", dates, DATE_MODES)
        self.retain_patient_characteristics = retain_patient_characteristics
        self.pseudonymize_patient_id = pseudonymize_patient_id
        key = load_key(key, allow_ephemeral=allow_ephemeral)
        self._pseudonyms, self._uids = Pseudonymizer(key), Pseudonymizer(key, length=32)

    def new_uid(self, uid: str) -> str:
        """The keyed replacement of ``uid``: ``2.25.`` and a version-8 UUID as an integer (at most 44 characters)."""
        number = int(self._uids.pseudonym(str(uid).strip(), namespace="dicom-uid"), 16)
        number = (number & ~(0xF << 76) | (0x8 << 76)) & ~(0x3 << 62) | (0x2 << 62)  # version 8, RFC 9562 variant
        return f"2.25.{number}"

    def deidentify(self, dataset) -> Counter:
        """De-identify ``dataset`` (and its file meta) in place; returns counts of what was done."""
        require("pydicom", "imaging")
        counts: Counter = Counter()
        patient = str(dataset.get("PatientID", "") or "").strip()
        offset = self._pseudonyms.date_offset_days(patient) if patient and self.dates == "shift" else None
        kept = {k: dataset[k].value for k in CHARACTERISTICS if self.retain_patient_characteristics and k in dataset}
        self._clean(dataset, counts, offset)
        if getattr(dataset, "file_meta", None) is not None:
            self._clean(dataset.file_meta, counts, offset)
            if "SOPInstanceUID" in dataset:
                dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        for keyword, value in kept.items():
            setattr(dataset, keyword, _cap_age(value) if keyword == "PatientAge" else value)
        if patient and self.pseudonymize_patient_id:
            dataset.PatientID = dataset.PatientName = self._pseudonyms.pseudonym(patient, namespace="patient")
        self._mark(dataset, shifted=offset is not None)
        return counts

    def _clean(self, dataset, counts: Counter, offset: int | None) -> None:
        from pydicom.datadict import keyword_for_tag

        actions = profile_actions()
        for element in list(dataset):
            tag, keyword = element.tag, keyword_for_tag(element.tag)
            if keyword in KEEP:
                continue
            if tag.is_private or tag.group & 0xFF00 in (0x5000, 0x6000):
                del dataset[tag]
                counts["private_removed" if tag.is_private else "curves_overlays_removed"] += 1
            elif tag in actions:
                self._apply(dataset, element, _resolve(actions[tag]), counts, offset)
            elif element.VR == "SQ":
                for item in element.value:
                    self._clean(item, counts, offset)
            elif element.VR == "UN":  # a public attribute pydicom cannot type: its bytes could hold anything
                del dataset[tag]
                counts["extension_unknown_removed"] += 1
            elif element.VR in ("DA", "DT") and not element.is_empty:
                self._date(dataset, element, "Z", counts, offset, extension=True)
            elif element.VR == "PN" and element.value not in (None, ""):
                element.value = ""
                counts["extension_names_emptied"] += 1
            elif element.VR == "UI" and element.value not in (None, "") and not _standard(element.value):
                self._remap(element, counts, "extension_uids_remapped")

    def _apply(self, dataset, element, action: str, counts: Counter, offset: int | None) -> None:
        if action == "X":
            del dataset[element.tag]
            counts["removed"] += 1
        elif action == "K":
            counts["kept"] += 1
        elif action == "U" and element.VR == "SQ":
            for item in element.value:
                self._clean(item, counts, offset)
        elif action == "U":
            self._remap(element, counts, "uids_remapped")
        elif element.VR in ("DA", "DT") and element.is_empty:
            counts["empty_dates_kept_empty"] += 1
        elif element.VR in ("DA", "DT") and element.tag != 0x00100030:  # PatientBirthDate is always emptied
            self._date(dataset, element, action, counts, offset)
        elif element.VR == "TM" and offset is not None:
            counts["times_kept"] += 1  # times alone do not identify; shifted dates keep their times
        elif action == "Z" or element.VR == "SQ":
            element.value = [] if element.VR == "SQ" else None
            counts["emptied"] += 1
        else:
            element.value = _dummy(element.VR)
            counts["dummied"] += 1

    def _date(self, dataset, element, action: str, counts: Counter, offset: int | None, extension=False) -> None:
        prefix = "extension_" if extension else ""
        if offset is None:
            element.value = None if action == "Z" else _dummy(element.VR)
            counts[f"{prefix}dates_removed"] += 1
            return
        shifted = [_shift(v, offset) for v in (element.value if element.VM > 1 else [element.value])]
        if None in shifted:
            element.value = None
            counts[f"{prefix}dates_removed"] += 1
        else:
            element.value = shifted if element.VM > 1 else shifted[0]
            counts[f"{prefix}dates_shifted"] += 1

    def _remap(self, element, counts: Counter, name: str) -> None:
        values = element.value if element.VM > 1 else [element.value]
        mapped = [self.new_uid(v) if v and not _standard(v) else v for v in values]
        element.value = mapped if element.VM > 1 else mapped[0]
        counts[name] += 1

    def _mark(self, dataset, shifted: bool) -> None:
        from pydicom.dataset import Dataset

        dataset.PatientIdentityRemoved = "YES"
        methods = ["DICOM PS3.15 E.1 Basic Profile (medai)", "UIDs remapped with a keyed hash",
                   "dates shifted per patient" if shifted else "dates removed", "private attributes removed"]
        dataset.DeidentificationMethod = methods
        codes = [("113100", "Basic Application Confidentiality Profile")]
        if shifted:
            codes.append(("113107", "Retain Longitudinal Temporal Information Modified Dates Option"))
        if self.retain_patient_characteristics:
            codes.append(("113108", "Retain Patient Characteristics Option"))
        items = []
        for value, meaning in codes:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
            items.append(item)
        dataset.DeidentificationMethodCodeSequence = items
        dataset.LongitudinalTemporalInformationModified = "MODIFIED" if shifted else "REMOVED"


def _standard(uid) -> bool:
    return str(uid).startswith(DICOM_ROOT)


def _dummy(vr: str):
    return "ANONYMIZED" if vr in TEXT_VRS else DUMMY.get(vr)


def _cap_age(value):
    text = str(value or "")
    return "090Y" if text.endswith("Y") and text[:-1].isdigit() and int(text[:-1]) > 89 else value


def _shift(value, offset: int) -> str | None:
    """A DA (YYYYMMDD) or the date part of a DT moved by ``offset`` days; None when it cannot be read."""
    text = str(value).strip()
    if len(text) < 8 or not text[:8].isdigit():
        return None
    try:
        moved = dt.date(int(text[:4]), int(text[4:6]), int(text[6:8])) + dt.timedelta(days=offset)
    except ValueError:
        return None
    return moved.strftime("%Y%m%d") + text[8:]


def burned_in_warnings(dataset) -> list[str]:
    """Warnings about text that may be burned into the pixels (never cleaned by this profile)."""
    flag = str(dataset.get("BurnedInAnnotation", "") or "").upper()
    if flag == "YES":
        return ["BurnedInAnnotation is YES: identifying text may be burned into the pixels, which this profile "
                "does not clean; mask the pixels or exclude the file."]
    if not flag and str(dataset.get("Modality", "")) in LIKELY_BURNED_IN:
        return [f"BurnedInAnnotation is absent on a {dataset.Modality} image, a modality that often carries burned-in "
                "text; review the pixels."]
    return []


def deidentify_dicom_folder(input: str | os.PathLike, output: str | os.PathLike, *, key: bytes | str | None = None,
                            report: str | os.PathLike | None = None, **options) -> dict:
    """De-identify every DICOM file under ``input`` into the same tree under ``output``.

    Files that are not DICOM or cannot be read are skipped and listed with the reason; nothing is written for them.
    The options are those of :class:`DicomDeidentifier`. Returns (and writes to ``report``) per-file counts, warnings
    and totals; no value read from a file appears in it.
    """
    pydicom = require("pydicom", "imaging")
    source, destination = Path(input).resolve(), Path(output).resolve()
    if not source.is_dir():
        raise InvalidInputError(f"No folder at {source}; expected a folder of DICOM files.")
    if destination == source or source in destination.parents:
        raise InvalidInputError("The output folder must be outside the input folder.")
    deidentifier = DicomDeidentifier(key, **options)
    files, totals = [], Counter()
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = path.relative_to(source)
        entry = {"input": str(relative)}
        try:
            dataset = _read(pydicom, path)
            _check_complete(dataset)
            warnings = burned_in_warnings(dataset)
            counts = deidentifier.deidentify(dataset)
            _write(dataset, destination / relative)
        except pydicom.errors.InvalidDicomError:
            entry.update(status="skipped", reason="not a DICOM file (no DICM marker)")
        except InvalidInputError as error:
            entry.update(status="skipped", reason=str(error))
        except Exception as error:  # a corrupt file is skipped and reported by error type only
            entry.update(status="skipped", reason=f"unreadable or corrupt ({type(error).__name__})")
        else:
            entry.update(status="deidentified", output=str(relative), counts=dict(sorted(counts.items())),
                         warnings=warnings)  # fmt: skip
            totals.update(counts)
        files.append(entry)
    summary = {
        "profile": "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile", "dates": deidentifier.dates,
        "files": len(files), "deidentified": sum(f["status"] == "deidentified" for f in files),
        "skipped": sum(f["status"] == "skipped" for f in files), "with_warnings": sum(bool(f.get("warnings")) for f in files),
        "totals": dict(sorted(totals.items())), "per_file": files,
    }  # fmt: skip
    if report is not None:
        Path(report).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _read(pydicom, path: Path):
    """A DICOM file, with or without the 128-byte preamble (then it must at least name its SOP class)."""
    try:
        return pydicom.dcmread(path)
    except pydicom.errors.InvalidDicomError:
        dataset = pydicom.dcmread(path, force=True)
        if "SOPClassUID" not in dataset:
            raise
        return dataset


def _check_complete(dataset) -> None:
    """pydicom stops quietly at the end of a truncated file: an image must still hold all of its pixels."""
    from pydicom.uid import UID

    meta = getattr(dataset, "file_meta", None) or {}
    sop_class = UID(str(dataset.get("SOPClassUID", "") or meta.get("MediaStorageSOPClassUID", "")))
    if sop_class == MEDIA_DIRECTORY:
        raise InvalidInputError("a DICOMDIR index, not copied: its records point into the original files")
    if "Rows" not in dataset and "Image Storage" not in sop_class.name:
        return
    if not any(keyword in dataset for keyword in PIXEL_KEYWORDS):
        raise InvalidInputError("image without pixel data (a truncated or header-only file)")
    syntax = str(meta.get("TransferSyntaxUID", ""))
    if "PixelData" in dataset and syntax in UNCOMPRESSED:
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
        if "Rows" not in dataset or "Columns" not in dataset or "BitsAllocated" not in dataset:
            raise InvalidInputError("incomplete image: no Rows, Columns or BitsAllocated (truncated file?)")
        needed = dataset.Rows * dataset.Columns * int(dataset.get("SamplesPerPixel", 1)) * frames * dataset.BitsAllocated // 8
        if str(dataset.get("PhotometricInterpretation", "")) == "YBR_FULL_422":
            needed = needed * 2 // 3  # chroma shared by pixel pairs
        if len(dataset.PixelData) < needed:
            raise InvalidInputError("incomplete image: pixel data shorter than Rows x Columns (truncated file?)")


def _write(dataset, path: Path) -> None:
    """Write atomically: a temporary file beside ``path``, renamed once the whole dataset is written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(descriptor)
    meta = getattr(dataset, "file_meta", None)
    if meta is not None:
        for meta_keyword, keyword in (("MediaStorageSOPClassUID", "SOPClassUID"), ("MediaStorageSOPInstanceUID", "SOPInstanceUID")):
            if not meta.get(meta_keyword) and dataset.get(keyword):
                setattr(meta, meta_keyword, dataset.get(keyword))
    complete = meta is not None and all(meta.get(k) for k in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID",
                                                                "TransferSyntaxUID"))  # fmt: skip
    try:
        dataset.save_as(temporary, enforce_file_format=complete)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
