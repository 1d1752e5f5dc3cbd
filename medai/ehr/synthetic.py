"""Synthetic cohorts drawn from the code statistics of a real one, and MIMIC-III tables written from a cohort.

:func:`generate_cohort` learns from a reference :class:`~medai.ehr.records.Cohort` the number of visits per patient,
the (diagnoses, procedures, medications) counts of a visit, the intervals between visits, code frequencies and the
diagnosis -> procedure and diagnosis -> medication co-occurrences; it then draws patients whose medications depend on
their diagnoses (so a recommender has signal) and whose chronic diagnoses persist from visit to visit. No record of
the reference is copied: only code counts are used.

:func:`write_mimic_tables` writes a cohort as the MIMIC-III CSVs (upper-case columns, like the full database) that
:func:`medai.ehr.mimic.load_cohort` reads back; :func:`write_malformed_tables` writes small tables holding every
row-level problem the loader counts, with the counts it should report.
"""

from __future__ import annotations

import csv
import gzip as gzip_module
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from medai.ehr.drugcodes import DrugMapper
from medai.ehr.records import Cohort, Patient, Visit
from medai.errors import InvalidInputError, require

UNMAPPED_DRUGS = ("NS", "D5W", "SW", "Vial", "Bag", "Syringe", "Iso-Osmotic Dextrose")
FIRST_SUBJECT, FIRST_ADMISSION = 100_000, 1_000_000


@dataclass
class CodeStatistics:
    """What :func:`generate_cohort` draws from: counts and co-occurrences, no records."""

    visits_per_patient: np.ndarray  # (n_patients,) visits of each reference patient
    sizes: np.ndarray  # (n_visits, 3) numbers of diagnoses, procedures, medications per reference visit
    gaps_days: np.ndarray  # (n_gaps,) days between consecutive visits of a patient
    codes: dict  # kind -> list of codes
    frequency: dict  # kind -> (n_codes,) probability of each code
    given_diagnosis: dict  # "procedures" / "medications" -> (n_diagnoses, n_codes) P(code | diagnosis in visit)

    @classmethod
    def from_cohort(cls, reference: Cohort) -> CodeStatistics:
        visits = [v for p in reference.patients for v in p.visits]
        if not visits:
            raise InvalidInputError("The reference cohort has no visits; expected a loaded cohort with visits.")
        codes = {kind: reference.vocabulary(kind) for kind in ("diagnoses", "procedures", "medications")}
        index = {kind: {code: i for i, code in enumerate(values)} for kind, values in codes.items()}
        counts = {kind: np.zeros(len(values)) for kind, values in codes.items()}
        given = {kind: np.zeros((len(codes["diagnoses"]), len(codes[kind])), dtype=np.float32)
                 for kind in ("procedures", "medications")}
        for visit in visits:
            rows = [index["diagnoses"][c] for c in visit.diagnoses]
            counts["diagnoses"][rows] += 1
            for kind in ("procedures", "medications"):
                columns = [index[kind][c] for c in getattr(visit, kind)]
                counts[kind][columns] += 1
                given[kind][np.ix_(rows, columns)] += 1
        for matrix in given.values():
            matrix /= np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        gaps = [(b.admitted - a.admitted).total_seconds() / 86400 for p in reference.patients
                for a, b in zip(p.visits, p.visits[1:]) if a.admitted and b.admitted]
        return cls(visits_per_patient=np.array([len(p.visits) for p in reference.patients if p.visits]),
                   sizes=np.array([[len(v.diagnoses), len(v.procedures), len(v.medications)] for v in visits]),
                   gaps_days=np.array([g for g in gaps if g > 0] or [180.0]), codes=codes,
                   frequency={kind: c / max(c.sum(), 1) for kind, c in counts.items()}, given_diagnosis=given)


