"""MIMIC-III admissions as a :class:`~medai.ehr.records.Cohort` of coded visits, de-identified on the way in.

:func:`load_cohort` reads ADMISSIONS, DIAGNOSES_ICD, PROCEDURES_ICD and PRESCRIPTIONS (PATIENTS, D_ICD_DIAGNOSES and
D_ICD_PROCEDURES when present) from a folder of the full database or the demo: ``.csv`` or ``.csv.gz``, upper- or
lower-case names and columns. Tables are scanned lazily with polars, only the needed columns are read and rows are
grouped per admission by the streaming engine, so the four million prescription rows of full MIMIC-III fit in
bounded memory (a ``.csv.gz`` table is first inflated by streaming into a private temporary folder, removed after
loading, because polars would inflate it whole in memory). Each patient becomes visits ordered by admission time; each visit holds ICD-9 diagnoses (in SEQ_NUM
order), ICD-9 procedures (SEQ_NUM order) and ATC level-3 medications (sorted, distinct; see
:mod:`medai.ehr.drugcodes`).

Row-level problems never raise: they are counted in ``cohort.report`` (counts only, never values). A missing table
raises :class:`~medai.errors.DataNotFoundError`; a missing column or an unreadable table raises
:class:`~medai.errors.InvalidInputError` naming the file and the expected columns.

:func:`load_patient_json` reads one patient's visits from JSON, for ``medai recommend --patient FILE.json``.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from medai.ehr.drugcodes import DrugMapper
from medai.ehr.records import Cohort, Patient, Visit
from medai.errors import DataNotFoundError, InvalidInputError, require
from medai.privacy.pseudonym import KEY_ENV, KEY_FILE_ENV, Pseudonymizer

COLUMNS = {  # table -> (required columns, optional columns)
    "admissions": (("subject_id", "hadm_id", "admittime"), ()),
    "diagnoses_icd": (("hadm_id", "seq_num", "icd9_code"), ()),
    "procedures_icd": (("hadm_id", "seq_num", "icd9_code"), ()),
    "prescriptions": (("hadm_id", "ndc", "drug"), ("drug_name_generic",)),
    "patients": (("subject_id",), ()),
    "d_icd_diagnoses": (("icd9_code", "short_title"), ()),
    "d_icd_procedures": (("icd9_code", "short_title"), ()),
}
REQUIRED_TABLES = ("admissions", "diagnoses_icd", "procedures_icd", "prescriptions")
CODE_TABLES = {"diagnoses": ("diagnoses_icd", "d_icd_diagnoses"), "procedures": ("procedures_icd", "d_icd_procedures")}
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")
JSON_FIELDS = ("diagnoses", "procedures", "medications")


def load_cohort(folder: str | os.PathLike, *, key: bytes | str | None = None, deidentify: bool = True,
                vocabulary: str | object | None = None, progress: bool = False,
                mapper: DrugMapper | None = None) -> Cohort:
    """Load MIMIC-III admissions as patients of ordered, coded visits.

    Parameters
    ----------
    folder:
        Folder holding ADMISSIONS, DIAGNOSES_ICD, PROCEDURES_ICD and PRESCRIPTIONS (``.csv`` or ``.csv.gz``).
    key:
        De-identification key (see :func:`medai.privacy.pseudonym.load_key`); default ``MEDAI_DEID_KEY`` or
        ``MEDAI_DEID_KEY_FILE``, else a random key for this call only (``report["key"] == "ephemeral"``).
    deidentify:
        Replace patient and admission ids by keyed pseudonyms and shift each patient's admission times by a
        per-patient offset (intervals kept). With False, ids and times are kept as in the source.
    vocabulary:
        Target ATC3 classes: ``"gamenet"`` (default, 151 classes), ``"safedrug"``, ``"all"`` or a list of codes.
    progress:
        Print the stage being run to stderr (no values).
    mapper:
        A ready :class:`~medai.ehr.drugcodes.DrugMapper` (its vocabulary wins over ``vocabulary``).

    Returns
    -------
    Cohort
        Patients (visits without a diagnosis are dropped, and patients left without visits), ``report`` (counts)
        and ``descriptions`` (ICD-9 short titles of the codes present; WHO names of every target ATC3 class).

    Examples
    --------
    >>> cohort = load_cohort("../shared/data/mimic3_demo")  # doctest: +SKIP
    >>> len(cohort.patients), cohort.n_visits  # doctest: +SKIP
    (100, 129)
    """
    started = time.perf_counter()
    require("polars", "timeseries")
    folder = Path(folder).expanduser()
    found = _find_tables(folder)
    mapper = mapper or DrugMapper(vocabulary if vocabulary is not None else "gamenet")
    say = _reporter(progress)
    report: dict = {"source": "mimic3", "tables": {name: path.name for name, path in found.items()}}
    with tempfile.TemporaryDirectory(prefix="medai-mimic-") as scratch:  # private (0700), removed on exit
        paths = {name: _decompressed(path, Path(scratch), say) for name, path in found.items()}
        cohort = _load(paths, key, deidentify, mapper, report, say)
    report["seconds"] = round(time.perf_counter() - started, 3)
    say(f"done in {report['seconds']} s")
    return cohort


def _load(paths: dict, key, deidentify: bool, mapper: DrugMapper, report: dict, say) -> Cohort:
    scans = {name: _scan(path, *COLUMNS[name]) for name, path in paths.items()}
    say("admissions")
    admissions, admission_ids = _admissions(scans["admissions"], report)
    known_subjects = _collect(scans["patients"].select("subject_id").unique(), paths["patients"]) \
        if "patients" in scans else None
    if known_subjects is not None:
        report["admissions"]["subject_not_in_patients"] = admissions.join(
            known_subjects, on="subject_id", how="anti").height
    codes, descriptions = {}, {}
    for kind, (table, dictionary) in CODE_TABLES.items():
        say(kind)
        codes[kind], descriptions[kind] = _codes(kind, scans[table], paths[table], scans.get(dictionary),
                                                 paths.get(dictionary), admission_ids, report)
    say("prescriptions")
    codes["medications"] = _medications(scans["prescriptions"], paths["prescriptions"], admission_ids, mapper, report)
    say("visits")
    patients = _patients(admissions, codes, _identities(key, deidentify, report), report)
    for kind in CODE_TABLES:
        used = set().union(*(getattr(v, kind) for p in patients for v in p.visits))
        descriptions[kind] = {code: title for code, title in descriptions[kind].items() if code in used}
    names = mapper.class_names
    descriptions["medications"] = {code: names.get(code, code) for code in mapper.vocabulary}
    return Cohort(patients, report, descriptions)


def load_patient_json(obj_or_path: dict | str | os.PathLike, known: dict | None = None) -> Patient:
    """One patient's visits from JSON: ``{"visits": [{"diagnoses": [...], "procedures": [...], "medications":
    [...]}, ...]}`` in time order.

    ``medications`` may be left out of the last (current) visit only: it is what is to be recommended. Codes are
    strings (ICD-9 without dots, ATC3 classes). With ``known`` (``{kind: codes}``), codes outside it are refused.
    An optional top-level ``"patient"`` label is accepted and not kept (the returned id is ``"patient"``); visits get
    ids ``visit-0``, ``visit-1``, ... and no time.

    Parameters
    ----------
    obj_or_path:
        The parsed JSON object, a JSON string, or the path of a ``.json`` file.
    known:
        Optional ``{"diagnoses": [...], "procedures": [...], "medications": [...]}`` of accepted codes.

    Raises
    ------
    InvalidInputError
        Not JSON, wrong or unknown fields, codes that are not strings or not in ``known``; the message names the
        field (``visits[1].diagnoses[0]``) and what was expected, never the values.

    Examples
    --------
    >>> patient = load_patient_json({"visits": [{"diagnoses": ["4019"], "procedures": [], "medications": ["C09A"]},
    ...                                         {"diagnoses": ["4019", "25000"], "procedures": ["3893"]}]})
    >>> len(patient.visits), patient.visits[-1].medications
    (2, ())
    """
    data = _read_json(obj_or_path)
    expected = ('expected {"visits": [{"diagnoses": [...], "procedures": [...], "medications": [...]}, ...]} '
                "with medications optional in the last visit only")
    if not isinstance(data, dict):
        raise InvalidInputError(f"The patient JSON must be an object; got a {type(data).__name__}; {expected}.")
    unknown = sorted(set(data) - {"visits", "patient"})
    if unknown or "visits" not in data:
        problem = f"unknown field(s) {unknown}" if unknown else "no 'visits' field"
        raise InvalidInputError(f"The patient JSON has {problem}; {expected}.")
    known = {kind: set(codes) for kind, codes in (known or {}).items()}
    visits = data["visits"]
    if not isinstance(visits, list) or not visits:
        raise InvalidInputError(f"'visits' must be a non-empty list; {expected}.")
    parsed = []
    for index, visit in enumerate(visits):
        last = index == len(visits) - 1
        parsed.append(_json_visit(visit, index, last, known, expected))
    return Patient("patient", tuple(parsed))


# ------------------------------------------------------------------------------------------------- tables


def find_table(folder: Path, name: str) -> Path | None:
    """``NAME.csv``, ``NAME.csv.gz`` (any case), or ``NAME_<anything>.csv[.gz]`` in ``folder``; None when absent."""
    candidates = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith((".csv", ".csv.gz")))
    exact = [p for p in candidates if p.name.lower() in (f"{name}.csv", f"{name}.csv.gz")]
    loose = [p for p in candidates if p.name.lower().startswith(f"{name}_")]
    return (exact or loose or [None])[0]


def _find_tables(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataNotFoundError(f"No MIMIC-III folder at {str(folder)!r}; expected a folder of MIMIC-III tables.")
    paths = {name: find_table(folder, name) for name in COLUMNS}
    absent = [name.upper() for name in REQUIRED_TABLES if paths[name] is None]
    if absent:
        raise DataNotFoundError(f"MIMIC-III table(s) {absent} not found in '{folder}'; expected e.g. "
                                f"{absent[0]}.csv or {absent[0]}.csv.gz with columns "
                                f"{list(COLUMNS[absent[0].lower()][0])}.")
    return {name: path for name, path in paths.items() if path is not None}


def _decompressed(path: Path, scratch: Path, say) -> Path:
    """A ``.csv.gz`` table decompressed by streaming into ``scratch`` (polars would inflate it whole in memory)."""
    if not path.name.lower().endswith(".gz"):
        return path
    say(f"decompressing {path.name}")
    target = scratch / path.name[:-3]
    try:
        with gzip.open(path, "rb") as source, open(target, "wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
    except (OSError, EOFError) as error:
        raise InvalidInputError(f"Could not decompress '{path.name}' ({type(error).__name__}); expected a gzip "
                                f"CSV file.") from None
    return target


def _scan(path: Path, required: tuple[str, ...], optional: tuple[str, ...]):
    """Lazy scan of ``path`` (all columns as text, names lower-cased), checked for the required columns."""
    pl = require("polars", "timeseries")
    frame = pl.scan_csv(path, infer_schema=False, with_column_names=lambda names: [n.strip().lower() for n in names])
    try:
        names = frame.collect_schema().names()
    except (pl.exceptions.PolarsError, OSError) as error:
        raise InvalidInputError(f"Could not read the header of '{path.name}' ({type(error).__name__}); expected a "
                                f"CSV with columns {list(required)}.") from None
    missing = [c for c in required if c not in names]
    if missing:
        raise InvalidInputError(f"'{path.name}' lacks column(s) {[c.upper() for c in missing]}; expected columns "
                                f"{[c.upper() for c in required]} (any case).")
    keep = [c for c in (*required, *optional) if c in names]
    return frame.select([pl.col(c).str.strip_chars() for c in keep]).with_columns(
        [pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c) for c in keep])


def _collect(frame, path: Path):
    pl = require("polars", "timeseries")
    try:
        return frame.collect(engine="streaming")
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as error:
        raise InvalidInputError(f"Could not read '{path.name}' ({type(error).__name__}); expected a well-formed "
                                f"MIMIC-III CSV table.") from None


def _admissions(scan, report: dict):
    """Admissions with a parsed time (first row per HADM_ID) and the set of every HADM_ID present."""
    pl = require("polars", "timeseries")
    frame = _collect(scan.with_row_index("order"), Path(report["tables"]["admissions"]))
    parsed = pl.coalesce([pl.col("admittime").str.to_datetime(fmt, strict=False) for fmt in TIME_FORMATS])
    with_ids = frame.filter(pl.col("subject_id").is_not_null() & pl.col("hadm_id").is_not_null())
    unique = with_ids.unique("hadm_id", keep="first", maintain_order=True)
    unique = unique.with_columns(parsed.alias("admitted"))
    kept = unique.filter(pl.col("admitted").is_not_null())
    report["admissions"] = {"rows": frame.height, "missing_id": frame.height - with_ids.height,
                            "duplicate_hadm_id": with_ids.height - unique.height,
                            "malformed_date": unique.height - kept.height, "kept": kept.height}
    return kept.select("subject_id", "hadm_id", "admitted"), unique.select("hadm_id")


def _codes(kind: str, scan, path: Path, dictionary_scan, dictionary_path, admission_ids, report: dict):
    """{HADM_ID: [codes in SEQ_NUM order]} as a frame, and {code: short title} from the dictionary table."""
    pl = require("polars", "timeseries")
    code = pl.col("icd9_code").str.replace_all(".", "", literal=True).str.to_uppercase()
    rows = scan.select("hadm_id", pl.col("seq_num").cast(pl.Int64, strict=False).alias("seq"), code.alias("code"))
    counts = {"rows": 0}
    counted = _collect(rows.select(pl.len().alias("rows"), pl.col("code").is_null().sum().alias("missing_code"),
                                   pl.col("hadm_id").is_null().sum().alias("missing_hadm_id")), path)
    counts.update({name: int(counted[name][0]) for name in counted.columns})
    rows = rows.filter(pl.col("code").is_not_null() & pl.col("hadm_id").is_not_null())
    matched = rows.join(admission_ids.lazy(), on="hadm_id", how="semi")
    without = _collect(rows.join(admission_ids.lazy(), on="hadm_id", how="anti").select(pl.len()), path)
    counts["without_admission"] = int(without.item())
    distinct = matched.sort("seq", nulls_last=True).unique(["hadm_id", "code"], keep="first", maintain_order=True)
    grouped = _collect(distinct.group_by("hadm_id").agg(pl.col("code").sort_by("seq", nulls_last=True),
                                                        pl.len().alias("n")), path)
    counts["duplicates"] = counts["rows"] - counts["missing_code"] - counts["missing_hadm_id"] \
        - counts["without_admission"] - int(grouped["n"].sum())
    titles = {}
    if dictionary_scan is not None:
        table = _collect(dictionary_scan.select(code.alias("code"), "short_title").drop_nulls("code")
                         .unique("code", keep="first"), dictionary_path)
        titles = dict(zip(table["code"].to_list(), table["short_title"].fill_null("").to_list()))
        used = grouped.select(pl.col("code").explode()).to_series()
        unknown = used.filter(~used.is_in(table["code"].implode()))
        counts["unknown_code_rows"], counts["unknown_codes_distinct"] = unknown.len(), unknown.n_unique()
    else:
        counts["unknown_code_rows"] = counts["unknown_codes_distinct"] = None
    report[kind] = counts
    return grouped.select("hadm_id", "code"), titles


def _medications(scan, path: Path, admission_ids, mapper: DrugMapper, report: dict):
    """{HADM_ID: sorted distinct ATC3 classes} as a frame; coverage and problems counted in ``report``."""
    pl = require("polars", "timeseries")
    raw = pl.scan_csv(path, infer_schema=False,
                                                   with_column_names=lambda names: [n.strip().lower() for n in names])
    others = [c for c in raw.collect_schema().names() if c != "row_id"]
    hashed = _collect(raw.select(pl.len().alias("rows"), pl.struct(others).hash().n_unique().alias("distinct")), path)
    if "drug_name_generic" not in scan.collect_schema().names():
        scan = scan.with_columns(pl.lit(None, dtype=pl.String).alias("drug_name_generic"))
    keys = ["ndc", "drug", "drug_name_generic"]
    pairs = _collect(scan.group_by(["hadm_id", *keys]).agg(pl.len().alias("rows")), path)
    triples = pairs.group_by(keys).agg(pl.col("rows").sum())
    mapped = mapper.map_frame(triples.select(keys))
    coverage = mapper.coverage(triples, mapped=mapped, weights="rows")
    attached = pairs.filter(pl.col("hadm_id").is_not_null()).join(admission_ids, on="hadm_id", how="semi")
    report["prescriptions"] = {
        "rows": int(hashed["rows"][0]), "duplicate_rows": int(hashed["rows"][0] - hashed["distinct"][0]),
        "without_admission": int(pairs["rows"].sum() - attached["rows"].sum()),
        "unmapped_rows": coverage["unmapped"]["rows"], "unmapped_drugs": coverage["unmapped"]["drugs"],
        "coverage": coverage}
    with_classes = attached.join(mapped.select(*keys, "atc3"), on=keys, how="left", nulls_equal=True)
    return (with_classes.select("hadm_id", pl.col("atc3").alias("code")).explode("code").drop_nulls("code")
            .group_by("hadm_id").agg(pl.col("code").unique().sort()))


# ------------------------------------------------------------------------------------------------- patients


def _identities(key, deidentify: bool, report: dict):
    """A function (subject, hadm, time) -> (patient id, admission id, time), de-identifying when asked."""
    report["deidentified"] = bool(deidentify)
    if not deidentify:
        report["key"] = None
        return lambda subject, hadm, when: (subject, hadm, when)
    configured = key is not None or os.environ.get(KEY_ENV) or os.environ.get(KEY_FILE_ENV)
    report["key"] = ("given" if key is not None else "configured") if configured else "ephemeral"
    pseudonymizer = Pseudonymizer(key, allow_ephemeral=True)

    def identify(subject: str, hadm: str, when: datetime):
        return (pseudonymizer.pseudonym(subject, "patient"), pseudonymizer.pseudonym(hadm, "admission"),
                pseudonymizer.shift(when, subject))

    return identify


def _patients(admissions, codes: dict, identify, report: dict) -> list[Patient]:
    pl = require("polars", "timeseries")
    visits = admissions
    for kind, frame in codes.items():
        visits = visits.join(frame.rename({"code": kind}), on="hadm_id", how="left")
    visits = visits.with_columns([pl.col(k).fill_null([]) for k in codes]).sort("subject_id", "admitted", "hadm_id")
    no_diagnosis = visits["diagnoses"].list.len() == 0
    subjects = visits["subject_id"].n_unique()
    report["visits"] = {"admissions": visits.height, "without_diagnoses_dropped": int(no_diagnosis.sum()),
                        "without_procedures": int((visits["procedures"].list.len() == 0).sum()),
                        "without_medications": int((visits["medications"].list.len() == 0).sum())}
    visits = visits.filter(~no_diagnosis)
    by_patient: dict[str, list[Visit]] = {}
    ids: dict[str, str] = {}
    for subject, hadm, when, diagnoses, procedures, medications in visits.select(
            "subject_id", "hadm_id", "admitted", "diagnoses", "procedures", "medications").iter_rows():
        patient, admission, shifted = identify(subject, hadm, when)
        ids[subject] = patient
        by_patient.setdefault(subject, []).append(
            Visit(admission, shifted, tuple(diagnoses), tuple(procedures), tuple(medications)))
    patients = [Patient(ids[s], tuple(v)) for s, v in by_patient.items()]
    report["visits"]["kept"] = sum(len(p.visits) for p in patients)
    report["visits"]["with_medications"] = sum(bool(v.medications) for p in patients for v in p.visits)
    report["patients"] = {"found": subjects, "without_visits_dropped": subjects - len(patients),
                          "kept": len(patients), "with_2_or_more_visits": sum(len(p.visits) >= 2 for p in patients)}
    return patients


def _reporter(progress: bool):
    started = time.perf_counter()

    def say(stage: str) -> None:
        if progress:
            print(f"[mimic {time.perf_counter() - started:7.1f} s] {stage}", file=sys.stderr, flush=True)

    return say


# ------------------------------------------------------------------------------------------------- JSON


def _read_json(obj_or_path):
    if isinstance(obj_or_path, (dict, list)):
        return obj_or_path
    if isinstance(obj_or_path, (str, os.PathLike)):
        text = str(obj_or_path)
        if isinstance(obj_or_path, str) and text.lstrip().startswith("{"):
            source = "the patient JSON text"
        else:
            path = Path(text).expanduser()
            if not path.is_file():
                raise DataNotFoundError(f"No patient JSON file at {str(path)!r}; expected a .json file.")
            text, source = path.read_text(encoding="utf-8"), f"'{path.name}'"
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidInputError(f"{source} is not valid JSON (line {error.lineno}, column {error.colno}); "
                                    f"expected a JSON object with a 'visits' list.") from None
    raise InvalidInputError(f"Expected a dict, JSON text or a path for the patient; got a {type(obj_or_path).__name__}.")


def _json_visit(visit, index: int, last: bool, known: dict, expected: str) -> Visit:
    where = f"visits[{index}]"
    if not isinstance(visit, dict):
        raise InvalidInputError(f"{where} must be an object; got a {type(visit).__name__}; {expected}.")
    unknown = sorted(set(visit) - set(JSON_FIELDS))
    needed = JSON_FIELDS[:2] if last else JSON_FIELDS
    missing = [name for name in needed if name not in visit]
    if unknown or missing:
        problems = ([f"unknown field(s) {unknown}"] if unknown else []) + ([f"missing {missing}"] if missing else [])
        raise InvalidInputError(f"{where} has {' and '.join(problems)}; {expected}.")
    codes = {}
    for kind in JSON_FIELDS:
        values = visit.get(kind, [])
        if not isinstance(values, list):
            raise InvalidInputError(f"{where}.{kind} must be a list of code strings; got a {type(values).__name__}.")
        for position, value in enumerate(values):
            if not isinstance(value, str) or not value.strip():
                raise InvalidInputError(f"{where}.{kind}[{position}] must be a non-empty code string (ICD-9 without "
                                        f"dots, ATC3 for medications); got a {type(value).__name__}.")
            if kind in known and value.strip() not in known[kind]:
                raise InvalidInputError(f"{where}.{kind}[{position}] is not a known {kind} code of the model; "
                                        f"expected one of its {len(known[kind])} codes.")
        codes[kind] = tuple(dict.fromkeys(v.strip() for v in values))
    if not codes["diagnoses"]:
        raise InvalidInputError(f"{where}.diagnoses is empty; expected at least one ICD-9 diagnosis code.")
    return Visit(f"visit-{index}", None, codes["diagnoses"], codes["procedures"], codes["medications"])
