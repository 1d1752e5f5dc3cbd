"""Cohorts as model inputs for drug recommendation: code vocabularies, visit samples, batches, patient splits.

One sample per visit that has medications (GAMENet's protocol): its input is that visit's and the earlier visits'
diagnoses and procedures (plus the earlier visits' medications), its target the visit's medication classes. A patient
with one visit gives one sample with a history of one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from medai.ehr.records import Cohort, Patient

INPUT_KINDS = ("diagnoses", "procedures", "medications")


@dataclass
class EncodedVisit:
    """A visit as vocabulary indices (1-based; 0 pads), codes outside the vocabulary dropped."""

    diagnoses: np.ndarray
    procedures: np.ndarray
    medications: np.ndarray


class CodeEncoder:
    """Vocabularies of diagnoses, procedures and medication classes, fitted on the training cohort only.

    Attributes (after ``fit``):
        diagnoses_, procedures_, medications_: sorted code lists; ``medications_`` are the output classes.
    """

    def __init__(self, min_count: int = 1):
        self.min_count = min_count  # codes seen in fewer training visits are treated as unknown

    def fit(self, cohort: Cohort) -> CodeEncoder:
        for kind in INPUT_KINDS:
            counts: dict[str, int] = {}
            for patient in cohort.patients:
                for visit in patient.visits:
                    for code in set(getattr(visit, kind)):
                        counts[code] = counts.get(code, 0) + 1
            setattr(self, f"{kind}_", sorted(c for c, n in counts.items() if n >= self.min_count))
        self._index()
        return self

    def _index(self) -> None:
        self.lookup_ = {kind: {c: i + 1 for i, c in enumerate(getattr(self, f"{kind}_"))} for kind in INPUT_KINDS}

    def size(self, kind: str) -> int:
        return len(getattr(self, f"{kind}_"))

    def encode(self, patient: Patient, unknown: dict | None = None) -> list[EncodedVisit]:
        """Index arrays of each visit; ``unknown`` (optional) counts the codes dropped per kind."""
        visits = []
        for visit in patient.visits:
            arrays = {}
            for kind in INPUT_KINDS:
                codes = list(dict.fromkeys(getattr(visit, kind)))
                index = [self.lookup_[kind].get(c, 0) for c in codes]
                if unknown is not None:
                    unknown[kind] = unknown.get(kind, 0) + index.count(0)
                arrays[kind] = np.array([i for i in index if i], dtype=np.int64)
            visits.append(EncodedVisit(**arrays))
        return visits

    def to_dict(self) -> dict:
        return {"min_count": self.min_count, **{kind: getattr(self, f"{kind}_") for kind in INPUT_KINDS}}

    @classmethod
    def from_dict(cls, state: dict) -> CodeEncoder:
        encoder = cls(state.get("min_count", 1))
        for kind in INPUT_KINDS:
            setattr(encoder, f"{kind}_", list(state[kind]))
        encoder._index()
        return encoder


class VisitSamples:
    """A CollatedDataset of visit samples (see the module docstring).

    Attributes:
        labels: float32 array of shape (n_samples, n_classes), the classes given at each sample's visit.
        patients: the patient id of each sample, shape (n_samples,).
        visits: the (pseudonymised) admission id of each sample, shape (n_samples,).
        histories: per sample, the list of EncodedVisit up to and including its visit (at most ``max_visits``).
        targets: per sample, the classes given at its visit, including those outside the output classes.
    """

    def __init__(self, cohort: Cohort, encoder: CodeEncoder, *, max_visits: int = 20, labelled: bool = True,
                 last_only: bool = False):  # fmt: skip
        self.n_classes = encoder.size("medications")
        self.unknown: dict[str, int] = {}
        histories, patients, visits, self.targets = [], [], [], []
        for patient in cohort.patients:
            encoded = encoder.encode(patient, self.unknown)
            positions = [len(encoded) - 1] if last_only else range(len(encoded))
            for t in positions:
                if labelled and not len(patient.visits[t].medications):
                    continue
                histories.append(encoded[max(0, t + 1 - max_visits) : t + 1])
                patients.append(patient.patient)
                visits.append(patient.visits[t].admission)
                self.targets.append(tuple(dict.fromkeys(patient.visits[t].medications)))
        self.histories, self.patients, self.visits = histories, np.array(patients, dtype=object), np.array(visits, dtype=object)
        self.labels = np.zeros((len(histories), self.n_classes), np.float32)
        for row, history in enumerate(histories):
            self.labels[row, history[-1].medications - 1] = 1.0

    def __len__(self) -> int:
        return len(self.histories)

    def collate(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        batch = collate_histories([self.histories[i] for i in indices])
        batch["label"] = torch.from_numpy(self.labels[np.asarray(indices)])
        return batch


def collate_histories(histories: list[list[EncodedVisit]]) -> dict[str, torch.Tensor]:
    """Pad histories into the batch dict the drug-recommendation models read (``medai.models.drugrec``)."""
    steps = max(len(h) for h in histories)
    batch = {}
    for kind in INPUT_KINDS:
        if kind == "medications":  # the previous visit's classes: shift by one, never the current visit's
            rows = [[np.zeros(0, np.int64), *(v.medications for v in h[:-1])] for h in histories]
        else:
            rows = [[getattr(v, kind) for v in h] for h in histories]
        width = max([len(codes) for row in rows for codes in row] + [1])
        padded = np.zeros((len(histories), steps, width), np.int64)  # (batch, visits, max codes)
        for b, row in enumerate(rows):
            for t, codes in enumerate(row):
                padded[b, t, : len(codes)] = codes
        batch[kind] = torch.from_numpy(padded)
    batch["lengths"] = torch.tensor([len(h) for h in histories], dtype=torch.int64)
    return batch


def split_patients(n_patients: int, test_fraction: float, validation_fraction: float, seed: int) -> dict[str, list[int]]:
    """Seeded patient-level split of positions 0..n-1: ``test_fraction`` to test, ``validation_fraction`` of the rest
    to val, the remainder to train (sorted position lists)."""
    order = np.random.default_rng(seed).permutation(n_patients).tolist()
    n_test = round(test_fraction * n_patients)
    rest = order[n_test:]
    n_val = max(1, round(validation_fraction * len(rest)))
    return {"train": sorted(rest[n_val:]), "val": sorted(rest[:n_val]), "test": sorted(order[:n_test])}


def subset(cohort: Cohort, positions) -> Cohort:
    """The cohort restricted to the patients at ``positions`` (report and descriptions kept)."""
    return Cohort([cohort.patients[i] for i in sorted(positions)], cohort.report, cohort.descriptions)


def cohort_fingerprint(cohort: Cohort) -> str:
    """sha256 of the whole cohort's codes in order (no ids, no dates): tells whether a reload is the same data.

    Patients are matched by position between loads, since pseudonyms change when no de-identification key is set.
    """
    import hashlib

    digest = hashlib.sha256()
    for patient in cohort.patients:
        for visit in patient.visits:
            for kind in INPUT_KINDS:
                digest.update((",".join(getattr(visit, kind)) + ";").encode())
            digest.update(b"|")
        digest.update(b"#")
    return digest.hexdigest()