def generate_cohort(reference: Cohort, n_patients: int, seed: int = 0, *, persistence: float = 0.5,
                    signal: float = 0.8) -> Cohort:
    """Draw ``n_patients`` synthetic patients from the code statistics of ``reference``.

    Parameters
    ----------
    reference:
        A loaded cohort (for instance the MIMIC-III demo); only its code counts are used.
    n_patients:
        Number of patients to draw (at least 1).
    seed:
        Random seed; the same reference and seed give the same cohort.
    persistence:
        Probability that a diagnosis of the previous visit is kept in the next one (chronic conditions).
    signal:
        Weight of P(code | the visit's diagnoses) against the code's overall frequency when drawing procedures
        and medications (0 = unrelated to diagnoses).

    Returns
    -------
    Cohort
        Patients with ids ``"100000"``, ``"100001"``, ... and admissions ``"1000000"``, ...; ``descriptions`` copied
        from ``reference`` for the codes used; ``report`` names the generator and its parameters.

    Examples
    --------
    >>> v = Visit("a", datetime(2100, 1, 1), ("4019", "25000"), ("3893",), ("C09A", "A10B"))
    >>> w = Visit("b", datetime(2100, 6, 1), ("4019",), (), ("C09A",))
    >>> cohort = generate_cohort(Cohort([Patient("p", (v, w))]), n_patients=3, seed=1)
    >>> len(cohort.patients), all(len(p.visits) == 2 for p in cohort.patients)
    (3, True)
    """
    if isinstance(n_patients, bool) or not isinstance(n_patients, (int, np.integer)) or n_patients < 1:
        raise InvalidInputError(f"The 'n_patients' parameter must be an int of at least 1; got {n_patients!r}.")
    for name, value in (("persistence", persistence), ("signal", signal)):
        if not 0.0 <= float(value) <= 1.0:
            raise InvalidInputError(f"The '{name}' parameter must be a float in [0, 1]; got {value!r}.")
    stats = CodeStatistics.from_cohort(reference)
    rng = np.random.default_rng(seed)
    log_frequency = {kind: np.log(f + 1e-12) for kind, f in stats.frequency.items()}
    patients, admission = [], FIRST_ADMISSION
    for number in range(int(n_patients)):
        n_visits = int(rng.choice(stats.visits_per_patient))
        when = datetime(2100, 1, 1) + timedelta(days=int(rng.integers(0, 365 * 80)), minutes=int(rng.integers(0, 1440)))
        visits, previous = [], np.array([], dtype=np.int64)
        for _ in range(n_visits):
            n_diagnoses, n_procedures, n_medications = stats.sizes[rng.integers(len(stats.sizes))]
            diagnoses = _diagnoses(rng, previous, max(int(n_diagnoses), 1), persistence, log_frequency["diagnoses"])
            drawn = {kind: _given(rng, stats, kind, diagnoses, int(size), signal)
                     for kind, size in (("procedures", n_procedures), ("medications", n_medications))}
            visits.append(Visit(str(admission), when, tuple(stats.codes["diagnoses"][i] for i in diagnoses),
                                tuple(stats.codes["procedures"][i] for i in drawn["procedures"]),
                                tuple(sorted(stats.codes["medications"][i] for i in drawn["medications"]))))
            admission += 1
            previous = diagnoses
            when += timedelta(minutes=round(float(rng.choice(stats.gaps_days)) * 1440))
        patients.append(Patient(str(FIRST_SUBJECT + number), tuple(visits)))
    used = {kind: set().union(*(getattr(v, kind) for p in patients for v in p.visits)) for kind in stats.codes}
    descriptions = {kind: {c: t for c, t in table.items() if kind == "medications" or c in used.get(kind, ())}
                    for kind, table in reference.descriptions.items()}
    report = {"source": "synthetic", "seed": int(seed), "persistence": float(persistence), "signal": float(signal),
              "reference_patients": len(reference.patients), "reference_visits": reference.n_visits}
    return Cohort(patients, report, descriptions)


