"""Synthetic EHR cohorts for the drug-recommendation tests: planted diagnosis -> medication rules, a tiny DDI graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medai.ehr.records import Cohort, Patient, Visit

CLASSES = ["A06A", "A10A", "B01A", "C03C", "C07A", "J01D", "N02B", "N05C"]
INTERACTING = [("B01A", "C07A"), ("A06A", "J01D")]
RULES = {"25000": ["A10A"], "4280": ["C03C"], "41401": ["B01A", "C07A"], "486": ["J01D"]}
FILLERS = ["4019", "2724", "V4581", "53081", "3051", "2859", "5990", "42731"]
PROCEDURES = ["3893", "9604", "3995", "8856"]
DESCRIPTIONS = {"diagnoses": {"25000": "Diabetes mellitus", "4280": "Congestive heart failure", "41401": "Coronary atherosclerosis",
                              "486": "Pneumonia"}, "procedures": {"3893": "Venous catheterization"}}  # fmt: skip


def make_cohort(n_patients: int = 120, seed: int = 0) -> Cohort:
    """Each visit draws 1-2 rule diagnoses (which imply their classes) plus fillers; A06A is common background."""
    rng = np.random.default_rng(seed)
    patients = []
    for p in range(n_patients):
        visits = []
        for v in range(int(rng.integers(1, 4))):
            rules = list(rng.choice(list(RULES), size=int(rng.integers(1, 3)), replace=False))
            diagnoses = tuple(rules + list(rng.choice(FILLERS, size=3, replace=False)))
            medications = {c for r in rules for c in RULES[r]}
            if rng.random() < 0.6:
                medications.add("A06A")
            if rng.random() < 0.1:
                medications.add("N02B")
            procedures = tuple(rng.choice(PROCEDURES, size=int(rng.integers(0, 3)), replace=False))
            visits.append(Visit(f"a{p}_{v}", None, diagnoses, procedures, tuple(sorted(medications))))
        patients.append(Patient(f"p{p:04d}", tuple(visits)))
    return Cohort(patients, {"patients": n_patients}, DESCRIPTIONS)


def stage_ddi(root: Path) -> Path:
    """Write a GAMENet-layout DDI folder (special tokens first) for CLASSES under ``root/drugrec_ddi_atc``."""
    folder = root / "drugrec_ddi_atc" / "gamenet"
    folder.mkdir(parents=True, exist_ok=True)
    words = ["seperator", "decoder_point", *CLASSES]
    matrix = np.zeros((len(words), len(words)), np.uint8)
    for a, b in INTERACTING:
        i, j = words.index(a), words.index(b)
        matrix[i, j] = matrix[j, i] = 1
    np.save(folder / "ddi_A_final.npy", matrix)
    (folder / "voc_final.json").write_text(json.dumps({"med_voc": {"idx2word": words}, "diag_voc": {"idx2word": []},
                                                       "pro_voc": {"idx2word": []}}))  # fmt: skip
    return root


def patient_json(visits: list[dict]) -> dict:
    """A patient JSON document: ``{"patient": ..., "visits": [{"diagnoses": [...], ...}]}``."""
    return {"patient": "example", "visits": visits}