def _top_k(rng, log_weights: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """``k`` distinct indices drawn without replacement with probability proportional to exp(log_weights)."""
    keys = log_weights + rng.gumbel(size=log_weights.shape)
    if exclude is not None and len(exclude):
        keys[exclude] = -np.inf
    k = min(k, int(np.isfinite(keys).sum()))
    if k <= 0:
        return np.array([], dtype=np.int64)
    chosen = np.argpartition(-keys, k - 1)[:k]
    return chosen[np.argsort(-keys[chosen])]


def _diagnoses(rng, previous: np.ndarray, size: int, persistence: float, log_frequency: np.ndarray) -> np.ndarray:
    kept = previous[rng.random(len(previous)) < persistence][:size]
    fresh = _top_k(rng, log_frequency.copy(), size - len(kept), exclude=kept)
    return np.concatenate([kept, fresh]).astype(np.int64)


def _given(rng, stats: CodeStatistics, kind: str, diagnoses: np.ndarray, size: int, signal: float) -> np.ndarray:
    if size <= 0 or not len(stats.codes[kind]):
        return np.array([], dtype=np.int64)
    conditional = stats.given_diagnosis[kind][diagnoses].mean(axis=0)
    weights = signal * conditional + (1 - signal) * stats.frequency[kind]
    return _top_k(rng, np.log(weights + 1e-12), size)


# ------------------------------------------------------------------------------------------------- writing


def write_mimic_tables(cohort: Cohort, folder: str | os.PathLike, *, gzip: bool = False,
                       mapper: DrugMapper | None = None, rows_per_medication: float = 3.5,
                       unmapped_fraction: float = 0.13, seed: int = 0) -> dict[str, Path]:
    """Write ``cohort`` as MIMIC-III tables that :func:`medai.ehr.mimic.load_cohort` reads back.

    Writes ADMISSIONS, PATIENTS, DIAGNOSES_ICD, PROCEDURES_ICD and PRESCRIPTIONS (all 19 MIMIC-III columns), plus
    D_ICD_DIAGNOSES and D_ICD_PROCEDURES from ``cohort.descriptions`` when it has them. Each ATC3 class of a visit
    becomes 1 + Poisson(``rows_per_medication`` - 1) prescription rows of a drug the mapper maps back to that class;
    ``unmapped_fraction`` of the rows are IV solutions and containers that map to no class, as in MIMIC-III.
    Numeric patient and admission ids are kept; other ids are numbered.

    Returns
    -------
    dict
        ``{table name: path}`` of the files written.
    """
    pl = require("polars", "timeseries")
    if rows_per_medication < 1 or not 0 <= unmapped_fraction < 1:
        raise InvalidInputError(f"rows_per_medication must be at least 1 and unmapped_fraction in [0, 1); got "
                                f"{rows_per_medication!r} and {unmapped_fraction!r}.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    visits = _visit_frame(cohort)
    tables = {"ADMISSIONS": _admissions_table(visits), "PATIENTS": _patients_table(visits, rng)}
    for kind, name in (("diagnoses", "DIAGNOSES_ICD"), ("procedures", "PROCEDURES_ICD")):
        tables[name] = _codes_table(visits, kind)
        if cohort.descriptions.get(kind):
            table = cohort.descriptions[kind]
            tables[f"D_ICD_{kind.upper()}"] = pl.DataFrame({
                "ROW_ID": list(range(1, len(table) + 1)), "ICD9_CODE": list(table),
                "SHORT_TITLE": list(table.values()), "LONG_TITLE": list(table.values())})
    tables["PRESCRIPTIONS"] = _prescriptions_table(visits, mapper or DrugMapper(), rows_per_medication,
                                                   unmapped_fraction, rng)
    written = {}
    for name, frame in tables.items():
        path = folder / f"{name}.csv{'.gz' if gzip else ''}"
        if gzip:
            with gzip_module.open(path, "wb", compresslevel=1) as handle:
                frame.write_csv(handle)
        else:
            frame.write_csv(path)
        written[name] = path
    return written


def _visit_frame(cohort: Cohort):
    pl = require("polars", "timeseries")
    subjects = {p.patient: int(p.patient) if p.patient.isdigit() else FIRST_SUBJECT + i
                for i, p in enumerate(cohort.patients)}
    rows = {"SUBJECT_ID": [], "HADM_ID": [], "ADMITTIME": [], "diagnoses": [], "procedures": [], "medications": []}
    number = FIRST_ADMISSION
    for patient in cohort.patients:
        for visit in patient.visits:
            number += 1
            rows["SUBJECT_ID"].append(subjects[patient.patient])
            rows["HADM_ID"].append(int(visit.admission) if visit.admission.isdigit() else number)
            rows["ADMITTIME"].append(visit.admitted or datetime(2100, 1, 1))
            for kind in ("diagnoses", "procedures", "medications"):
                rows[kind].append(list(getattr(visit, kind)))
    return pl.DataFrame(rows, schema={"SUBJECT_ID": pl.Int64, "HADM_ID": pl.Int64, "ADMITTIME": pl.Datetime("us"),
                                      "diagnoses": pl.List(pl.String), "procedures": pl.List(pl.String),
                                      "medications": pl.List(pl.String)})


def _admissions_table(visits):
    pl = require("polars", "timeseries")
    stamp = "%Y-%m-%d %H:%M:%S"
    return visits.select(pl.int_range(1, pl.len() + 1).alias("ROW_ID"), "SUBJECT_ID", "HADM_ID",
                         pl.col("ADMITTIME").dt.strftime(stamp),
                         (pl.col("ADMITTIME") + pl.duration(days=5)).dt.strftime(stamp).alias("DISCHTIME"),
                         pl.lit("EMERGENCY").alias("ADMISSION_TYPE"), pl.lit("0").alias("HOSPITAL_EXPIRE_FLAG"))


def _patients_table(visits, rng):
    pl = require("polars", "timeseries")
    subjects = visits.group_by("SUBJECT_ID").agg(pl.col("ADMITTIME").min()).sort("SUBJECT_ID")
    ages = rng.integers(20, 90, subjects.height)
    return subjects.select(pl.int_range(1, pl.len() + 1).alias("ROW_ID"), "SUBJECT_ID",
                           pl.Series("GENDER", np.where(rng.random(subjects.height) < 0.5, "F", "M")),
                           (pl.col("ADMITTIME") - pl.duration(days=pl.Series(ages * 365)))
                           .dt.strftime("%Y-%m-%d 00:00:00").alias("DOB"))


def _codes_table(visits, kind: str):
    pl = require("polars", "timeseries")
    rows = (visits.select("SUBJECT_ID", "HADM_ID", pl.col(kind).alias("ICD9_CODE"))
            .with_columns(pl.int_ranges(1, pl.col("ICD9_CODE").list.len() + 1).alias("SEQ_NUM"))
            .explode("ICD9_CODE", "SEQ_NUM").drop_nulls("ICD9_CODE"))
    return rows.select(pl.int_range(1, pl.len() + 1).alias("ROW_ID"), "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE")


def _prescriptions_table(visits, mapper: DrugMapper, rows_per_medication: float, unmapped_fraction: float, rng):
    pl = require("polars", "timeseries")
    examples = mapper.examples()
    drugs = pl.DataFrame({"atc3": list(examples), "NDC": [n for n, _ in examples.values()],
                          "DRUG": [d.capitalize() for _, d in examples.values()]})
    mapped = (visits.select("SUBJECT_ID", "HADM_ID", "ADMITTIME", pl.col("medications").alias("atc3"))
              .explode("atc3").drop_nulls("atc3").join(drugs, on="atc3", how="inner").drop("atc3"))
    repeats = 1 + rng.poisson(rows_per_medication - 1, mapped.height)
    starts = np.cumsum(repeats) - repeats
    days = np.arange(int(repeats.sum())) - np.repeat(starts, repeats)  # the k-th row of a class starts on day k
    mapped = mapped[np.repeat(np.arange(mapped.height), repeats)].with_columns(pl.Series("day", days))
    n_unmapped = round(mapped.height * unmapped_fraction / (1 - unmapped_fraction))
    if n_unmapped and visits.height:
        picked = visits.select("SUBJECT_ID", "HADM_ID", "ADMITTIME")[rng.integers(0, visits.height, n_unmapped)]
        filler = picked.with_columns(pl.lit("0").alias("NDC"), pl.Series("day", rng.integers(0, 10, n_unmapped)),
                                     pl.Series("DRUG", np.array(UNMAPPED_DRUGS)[rng.integers(0, 7, n_unmapped)]))
        mapped = pl.concat([mapped, filler.select(mapped.columns).cast(mapped.schema)])
    day = "%Y-%m-%d 00:00:00"
    return mapped.sort("HADM_ID", maintain_order=True).select(
        pl.int_range(1, pl.len() + 1).alias("ROW_ID"), "SUBJECT_ID", "HADM_ID", pl.lit(None, pl.String).alias(
            "ICUSTAY_ID"), (pl.col("ADMITTIME") + pl.duration(days="day")).dt.strftime(day).alias("STARTDATE"),
        (pl.col("ADMITTIME") + pl.duration(days=pl.col("day") + 1)).dt.strftime(day).alias("ENDDATE"),
        pl.lit("MAIN").alias("DRUG_TYPE"), "DRUG", pl.col("DRUG").alias("DRUG_NAME_POE"),
        pl.col("DRUG").alias("DRUG_NAME_GENERIC"), pl.col("DRUG").str.slice(0, 6).str.to_uppercase().alias(
            "FORMULARY_DRUG_CD"), pl.lit(None, pl.String).alias("GSN"), "NDC", pl.lit("1 Tab").alias("PROD_STRENGTH"),
        pl.lit("1").alias("DOSE_VAL_RX"), pl.lit("mg").alias("DOSE_UNIT_RX"), pl.lit("1").alias("FORM_VAL_DISP"),
        pl.lit("TAB").alias("FORM_UNIT_DISP"), pl.lit("PO").alias("ROUTE"))


# ------------------------------------------------------------------------------------------------- malformed


def write_malformed_tables(folder: str | os.PathLike, *, mapper: DrugMapper | None = None,
                           gzip: bool = False) -> dict:
    """Write small MIMIC-III tables holding every row-level problem :func:`load_cohort` counts.

    Three valid patients (four admissions; patient 100000 has two) are written, then bad rows appended: a repeated
    admission, an admission with an unreadable ADMITTIME, one without HADM_ID, one without any diagnosis; an unknown
    ICD-9 diagnosis and procedure code, diagnoses and prescriptions of an admission that does not exist, repeated
    diagnosis, procedure and prescription rows, a diagnosis without a code, and a drug no route maps.

    Returns
    -------
    dict
        The counts ``cohort.report`` should hold, as ``{section: {key: count}}``.
    """
    folder = Path(folder)
    when = datetime(2150, 3, 1, 8, 30)
    visits = [("100000", "1000001", when, ("4019", "25000"), ("3893",), ("C09A", "A10B")),
              ("100000", "1000002", when + timedelta(days=40), ("4019",), (), ("C09A",)),
              ("100001", "1000003", when + timedelta(days=900), ("42731", "4019"), ("3893", "9904"), ("B01A",)),
              ("100002", "1000004", when + timedelta(days=2000), ("25000",), (), ())]
    patients: dict[str, list[Visit]] = {}
    for subject, hadm, admitted, diagnoses, procedures, medications in visits:
        patients.setdefault(subject, []).append(Visit(hadm, admitted, diagnoses, procedures, medications))
    descriptions = {"diagnoses": {"4019": "Hypertension NOS", "25000": "DMII wo cmp nt st uncntr",
                                  "42731": "Atrial fibrillation"},
                    "procedures": {"3893": "Venous cath NEC", "9904": "Packed cell transfusion"}}
    cohort = Cohort([Patient(s, tuple(v)) for s, v in patients.items()], descriptions=descriptions)
    written = write_mimic_tables(cohort, folder, mapper=mapper, rows_per_medication=1, unmapped_fraction=0)
    appended = {
        "ADMISSIONS": [[90, 100000, 1000001, "2150-03-01 08:30:00", "", "EMERGENCY", "0"],  # duplicate HADM_ID
                       [91, 100003, 1000005, "not a date", "", "EMERGENCY", "0"],  # malformed date
                       [92, 100003, "", "2150-01-01 00:00:00", "", "EMERGENCY", "0"],  # no HADM_ID
                       [93, 100001, 1000006, "2155-01-01 10:00:00", "", "EMERGENCY", "0"]],  # no diagnoses
        "DIAGNOSES_ICD": [[90, 100000, 1000001, 3, "XYZ99"],  # unknown code
                          [91, 100009, 9999999, 1, "4019"],  # no such admission
                          [92, 100000, 1000001, 1, "4019"],  # duplicate
                          [93, 100000, 1000002, 2, ""]],  # no code
        "PROCEDURES_ICD": [[90, 100001, 1000003, 3, "0000"],  # unknown code
                           [91, 100001, 1000003, 1, "3893"]],  # duplicate
    }
    with open(written["PRESCRIPTIONS"], newline="", encoding="utf-8") as handle:
        prescription_rows = list(csv.reader(handle))
    header, first = prescription_rows[0], prescription_rows[1]
    unknown = dict(zip(header, first), ROW_ID="90", NDC="99999999999", DRUG="Zzqx", DRUG_NAME_POE="Zzqx",
                   DRUG_NAME_GENERIC="Zzqx")
    orphan = dict(zip(header, first), ROW_ID="91", HADM_ID="9999999")
    appended["PRESCRIPTIONS"] = [[unknown[c] for c in header], [orphan[c] for c in header],
                                 ["92", *first[1:]]]  # duplicate apart from ROW_ID
    for name, rows in appended.items():
        with open(written[name], "a", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(rows)
    if gzip:
        for path in written.values():
            with open(path, "rb") as source, gzip_module.open(f"{path}.gz", "wb") as target:
                shutil.copyfileobj(source, target)
            path.unlink()
    return {
        "admissions": {"rows": 8, "missing_id": 1, "duplicate_hadm_id": 1, "malformed_date": 1, "kept": 5},
        "diagnoses": {"rows": 10, "missing_code": 1, "without_admission": 1, "duplicates": 1,
                      "unknown_code_rows": 1, "unknown_codes_distinct": 1},
        "procedures": {"rows": 5, "without_admission": 0, "duplicates": 1, "unknown_code_rows": 1,
                       "unknown_codes_distinct": 1},
        "prescriptions": {"rows": 7, "duplicate_rows": 1, "without_admission": 1, "unmapped_rows": 1,
                          "unmapped_drugs": 1},
        "visits": {"admissions": 5, "without_diagnoses_dropped": 1, "kept": 4},
        "patients": {"found": 3, "kept": 3, "with_2_or_more_visits": 1, "without_visits_dropped": 0},
    }
